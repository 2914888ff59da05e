//! `subscription { events(types) }`: committed events of the caller's tenant and environment,
//! as they commit (over WebSocket, `graphql-transport-ws`; see `graphql/ws.rs`).

use async_graphql::{Context, Result, Subscription};
use entity::enums::EventType;
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::event::Event;
use super::guard::Need;
use super::{app, rc};
use crate::error::AppError;

/// The subscription root.
#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Events of the caller's tenant and environment as they commit, optionally of some types
    /// only. A subscriber too slow to keep up gets an error and should resume from the feed
    /// (`events(after:)`).
    #[graphql(guard = "Need::Auth")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<EventType>>,
    ) -> Result<impl Stream<Item = Result<Event>> + use<>> {
        let p = rc(ctx)?.principal()?;
        let (tenant, environment) = (p.tenant_id, p.environment);
        let types = types.unwrap_or_default();
        let committed = BroadcastStream::new(app(ctx)?.outbox.committed.subscribe());
        Ok(committed.filter_map(move |item| {
            let out = match item {
                Ok(e)
                    if e.tenant_id == tenant
                        && e.environment == environment
                        && (types.is_empty() || types.contains(&e.event_type)) =>
                {
                    Some(Ok(Event((*e).clone())))
                }
                Ok(_) => None,
                Err(BroadcastStreamRecvError::Lagged(n)) => Some(Err(AppError::Conflict(format!(
                    "{n} events were missed; resume from the feed with events(after:)"
                ))
                .to_graphql())),
            };
            async move { out }
        }))
    }
}
