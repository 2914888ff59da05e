//! A page of leads read with what the client asked for, in the page's one statement: only the
//! lead's selected columns, its source, pipeline, stage and assigned user joined in (their
//! selected columns), its tags aggregated (docs/performance.md). The related rows are scoped to
//! the caller's tenant (and environment) as the dataloaders' are, and never carry secrets.
//!
//! A row read this way is partial: a column not read holds a placeholder (empty, zero, the
//! first enum value, the epoch). It is only shown through the fields that asked for it, so it is
//! attached to its lead rather than handed to the loaders' shared caches.

use chrono::{DateTime, Utc};
use entity::enums::{Channel, Environment, LeadStatus, Role};
use entity::{lead, pipeline, source, stage, user};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, JoinType, QueryResult, QuerySelect, QueryTrait, Select, TryGetable,
};

use crate::error::AppResult;

/// What to read with a page: the lead's columns and, for each relation read with it, its
/// columns (`None`: left to the loaders). Ids are always read, and so is what the page needs.
#[derive(Debug, Clone, Default)]
pub struct With {
    /// The lead's columns; `None` reads them all.
    pub lead: Option<Vec<lead::Column>>,
    /// The source's columns.
    pub source: Option<Vec<source::Column>>,
    /// The pipeline's columns.
    pub pipeline: Option<Vec<pipeline::Column>>,
    /// The stage's columns.
    pub stage: Option<Vec<stage::Column>>,
    /// The assigned user's columns.
    pub assignee: Option<Vec<user::Column>>,
    /// Its tags.
    pub tags: bool,
}

/// A related row read with the page: `None` when it was not (the loaders serve it), `Some(None)`
/// when it was and there is none.
pub type Joined<M> = Option<Option<M>>;

/// A lead of a page with what was read with it (partial rows: see the module's documentation).
#[derive(Debug, Clone)]
pub struct Listed {
    /// The lead.
    pub lead: lead::Model,
    /// Its source.
    pub source: Joined<source::Model>,
    /// Its pipeline.
    pub pipeline: Joined<pipeline::Model>,
    /// Its stage.
    pub stage: Joined<stage::Model>,
    /// Its assigned user, never with the password hash.
    pub assignee: Joined<user::Model>,
    /// Its tags, sorted, when asked for.
    pub tags: Option<Vec<String>>,
}

const TAGS: &str = "lg_tags";

/// Runs `q` (a filtered, ordered, limited select of leads) reading what `with` names, plus the
/// lead's `order` column, which the page's cursors need.
pub async fn fetch(
    db: &DatabaseConnection,
    q: Select<lead::Entity>,
    mut with: With,
    order: lead::Column,
    tenant_id: i64,
    environment: Environment,
) -> AppResult<Vec<Listed>> {
    let backend = db.get_database_backend();
    if let Some(cols) = &mut with.lead {
        cols.push(order);
    }
    let with = worth_joining(with, backend);
    let stmt = joined(q, &with, backend).build(backend);
    let rows = db.query_all_raw(stmt).await?;
    // A related row of another tenant or environment is one the loaders would not return.
    let mine =
        |t: i64, e: Option<Environment>| t == tenant_id && e.is_none_or(|e| e == environment);
    let lead_read = with.lead.as_deref().map(Read::of);
    let source_read = with.source.as_deref().map(Read::of);
    let pipeline_read = with.pipeline.as_deref().map(Read::of);
    let stage_read = with.stage.as_deref().map(Read::of);
    let user_read = with.assignee.as_deref().map(Read::of);
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let l = match lead_read {
            Some(read) => lead_of(row, read)?,
            None => lead::Model::from_query_result(row, "")?,
        };
        let source = related(row, source_read, "s_", source_of)?
            .map(|s| s.filter(|s| mine(s.tenant_id, Some(s.environment))));
        let pipeline = related(row, pipeline_read, "p_", pipeline_of)?
            .map(|p| p.filter(|p| mine(p.tenant_id, Some(p.environment))));
        let stage = related(row, stage_read, "st_", stage_of)?
            .map(|s| s.filter(|s| mine(s.tenant_id, Some(s.environment))));
        let assignee =
            related(row, user_read, "u_", user_of)?.map(|u| u.filter(|u| mine(u.tenant_id, None)));
        let tags = if with.tags {
            Some(tags(row, backend)?)
        } else {
            None
        };
        out.push(Listed {
            lead: l,
            source,
            pipeline,
            stage,
            assignee,
            tags,
        });
    }
    Ok(out)
}

