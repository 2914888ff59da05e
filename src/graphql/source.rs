//! The `Source` type, `source`/`sources` queries and source mutations.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use entity::enums::Channel;
use entity::source;

use super::columns::Fields;
use super::guard::Need;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::lead::Change;
use crate::service::source::SourceInput;
use crate::service::{self};

/// A lead source (a form, a partner, an import…).
pub struct Source(pub source::Model);

/// The columns each field of `Source` shows.
pub const COLUMNS: Fields<source::Column> = {
    use source::Column as C;
    &[
        ("id", &[]),
        ("name", &[C::Name]),
        ("channel", &[C::Channel]),
        ("description", &[C::Description]),
        ("hasWebhook", &[C::WebhookTokenHash]),
        ("leadCount", &[]),
        ("createdAt", &[C::CreatedAt]),
        ("updatedAt", &[C::UpdatedAt]),
    ]
};

#[Object]
impl Source {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Source, self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Channel.
    async fn channel(&self) -> Channel {
        self.0.channel
    }
    /// Description.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Whether an inbound webhook token is set (the token itself is shown once, at rotation).
    async fn has_webhook(&self) -> bool {
        self.0.webhook_token_hash.is_some()
    }
    /// Leads from this source.
    async fn lead_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(super::loaders(ctx)?
            .source_lead_counts
            .load_one(self.0.id)
            .await?
            .unwrap_or(0))
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

/// Input of `createSource`.
#[derive(InputObject)]
pub struct CreateSourceInput {
    /// Name (1 to 100 characters).
    pub name: String,
    /// Channel.
    pub channel: Channel,
    /// Description (up to 1000 characters).
    pub description: Option<String>,
}

/// Input of `updateSource`: omitted fields are left unchanged.
#[derive(InputObject, Default)]
pub struct UpdateSourceInput {
    /// Name.
    pub name: Option<String>,
    /// Channel.
    pub channel: Option<Channel>,
    /// Description; null clears it.
    pub description: MaybeUndefined<String>,
}

/// The result of `rotateSourceWebhookToken`: the only time the token is shown.
#[derive(SimpleObject)]
pub struct SourceWebhook {
    /// The source.
    pub source: Source,
    /// The token: POST leads to `/v1/webhooks/{token}`. Store it now.
    pub token: String,
}

/// Source queries.
#[derive(Default)]
pub struct SourceQuery;

#[Object]
impl SourceQuery {
    /// A source of the caller's tenant and environment; `NOT_FOUND` otherwise.
    #[graphql(guard = "Need::Auth")]
    async fn source(&self, ctx: &Context<'_>, id: ID) -> Result<Source> {
        let id = super::decode_arg(ctx, Kind::Source, &id)?;
        Ok(Source(service::source::get(app(ctx)?, rc(ctx)?, id).await?))
    }

    /// The caller's sources, oldest first.
    #[graphql(guard = "Need::Auth")]
    async fn sources(&self, ctx: &Context<'_>) -> Result<Vec<Source>> {
        let list = service::source::list(app(ctx)?, rc(ctx)?).await?;
        if ctx.look_ahead().field("leadCount").exists() {
            super::loaders(ctx)?
                .source_lead_counts
                .load_many(list.iter().map(|s| s.id))
                .await?;
        }
        Ok(list.into_iter().map(Source).collect())
    }
}

/// Source mutations.
#[derive(Default)]
pub struct SourceMutation;

#[Object]
impl SourceMutation {
    /// Creates a source.
    #[graphql(guard = "Need::Write")]
    async fn create_source(&self, ctx: &Context<'_>, input: CreateSourceInput) -> Result<Source> {
        let input = SourceInput {
            name: Some(input.name),
            channel: Some(input.channel),
            description: input.description.map_or(Change::Keep, Change::Set),
        };
        Ok(Source(
            service::source::create(app(ctx)?, rc(ctx)?, input).await?,
        ))
    }

    /// Changes a source.
    #[graphql(guard = "Need::Write")]
    async fn update_source(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateSourceInput,
    ) -> Result<Source> {
        let id = super::decode_arg(ctx, Kind::Source, &id)?;
        let input = SourceInput {
            name: input.name,
            channel: input.channel,
            description: match input.description {
                MaybeUndefined::Undefined => Change::Keep,
                MaybeUndefined::Null => Change::Clear,
                MaybeUndefined::Value(d) => Change::Set(d),
            },
        };
        Ok(Source(
            service::source::update(app(ctx)?, rc(ctx)?, id, input).await?,
        ))
    }

    /// Deletes a source; refused (`CONFLICT`) while leads use it. Returns its ID.
    #[graphql(guard = "Need::Write")]
    async fn delete_source(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let source_id = super::decode_arg(ctx, Kind::Source, &id)?;
        service::source::delete(app(ctx)?, rc(ctx)?, source_id).await?;
        Ok(id)
    }

    /// Creates or replaces the source's inbound webhook token and returns it once.
    #[graphql(guard = "Need::Write")]
    async fn rotate_source_webhook_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<SourceWebhook> {
        let id = super::decode_arg(ctx, Kind::Source, &id)?;
        let (source, token) =
            service::source::rotate_webhook_token(app(ctx)?, rc(ctx)?, id).await?;
        Ok(SourceWebhook {
            source: Source(source),
            token,
        })
    }

    /// Removes the source's webhook token; the webhook stops accepting leads at once.
    #[graphql(guard = "Need::Write")]
    async fn revoke_source_webhook_token(&self, ctx: &Context<'_>, id: ID) -> Result<Source> {
        let id = super::decode_arg(ctx, Kind::Source, &id)?;
        Ok(Source(
            service::source::revoke_webhook_token(app(ctx)?, rc(ctx)?, id).await?,
        ))
    }
}
