//! Outbound webhook endpoints, their deliveries and attempts (docs/events.md).

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use entity::enums::{DeliveryStatus, EventType};
use entity::{webhook_attempt, webhook_delivery, webhook_endpoint};

use super::guard::Need;
use super::lead::PageInfo;
use super::{app, decode_arg, rc};
use crate::ids::Kind;
use crate::service::webhook::{self as service, EndpointInput};

/// A URL that receives the events it subscribed to, signed with its secret.
pub struct WebhookEndpoint(pub webhook_endpoint::Model);

#[Object]
impl WebhookEndpoint {
    /// Opaque ID.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::WebhookEndpoint, self.0.id)
    }
    /// Where deliveries are posted.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// Free text.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// The event types it receives; empty for all.
    async fn events(&self) -> Vec<EventType> {
        service::event_types(&self.0)
    }
    /// Whether it receives deliveries.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Why the server disabled it (every delivery failing for days), if it did.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    /// Until when the secret before the last rotation also signs.
    async fn previous_secret_expires_at(&self) -> Option<DateTime> {
        self.0
            .previous_secret_until
            .filter(|_| self.0.previous_secret.is_some())
            .map(DateTime)
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

/// A new endpoint (or a rotated secret) with its signing secret, shown this once.
#[derive(SimpleObject)]
pub struct CreatedWebhookEndpoint {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: verify signatures with it; it is not shown again.
    pub secret: String,
}

/// One message to one endpoint, with every attempt to send it.
pub struct WebhookDelivery(pub webhook_delivery::Model);

/// One attempt to send a delivery.
pub struct WebhookAttempt(pub webhook_attempt::Model);

#[Object]
impl WebhookAttempt {
    /// When.
    async fn attempted_at(&self) -> DateTime {
        self.0.attempted_at.into()
    }
    /// The endpoint's HTTP status, when it answered.
    async fn status_code(&self) -> Option<i32> {
        self.0.status_code
    }
    /// How long it took, in milliseconds.
    async fn latency_ms(&self) -> i64 {
        self.0.latency_ms
    }
    /// Why it failed without an answer (timeout, refused address, connection error).
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The first KiB of the endpoint's answer.
    async fn response_body(&self) -> Option<&str> {
        self.0.response_body.as_deref()
    }
}

#[Object]
impl WebhookDelivery {
    /// Opaque ID.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::WebhookDelivery, self.0.id)
    }
    /// The `webhook-id` header: the same on every attempt and redelivery.
    async fn message_id(&self) -> &str {
        &self.0.message_id
    }
    /// The event type (`lead.created` …, or `webhook.test`).
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// Where it stands.
    async fn status(&self) -> DeliveryStatus {
        self.0.status
    }
    /// Attempts so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// When the next attempt is due, while pending.
    async fn next_attempt_at(&self) -> Option<DateTime> {
        self.0
            .next_attempt_at
            .filter(|_| self.0.status == DeliveryStatus::Pending)
            .map(DateTime)
    }
    /// The last HTTP status received.
    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }
    /// The body sent.
    async fn payload(&self) -> &str {
        &self.0.payload
    }
    /// When it was queued.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Every attempt, oldest first.
    async fn attempt_log(&self, ctx: &Context<'_>) -> Result<Vec<WebhookAttempt>> {
        let rows = service::attempts(app(ctx)?, vec![self.0.id]).await?;
        Ok(rows.into_iter().map(WebhookAttempt).collect())
    }
}

/// An edge of a delivery list.
#[derive(SimpleObject)]
pub struct WebhookDeliveryEdge {
    /// Opaque cursor.
    pub cursor: String,
    /// The delivery.
    pub node: WebhookDelivery,
}

/// A page of deliveries, newest first.
#[derive(SimpleObject)]
pub struct WebhookDeliveryConnection {
    /// Deliveries with cursors.
    pub edges: Vec<WebhookDeliveryEdge>,
    /// Paging.
    pub page_info: PageInfo,
}

/// Input of `createWebhookEndpoint`.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// `http` or `https` URL; private and loopback addresses are refused at send time unless
    /// the server allows them.
    pub url: String,
    /// The event types to receive; all when omitted or empty.
    pub events: Option<Vec<EventType>>,
    /// Free text.
    pub description: Option<String>,
}