/// What pays to read in the page's statement. On PostgreSQL every relation: each statement
/// saved is a round trip. SQLite runs in-process, so a saved statement saves little, while a
/// joined row repeats its source, pipeline, stage and user for every lead and SQLite's rows are
/// copied value by value out of its worker thread: there only the tags are read with the page
/// (docs/performance.md has both measurements).
fn worth_joining(with: With, backend: DatabaseBackend) -> With {
    match backend {
        DatabaseBackend::Postgres => with,
        _ => With {
            lead: with.lead,
            tags: with.tags,
            ..With::default()
        },
    }
}

/// The related row under `pre` when its columns were read.
fn related<M>(
    row: &QueryResult,
    read: Option<Read>,
    pre: &str,
    of: fn(&QueryResult, &str, Read) -> Result<M, DbErr>,
) -> Result<Joined<M>, DbErr> {
    let Some(read) = read else {
        return Ok(None);
    };
    // A left join that found nothing leaves the id null.
    if row.try_get::<Option<i64>>(pre, "id")?.is_none() {
        return Ok(Some(None));
    }
    Ok(Some(Some(of(row, pre, read)?)))
}

fn has<C: IdenStatic>(cols: &[C], c: &C) -> bool {
    cols.iter().any(|x| x.as_str() == c.as_str())
}

/// A column's place in its table, for [`Read`].
trait Bit: IdenStatic {
    fn bit(self) -> u64;
}

macro_rules! bits {
    ($($c:ty),+) => {$(
        impl Bit for $c {
            fn bit(self) -> u64 {
                1 << (self as u32)
            }
        }
    )+};
}
bits!(
    lead::Column,
    source::Column,
    pipeline::Column,
    stage::Column,
    user::Column
);

/// The columns read of one table, as bits: built once per page, asked once per column and row.
#[derive(Clone, Copy)]
struct Read(u64);

impl Read {
    fn of<C: Bit + Copy>(cols: &[C]) -> Self {
        Read(cols.iter().fold(0, |m, c| m | c.bit()))
    }
}

/// `col` under `pre` when it was read, else the placeholder `or`.
fn pick<C: Bit + Copy, T: TryGetable>(
    row: &QueryResult,
    pre: &str,
    read: Read,
    col: C,
    or: T,
) -> Result<T, DbErr> {
    if read.0 & col.bit() != 0 {
        row.try_get(pre, col.as_str())
    } else {
        Ok(or)
    }
}

/// The epoch: the placeholder of a time not read.
const EPOCH: DateTime<Utc> = DateTime::UNIX_EPOCH;

fn lead_of(row: &QueryResult, read: Read) -> Result<lead::Model, DbErr> {
    use lead::Column as C;
    let p = |c| pick(row, "", read, c, None::<i64>);
    Ok(lead::Model {
        id: row.try_get("", C::Id.as_str())?,
        tenant_id: pick(row, "", read, C::TenantId, 0)?,
        environment: pick(row, "", read, C::Environment, Environment::Live)?,
        email: pick(row, "", read, C::Email, String::new())?,
        email_normalized: pick(row, "", read, C::EmailNormalized, String::new())?,
        first_name: pick(row, "", read, C::FirstName, String::new())?,
        last_name: pick(row, "", read, C::LastName, String::new())?,
        phone: pick(row, "", read, C::Phone, None)?,
        phone_normalized: pick(row, "", read, C::PhoneNormalized, None)?,
        source: pick(row, "", read, C::Source, None::<Channel>)?,
        source_id: p(C::SourceId)?,
        pipeline_id: p(C::PipelineId)?,
        stage_id: p(C::StageId)?,
        status: pick(row, "", read, C::Status, LeadStatus::New)?,
        score: pick(row, "", read, C::Score, 0)?,
        assigned_to: p(C::AssignedTo)?,
        custom_fields: pick(row, "", read, C::CustomFields, serde_json::json!({}))?,
        duplicate_of: p(C::DuplicateOf)?,
        import_id: p(C::ImportId)?,
        created_at: pick(row, "", read, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, "", read, C::UpdatedAt, EPOCH)?,
    })
}

