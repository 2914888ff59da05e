//! `leadgraph seed-demo`: fills a tenant with realistic data for demos and benchmarks,
//! with batched inserts (seconds for 100 000 leads) and progress on stderr.

use std::io::Write;

use chrono::Duration;
use entity::enums::{Channel, Environment, LeadStatus, Plan, Role, Scope};
use entity::{api_key, lead, lead_tag, pipeline, source, stage};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde::Serialize;

use crate::auth::password;
use crate::error::{AppError, AppResult};
use crate::ids::Kind;
use crate::service::api_key::{Grant, issue};
use crate::service::tenant;
use crate::service::user::{self, NewUser};
use crate::state::App;

/// What was created; printed as JSON with `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seeded {
    /// The tenant's opaque ID.
    pub tenant_id: String,
    /// The owner's email.
    pub email: String,
    /// The owner's password.
    pub password: String,
    /// A live full-scope key.
    pub api_key: String,
    /// Leads created.
    pub leads: usize,
}

const ROWS_PER_INSERT: usize = 1000;
const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Jane", "John", "Maria", "Wei", "Amir", "Olga", "Kofi", "Lena", "Raj",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Doe", "Smith", "Garcia", "Chen", "Haddad", "Ivanova", "Mensah",
];
const TAGS: &[&str] = &[
    "vip",
    "hot",
    "b2b",
    "b2c",
    "eu",
    "us",
    "apac",
    "trial",
    "enterprise",
    "smb",
];

