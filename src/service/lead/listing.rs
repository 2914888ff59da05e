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
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, IdenStatic, Iterable,
    JoinType, QueryResult, QuerySelect, QueryTrait, Select, TryGetable,
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
    let (q, at) = joined(q, &with, backend);
    let rows = db.query_all_raw(q.build(backend)).await?;
    // A related row of another tenant or environment is one the loaders would not return.
    let mine =
        |t: i64, e: Option<Environment>| t == tenant_id && e.is_none_or(|e| e == environment);
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let l = lead_of(row, &at.lead)?;
        let source = related(row, &at.source, source_of)?
            .map(|s| s.filter(|s| mine(s.tenant_id, Some(s.environment))));
        let pipeline = related(row, &at.pipeline, pipeline_of)?
            .map(|p| p.filter(|p| mine(p.tenant_id, Some(p.environment))));
        let stage = related(row, &at.stage, stage_of)?
            .map(|s| s.filter(|s| mine(s.tenant_id, Some(s.environment))));
        let assignee =
            related(row, &at.assignee, user_of)?.map(|u| u.filter(|u| mine(u.tenant_id, None)));
        let tags = at.tags.map(|i| tags(row, i, backend)).transpose()?;
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

/// The related row when its columns were read.
fn related<M>(
    row: &QueryResult,
    at: &Option<Places>,
    of: fn(&QueryResult, &Places) -> Result<M, DbErr>,
) -> Result<Joined<M>, DbErr> {
    let Some(at) = at else {
        return Ok(None);
    };
    // A left join that found nothing leaves the id null; the id is always read, first.
    if row.try_get_by_index::<Option<i64>>(at.first)?.is_none() {
        return Ok(Some(None));
    }
    Ok(Some(Some(of(row, at)?)))
}

fn has<C: IdenStatic>(cols: &[C], c: &C) -> bool {
    cols.iter().any(|x| x.as_str() == c.as_str())
}

/// A column's place among its table's columns.
trait Place: IdenStatic + Copy {
    fn place(self) -> usize;
}

macro_rules! places {
    ($($c:ty),+) => {$(
        impl Place for $c {
            fn place(self) -> usize {
                self as usize
            }
        }
    )+};
}
places!(
    lead::Column,
    source::Column,
    pipeline::Column,
    stage::Column,
    user::Column
);

/// Where one table's columns sit in the page's select list, by their place in the table: the
/// rows are read by position, which spares a look-up by name (and a prefixed name formatted)
/// per column and row.
#[derive(Debug, Clone)]
struct Places {
    /// The select list's index of each column read.
    at: [Option<usize>; 32],
    /// The index of the first column read (the id).
    first: usize,
}

impl Places {
    fn new(first: usize) -> Self {
        Places {
            at: [None; 32],
            first,
        }
    }
}

/// Where each table's columns sit in the page's select list.
#[derive(Debug, Clone)]
struct Layout {
    lead: Places,
    source: Option<Places>,
    pipeline: Option<Places>,
    stage: Option<Places>,
    assignee: Option<Places>,
    tags: Option<usize>,
}

/// `col` when it was read, else the placeholder `or`.
fn pick<C: Place, T: TryGetable>(
    row: &QueryResult,
    at: &Places,
    col: C,
    or: T,
) -> Result<T, DbErr> {
    match at.at[col.place()] {
        Some(i) => row.try_get_by_index(i),
        None => Ok(or),
    }
}

/// The epoch: the placeholder of a time not read.
const EPOCH: DateTime<Utc> = DateTime::UNIX_EPOCH;

fn lead_of(row: &QueryResult, at: &Places) -> Result<lead::Model, DbErr> {
    use lead::Column as C;
    let p = |c| pick(row, at, c, None::<i64>);
    Ok(lead::Model {
        id: pick(row, at, C::Id, 0)?,
        tenant_id: pick(row, at, C::TenantId, 0)?,
        environment: pick(row, at, C::Environment, Environment::Live)?,
        email: pick(row, at, C::Email, String::new())?,
        email_normalized: pick(row, at, C::EmailNormalized, String::new())?,
        first_name: pick(row, at, C::FirstName, String::new())?,
        last_name: pick(row, at, C::LastName, String::new())?,
        phone: pick(row, at, C::Phone, None)?,
        phone_normalized: pick(row, at, C::PhoneNormalized, None)?,
        source: pick(row, at, C::Source, None::<Channel>)?,
        source_id: p(C::SourceId)?,
        pipeline_id: p(C::PipelineId)?,
        stage_id: p(C::StageId)?,
        status: pick(row, at, C::Status, LeadStatus::New)?,
        score: pick(row, at, C::Score, 0)?,
        assigned_to: p(C::AssignedTo)?,
        custom_fields: pick(row, at, C::CustomFields, serde_json::json!({}))?,
        duplicate_of: p(C::DuplicateOf)?,
        import_id: p(C::ImportId)?,
        created_at: pick(row, at, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, at, C::UpdatedAt, EPOCH)?,
    })
}

