//! Command line and environment configuration (clap); every flag is also a `LEADGRAPH_*` variable.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use entity::enums::Plan;

/// leadgraph: a self-hostable, multi-tenant lead-management API server (GraphQL first, REST compatible).
#[derive(Debug, Parser)]
#[command(name = "leadgraph", version, about, long_about = None)]
// `leadgraph --bind … serve` would drop the first flags: server flags go on one side only.
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The server's options, for `leadgraph` without a command (which serves).
    #[command(flatten)]
    pub config: Config,
}

impl Cli {
    /// The command to run and the configuration in force for it: a command's own
    /// `--database-url` and `--log` over the `LEADGRAPH_*` environment and the defaults.
    pub fn resolve(self) -> (Command, Config) {
        let mut config = self.config;
        let command = self.command.unwrap_or_else(|| {
            Command::Serve(ServeArgs {
                config: Box::new(config.clone()),
            })
        });
        match &command {
            Command::Serve(args) => config = (*args.config).clone(),
            other => {
                if let Some(store) = other.store() {
                    if let Some(url) = &store.database_url {
                        config.database_url = Some(url.clone());
                    }
                    match &store.log {
                        Some(log) => config.log = log.clone(),
                        // A command's output is what it prints: the server's start-up chatter
                        // (migrations) only when asked for.
                        None if std::env::var_os("LEADGRAPH_LOG").is_none()
                            && !matches!(other, Command::Migrate(_)) =>
                        {
                            config.log = "warn".into();
                        }
                        None => {}
                    }
                }
            }
        }
        (command, config)
    }
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GraphQL and REST API (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(Store),
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
    /// Print the REST API's OpenAPI 3.1 document and exit.
    Openapi,
    /// Create a tenant, its owner and a live full-scope API key; print the key once.
    Bootstrap(BootstrapArgs),
    /// List the tenants: slug, name, plan, users and API keys.
    Tenants(TenantsArgs),
    /// Change a tenant's plan (there is no API for it).
    SetPlan(SetPlanArgs),
    /// Manage users from the server's machine.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Create or revoke API keys from the server's machine.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Fill a new demo tenant with users, sources, pipelines and leads.
    SeedDemo(SeedArgs),
    /// Import leads from a CSV or NDJSON file into a tenant, showing progress.
    Import(ImportArgs),
    /// Copy a live SQLite database into a new file (PostgreSQL: use pg_dump).
    Backup(BackupArgs),
}

impl Command {
    /// The command's own database and log options.
    fn store(&self) -> Option<&Store> {
        match self {
            Command::Serve(_) | Command::Schema | Command::Openapi => None,
            Command::Migrate(s) => Some(s),
            Command::Backup(a) => Some(&a.store),
            Command::Bootstrap(a) => Some(&a.store),
            Command::SetPlan(a) => Some(&a.store),
            Command::SeedDemo(a) => Some(&a.store),
            Command::Import(a) => Some(&a.store),
            Command::Tenants(a) => Some(&a.store),
            Command::Users(UsersCommand::ResetPassword(a)) => Some(&a.store),
            Command::Keys(KeysCommand::Create(a)) => Some(&a.store),
            Command::Keys(KeysCommand::Revoke(a)) => Some(&a.store),
        }
    }
}

/// Arguments of `leadgraph serve`: every server option.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The server's options.
    #[command(flatten)]
    pub config: Box<Config>,
}

/// Where an operator command finds the data, and what it logs (also `LEADGRAPH_DATABASE_URL`
/// and `LEADGRAPH_LOG`, as for the server).
#[derive(Debug, Clone, Args)]
pub struct Store {
    /// Database URL: `sqlite://FILE` (default `sqlite://leadgraph.db`) or `postgres://…`.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Log filter in `tracing` syntax (default `warn`; `info` for `migrate`).
    #[arg(long)]
    pub log: Option<String>,
}

