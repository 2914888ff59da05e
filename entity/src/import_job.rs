//! Import jobs: a file of leads received, then processed in the background in committed
//! chunks.

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `import_jobs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "import_jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    pub environment: Environment,
    pub actor_user_id: Option<i64>,
    pub on_behalf_of_user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub format: ImportFormat,
    pub on_duplicate: OnDuplicate,
    /// The source given to rows that name none.
    pub source_id: Option<i64>,
    pub dry_run: bool,
    pub status: ImportStatus,
    /// Whether the whole file has been received (only then is it processed).
    pub ready: bool,
    pub total: i64,
    /// Rows up to this number are done, in committed chunks.
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    /// `[{row, field, code, message}]`, the first 1000.
    pub errors: Json,
    /// While a worker holds the job; a job whose lease ran out is taken up again.
    pub lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