fn source_of(row: &QueryResult, at: &Places) -> Result<source::Model, DbErr> {
    use source::Column as C;
    Ok(source::Model {
        id: pick(row, at, C::Id, 0)?,
        tenant_id: pick(row, at, C::TenantId, 0)?,
        environment: pick(row, at, C::Environment, Environment::Live)?,
        name: pick(row, at, C::Name, String::new())?,
        channel: pick(row, at, C::Channel, Channel::Web)?,
        description: pick(row, at, C::Description, None)?,
        webhook_token_hash: pick(row, at, C::WebhookTokenHash, None)?,
        created_at: pick(row, at, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, at, C::UpdatedAt, EPOCH)?,
    })
}

fn pipeline_of(row: &QueryResult, at: &Places) -> Result<pipeline::Model, DbErr> {
    use pipeline::Column as C;
    Ok(pipeline::Model {
        id: pick(row, at, C::Id, 0)?,
        tenant_id: pick(row, at, C::TenantId, 0)?,
        environment: pick(row, at, C::Environment, Environment::Live)?,
        name: pick(row, at, C::Name, String::new())?,
        created_at: pick(row, at, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, at, C::UpdatedAt, EPOCH)?,
    })
}

fn stage_of(row: &QueryResult, at: &Places) -> Result<stage::Model, DbErr> {
    use stage::Column as C;
    Ok(stage::Model {
        id: pick(row, at, C::Id, 0)?,
        tenant_id: pick(row, at, C::TenantId, 0)?,
        environment: pick(row, at, C::Environment, Environment::Live)?,
        pipeline_id: pick(row, at, C::PipelineId, 0)?,
        name: pick(row, at, C::Name, String::new())?,
        position: pick(row, at, C::Position, 0)?,
        created_at: pick(row, at, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, at, C::UpdatedAt, EPOCH)?,
    })
}

fn user_of(row: &QueryResult, at: &Places) -> Result<user::Model, DbErr> {
    use user::Column as C;
    Ok(user::Model {
        id: pick(row, at, C::Id, 0)?,
        tenant_id: pick(row, at, C::TenantId, 0)?,
        email: pick(row, at, C::Email, String::new())?,
        name: pick(row, at, C::Name, String::new())?,
        role: pick(row, at, C::Role, Role::Member)?,
        // Never read for display.
        password_hash: String::new(),
        active: pick(row, at, C::Active, false)?,
        session_epoch: pick(row, at, C::SessionEpoch, 0)?,
        created_at: pick(row, at, C::CreatedAt, EPOCH)?,
        updated_at: pick(row, at, C::UpdatedAt, EPOCH)?,
    })
}

