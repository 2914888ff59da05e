//! The `ApiKey` type, the `apiKeys` query and key management mutations (sessions only).

use crate::graphql::time::DateTime;
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use entity::api_key;
use entity::enums::{Environment, Scope};

use super::guard::Need;
use super::user::User;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::{self, api_key::KeyPatch, api_key::NewKey};

/// Whether a key works.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ApiKeyStatus {
    /// Active and not expired.
    Active,
    /// Deactivated.
    Inactive,
    /// Past its expiry.
    Expired,
}

/// An API key's metadata. The key itself is shown only once, in `CreatedApiKey.key`.
pub struct ApiKey(pub api_key::Model);

#[Object]
impl ApiKey {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::ApiKey, self.0.id)
    }
    /// Label.
    async fn label(&self) -> &str {
        &self.0.label
    }
    /// Same as `label` (LeadHQL's name for it).
    async fn name(&self) -> &str {
        &self.0.label
    }
    /// The key's first characters, safe to display.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// Environment the key acts on.
    async fn environment(&self) -> Environment {
        self.0.environment
    }
    /// `READ` keys cannot mutate.
    async fn scope(&self) -> Scope {
        self.0.scope
    }
    /// Active, inactive or expired.
    async fn status(&self) -> ApiKeyStatus {
        match service::api_key::status(&self.0) {
            "inactive" => ApiKeyStatus::Inactive,
            "expired" => ApiKeyStatus::Expired,
            _ => ApiKeyStatus::Active,
        }
    }
    /// Whether the key is enabled.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// When the key stops working.
    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(DateTime)
    }
    /// Last request made with the key.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
    /// Requests made with the key.
    async fn usage_count(&self) -> i64 {
        self.0.usage_count
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// The user who created the key (requests act as this user).
    async fn creator(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User(
            service::user::get(app(ctx)?, rc(ctx)?, self.0.user_id).await?,
        ))
    }
}

/// The result of `createApiKey`: the only time the key is shown.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key's metadata.
    pub api_key: ApiKey,
    /// The full key. Store it now: it cannot be retrieved again.
    pub key: String,
}

/// Input of `createApiKey`.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// Label (1 to 100 characters).
    pub label: String,
    /// `FULL` (default) or `READ`.
    pub scope: Option<Scope>,
    /// Environment; the session's (`LIVE` unless `X-Environment: sandbox`) by default.
    pub environment: Option<Environment>,
    /// Absolute expiry.
    pub expires_at: Option<DateTime>,
    /// Expiry in days from now (1 to 3650); not with `expiresAt`.
    pub expires_in_days: Option<i64>,
}

/// Input of `updateApiKey`: omitted fields are left unchanged; `expiresAt: null` removes the expiry.
#[derive(InputObject, Default)]
pub struct UpdateApiKeyInput {
    /// New label.
    pub label: Option<String>,
    /// Enable or disable; a disabled key is refused on the next request.
    pub active: Option<bool>,
    /// New expiry, or null for none.
    pub expires_at: MaybeUndefined<DateTime>,
}

/// API key queries.
#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// Your keys (members) or all the tenant's keys (admins and owners). Sessions only.
    #[graphql(guard = "Need::Session")]
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let list = service::api_key::list(app(ctx)?, rc(ctx)?).await?;
        Ok(list.into_iter().map(ApiKey).collect())
    }
}

/// API key mutations.
#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates a key and returns it once. Sessions only.
    #[graphql(guard = "Need::Session")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey> {
        let new = NewKey {
            label: input.label,
            scope: input.scope,
            environment: input.environment,
            expires_at: input.expires_at.map(Into::into),
            expires_in_days: input.expires_in_days,
        };
        let (row, key) = service::api_key::create(app(ctx)?, rc(ctx)?, new).await?;
        Ok(CreatedApiKey {
            api_key: ApiKey(row),
            key,
        })
    }

    /// Changes a key's label, active flag or expiry. Sessions only.
    #[graphql(guard = "Need::Session")]
    async fn update_api_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateApiKeyInput,
    ) -> Result<ApiKey> {
        let id = super::decode_arg(ctx, Kind::ApiKey, &id)?;
        let patch = KeyPatch {
            label: input.label,
            active: input.active,
            expires_at: match input.expires_at {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(at) => Some(Some(at.0)),
            },
        };
        Ok(ApiKey(
            service::api_key::update(app(ctx)?, rc(ctx)?, id, patch).await?,
        ))
    }

    /// Deletes a key; it stops working at once. Returns its ID. Sessions only.
    #[graphql(guard = "Need::Session")]
    async fn delete_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let key_id = super::decode_arg(ctx, Kind::ApiKey, &id)?;
        service::api_key::delete(app(ctx)?, rc(ctx)?, key_id).await?;
        Ok(id)
    }
}