/// Arguments of `leadgraph tenants`.
#[derive(Debug, Args)]
pub struct TenantsArgs {
    /// Print one JSON object per tenant, one per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: Store,
}

/// `leadgraph users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Give a user a new password (printed once) and end their sessions.
    ResetPassword(ResetPasswordArgs),
}

/// Arguments of `leadgraph users reset-password`.
#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    /// The user's email address.
    #[arg(long)]
    pub email: String,
    /// The tenant (slug, name or ID), when the email belongs to users of several.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print `{"tenantSlug","userId","email","password"}` as one JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: Store,
}

/// `leadgraph keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a tenant, acting as its owner; print it once.
    Create(KeyCreateArgs),
    /// Revoke the API key with this prefix (as listed by the API: `lg_live_sk_…`).
    Revoke(KeyRevokeArgs),
}

/// Arguments of `leadgraph keys create`.
#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// The tenant: its slug, its name or its ID.
    #[arg(long)]
    pub tenant: String,
    /// What the key may do: `full` or `read`.
    #[arg(long, value_parser = ["full", "read"], default_value = "full")]
    pub scope: String,
    /// `live` or `sandbox`.
    #[arg(long, value_parser = ["live", "sandbox"], default_value = "live")]
    pub environment: String,
    /// The key's label.
    #[arg(long, default_value = "Created with leadgraph keys create")]
    pub label: String,
    /// Print `{"id","prefix","apiKey",…}` as one JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: Store,
}

/// Arguments of `leadgraph keys revoke`.
#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The key's prefix, or the whole key.
    #[arg(long)]
    pub prefix: String,
    #[command(flatten)]
    pub store: Store,
}

/// Arguments of `leadgraph backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file; it must not exist. Restore by serving it (`--database-url sqlite://FILE`).
    #[arg(long)]
    pub to: std::path::PathBuf,
    #[command(flatten)]
    pub store: Store,
}

/// Arguments of `leadgraph import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: CSV (a header row of REST field names) or NDJSON (`.ndjson`, `.jsonl`).
    pub file: std::path::PathBuf,
    /// The tenant's slug.
    #[arg(long)]
    pub tenant: String,
    /// live or sandbox.
    #[arg(long, default_value = "live")]
    pub environment: String,
    /// A row whose email a lead has: skip, update or create.
    #[arg(long, default_value = "skip")]
    pub on_duplicate: String,
    /// Count what would happen; write no lead.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the finished job as one JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: Store,
}

/// Arguments of `leadgraph bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The tenant's display name (its slug is derived from it).
    #[arg(long)]
    pub tenant: String,
    /// The owner's email address.
    #[arg(long)]
    pub email: String,
    /// The owner's password; generated and printed when omitted.
    #[arg(long)]
    pub password: Option<String>,
    /// The tenant's plan.
    #[arg(long, value_parser = parse_plan, default_value = "pro")]
    pub plan: Plan,
    /// Print `{"tenantId","userId","email","password","apiKey"}` as one JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: Store,
}

/// Arguments of `leadgraph seed-demo`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Leads to create.
    #[arg(long, default_value_t = 10_000)]
    pub leads: usize,
    /// The demo tenant's name.
    #[arg(long, default_value = "Demo")]
    pub tenant: String,
    /// The tenant's plan.
    #[arg(long, value_parser = parse_plan, default_value = "enterprise")]
    pub plan: Plan,
    /// Print `{"tenantId","email","password","apiKey","leads"}` as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Seed of the generated data: the same seed gives the same leads (random when omitted).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub store: Store,
}

/// Arguments of `leadgraph set-plan`.
#[derive(Debug, Args)]
pub struct SetPlanArgs {
    /// The tenant: its slug, its name or its ID.
    #[arg(long)]
    pub tenant: String,
    /// The new plan: free, starter, pro, team or enterprise.
    #[arg(long, value_parser = parse_plan)]
    pub plan: Plan,
    #[command(flatten)]
    pub store: Store,
}