fn source_of(row: &QueryResult, pre: &str, read: Read) -> Result<source::Model, DbErr> {
    use source::Column as C;
    Ok(source::Model {
        id: row.try_get(pre, C::Id.as_str())?,
        tenant_id: row.try_get(pre, C::TenantId.as_str())?,
        environment: row.try_get(pre, C::Environment.as_str())?,
        name: pick(row, pre, read, C::Name, String::new())?,
        channel: pick(row, pre, read, C::Channel, Channel::Web)?,
        description: pick(row, pre, read, C::Description, None)?,
        webhook_token_hash: pick(row, pre, read, C::WebhookTokenHash, None)?,
        created_at: pick(row, pre, read, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, pre, read, C::UpdatedAt, EPOCH)?,
    })
}

fn pipeline_of(row: &QueryResult, pre: &str, read: Read) -> Result<pipeline::Model, DbErr> {
    use pipeline::Column as C;
    Ok(pipeline::Model {
        id: row.try_get(pre, C::Id.as_str())?,
        tenant_id: row.try_get(pre, C::TenantId.as_str())?,
        environment: row.try_get(pre, C::Environment.as_str())?,
        name: pick(row, pre, read, C::Name, String::new())?,
        created_at: pick(row, pre, read, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, pre, read, C::UpdatedAt, EPOCH)?,
    })
}

fn stage_of(row: &QueryResult, pre: &str, read: Read) -> Result<stage::Model, DbErr> {
    use stage::Column as C;
    Ok(stage::Model {
        id: row.try_get(pre, C::Id.as_str())?,
        tenant_id: row.try_get(pre, C::TenantId.as_str())?,
        environment: row.try_get(pre, C::Environment.as_str())?,
        pipeline_id: pick(row, pre, read, C::PipelineId, 0)?,
        name: pick(row, pre, read, C::Name, String::new())?,
        position: pick(row, pre, read, C::Position, 0)?,
        created_at: pick(row, pre, read, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, pre, read, C::UpdatedAt, EPOCH)?,
    })
}

fn user_of(row: &QueryResult, pre: &str, read: Read) -> Result<user::Model, DbErr> {
    use user::Column as C;
    Ok(user::Model {
        id: row.try_get(pre, C::Id.as_str())?,
        tenant_id: row.try_get(pre, C::TenantId.as_str())?,
        email: pick(row, pre, read, C::Email, String::new())?,
        name: pick(row, pre, read, C::Name, String::new())?,
        role: pick(row, pre, read, C::Role, Role::Member)?,
        // Never read for display.
        password_hash: String::new(),
        active: pick(row, pre, read, C::Active, false)?,
        session_epoch: pick(row, pre, read, C::SessionEpoch, 0)?,
        created_at: pick(row, pre, read, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, pre, read, C::UpdatedAt, EPOCH)?,
    })
}

fn tags(row: &QueryResult, backend: DatabaseBackend) -> Result<Vec<String>, DbErr> {
    let Some(text) = row.try_get::<Option<String>>("", TAGS)? else {
        return Ok(Vec::new());
    };
    let mut tags: Vec<String> =
        serde_json::from_str(&text).map_err(|e| DbErr::Type(format!("tags of a lead: {e}")))?;
    // PostgreSQL sorts them in the aggregate, by the database's collation as the tags loader's
    // ORDER BY does; SQLite's order is bytewise, which Rust's sort repeats.
    if backend != DatabaseBackend::Postgres {
        tags.sort_unstable();
    }
    Ok(tags)
}

/// A source's webhook token hash as display reads it: `''` when one is set, else null. Only
/// whether a token exists is shown, never its hash.
pub fn token_set() -> Expr {
    Expr::case(
        Expr::col((source::Entity, source::Column::WebhookTokenHash)).is_null(),
        Expr::val(Option::<String>::None),
    )
    .finally(Expr::val(""))
    .into()
}

/// Left-joins `E` on `lead.from = E.to` and reads, under `pre`, its columns in `keys` or `cols`,
/// each `replaced` column as the given expression instead.
fn join<E: EntityTrait>(
    mut q: Select<lead::Entity>,
    (from, to): (lead::Column, E::Column),
    pre: &str,
    (keys, cols): (&[E::Column], &[E::Column]),
    replaced: &[(E::Column, Expr)],
) -> Select<lead::Entity> {
    q = q.join(
        JoinType::LeftJoin,
        lead::Entity::belongs_to(E::default())
            .from(from)
            .to(to)
            .into(),
    );
    for c in E::Column::iter().filter(|c| has(keys, c) || has(cols, c)) {
        let expr = replaced
            .iter()
            .find(|(r, _)| r.as_str() == c.as_str())
            .map_or_else(
                || Expr::col((E::default().into_iden(), c)),
                |(_, e)| e.clone(),
            );
        q = q.column_as(expr, format!("{pre}{}", c.as_str()));
    }
    q
}