fn tags(row: &QueryResult, at: usize, backend: DatabaseBackend) -> Result<Vec<String>, DbErr> {
    let Some(text) = row.try_get_by_index::<Option<String>>(at)? else {
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

/// Reads the columns of `E` that `wanted` keeps, aliased under `pre`, each `replaced` column as
/// the given expression instead, and records where they sit; `n` counts the select list.
fn read<E: EntityTrait>(
    mut q: Select<lead::Entity>,
    pre: &str,
    wanted: impl Fn(&E::Column) -> bool,
    replaced: &[(E::Column, Expr)],
    n: &mut usize,
) -> (Select<lead::Entity>, Places)
where
    E::Column: Place,
{
    let mut at = Places::new(*n);
    for c in E::Column::iter().filter(|c| wanted(c)) {
        let expr = replaced
            .iter()
            .find(|(r, _)| r.as_str() == c.as_str())
            .map_or_else(
                || Expr::col((E::default().into_iden(), c)),
                |(_, e)| e.clone(),
            );
        q = q.column_as(expr, format!("{pre}{}", c.as_str()));
        at.at[c.place()] = Some(*n);
        *n += 1;
    }
    (q, at)
}

/// Left-joins `E` on `lead.from = E.to` and reads, under `pre`, its columns in `keys` or `cols`
/// (the id first), each `replaced` column as the given expression instead.
fn join<E: EntityTrait>(
    q: Select<lead::Entity>,
    (from, to): (lead::Column, E::Column),
    pre: &str,
    (keys, cols): (&[E::Column], &[E::Column]),
    replaced: &[(E::Column, Expr)],
    n: &mut usize,
) -> (Select<lead::Entity>, Places)
where
    E::Column: Place,
{
    let q = q.join(
        JoinType::LeftJoin,
        lead::Entity::belongs_to(E::default())
            .from(from)
            .to(to)
            .into(),
    );
    read::<E>(q, pre, |c| has(keys, c) || has(cols, c), replaced, n)
}

fn joined(
    mut q: Select<lead::Entity>,
    with: &With,
    backend: DatabaseBackend,
) -> (Select<lead::Entity>, Layout) {
    let mut n = 0;
    let wanted = |c: &lead::Column| {
        with.lead.as_ref().is_none_or(|cols| has(cols, c)) || has(&[lead::Column::Id], c)
    };
    let lead;
    (q, lead) = read::<lead::Entity>(q.select_only(), "", wanted, &[], &mut n);
    let mut layout = Layout {
        lead,
        source: None,
        pipeline: None,
        stage: None,
        assignee: None,
        tags: None,
    };
    if let Some(cols) = &with.source {
        use source::Column as C;
        let shown = [(C::WebhookTokenHash, token_set())];
        let keys = [C::Id, C::TenantId, C::Environment];
        let on = (lead::Column::SourceId, C::Id);
        let (joined, at) = join::<source::Entity>(q, on, "s_", (&keys, cols), &shown, &mut n);
        (q, layout.source) = (joined, Some(at));
    }
    if let Some(cols) = &with.pipeline {
        use pipeline::Column as C;
        let keys = [C::Id, C::TenantId, C::Environment];
        let on = (lead::Column::PipelineId, C::Id);
        let (joined, at) = join::<pipeline::Entity>(q, on, "p_", (&keys, cols), &[], &mut n);
        (q, layout.pipeline) = (joined, Some(at));
    }
    if let Some(cols) = &with.stage {
        use stage::Column as C;
        let keys = [C::Id, C::TenantId, C::Environment];
        let on = (lead::Column::StageId, C::Id);
        let (joined, at) = join::<stage::Entity>(q, on, "st_", (&keys, cols), &[], &mut n);
        (q, layout.stage) = (joined, Some(at));
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
        let on = (lead::Column::AssignedTo, C::Id);
        let (joined, at) = join::<user::Entity>(q, on, "u_", (&keys, &cols), &[], &mut n);
        (q, layout.assignee) = (joined, Some(at));
    }
    if with.tags {
        // One array per lead, from the tags' primary key (lead_id, tag).
        let agg = if backend == DatabaseBackend::Postgres {
            r#"(SELECT json_agg(t.tag ORDER BY t.tag)::text FROM lead_tags t WHERE t.lead_id = "leads"."id")"#
        } else {
            r#"(SELECT json_group_array(t.tag) FROM lead_tags t WHERE t.lead_id = "leads"."id")"#
        };
        q = q.column_as(Expr::cust(agg), TAGS);
        layout.tags = Some(n);
    }
    (q, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(with: &With, backend: DatabaseBackend) -> String {
        joined(lead::Entity::find(), with, backend)
            .0
            .build(backend)
            .to_string()
    }

    fn every<C: Iterable>() -> Option<Vec<C>> {
        Some(C::iter().collect())
    }

    #[test]
    fn every_table_fits_its_places() {
        fn fits<C: Iterable + Place>() -> bool {
            C::iter().all(|c| c.place() < Places::new(0).at.len())
        }
        assert!(fits::<lead::Column>() && fits::<source::Column>() && fits::<pipeline::Column>());
        assert!(fits::<stage::Column>() && fits::<user::Column>());
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
