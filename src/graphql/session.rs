//! `login`, `refreshSession` and `logout`.

use crate::graphql::time::DateTime;
use async_graphql::{Context, Object, Result, SimpleObject};

use super::user::User;
use super::{app, rc};
use crate::service;

/// A user session: an access token (JWT, 1 hour) and a refresh token (rotated on use).
#[derive(SimpleObject)]
pub struct Session {
    /// The access token: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the access token expires.
    pub expires_at: DateTime,
    /// The refresh token, for `refreshSession`; each one works once.
    pub refresh_token: String,
    /// The logged-in user.
    pub user: User,
}

impl From<service::session::Session> for Session {
    fn from(s: service::session::Session) -> Self {
        Session {
            token: s.token,
            expires_at: s.expires_at.into(),
            refresh_token: s.refresh_token,
            user: User(s.user),
        }
    }
}

/// Session mutations; they need no credential.
#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Logs in with email (case-insensitive) and password.
    async fn login(&self, ctx: &Context<'_>, email: String, password: String) -> Result<Session> {
        Ok(
            service::session::login(app(ctx)?, rc(ctx)?, &email, &password)
                .await?
                .into(),
        )
    }

    /// Exchanges a refresh token for a new session. A refresh token used twice revokes
    /// its whole family.
    async fn refresh_session(&self, ctx: &Context<'_>, refresh_token: String) -> Result<Session> {
        Ok(
            service::session::refresh(app(ctx)?, rc(ctx)?, &refresh_token)
                .await?
                .into(),
        )
    }

    /// Revokes the session a refresh token belongs to.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        service::session::logout(app(ctx)?, rc(ctx)?, &refresh_token).await?;
        Ok(true)
    }
}
