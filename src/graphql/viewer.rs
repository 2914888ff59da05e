//! `me`: who is calling, as what, on which tenant and environment.

use async_graphql::{Context, Enum, ID, Object, Result};
use entity::enums::{Environment, Role, Scope};

use super::api_key::ApiKey;
use super::guard::Need;
use super::tenant::Tenant;
use super::user::User;
use super::{app, rc};
use crate::auth::principal::Principal;
use crate::ids::Kind;
use crate::service;

/// How the caller authenticated.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AuthMethod {
    /// A user session (JWT).
    Session,
    /// An API key.
    ApiKey,
}

/// The caller.
pub struct Viewer(Principal);

#[Object]
impl Viewer {
    /// The ID of the user the request acts as.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::User, self.0.user_id)
    }
    /// The user the request acts as (the impersonated user under `X-On-Behalf-Of`).
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User(
            service::user::get(app(ctx)?, rc(ctx)?, self.0.user_id).await?,
        ))
    }
    /// The session's user or the key's creator, when different from `user`.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if self.0.on_behalf_of().is_none() {
            return Ok(None);
        }
        Ok(Some(User(
            service::user::get(app(ctx)?, rc(ctx)?, self.0.actor_user_id).await?,
        )))
    }
    /// The caller's tenant.
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        Ok(Tenant(
            service::tenant::get(&app(ctx)?.db, self.0.tenant_id).await?,
        ))
    }
    /// The acting user's role.
    async fn role(&self) -> Role {
        self.0.role
    }
    /// The environment the request acts on.
    async fn environment(&self) -> Environment {
        self.0.environment
    }
    /// Session or API key.
    async fn auth_method(&self) -> AuthMethod {
        if self.0.is_session() {
            AuthMethod::Session
        } else {
            AuthMethod::ApiKey
        }
    }
    /// The key's scope (null for sessions, which act by role).
    async fn scope(&self) -> Option<Scope> {
        self.0.key().map(|k| k.scope)
    }
    /// The key used, for API-key requests.
    async fn api_key(&self, ctx: &Context<'_>) -> Result<Option<ApiKey>> {
        let Some(key) = self.0.key() else {
            return Ok(None);
        };
        let row = entity::api_key::Entity::find_by_id(key.id)
            .one(&app(ctx)?.db)
            .await?;
        Ok(row.map(ApiKey))
    }
}

use sea_orm::EntityTrait;

/// `me`.
#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The caller: user, tenant, role, environment and, for keys, the key's scope.
    #[graphql(guard = "Need::Auth")]
    async fn me(&self, ctx: &Context<'_>) -> Result<Viewer> {
        Ok(Viewer(rc(ctx)?.principal()?.clone()))
    }
}
