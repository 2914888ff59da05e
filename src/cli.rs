//! The operator commands (`leadgraph --help`): each opens the database, calls the services and
//! prints what an operator needs, as text or, with `--json`, as one JSON line per item.

use std::error::Error;

use entity::enums::{Environment, Scope};

use crate::config::{Command, Config, KeysCommand, UsersCommand};
use crate::error::AppError;
use crate::server::{describe, open};
use crate::service::{api_key, tenant, user};
use crate::web::AppState;
use crate::{db, graphql};

/// What a command returns.
type Done = Result<(), Box<dyn Error>>;

/// Runs `command` with `config`.
pub async fn run(command: Command, config: Config) -> Done {
    match command {
        Command::Serve(_) => crate::server::serve(config).await,
        Command::Schema => {
            print!("{}", graphql::schema::sdl());
            Ok(())
        }
        Command::Openapi => {
            let doc = crate::rest::openapi::document();
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
        Command::Migrate(_) => {
            let db = db::connect(&config).await?;
            db::migrate(&db).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Bootstrap(args) => {
            let state = open(config).await?;
            let b = tenant::bootstrap(&state, &args.tenant, &args.email, args.password, args.plan)
                .await
                .map_err(describe)?;
            if args.json {
                println!("{}", serde_json::to_string(&b)?);
            } else {
                println!(
                    "Created tenant {} ({}) with owner {}",
                    args.tenant, b.tenant_slug, b.email
                );
                println!("  password: {}", b.password);
                println!("  API key:  {}   (shown once; store it now)", b.api_key);
            }
            Ok(())
        }
        Command::Tenants(args) => {
            let state = open(config).await?;
            let all = tenant::list(&state).await.map_err(describe)?;
            if args.json {
                for t in &all {
                    println!("{}", serde_json::to_string(t)?);
                }
            } else {
                print_tenants(&all);
            }
            Ok(())
        }
        Command::SetPlan(args) => {
            let state = open(config).await?;
            let t = find_tenant(&state, &args.tenant).await?;
            let t = tenant::set_plan(&state.db, t.id, args.plan)
                .await
                .map_err(describe)?;
            println!("Tenant {} is now on the {} plan", t.slug, t.plan);
            Ok(())
        }
        Command::Users(UsersCommand::ResetPassword(args)) => {
            let state = open(config).await?;
            let (u, password) = match user::reset_password(&state, &args.email).await {
                Err(AppError::NotFound) => {
                    return Err(format!("no user has the email {}", args.email).into());
                }
                other => other.map_err(describe)?,
            };
            let t = tenant::get(&state.db, u.tenant_id)
                .await
                .map_err(describe)?;
            if args.json {
                let out = serde_json::json!({
                    "tenantSlug": t.slug,
                    "userId": state.ids.encode(crate::ids::Kind::User, u.id),
                    "email": u.email,
                    "password": password,
                });
                println!("{out}");
            } else {
                println!(
                    "New password for {} (tenant {}); their sessions have ended",
                    u.email, t.slug
                );
                println!("  password: {password}   (shown once)");
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Create(args)) => {
            let state = open(config).await?;
            let t = find_tenant(&state, &args.tenant).await?;
            let environment =
                Environment::parse(&args.environment).ok_or("--environment: live or sandbox")?;
            let scope = if args.scope == "read" {
                Scope::Read
            } else {
                Scope::Full
            };
            let rc = tenant::owner_context(&state, &t, environment)
                .await
                .map_err(describe)?;
            let input = api_key::NewKey {
                label: args.label,
                environment: Some(environment),
                scope: Some(scope),
                expires_at: None,
                expires_in_days: None,
            };
            let (row, key) = api_key::create(&state, &rc, input)
                .await
                .map_err(describe)?;
            if args.json {
                let mut out = api_key::json(&state.ids, &row);
                out["apiKey"] = key.into();
                out["tenantSlug"] = t.slug.into();
                println!("{out}");
            } else {
                println!(
                    "Created a {} {} key for tenant {} (prefix {})",
                    args.environment, args.scope, t.slug, row.prefix
                );
                println!("  API key: {key}   (shown once; store it now)");
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Revoke(args)) => {
            let state = open(config).await?;
            let found = api_key::find_by_prefix(&state, &args.prefix)
                .await
                .map_err(describe)?;
            let k = match found.as_slice() {
                [k] => k,
                [] => return Err(format!("no API key has the prefix {}", args.prefix).into()),
                several => {
                    let ids: Vec<String> = several
                        .iter()
                        .map(|k| {
                            format!(
                                "{} ({})",
                                state.ids.encode(crate::ids::Kind::ApiKey, k.id),
                                k.label
                            )
                        })
                        .collect();
                    return Err(format!(
                        "{} keys have the prefix {}: {}; give the whole key instead",
                        several.len(),
                        args.prefix,
                        ids.join(", ")
                    )
                    .into());
                }
            };
            let t = tenant::get(&state.db, k.tenant_id)
                .await
                .map_err(describe)?;
            let rc = tenant::owner_context(&state, &t, k.environment)
                .await
                .map_err(describe)?;
            api_key::delete(&state, &rc, k.id).await.map_err(describe)?;
            println!(
                "Revoked key {} ({}) of tenant {}",
                k.prefix, k.label, t.slug
            );
            Ok(())
        }
        Command::SeedDemo(args) => {
            let state = open(config).await?;
            let started = std::time::Instant::now();
            let s = crate::seed::seed(&state, &args.tenant, args.plan, args.leads, args.seed, true)
                .await
                .map_err(describe)?;
            if args.json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("Seeded {} leads in {:.1?}", s.leads, started.elapsed());
                println!("  owner: {} / {}", s.email, s.password);
                println!("  API key: {}", s.api_key);
            }
            Ok(())
        }
        Command::Import(args) => import(config, args).await,
        Command::Backup(args) => {
            let db = db::connect(&config).await?;
            db::backup(&db, &args.to).await?;
            db::close(&db).await?;
            println!("Backed up to {}", args.to.display());
            Ok(())
        }
    }
}

/// The tenant `spec` names (slug, name or ID); when none matches, the error lists them.
async fn find_tenant(
    state: &AppState,
    spec: &str,
) -> Result<entity::tenant::Model, Box<dyn Error>> {
    match tenant::find(state, spec).await {
        Ok(t) => Ok(t),
        Err(AppError::NotFound) => {
            let all = tenant::list(state).await.map_err(describe)?;
            let names: Vec<String> = all
                .iter()
                .map(|t| format!("{} ({}, {})", t.slug, t.name, t.id))
                .collect();
            let known = if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            };
            Err(
                format!("no single tenant has the slug, name or ID \"{spec}\"; tenants: {known}")
                    .into(),
            )
        }
        Err(e) => Err(describe(e)),
    }
}

/// The tenants as an aligned table.
fn print_tenants(all: &[tenant::Summary]) {
    let head = ["SLUG", "NAME", "PLAN", "USERS", "KEYS", "ID"];
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|t| {
            [
                t.slug.clone(),
                t.name.clone(),
                t.plan.as_str().to_owned(),
                t.users.to_string(),
                t.keys.to_string(),
                t.id.clone(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&head);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
/// `leadgraph import FILE --tenant SLUG`: the file is read as a request's body would be, and
/// processed here with a progress bar (or by a server's worker if one takes it first).
async fn import(config: Config, args: crate::config::ImportArgs) -> Done {
    use entity::enums::{Environment, ImportFormat, OnDuplicate};
    let environment =
        Environment::parse(&args.environment).ok_or("--environment: live or sandbox")?;
    let on_duplicate =
        OnDuplicate::parse(&args.on_duplicate).ok_or("--on-duplicate: skip, update or create")?;
    let name = args.file.to_string_lossy().to_ascii_lowercase();
    let format = if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
        ImportFormat::Ndjson
    } else {
        ImportFormat::Csv
    };
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    let state = open(config).await?;
    let t = find_tenant(&state, &args.tenant).await?;
    let rc = tenant::owner_context(&state, &t, environment)
        .await
        .map_err(describe)?;
    let opts = crate::service::import::Options {
        format,
        on_duplicate,
        source_id: None,
        dry_run: args.dry_run,
    };
    let body = tokio_util::io::ReaderStream::new(file);
    let job = crate::service::import::receive(&state, &rc, opts, body)
        .await
        .map_err(describe)?;
    let bar = indicatif::ProgressBar::new(job.total.max(0) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let done = crate::service::import::run_now(&state, job.id, |j| {
        bar.set_position(j.processed.max(0) as u64);
        bar.set_message(format!(
            "{} created, {} updated, {} skipped, {} failed",
            j.created, j.updated, j.skipped, j.failed
        ));
    })
    .await
    .map_err(describe)?;
    bar.finish();
    let shown = crate::service::import::json(&state.ids, &done);
    if args.json {
        println!("{}", serde_json::to_string(&shown)?);
    } else {
        println!(
            "Import {}: {} rows, {} created, {} updated, {} skipped, {} failed",
            done.status, done.total, done.created, done.updated, done.skipped, done.failed
        );
        for e in shown["errors"].as_array().into_iter().flatten().take(20) {
            println!(
                "  row {}: {} {}",
                e["row"],
                e["field"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
