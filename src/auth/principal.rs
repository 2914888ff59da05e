//! The authenticated caller and the checks every entry point shares.

use entity::enums::{Environment, Plan, Role, Scope};

use crate::error::AppError;

/// The API key a request came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's row ID.
    pub id: i64,
    /// Its scope.
    pub scope: Scope,
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A user's session (an access token).
    Session,
    /// An API key.
    ApiKey(KeyInfo),
    /// An inbound webhook's URL token: it acts for no user, only to create its source's leads.
    Webhook,
}

/// Who is calling, on which tenant and environment, with which rights.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's tenant.
    pub tenant_id: i64,
    /// The tenant's plan.
    pub plan: Plan,
    /// The environment the request acts on.
    pub environment: Environment,
    /// The user the request acts as (the impersonated user under `X-On-Behalf-Of`; 0 for a
    /// webhook, which acts for no user).
    pub user_id: i64,
    /// That user's role.
    pub role: Role,
    /// The session's user, or the key's creator.
    pub actor_user_id: i64,
    /// How it authenticated.
    pub via: Via,
}

impl Principal {
    /// Whether this is a user session (not an API key, not a webhook).
    pub fn is_session(&self) -> bool {
        self.via == Via::Session
    }

    /// The API key, for API-key requests.
    pub fn key(&self) -> Option<KeyInfo> {
        match self.via {
            Via::ApiKey(k) => Some(k),
            Via::Session | Via::Webhook => None,
        }
    }

    /// The impersonated user, when acting on behalf of someone else.
    pub fn on_behalf_of(&self) -> Option<i64> {
        (self.user_id != self.actor_user_id).then_some(self.user_id)
    }

    /// Refuses callers that may not change leads, sources, pipelines and tags.
    pub fn check_write(&self) -> Result<(), AppError> {
        match self.key() {
            Some(KeyInfo {
                scope: Scope::Read, ..
            }) => Err(AppError::InsufficientScope),
            Some(_) if !self.plan.allows_key_writes() => Err(AppError::InsufficientPlan),
            _ => Ok(()),
        }
    }

    /// Refuses API keys.
    pub fn check_session(&self) -> Result<(), AppError> {
        if self.is_session() {
            Ok(())
        } else {
            Err(AppError::SessionRequired)
        }
    }

    /// Refuses callers acting as a member.
    pub fn check_admin(&self) -> Result<(), AppError> {
        if self.role.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "This operation requires the admin or owner role",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_neither_a_session_nor_a_key() {
        let p = Principal {
            tenant_id: 1,
            plan: Plan::Pro,
            environment: Environment::Live,
            user_id: 0,
            role: Role::Member,
            actor_user_id: 0,
            via: Via::Webhook,
        };
        assert!(!p.is_session());
        assert_eq!(p.key(), None);
        assert!(matches!(p.check_session(), Err(AppError::SessionRequired)));
        assert!(p.check_write().is_ok(), "it creates its source's leads");
    }
}
