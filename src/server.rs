//! Process start-up: logging, commands, serving with graceful shutdown and usage flushing.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::error::AppError;
use crate::service::tenant;
use crate::web::AppState;
use crate::{db, transport};

/// Installs the global tracing subscriber (text or JSON lines).
pub fn init_tracing(config: &Config) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: not in files, pipes or log collectors,
    // and never when NO_COLOR is set (no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// An error as a command prints it.
pub(crate) fn describe(e: AppError) -> Box<dyn std::error::Error> {
    match e {
        AppError::Validation(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ")
            .into(),
        other => other.message().into(),
    }
}

/// Connects, migrates and builds the state.
pub async fn open(config: Config) -> Result<AppState, Box<dyn std::error::Error>> {
    let db = db::connect(&config).await?;
    db::migrate(&db).await?;
    AppState::build(config, db).await.map_err(describe)
}

/// `leadgraph serve`: runs until SIGINT or SIGTERM, then stops cleanly.
pub async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let admin_email = config.admin_email.clone();
    let admin_password = config.admin_password.clone();
    let no_bootstrap = config.no_bootstrap;
    let bind = config.bind;
    let metrics_bind = config.metrics_bind;
    let limits = config.transport();
    let state = open(config).await?;
    // Listen first, so the address printed below already answers.
    let listener = TcpListener::bind(bind).await?;
    tracing::info!(address = %listener.local_addr()?, "leadgraph listening");
    if !no_bootstrap
        && let Some(b) = tenant::bootstrap_if_empty(&state, admin_email, admin_password)
            .await
            .map_err(describe)?
    {
        print_welcome(&b, bind);
    }
    let flusher = tokio::spawn(flush_usage(state.clone()));
    // Webhook deliveries and imports: stopped at shutdown between batches; a delivery in flight is sent
    // again by the next start (its lease runs out), so none is lost.
    let stop_deliveries = tokio_util::sync::CancellationToken::new();
    let deliveries: Vec<_> = (0..state.config.webhook_workers)
        .map(|_| {
            tokio::spawn(crate::service::delivery::run(
                state.app.clone(),
                stop_deliveries.clone(),
            ))
        })
        .collect();
    let imports: Vec<_> = (0..state.config.import_workers)
        .map(|_| {
            tokio::spawn(crate::service::import::run(
                state.app.clone(),
                stop_deliveries.clone(),
            ))
        })
        .collect();
    let metrics_server = match metrics_bind {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(address = %listener.local_addr()?, "metrics listening");
            let router = crate::router::metrics_router(state.clone());
            Some(tokio::spawn(transport::serve(
                listener,
                router,
                limits,
                std::future::pending(),
            )))
        }
        None => None,
    };
    transport::serve(
        listener,
        crate::router::build_router(state.clone()),
        limits,
        shutdown_signal(),
    )
    .await;
    flusher.abort();
    stop_deliveries.cancel();
    // Imports stop between chunks; the next start resumes after the last committed one.
    let _ = tokio::time::timeout(
        Duration::from_secs(15),
        futures::future::join(
            futures::future::join_all(deliveries),
            futures::future::join_all(imports),
        ),
    )
    .await;
    if let Some(m) = metrics_server {
        m.abort();
    }
    state.tasks.close();
    state.tasks.wait().await;
    if let Err(e) = state.usage.flush(&state.db).await {
        tracing::error!(error = %e, "could not write key usage at shutdown");
    }
    if let Err(e) = db::close(&state.db).await {
        tracing::error!(error = %e, "could not checkpoint and close the database");
    }
    tracing::info!("leadgraph stopped");
    Ok(())
}

fn print_welcome(b: &tenant::Bootstrapped, bind: SocketAddr) {
    use std::io::Write;
    // A closed stdout (a supervisor that stopped reading) must not take the server down.
    let _ = writeln!(
        std::io::stdout(),
        "\nFirst start: created tenant \"Default\" and its owner. These are shown once.\n\
         \n  owner email:    {email}\n  owner password: {password}\n  API key:        {key}\n\
         \nTry it:\n  curl -s http://{bind}/graphql -H 'X-API-Key: {key}' -H 'Content-Type: application/json' \\\n       -d '{{\"query\":\"{{ me {{ id role environment tenant {{ name }} }} }}\"}}'\n\
         \nOr open http://{bind}/graphql in a browser (GraphiQL) and send the header {{\"X-API-Key\": \"{key}\"}}.\n",
        email = b.email,
        password = b.password,
        key = b.api_key,
    );
}

/// How often events past their retention and expired idempotency keys are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Periodic housekeeping: writes key usage, trims rate-limit state, prunes the change feed
/// and expired idempotency keys.
async fn flush_usage(state: AppState) {
    let mut every =
        tokio::time::interval(Duration::from_secs(state.config.usage_flush_secs.max(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        every.tick().await;
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(tokio::time::Instant::now());
            let days = state.config.event_retention_days;
            match crate::service::event::prune(&state.db, days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned events past their retention"),
                Err(e) => tracing::warn!(error = %e, "could not prune events; will retry"),
            }
            match crate::service::idempotency::prune(&state.db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned expired idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "could not prune idempotency keys"),
            }
        }
        if let Err(e) = state.usage.flush(&state.db).await {
            tracing::warn!(error = %e, "could not write key usage; will retry");
        }
        // Forget rate-limit state of callers whose budget is full again: memory stays flat.
        state.limits.retain_recent();
        state.metrics.upkeep();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
