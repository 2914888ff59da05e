//! The change feed: `events(first, after, types, resourceId)`.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use entity::enums::EventType;
use entity::event;

use super::guard::Need;
use super::lead::PageInfo;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::event::{FeedArgs, cursor, feed};

/// A committed change.
pub struct Event(pub event::Model);

/// Who made a change; all null for changes the server made itself (duplicate detection).
#[derive(SimpleObject)]
pub struct EventActor {
    /// The session's user or the key's creator.
    pub user_id: Option<ID>,
    /// The user acted for (`X-On-Behalf-Of`).
    pub on_behalf_of_user_id: Option<ID>,
    /// The API key used.
    pub api_key_id: Option<ID>,
}

#[Object]
impl Event {
    /// Opaque ID, stable across deliveries of the event.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Event, self.0.id)
    }
    /// What happened.
    #[graphql(name = "type")]
    async fn event_type(&self) -> EventType {
        self.0.event_type
    }
    /// When the change committed.
    async fn occurred_at(&self) -> DateTime {
        self.0.occurred_at.into()
    }
    /// The kind of resource: `lead`.
    async fn resource_type(&self) -> &str {
        &self.0.resource_type
    }
    /// The resource's opaque ID.
    async fn resource_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        match (self.0.resource_type.as_str(), self.0.resource_id) {
            ("lead", Some(id)) => Ok(Some(super::encode(ctx, Kind::Lead, id)?)),
            ("import", Some(id)) => Ok(Some(super::encode(ctx, Kind::ImportJob, id)?)),
            _ => Ok(None),
        }
    }
    /// Who made the change.
    async fn actor(&self, ctx: &Context<'_>) -> Result<EventActor> {
        let id = |kind, v: Option<i64>| v.map(|v| super::encode(ctx, kind, v)).transpose();
        Ok(EventActor {
            user_id: id(Kind::User, self.0.actor_user_id)?,
            on_behalf_of_user_id: id(Kind::User, self.0.on_behalf_of_user_id)?,
            api_key_id: id(Kind::ApiKey, self.0.api_key_id)?,
        })
    }
    /// The resource as REST shows it after the change (its last state for a delete).
    async fn data(&self) -> Json<serde_json::Value> {
        Json(self.0.data.clone())
    }
    /// `{field: {from, to}}` for updates.
    async fn changes(&self) -> Option<Json<serde_json::Value>> {
        self.0.changes.clone().map(Json)
    }
}

/// An edge of the feed.
#[derive(SimpleObject)]
pub struct EventEdge {
    /// Where to resume after this event.
    pub cursor: String,
    /// The event.
    pub node: Event,
}

/// A page of the feed, oldest first. `pageInfo.endCursor` is where to resume, also when the
/// page is empty (it is then the `after` given).
#[derive(SimpleObject)]
pub struct EventConnection {
    /// Events with cursors.
    pub edges: Vec<EventEdge>,
    /// Paging.
    pub page_info: PageInfo,
}

/// `events`.
#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// The change feed of the caller's tenant and environment, oldest first. Following
    /// `pageInfo.endCursor` sees every event once and never skips one.
    #[graphql(guard = "Need::Auth")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i64>,
        after: Option<String>,
        types: Option<Vec<EventType>>,
        resource_id: Option<ID>,
    ) -> Result<EventConnection> {
        let app = app(ctx)?;
        let page = feed(
            app,
            rc(ctx)?,
            FeedArgs {
                after,
                first,
                types: types.unwrap_or_default(),
                resource_id: resource_id.map(|id| id.0),
            },
        )
        .await?;
        let edges: Vec<EventEdge> = page
            .events
            .into_iter()
            .map(|e| EventEdge {
                cursor: cursor(&app.ids, e.seq),
                node: Event(e),
            })
            .collect();
        Ok(EventConnection {
            page_info: PageInfo::new(
                page.has_more,
                false,
                edges.first().map(|e| e.cursor.clone()),
                page.cursor,
            ),
            edges,
        })
    }
}