fn joined(
    mut q: Select<lead::Entity>,
    with: &With,
    backend: DatabaseBackend,
) -> Select<lead::Entity> {
    if let Some(cols) = &with.lead {
        q = q.select_only();
        for c in lead::Column::iter().filter(|c| has(cols, c) || has(&[lead::Column::Id], c)) {
            q = q.column_as(Expr::col((lead::Entity, c)), c.as_str());
        }
    }
    if let Some(cols) = &with.source {
        use source::Column as C;
        let shown = [(C::WebhookTokenHash, token_set())];
        let keys = [C::Id, C::TenantId, C::Environment];
        q = join::<source::Entity>(
            q,
            (lead::Column::SourceId, C::Id),
            "s_",
            (&keys, cols),
            &shown,
        );
    }
    if let Some(cols) = &with.pipeline {
        use pipeline::Column as C;
        let keys = [C::Id, C::TenantId, C::Environment];
        q = join::<pipeline::Entity>(
            q,
            (lead::Column::PipelineId, C::Id),
            "p_",
            (&keys, cols),
            &[],
        );
    }
    if let Some(cols) = &with.stage {
        use stage::Column as C;
        let keys = [C::Id, C::TenantId, C::Environment];
        q = join::<stage::Entity>(q, (lead::Column::StageId, C::Id), "st_", (&keys, cols), &[]);
    }
    if let Some(cols) = &with.assignee {
        use user::Column as C;
        // The password hash is never read: `user_of` does not look for it.
        let cols: Vec<C> = cols
            .iter()
            .copied()
            .filter(|c| !has(&[C::PasswordHash], c))
            .collect();
        let keys = [C::Id, C::TenantId];
        q = join::<user::Entity>(
            q,
            (lead::Column::AssignedTo, C::Id),
            "u_",
            (&keys, &cols),
            &[],
        );
    }
    if with.tags {
        // One array per lead, from the tags' primary key (lead_id, tag).
        let agg = if backend == DatabaseBackend::Postgres {
            r#"(SELECT json_agg(t.tag ORDER BY t.tag)::text FROM lead_tags t WHERE t.lead_id = "leads"."id")"#
        } else {
            r#"(SELECT json_group_array(t.tag) FROM lead_tags t WHERE t.lead_id = "leads"."id")"#
        };
        q = q.column_as(Expr::cust(agg), TAGS);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(with: &With, backend: DatabaseBackend) -> String {
        joined(lead::Entity::find(), with, backend)
            .build(backend)
            .to_string()
    }

    fn every<C: Iterable>() -> Option<Vec<C>> {
        Some(C::iter().collect())
    }

    #[test]
    fn nothing_secret_is_selected() {
        let all = With {
            lead: None,
            source: every(),
            pipeline: every(),
            stage: every(),
            assignee: every(),
            tags: true,
        };
        for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
            let sql = sql(&all, backend);
            assert!(sql.contains("\"s_webhook_token_hash\""), "{sql}");
            assert!(!sql.contains("\"webhook_token_hash\" AS"), "{sql}");
            assert!(!sql.contains("password_hash"), "{sql}");
        }
    }

    #[test]
    fn only_what_is_asked_for_is_read() {
        assert!(!sql(&With::default(), DatabaseBackend::Sqlite).contains("JOIN"));
        let tags_only = With {
            tags: true,
            ..With::default()
        };
        let sql_ = sql(&tags_only, DatabaseBackend::Postgres);
        assert!(!sql_.contains("JOIN") && sql_.contains(TAGS), "{sql_}");

        let names = With {
            lead: Some(vec![lead::Column::Email]),
            source: Some(vec![source::Column::Name]),
            ..With::default()
        };
        let sql = sql(&names, DatabaseBackend::Postgres);
        for read in [
            "\"leads\".\"id\"",
            "\"leads\".\"email\"",
            "\"s_id\"",
            "\"s_name\"",
        ] {
            assert!(sql.contains(read), "{read} in {sql}");
        }
        for unread in [
            "custom_fields",
            "first_name",
            "s_description",
            "s_created_at",
            "stages",
        ] {
            assert!(!sql.contains(unread), "{unread} in {sql}");
        }
    }
}
