//! What the HTTP side needs beyond the services' state: the GraphQL schema and its document
//! cache, GraphiQL's files and the metrics registry.

use std::ops::Deref;
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::error::AppResult;
use crate::graphql::documents::Documents;
use crate::graphql::schema::{self, AppSchema};
use crate::metrics::Metrics;
use crate::state::App;

/// The HTTP side's state.
pub struct Web {
    /// The services' state.
    pub app: Arc<App>,
    /// The GraphQL schema.
    pub schema: AppSchema,
    /// Parsed GraphQL documents, by text.
    pub documents: Documents,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

/// Cheap-to-clone handle on [`Web`], the state of every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Web>);

impl Deref for AppState {
    type Target = Web;
    fn deref(&self) -> &Web {
        &self.0
    }
}

impl Deref for Web {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl AppState {
    /// Builds the whole state on a migrated database.
    pub async fn build(config: Config, db: DatabaseConnection) -> AppResult<AppState> {
        let schema = schema::build(&config);
        let app = Arc::new(App::build(config, db).await?);
        // On PostgreSQL, events committed by any instance reach this one's subscribers, and
        // credential changes made through any instance evict this one's cache.
        if app.db.get_database_backend() == sea_orm::DbBackend::Postgres {
            let url = app.config.database_url();
            let (db, outbox) = (app.db.clone(), app.outbox.clone());
            tokio::spawn(crate::service::event::listen(db, url.clone(), outbox));
            tokio::spawn(crate::service::invalidate::listen(url, app.clone()));
        }
        Ok(AppState(Arc::new(Web {
            app,
            schema,
            documents: Documents::default(),
            metrics: Arc::new(Metrics::default()),
        })))
    }
}
