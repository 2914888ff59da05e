//! The audit log: one entry per mutation, written in the mutation's transaction.

use entity::audit_log;
use entity::enums::Environment;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use crate::auth::principal::Principal;
use crate::context::RequestCtx;

/// Who an entry is attributed to.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    /// Tenant of the change.
    pub tenant_id: i64,
    /// Environment of the change.
    pub environment: Environment,
    /// The session's user or the key's creator.
    pub actor_user_id: Option<i64>,
    /// The impersonated user.
    pub on_behalf_of_user_id: Option<i64>,
    /// The key used.
    pub api_key_id: Option<i64>,
}

impl Actor {
    /// The actor of an authenticated request.
    pub fn of(p: &Principal) -> Self {
        Actor {
            tenant_id: p.tenant_id,
            environment: p.environment,
            actor_user_id: Some(p.actor_user_id),
            on_behalf_of_user_id: p.on_behalf_of(),
            api_key_id: p.key.map(|k| k.id),
        }
    }

    /// A user acting through a session (login and friends) on the live environment.
    pub fn user(tenant_id: i64, user_id: i64) -> Self {
        Actor {
            tenant_id,
            environment: Environment::Live,
            actor_user_id: Some(user_id),
            on_behalf_of_user_id: None,
            api_key_id: None,
        }
    }
}

/// What changed. `changes` uses public (opaque) IDs only: it is shown to admins.
#[derive(Debug)]
pub struct Entry<'a> {
    /// `lead.create`, `api_key.delete`, …
    pub action: &'a str,
    /// `lead`, `api_key`, …
    pub resource_type: &'a str,
    /// The row's ID.
    pub resource_id: Option<i64>,
    /// `{before, after}` for updates, `{after}` for creates, `{before}` (the whole row) for deletes.
    pub changes: serde_json::Value,
}

/// Writes one entry.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: Actor,
    rc: &RequestCtx,
    entry: Entry<'_>,
) -> Result<(), DbErr> {
    let now = chrono::Utc::now();
    let row = audit_log::ActiveModel {
        tenant_id: Set(actor.tenant_id),
        environment: Set(actor.environment),
        actor_user_id: Set(actor.actor_user_id),
        on_behalf_of_user_id: Set(actor.on_behalf_of_user_id),
        api_key_id: Set(actor.api_key_id),
        action: Set(entry.action.to_owned()),
        resource_type: Set(entry.resource_type.to_owned()),
        resource_id: Set(entry.resource_id),
        changes: Set(entry.changes),
        ip: Set(rc.ip.map(|ip| ip.to_string())),
        request_id: Set(Some(rc.request_id.clone())),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    audit_log::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// `{"before": …, "after": …}` keeping only the fields that differ.
pub fn diff(before: &serde_json::Value, after: &serde_json::Value) -> serde_json::Value {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return serde_json::json!({"before": before, "after": after});
    };
    let mut bo = serde_json::Map::new();
    let mut ao = serde_json::Map::new();
    for (k, av) in a {
        let bv = b.get(k).unwrap_or(&serde_json::Value::Null);
        if bv != av && k != "updatedAt" {
            bo.insert(k.clone(), bv.clone());
            ao.insert(k.clone(), av.clone());
        }
    }
    serde_json::json!({"before": bo, "after": ao})
}