fn parse_plan(s: &str) -> Result<Plan, String> {
    Plan::parse(&s.to_ascii_lowercase())
        .ok_or_else(|| "expected free, starter, pro, team or enterprise".to_owned())
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// SQLite's `synchronous` setting (see docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    /// fsync the WAL on every commit: an acknowledged write survives power loss.
    Full,
    /// fsync at checkpoints only: survives a process crash, may lose the last commits on power loss.
    Normal,
}

/// The server's options (`leadgraph serve --help`).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database URL: `sqlite://FILE` (default `sqlite://leadgraph.db`) or `postgres://…`.
    /// Also read from `DATABASE_URL`.
    #[arg(long, env = "LEADGRAPH_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Maximum database connections in the pool (default: 4 per CPU core, at least 8).
    #[arg(long, env = "LEADGRAPH_DB_POOL_SIZE")]
    pub db_pool_size: Option<u32>,

    /// How long a request waits for a pooled database connection before failing with 503.
    #[arg(long, env = "LEADGRAPH_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    pub db_acquire_timeout_ms: u64,

    /// SQLite durability: `full` (default) or `normal`.
    #[arg(long, env = "LEADGRAPH_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSync::Full)]
    pub sqlite_synchronous: SqliteSync,

    /// Address to listen on.
    #[arg(long, env = "LEADGRAPH_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Log format: `text` or `json`.
    #[arg(long, env = "LEADGRAPH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info,leadgraph=debug`.
    #[arg(long, env = "LEADGRAPH_LOG", default_value = "info")]
    pub log: String,

    /// HS256 signing key for access tokens (at least 32 bytes); generated once and stored
    /// in the database when unset.
    #[arg(long, env = "LEADGRAPH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Alphabet for opaque IDs (a permutation of `[a-zA-Z0-9]`); generated once and stored in
    /// the database when unset. Changing it changes every ID clients hold.
    #[arg(long, env = "LEADGRAPH_ID_ALPHABET", hide_env_values = true)]
    pub id_alphabet: Option<String>,

    /// Email of the owner created on first start (default `admin@leadgraph.local`).
    #[arg(long, env = "LEADGRAPH_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of the owner created on first start (generated and printed when unset).
    #[arg(long, env = "LEADGRAPH_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Skip creating a tenant on first start.
    #[arg(long, env = "LEADGRAPH_NO_BOOTSTRAP")]
    pub no_bootstrap: bool,

    /// Seconds an API key look-up may be served from this process's cache; the bound on how
    /// long a key revoked through another process keeps working here.
    #[arg(long, env = "LEADGRAPH_KEY_CACHE_TTL_SECS", default_value_t = 5)]
    pub key_cache_ttl_secs: u64,

    /// Days the change feed keeps events; a cursor older than that is `410 CURSOR_EXPIRED`.
    #[arg(
        long,
        env = "LEADGRAPH_EVENT_RETENTION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub event_retention_days: u32,

    /// Let webhooks reach loopback, private and link-local addresses (refused by default:
    /// a tenant must not make the server call into its own network).
    #[arg(long, env = "LEADGRAPH_WEBHOOK_ALLOW_PRIVATE_TARGETS")]
    pub webhook_allow_private_targets: bool,

    /// Multiplies the webhook retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h);
    /// tests shrink it.
    #[arg(long, env = "LEADGRAPH_WEBHOOK_RETRY_SCALE", default_value_t = 1.0)]
    pub webhook_retry_scale: f64,

    /// How long a webhook endpoint has to answer, in milliseconds.
    #[arg(long, env = "LEADGRAPH_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,

    /// An endpoint whose every attempt failed for this long is disabled (default 5 days).
    #[arg(
        long,
        env = "LEADGRAPH_WEBHOOK_DISABLE_AFTER_SECS",
        default_value_t = 5 * 24 * 3600)]
    pub webhook_disable_after_secs: u64,

    /// Webhook delivery workers this instance runs (each sends up to 32 at once); 0 for an
    /// instance that serves the API only while others deliver.
    #[arg(long, env = "LEADGRAPH_WEBHOOK_WORKERS", default_value_t = 1)]
    pub webhook_workers: usize,

    /// Redis for rate limits shared by every instance (`redis://host:6379/0`); without it
    /// each instance counts on its own.
    #[arg(long, env = "LEADGRAPH_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of the rate-limit keys in Redis (to share one Redis between deployments).
    #[arg(long, env = "LEADGRAPH_REDIS_PREFIX", default_value = "leadgraph:rl:")]
    pub redis_prefix: String,

    /// Milliseconds Redis has to answer a limit check before the local limiter answers.
    #[arg(long, env = "LEADGRAPH_REDIS_TIMEOUT_MS", default_value_t = 50)]
    pub redis_timeout_ms: u64,

    /// Import workers this instance runs (each processes one job at a time); 0 for an instance
    /// that receives imports only while others process them.
    #[arg(long, env = "LEADGRAPH_IMPORT_WORKERS", default_value_t = 1)]
    pub import_workers: usize,

    /// Largest accepted import file, in bytes (413 beyond it); files are streamed to the
    /// database, never held whole in memory.
    #[arg(
        long,
        env = "LEADGRAPH_MAX_IMPORT_BYTES",
        default_value_t = 100 * 1024 * 1024)]
    pub max_import_bytes: usize,

    /// How often the webhook worker looks for due deliveries it was not told of (retries,
    /// other instances' events), in milliseconds.
    #[arg(long, env = "LEADGRAPH_WEBHOOK_POLL_MS", default_value_t = 1000)]
    pub webhook_poll_ms: u64,

    /// How often accumulated `lastUsedAt`/`usageCount` updates are written to the database.
    #[arg(long, env = "LEADGRAPH_USAGE_FLUSH_SECS", default_value_t = 5)]
    pub usage_flush_secs: u64,

    /// How long a rotated refresh token may still be presented by a concurrent refresh (two
    /// open tabs) and get a token of the same session, instead of revoking the session as reuse.
    #[arg(
        long,
        env = "LEADGRAPH_REFRESH_REUSE_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub refresh_reuse_interval_ms: u64,

    /// Largest accepted request body, in bytes (413 beyond it).
    #[arg(long, env = "LEADGRAPH_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Milliseconds after which a request is abandoned with 503.
    #[arg(long, env = "LEADGRAPH_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Milliseconds a client has to send a request's headers, on a new connection and between
    /// requests on a kept-alive one; then the connection is closed.
    #[arg(
        long,
        env = "LEADGRAPH_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,

    /// The most bytes of a request's line and headers (8 KiB at least); longer is `431`.
    #[arg(
        long,
        env = "LEADGRAPH_MAX_HEADER_BYTES",
        default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Requests served at once; further requests are refused with 503 at once.
    #[arg(
        long,
        env = "LEADGRAPH_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1024
    )]
    pub max_concurrent_requests: usize,

    /// Serve GraphQL introspection (`--graphql-introspection=false` in production also turns
    /// off field suggestions).
    #[arg(long, env = "LEADGRAPH_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,

    /// Deepest GraphQL selection accepted.
    #[arg(long, env = "LEADGRAPH_GRAPHQL_MAX_DEPTH", default_value_t = 10)]
    pub graphql_max_depth: usize,

    /// Largest GraphQL complexity accepted (list fields cost their page size times their children).
    #[arg(long, env = "LEADGRAPH_GRAPHQL_MAX_COMPLEXITY", default_value_t = 1000)]
    pub graphql_max_complexity: usize,

    /// Most aliases accepted in one GraphQL document.
    #[arg(long, env = "LEADGRAPH_GRAPHQL_MAX_ALIASES", default_value_t = 30)]
    pub graphql_max_aliases: usize,

    /// Most root fields accepted in one GraphQL operation.
    #[arg(long, env = "LEADGRAPH_GRAPHQL_MAX_ROOT_FIELDS", default_value_t = 20)]
    pub graphql_max_root_fields: usize,

    /// Most fields in one GraphQL operation once its fragments are expanded.
    #[arg(long, env = "LEADGRAPH_GRAPHQL_MAX_SELECTIONS", default_value_t = 2000)]
    pub graphql_max_selections: usize,

    /// Most operations accepted in one batched (JSON array) GraphQL request.
    #[arg(long, env = "LEADGRAPH_GRAPHQL_MAX_BATCH", default_value_t = 10)]
    pub graphql_max_batch: usize,

    /// Requests per minute per client IP (0 disables).
    #[arg(long, env = "LEADGRAPH_RATE_LIMIT_PER_IP", default_value_t = 100)]
    pub rate_limit_per_ip: u32,

    /// Apply the per-tenant limits by plan (docs/limits.md; `--tenant-rate-limits=false` turns them off).
    #[arg(long, env = "LEADGRAPH_TENANT_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set)]
    pub tenant_rate_limits: bool,

    /// Requests per minute for enterprise tenants.
    #[arg(long, env = "LEADGRAPH_ENTERPRISE_RATE_LIMIT", default_value_t = 20000)]
    pub enterprise_rate_limit: u32,

    /// Burst for enterprise tenants.
    #[arg(long, env = "LEADGRAPH_ENTERPRISE_BURST", default_value_t = 2000)]
    pub enterprise_burst: u32,

    /// Proxies whose `X-Forwarded-For` is trusted (comma-separated IPs).
    #[arg(long, env = "LEADGRAPH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,

    /// Compress responses with gzip for clients that accept it (off by default: on loopback or
    /// behind a proxy that compresses, it only costs CPU).
    #[arg(long, env = "LEADGRAPH_COMPRESSION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub compression: bool,

    /// Serve `GET /metrics` on this address only, instead of on the public address.
    #[arg(long, env = "LEADGRAPH_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Load GraphiQL's scripts from unpkg.com instead of this server (which embeds them, so
    /// the playground also works offline).
    #[arg(long, env = "LEADGRAPH_GRAPHIQL_CDN")]
    pub graphiql_cdn: bool,
}

