//! The rows of an import file as received, until its job is done.

use sea_orm::entity::prelude::*;

/// One row of `import_rows`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "import_rows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: i64,
    /// 1 for the first row after the header.
    #[sea_orm(primary_key, auto_increment = false)]
    pub row_no: i64,
    /// The row as a JSON object of REST field names, or `{"$error": …}` when it could not be
    /// read.
    pub data: String,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
