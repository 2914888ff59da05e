//! Baseline for benchmark scenario (a): captures the SQL statements one warm
//! `leads(first: 50)` request issues (with every nested relation), then replays exactly those
//! statements directly against the database from `--concurrency` tasks for `--seconds`,
//! printing `{"statements": N, "iterationsPerSec": X}`. leadgraph's requests/s divided by
//! this is the fraction of the database's own speed that the server achieves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use clap::Parser;
use http_body_util::BodyExt;
use leadgraph::config::Config;
use leadgraph::router::build_router;
use leadgraph::web::AppState;
use sea_orm::{ConnectionTrait, Statement};
use tower::ServiceExt;

/// Arguments.
#[derive(Parser)]
struct Args {
    /// Database to run against (seeded with `leadgraph seed-demo`).
    #[arg(long)]
    database_url: String,
    /// An API key of the seeded tenant.
    #[arg(long)]
    key: String,
    /// How long to replay.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent replaying tasks.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Also write the statements, values inlined, as a pgbench script to this file.
    #[arg(long)]
    pgbench_script: Option<std::path::PathBuf>,
}

/// The GraphQL document of scenario (a).
pub const QUERY_A: &str = "{ leads(first: 50) { edges { node { id email firstName lastName status score tags \
                           source { name } pipeline { name } stage { name } assignedTo { name email } } } } }";

// The server's allocator, so that only leadgraph's own work differs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = Config::defaults();
    config.database_url = Some(args.database_url.clone());
    config.log = "warn".into();
    config.rate_limit_per_ip = 0;
    config.tenant_rate_limits = false;
    let mut db = leadgraph::db::connect(&config).await?;
    let capturing = Arc::new(AtomicBool::new(false));
    let captured: Arc<Mutex<Vec<Statement>>> = Arc::default();
    let (flag, sink) = (capturing.clone(), captured.clone());
    db.set_metric_callback(move |info| {
        if flag.load(Ordering::SeqCst) {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(info.statement.clone());
        }
    });
    let state = AppState::build(config, db.clone())
        .await
        .map_err(|e| e.message())?;
    let router = build_router(state);
    let request = || {
        axum::http::Request::post("/graphql")
            .header("content-type", "application/json")
            .header("x-api-key", &args.key)
            .body(Body::from(
                serde_json::json!({ "query": QUERY_A }).to_string(),
            ))
    };
    // Warm the key cache, then capture what a warm request runs. On PostgreSQL the cache
    // invalidation listener empties the cache when it connects, which may be after the first
    // request: give it time, then warm again.
    router.clone().oneshot(request()?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    router.clone().oneshot(request()?).await?;
    capturing.store(true, Ordering::SeqCst);
    let resp = router.clone().oneshot(request()?).await?;
    capturing.store(false, Ordering::SeqCst);
    let body = resp.into_body().collect().await?.to_bytes();
    let parsed: serde_json::Value = serde_json::from_slice(&body)?;
    if parsed.get("errors").is_some()
        || parsed["data"]["leads"]["edges"]
            .as_array()
            .map_or(0, Vec::len)
            != 50
    {
        return Err(format!("scenario (a) did not return 50 leads: {parsed}").into());
    }
    let statements = Arc::new(captured.lock().unwrap_or_else(|e| e.into_inner()).clone());
    if let Some(path) = &args.pgbench_script {
        // pgbench ends a command at its semicolon, so statements may span lines.
        let script: String = statements.iter().map(|s| format!("{s};\n")).collect();
        std::fs::write(path, script)?;
    }
    if std::env::var_os("BASELINE_SHOW_SQL").is_some() {
        for s in statements.iter() {
            eprintln!("{s}");
        }
    }

    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (db, statements, done) = (db.clone(), statements.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                for stmt in statements.iter() {
                    if db.query_all_raw(stmt.clone()).await.is_err() {
                        return;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / args.seconds as f64;
    println!(
        "{}",
        serde_json::json!({"statements": statements.len(), "iterationsPerSec": rate})
    );
    Ok(())
}