impl Config {
    /// The database URL in force: the flag, then `DATABASE_URL`, then the SQLite default.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "sqlite://leadgraph.db".to_owned())
    }

    /// Database pool size in force.
    pub fn pool_size(&self) -> u32 {
        self.db_pool_size.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
            (cores * 4).max(8)
        })
    }

    /// The connection limits in force.
    pub fn transport(&self) -> crate::transport::Limits {
        crate::transport::Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            max_header_bytes: self.max_header_bytes,
            shutdown_grace: self.request_timeout(),
        }
    }

    /// Request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Defaults as the `serve` command would have them with no flags and no environment,
    /// for tests and embedding: no `LEADGRAPH_*` variable of the calling shell is read.
    pub fn defaults() -> Self {
        use clap::FromArgMatches;
        let matches = defaults_command().get_matches_from(["leadgraph"]);
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => cli.config,
            // Every flag has a default: only a broken declaration could get here.
            Err(e) => e.exit(),
        }
    }
}

/// The command line without its environment variables.
fn defaults_command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_args(|a| a.env(None::<&'static str>))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read_no_environment() {
        let cmd = defaults_command();
        assert!(cmd.get_arguments().all(|a| a.get_env().is_none()));
        // The real command does read them.
        use clap::CommandFactory;
        assert!(
            Cli::command()
                .get_arguments()
                .any(|a| a.get_env().is_some())
        );
        assert_eq!(Config::defaults().log, "info");
    }
}