/// Creates a tenant named `name` on `plan` with 10 users, 20 sources, 5 pipelines of 5 stages
/// and `n` leads (up to 3 tags each), created over the last 90 days; `rng_seed` makes the
/// leads repeatable (benchmarks compare runs on the same data).
pub async fn seed(
    app: &App,
    name: &str,
    plan: Plan,
    n: usize,
    rng_seed: Option<u64>,
    progress: bool,
) -> AppResult<Seeded> {
    let email = format!("owner@{}.demo", uuid::Uuid::new_v4().simple());
    let password = "demo-password".to_owned();
    let b = tenant::bootstrap(app, name, &email, Some(password.clone()), plan).await?;
    let tenant_id = app
        .ids
        .decode(Kind::Tenant, &b.tenant_id)
        .ok_or(AppError::NotFound)?;
    let owner_id = app
        .ids
        .decode(Kind::User, &b.user_id)
        .ok_or(AppError::NotFound)?;
    let db = &app.db;
    let now = crate::service::lead::now();

    let hash = password::hash_async(password.clone()).await?;
    let mut users = vec![owner_id];
    for i in 0..9 {
        let u = NewUser {
            email: format!("user{i}-{}", email),
            name: format!("{} {}", FIRST[i % FIRST.len()], LAST[i % LAST.len()]),
            role: if i < 2 { Role::Admin } else { Role::Member },
            password: password.clone(),
        };
        users.push(user::insert(db, tenant_id, &u, hash.clone()).await?.id);
    }

    let channels = [
        Channel::Web,
        Channel::Referral,
        Channel::Api,
        Channel::Import,
        Channel::Manual,
    ];
    let mut sources = Vec::new();
    for i in 0..20 {
        let row = source::ActiveModel {
            tenant_id: Set(tenant_id),
            environment: Set(Environment::Live),
            name: Set(format!("Source {i}")),
            channel: Set(channels[i % channels.len()]),
            description: Set(None),
            webhook_token_hash: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = source::Entity::insert(row).exec(db).await?.last_insert_id;
        sources.push((id, channels[i % channels.len()]));
    }
    let mut stages = Vec::new();
    for p in 0..5 {
        let row = pipeline::ActiveModel {
            tenant_id: Set(tenant_id),
            environment: Set(Environment::Live),
            name: Set(format!("Pipeline {p}")),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let pid = pipeline::Entity::insert(row).exec(db).await?.last_insert_id;
        for (pos, name) in ["New", "Contacted", "Demo", "Proposal", "Won"]
            .iter()
            .enumerate()
        {
            let row = stage::ActiveModel {
                tenant_id: Set(tenant_id),
                environment: Set(Environment::Live),
                pipeline_id: Set(pid),
                name: Set((*name).to_owned()),
                position: Set(pos as i32),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            };
            stages.push((
                pid,
                stage::Entity::insert(row).exec(db).await?.last_insert_id,
            ));
        }
    }

    let statuses = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Unqualified,
    ];
    let mut rng = StdRng::seed_from_u64(rng_seed.unwrap_or_else(rand::random));
    let mut done = 0;
    while done < n {
        let count = ROWS_PER_INSERT.min(n - done);
        let mut rows = Vec::with_capacity(count);
        let mut tag_sets = Vec::with_capacity(count);
        for i in done..done + count {
            let first = *FIRST.choose(&mut rng).unwrap_or(&"Ada");
            let last = *LAST.choose(&mut rng).unwrap_or(&"Doe");
            let email = format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                i
            );
            let (source_id, channel) = sources[rng.random_range(0..sources.len())];
            let (pipeline_id, stage_id) = stages[rng.random_range(0..stages.len())];
            let created = crate::service::lead::now()
                - Duration::seconds(rng.random_range(0..90 * 24 * 3600));
            let phone = format!("+1555{:07}", i % 10_000_000);
            rows.push(lead::ActiveModel {
                tenant_id: Set(tenant_id),
                environment: Set(Environment::Live),
                email_normalized: Set(email.clone()),
                email: Set(email),
                first_name: Set(first.to_owned()),
                last_name: Set(last.to_owned()),
                phone_normalized: Set(Some(phone.clone())),
                phone: Set(Some(phone)),
                source: Set(Some(channel)),
                source_id: Set(Some(source_id)),
                pipeline_id: Set(Some(pipeline_id)),
                stage_id: Set(Some(stage_id)),
                status: Set(statuses[rng.random_range(0..statuses.len())]),
                score: Set(rng.random_range(0..=crate::service::lead::MAX_SCORE)),
                assigned_to: Set(Some(users[rng.random_range(0..users.len())])),
                custom_fields: Set(serde_json::json!({"company": format!("Company {}", i % 500)})),
                duplicate_of: Set(None),
                created_at: Set(created),
                updated_at: Set(created),
                ..Default::default()
            });
            let k = rng.random_range(0..=3);
            let mut tags: Vec<&str> = TAGS.choose_multiple(&mut rng, k).copied().collect();
            tags.sort_unstable();
            tag_sets.push(tags);
        }
        let tx = crate::db::begin_write(db).await?;
        let ids = lead::Entity::insert_many(rows)
            .exec_with_returning_keys(&tx)
            .await?;
        let tags: Vec<lead_tag::ActiveModel> = ids
            .iter()
            .zip(&tag_sets)
            .flat_map(|(id, tags)| {
                tags.iter().map(move |t| lead_tag::ActiveModel {
                    lead_id: Set(*id),
                    tag: Set((*t).to_owned()),
                    tenant_id: Set(tenant_id),
                    environment: Set(Environment::Live),
                })
            })
            .collect();
        for chunk in tags.chunks(ROWS_PER_INSERT) {
            lead_tag::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&tx)
                .await?;
        }
        tx.commit().await?;
        done += count;
        if progress {
            eprint!("\rseeded {done}/{n} leads");
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    // A live full-scope key for the demo (the bootstrap key is one too; this one is labelled).
    let (key, row) = issue(
        Grant {
            tenant_id,
            user_id: owner_id,
            label: "seed-demo".into(),
            environment: Environment::Live,
            scope: Scope::Full,
            expires_at: None,
        },
        now,
    );
    api_key::Entity::insert(row).exec(db).await?;
    Ok(Seeded {
        tenant_id: b.tenant_id,
        email: b.email,
        password,
        api_key: key.key,
        leads: n,
    })
}