/// Input of `updateWebhookEndpoint`: omitted fields are left as they are.
#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    /// New URL.
    pub url: Option<String>,
    /// New event types (empty for all).
    pub events: Option<Vec<EventType>>,
    /// New description; null clears it.
    pub description: Option<Option<String>>,
    /// Enable (clearing a disabled reason) or disable.
    pub enabled: Option<bool>,
}

/// Webhook queries.
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The caller's endpoints (admins and owners, full-scope keys; not on the free plan).
    #[graphql(guard = "Need::Auth")]
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let rows = service::list(app(ctx)?, rc(ctx)?).await?;
        Ok(rows.into_iter().map(WebhookEndpoint).collect())
    }

    /// One endpoint.
    #[graphql(guard = "Need::Auth")]
    async fn webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        let id = decode_arg(ctx, Kind::WebhookEndpoint, &id)?;
        Ok(WebhookEndpoint(
            service::get(app(ctx)?, rc(ctx)?, id).await?,
        ))
    }

    /// An endpoint's deliveries, newest first.
    #[graphql(guard = "Need::Auth")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        status: Option<DeliveryStatus>,
        first: Option<i64>,
        after: Option<String>,
    ) -> Result<WebhookDeliveryConnection> {
        let app = app(ctx)?;
        let endpoint = decode_arg(ctx, Kind::WebhookEndpoint, &endpoint_id)?;
        let (rows, more) =
            service::deliveries(app, rc(ctx)?, endpoint, status, first, after.as_deref()).await?;
        let edges: Vec<WebhookDeliveryEdge> = rows
            .into_iter()
            .map(|d| WebhookDeliveryEdge {
                cursor: app.ids.encode(Kind::WebhookDelivery, d.id),
                node: WebhookDelivery(d),
            })
            .collect();
        Ok(WebhookDeliveryConnection {
            page_info: PageInfo::new(
                more,
                false,
                edges.first().map(|e| e.cursor.clone()),
                edges.last().map(|e| e.cursor.clone()),
            ),
            edges,
        })
    }
}

/// Webhook mutations.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint; its signing secret is returned this once.
    #[graphql(guard = "Need::Auth")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<CreatedWebhookEndpoint> {
        let input = EndpointInput {
            url: Some(input.url),
            events: input.events,
            description: Some(input.description),
            enabled: None,
        };
        let (endpoint, secret) = service::create(app(ctx)?, rc(ctx)?, input).await?;
        Ok(CreatedWebhookEndpoint {
            endpoint: WebhookEndpoint(endpoint),
            secret,
        })
    }

    /// Changes an endpoint.
    #[graphql(guard = "Need::Auth")]
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookEndpointInput,
    ) -> Result<WebhookEndpoint> {
        let id = decode_arg(ctx, Kind::WebhookEndpoint, &id)?;
        let input = EndpointInput {
            url: input.url,
            events: input.events,
            description: input.description,
            enabled: input.enabled,
        };
        Ok(WebhookEndpoint(
            service::update(app(ctx)?, rc(ctx)?, id, input).await?,
        ))
    }

    /// Replaces the signing secret; the old one also signs for 24 hours.
    #[graphql(guard = "Need::Auth")]
    async fn rotate_webhook_endpoint_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<CreatedWebhookEndpoint> {
        let id = decode_arg(ctx, Kind::WebhookEndpoint, &id)?;
        let (endpoint, secret) = service::rotate_secret(app(ctx)?, rc(ctx)?, id).await?;
        Ok(CreatedWebhookEndpoint {
            endpoint: WebhookEndpoint(endpoint),
            secret,
        })
    }

    /// Deletes an endpoint and its deliveries; returns its ID.
    #[graphql(guard = "Need::Auth")]
    async fn delete_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let n = decode_arg(ctx, Kind::WebhookEndpoint, &id)?;
        service::delete(app(ctx)?, rc(ctx)?, n).await?;
        Ok(id)
    }

    /// Queues a `webhook.test` message to the endpoint.
    #[graphql(guard = "Need::Auth")]
    async fn send_test_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let id = decode_arg(ctx, Kind::WebhookEndpoint, &id)?;
        Ok(WebhookDelivery(
            service::send_test(app(ctx)?, rc(ctx)?, id).await?,
        ))
    }

    /// Sends a delivery again, now, with the same `webhook-id`.
    #[graphql(guard = "Need::Auth")]
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> Result<WebhookDelivery> {
        let id = decode_arg(ctx, Kind::WebhookDelivery, &delivery_id)?;
        Ok(WebhookDelivery(
            service::redeliver(app(ctx)?, rc(ctx)?, id).await?,
        ))
    }
}
