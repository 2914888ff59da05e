//! Per-request dataloaders for every nested relation, scoped to the caller's tenant (and
//! environment), so the number of SQL statements of a request does not grow with page size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::enums::Environment as Env;
use entity::{api_key, lead, lead_tag, pipeline, source, stage, tenant, user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::auth::principal::Principal;
use crate::error::AppError;
use crate::service::lead::listing;

/// The loaders' per-request caches, keyed by row IDs.
type Cache = HashMapCache;

/// What every loader filters on.
#[derive(Clone)]
pub struct Scope {
    db: DatabaseConnection,
    tenant_id: i64,
    environment: Env,
}

type LoadResult<V> = Result<HashMap<i64, V>, async_graphql::Error>;

fn db_err(e: sea_orm::DbErr) -> async_graphql::Error {
    AppError::from(e).to_graphql()
}

macro_rules! by_id_loader {
    ($(#[$doc:meta])* $name:ident, $entity:ident $(, $env:ident)?) => {
        $(#[$doc])*
        pub struct $name(Scope);

        impl Loader<i64> for $name {
            type Value = $entity::Model;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
                let rows = $entity::Entity::find()
                    .filter($entity::Column::Id.is_in(keys.iter().copied()))
                    .filter($entity::Column::TenantId.eq(self.0.tenant_id))
                    $(.filter(Expr::col($entity::Column::$env).eq(self.0.environment.as_str())))?
                    .all(&self.0.db)
                    .await
                    .map_err(db_err)?;
                Ok(rows.into_iter().map(|r| (r.id, r)).collect())
            }
        }
    };
}

by_id_loader!(/// Pipelines by ID.
    PipelineById, pipeline, Environment);
by_id_loader!(/// Stages by ID.
    StageById, stage, Environment);
by_id_loader!(/// Leads by ID (for `duplicateOf`).
    LeadById, lead, Environment);

/// Like `by_id_loader`, for rows shown but never used to authenticate: every column but the
/// secret one, which is read as `$shown` (what display needs of it, at most whether it is set).
macro_rules! display_loader {
    ($(#[$doc:meta])* $name:ident, $entity:ident, [$($col:ident),+ $(,)?], $secret:literal = $shown:expr $(, $env:ident)?) => {
        $(#[$doc])*
        pub struct $name(Scope);

        impl Loader<i64> for $name {
            type Value = $entity::Model;
            type Error = async_graphql::Error;

            async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
                let rows = $entity::Entity::find()
                    .select_only()
                    .columns([$($entity::Column::$col),+])
                    .column_as($shown, $secret)
                    .filter($entity::Column::Id.is_in(keys.iter().copied()))
                    .filter($entity::Column::TenantId.eq(self.0.tenant_id))
                    $(.filter(Expr::col($entity::Column::$env).eq(self.0.environment.as_str())))?
                    .into_model::<$entity::Model>()
                    .all(&self.0.db)
                    .await
                    .map_err(db_err)?;
                Ok(rows.into_iter().map(|r| (r.id, r)).collect())
            }
        }
    };
}

display_loader!(/// Users by ID, without their password hashes.
    UserById, user,
    [Id, TenantId, Email, Name, Role, Active, SessionEpoch, CreatedAt, UpdatedAt],
    "password_hash" = Expr::val(""));
display_loader!(/// API keys by ID (for audit entries), without their hashes.
    ApiKeyById, api_key,
    [Id, TenantId, UserId, Label, Prefix, Environment, Scope, Active, ExpiresAt, LastUsedAt,
     UsageCount, DeletedAt, CreatedAt, UpdatedAt],
    "key_hash" = Expr::val(""));
display_loader!(/// Sources by ID, with whether a webhook token is set instead of its hash.
    SourceById, source,
    [Id, TenantId, Environment, Name, Channel, Description, CreatedAt, UpdatedAt],
    "webhook_token_hash" = listing::token_set(), Environment);

/// Tenants by ID (only the caller's).
pub struct TenantById(Scope);

impl Loader<i64> for TenantById {
    type Value = tenant::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let ids: Vec<i64> = keys
            .iter()
            .copied()
            .filter(|k| *k == self.0.tenant_id)
            .collect();
        let rows = tenant::Entity::find()
            .filter(tenant::Column::Id.is_in(ids))
            .all(&self.0.db)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

/// Tags by lead ID, sorted.
pub struct TagsByLead(Scope);

impl Loader<i64> for TagsByLead {
    type Value = Vec<String>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let rows = lead_tag::Entity::find()
            .filter(lead_tag::Column::LeadId.is_in(keys.iter().copied()))
            // The keys are leads this request already read within its tenant; filtering on the
            // primary key alone lets SQLite use it instead of the tenant's tag index.
            .order_by_asc(lead_tag::Column::Tag)
            .all(&self.0.db)
            .await
            .map_err(db_err)?;
        let mut out: HashMap<i64, Vec<String>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for r in rows {
            out.entry(r.lead_id).or_default().push(r.tag);
        }
        Ok(out)
    }
}

/// Stages by pipeline ID, in order.
pub struct StagesByPipeline(Scope);

impl Loader<i64> for StagesByPipeline {
    type Value = Vec<stage::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let rows = stage::Entity::find()
            .filter(stage::Column::PipelineId.is_in(keys.iter().copied()))
            .filter(stage::Column::TenantId.eq(self.0.tenant_id))
            .order_by_asc(stage::Column::Position)
            .order_by_asc(stage::Column::Id)
            .all(&self.0.db)
            .await
            .map_err(db_err)?;
        let mut out: HashMap<i64, Vec<stage::Model>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for r in rows {
            out.entry(r.pipeline_id).or_default().push(r);
        }
        Ok(out)
    }
}

/// Lead counts by source ID.
pub struct LeadCountBySource(Scope);

impl Loader<i64> for LeadCountBySource {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let rows: Vec<(Option<i64>, i64)> = lead::Entity::find()
            .select_only()
            .column(lead::Column::SourceId)
            .column_as(Expr::col(lead::Column::Id).count(), "n")
            .filter(lead::Column::SourceId.is_in(keys.iter().copied()))
            .filter(lead::Column::TenantId.eq(self.0.tenant_id))
            .group_by(lead::Column::SourceId)
            .into_tuple()
            .all(&self.0.db)
            .await
            .map_err(db_err)?;
        let mut out: HashMap<i64, i64> = keys.iter().map(|k| (*k, 0)).collect();
        for (k, n) in rows {
            if let Some(k) = k {
                out.insert(k, n);
            }
        }
        Ok(out)
    }
}

/// Every loader of one root field of a request; values are cached for that field.
pub struct Loaders {
    /// Sources.
    pub sources: DataLoader<SourceById, Cache>,
    /// Pipelines.
    pub pipelines: DataLoader<PipelineById, Cache>,
    /// Stages.
    pub stages: DataLoader<StageById, Cache>,
    /// Leads.
    pub leads: DataLoader<LeadById, Cache>,
    /// Users.
    pub users: DataLoader<UserById, Cache>,
    /// API keys.
    pub api_keys: DataLoader<ApiKeyById, Cache>,
    /// Tenants.
    pub tenants: DataLoader<TenantById, Cache>,
    /// Tags per lead.
    pub tags: DataLoader<TagsByLead, Cache>,
    /// Stages per pipeline.
    pub pipeline_stages: DataLoader<StagesByPipeline, Cache>,
    /// Lead counts per source.
    pub source_lead_counts: DataLoader<LeadCountBySource, Cache>,
}

impl Loaders {
    /// Loaders for one request of `p`.
    pub fn new(db: &DatabaseConnection, p: &Principal) -> Self {
        let scope = Scope {
            db: db.clone(),
            tenant_id: p.tenant_id,
            environment: p.environment,
        };
        fn dl<T: Loader<i64>>(loader: T) -> DataLoader<T, Cache> {
            DataLoader::with_cache(loader, tokio::spawn, Cache::new())
        }
        Loaders {
            sources: dl(SourceById(scope.clone())),
            pipelines: dl(PipelineById(scope.clone())),
            stages: dl(StageById(scope.clone())),
            leads: dl(LeadById(scope.clone())),
            users: dl(UserById(scope.clone())),
            api_keys: dl(ApiKeyById(scope.clone())),
            tenants: dl(TenantById(scope.clone())),
            tags: dl(TagsByLead(scope.clone())),
            pipeline_stages: dl(StagesByPipeline(scope.clone())),
            source_lead_counts: dl(LeadCountBySource(scope)),
        }
    }
}

/// The loaders of one request, created on first use: one set per root field. Mutation
/// fields run one after another, so none reads what an earlier one cached before it wrote;
/// the fields under one root field share their batches.
#[derive(Clone, Default)]
pub struct LazyLoaders(Arc<Mutex<HashMap<String, Arc<Loaders>>>>);

impl LazyLoaders {
    /// The loaders of root field `root` (its response key).
    pub fn get(&self, root: &str, db: &DatabaseConnection, p: &Principal) -> Arc<Loaders> {
        // A poisoned map still holds whole entries: a panic cannot leave one half-built.
        let mut sets = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = sets.get(root) {
            return set.clone();
        }
        let set = Arc::new(Loaders::new(db, p));
        sets.insert(root.to_owned(), set.clone());
        set
    }
}
