//! GraphQL over WebSocket at `/graphql` (`graphql-transport-ws`, and the older
//! `graphql-ws`): the credential travels in `connection_init`'s payload, each operation is
//! bounded as over HTTP before it runs, and the connection is closed once the credential
//! stops being valid (a revoked key, a deactivated user).

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Data, Executor, Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response as HttpResponse;
use futures::stream::{self, BoxStream, StreamExt};

use crate::context::RequestCtx;
use crate::error::AppError;
use crate::graphql::http::check_limits;
use crate::graphql::limits::Limits;
use crate::graphql::loaders::LazyLoaders;
use crate::graphql::schema::AppSchema;
use crate::web::AppState;

/// Largest WebSocket message accepted: an operation is a small JSON text.
const MAX_MESSAGE: usize = 256 * 1024;
/// How often a connection's credential is checked again.
const RECHECK: Duration = Duration::from_secs(1);

/// Upgrades `GET /graphql` to a GraphQL WebSocket.
pub fn upgrade(state: AppState, protocol: GraphQLProtocol, ws: WebSocketUpgrade) -> HttpResponse {
    ws.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(state, protocol, socket))
}

/// The schema behind the limits the HTTP side applies: nesting, depth, cost, aliases, root
/// fields and fragment expansion are checked before an operation runs.
#[derive(Clone)]
struct Bounded {
    schema: AppSchema,
    state: AppState,
}

impl Bounded {
    fn check(&self, request: Request) -> Result<Request, AppError> {
        let limits = Limits::from_config(&self.state.config);
        check_limits(&self.state, request, &limits).map(|checked| checked.request)
    }
}

/// A refusal as a GraphQL response.
fn refused(e: AppError) -> Response {
    Response::from_errors(vec![
        e.to_graphql()
            .into_server_error(async_graphql::Pos::default()),
    ])
}

impl Executor for Bounded {
    async fn execute(&self, request: Request) -> Response {
        match self.check(request) {
            Ok(request) => self.schema.execute(request).await,
            Err(e) => refused(e),
        }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.check(request) {
            Ok(request) => Executor::execute_stream(&self.schema, request, session_data),
            Err(e) => stream::once(async move { refused(e) }).boxed(),
        }
    }
}

/// `connection_init`'s payload as request headers (`X-API-Key`, `Authorization`,
/// `X-Environment`, `X-On-Behalf-Of`), so it is authenticated exactly as a request is.
fn headers_of(payload: &serde_json::Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(map) = payload.as_object() {
        for (k, v) in map {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                headers.insert(name, value);
            }
        }
    }
    headers
}

async fn serve(state: AppState, protocol: GraphQLProtocol, socket: WebSocket) {
    let executor = Bounded {
        schema: state.schema.clone(),
        state: state.clone(),
    };
    // The credential accepted at `connection_init`, checked again while the connection lives.
    let accepted: Arc<std::sync::Mutex<Option<HeaderMap>>> = Default::default();
    let (init_state, init_accepted) = (state.clone(), accepted.clone());
    let connection = GraphQLWebSocket::new(socket, executor, protocol)
        .on_connection_init(move |payload| async move {
            let headers = headers_of(&payload);
            let principal = crate::layers::credentials::authenticate(&init_state.app, &headers)
                .await
                .map_err(|e| e.to_graphql())?
                .ok_or_else(|| AppError::MissingToken.to_graphql())?;
            if let Ok(mut slot) = init_accepted.lock() {
                *slot = Some(headers);
            }
            let mut data = Data::default();
            data.insert(RequestCtx {
                principal: Some(principal),
                ip: None,
                request_id: format!("ws-{}", uuid::Uuid::new_v4().simple()),
                credential_checks: Default::default(),
            });
            data.insert(init_state.app.clone());
            data.insert(LazyLoaders::default());
            Ok(data)
        })
        .keepalive_timeout(Duration::from_secs(60))
        .serve();
    let watch = async {
        loop {
            tokio::time::sleep(RECHECK).await;
            let headers = accepted.lock().ok().and_then(|slot| slot.clone());
            if let Some(headers) = headers
                && !matches!(
                    crate::layers::credentials::authenticate(&state.app, &headers).await,
                    Ok(Some(_))
                )
            {
                return;
            }
        }
    };
    // Whichever ends first ends the connection: the client, or the credential's validity.
    tokio::select! {
        () = connection => {}
        () = watch => tracing::info!("closing a GraphQL WebSocket: its credential is no longer valid"),
    }
}
