//! A page of leads read together with the relations the client asked for: the lead's source,
//! pipeline, stage and assigned user joined in, and its tags aggregated, all in the page's one
//! statement (docs/performance.md). The related rows are the same rows the dataloaders would
//! read: scoped to the caller's tenant (and environment), and without secrets.

use entity::enums::Environment;
use entity::{lead, pipeline, source, stage, user};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, JoinType, QueryResult, QuerySelect, QueryTrait, Select,
};

use crate::error::AppResult;

/// The relations to read with a page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct With {
    /// The lead's source.
    pub source: bool,
    /// Its pipeline.
    pub pipeline: bool,
    /// Its stage.
    pub stage: bool,
    /// The user it is assigned to.
    pub assignee: bool,
    /// Its tags.
    pub tags: bool,
}

/// A lead of a page with the related rows asked for (`None` where not asked for or absent).
#[derive(Debug, Clone)]
pub struct Listed {
    /// The lead.
    pub lead: lead::Model,
    /// Its source.
    pub source: Option<source::Model>,
    /// Its pipeline.
    pub pipeline: Option<pipeline::Model>,
    /// Its stage.
    pub stage: Option<stage::Model>,
    /// Its assigned user, without the password hash.
    pub assignee: Option<user::Model>,
    /// Its tags, sorted, when asked for.
    pub tags: Option<Vec<String>>,
}

const TAGS: &str = "lg_tags";

/// Runs `q` (a filtered, ordered, limited select of leads) with the relations of `with`.
pub async fn fetch(
    db: &DatabaseConnection,
    q: Select<lead::Entity>,
    with: With,
    tenant_id: i64,
    environment: Environment,
) -> AppResult<Vec<Listed>> {
    let backend = db.get_database_backend();
    let with = worth_joining(with, backend);
    let stmt = joined(q, with, backend).build(backend);
    let rows = db.query_all_raw(stmt).await?;
    // A related row of another tenant or environment is one the loaders would not return.
    let mine =
        |t: i64, e: Option<Environment>| t == tenant_id && e.is_none_or(|e| e == environment);
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let l = lead::Model::from_query_result(row, "")?;
        let source = related::<source::Model>(row, with.source, "s_")?
            .filter(|s| mine(s.tenant_id, Some(s.environment)));
        let pipeline = related::<pipeline::Model>(row, with.pipeline, "p_")?
            .filter(|p| mine(p.tenant_id, Some(p.environment)));
        let stage = related::<stage::Model>(row, with.stage, "st_")?
            .filter(|s| mine(s.tenant_id, Some(s.environment)));
        let assignee =
            related::<user::Model>(row, with.assignee, "u_")?.filter(|u| mine(u.tenant_id, None));
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
            tags: with.tags,
            ..With::default()
        },
    }
}

fn related<M: FromQueryResult>(
    row: &QueryResult,
    wanted: bool,
    pre: &str,
) -> Result<Option<M>, DbErr> {
    if wanted {
        M::from_query_result_optional(row, pre)
    } else {
        Ok(None)
    }
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

/// Left-joins `E` on `lead.from = E.to` and adds its columns under `pre`, each `replaced`
/// column read as the given expression instead.
fn join<E: EntityTrait>(
    mut q: Select<lead::Entity>,
    from: lead::Column,
    to: E::Column,
    pre: &str,
    replaced: &[(E::Column, Expr)],
) -> Select<lead::Entity> {
    q = q.join(
        JoinType::LeftJoin,
        lead::Entity::belongs_to(E::default())
            .from(from)
            .to(to)
            .into(),
    );
    for c in E::Column::iter() {
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
    with: With,
    backend: DatabaseBackend,
) -> Select<lead::Entity> {
    if with.source {
        let shown = [(source::Column::WebhookTokenHash, token_set())];
        q = join::<source::Entity>(q, lead::Column::SourceId, source::Column::Id, "s_", &shown);
    }
    if with.pipeline {
        q = join::<pipeline::Entity>(q, lead::Column::PipelineId, pipeline::Column::Id, "p_", &[]);
    }
    if with.stage {
        q = join::<stage::Entity>(q, lead::Column::StageId, stage::Column::Id, "st_", &[]);
    }
    if with.assignee {
        let shown = [(user::Column::PasswordHash, Expr::val(""))];
        q = join::<user::Entity>(q, lead::Column::AssignedTo, user::Column::Id, "u_", &shown);
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

    fn sql(with: With, backend: DatabaseBackend) -> String {
        joined(lead::Entity::find(), with, backend)
            .build(backend)
            .to_string()
    }

    #[test]
    fn nothing_secret_is_selected() {
        let all = With {
            source: true,
            pipeline: true,
            stage: true,
            assignee: true,
            tags: true,
        };
        for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
            let sql = sql(all, backend);
            assert!(sql.contains("\"s_webhook_token_hash\""), "{sql}");
            assert!(!sql.contains("\"webhook_token_hash\" AS"), "{sql}");
            assert!(sql.contains("'' AS \"u_password_hash\""), "{sql}");
            assert!(!sql.contains("\"password_hash\" AS"), "{sql}");
        }
    }

    #[test]
    fn only_what_is_asked_for_is_joined() {
        assert!(!sql(With::default(), DatabaseBackend::Sqlite).contains("JOIN"));
        let tags_only = With {
            tags: true,
            ..With::default()
        };
        let sql = sql(tags_only, DatabaseBackend::Postgres);
        assert!(!sql.contains("JOIN") && sql.contains(TAGS), "{sql}");
    }
}
