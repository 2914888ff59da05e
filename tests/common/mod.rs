//! Test harness: the real router on a fresh database (SQLite always, PostgreSQL when
//! `LEADGRAPH_TEST_POSTGRES_URL` is set), with helpers for tenants, users, sessions, keys
//! and requests.
#![allow(dead_code)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use entity::enums::{Plan, Role};
use http_body_util::BodyExt;
use leadgraph::config::Config;
use leadgraph::router::build_router;
use leadgraph::service;
use leadgraph::web::AppState;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Runs each named `async fn(TestApp)` on SQLite and, when configured, on PostgreSQL.
macro_rules! db_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestApp::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(leadgraph_no_postgres, ignore = "needs LEADGRAPH_TEST_POSTGRES_URL")]
            async fn postgres() {
                super::$name($crate::common::TestApp::postgres_required().await).await
            }
        }
    )+};
}

/// Tests of what only PostgreSQL does (several instances on one database): no SQLite twin.
#[allow(unused_macros)]
macro_rules! pg_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(leadgraph_no_postgres, ignore = "needs LEADGRAPH_TEST_POSTGRES_URL")]
            async fn postgres() {
                super::$name($crate::common::TestApp::postgres_required().await).await
            }
        }
    )+};
}

/// Which database a test runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

/// Deletes the test database when the test ends.
struct Cleanup(Backend);

impl Drop for Cleanup {
    fn drop(&mut self) {
        match &self.0 {
            Backend::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Backend::Postgres { admin_url, name } => {
                let (url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime: use a thread with its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let admin = Database::connect(&url).await.ok()?;
                        admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await
                            .ok()
                    })
                })
                .join();
            }
        }
    }
}

/// A running app on its own database.
pub struct TestApp {
    pub state: AppState,
    /// SQL statements executed through the app's pool so far.
    pub statements: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub router: Router,
    pub backend: Backend,
    _cleanup: Cleanup,
}

/// A tenant made by [`TestApp::tenant`]: its owner (with a session) and a live full key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub slug: String,
    pub owner: TestUser,
    pub key: String,
}

/// A user with a password and a session token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Key(&'a str),
    Bearer(&'a str),
}

/// A response: status, headers and JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// `extensions.code` of the first GraphQL error.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// `data` of a GraphQL response, asserting there were no errors.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {}",
            self.body
        );
        &self.body["data"]
    }
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn sqlite_with(f: impl FnOnce(&mut Config)) -> Self {
        let dir = std::env::temp_dir().join(format!("leadgraph-test-{}", unique()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("test.db").display());
        Self::start(url, Backend::Sqlite(dir), f).await
    }

    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(|_| {}).await
    }

    /// A PostgreSQL app for a test built with `LEADGRAPH_TEST_POSTGRES_URL`: without it at run
    /// time the test fails rather than pass having tested nothing.
    pub async fn postgres_required() -> Self {
        Self::postgres()
            .await
            .expect("LEADGRAPH_TEST_POSTGRES_URL is not set (the test was built with it)")
    }

    pub async fn postgres_with(f: impl FnOnce(&mut Config)) -> Option<Self> {
        let admin_url = std::env::var("LEADGRAPH_TEST_POSTGRES_URL")
            .ok()
            .filter(|s| !s.is_empty())?;
        Some(Self::postgres_at(admin_url, f).await)
    }

    /// An app on a fresh database of the PostgreSQL server at `admin_url`.
    pub async fn postgres_at(admin_url: String, f: impl FnOnce(&mut Config)) -> Self {
        let name = format!("lg_test_{}", unique());
        let admin = Database::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL server");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self::start(url, Backend::Postgres { admin_url, name }, f).await
    }

    /// The same test on the other backend's fresh database, for tests that need two apps.
    pub async fn sibling(&self, f: impl FnOnce(&mut Config)) -> Self {
        match &self.backend {
            Backend::Sqlite(_) => Self::sqlite_with(f).await,
            Backend::Postgres { .. } => Self::postgres_with(f).await.expect("postgres configured"),
        }
    }

    async fn start(url: String, backend: Backend, f: impl FnOnce(&mut Config)) -> Self {
        let cleanup = Cleanup(backend.clone());
        let mut config = Config::defaults();
        config.database_url = Some(url);
        config.db_pool_size = Some(5);
        config.log = "warn".into();
        // Rate limits are tested on purpose (tests/limits.rs); elsewhere they would get in the way.
        config.rate_limit_per_ip = 0;
        config.tenant_rate_limits = false;
        // Reuse detection is tested as if every reuse came late; the interval is tested on purpose.
        config.refresh_reuse_interval_ms = 0;
        f(&mut config);
        let mut db = leadgraph::db::connect(&config)
            .await
            .expect("connect test database");
        leadgraph::db::migrate(&db)
            .await
            .expect("migrate test database");
        let statements = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = statements.clone();
        let trace = std::env::var("LEADGRAPH_TEST_TRACE_SQL").is_ok();
        db.set_metric_callback(move |info| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if trace {
                eprintln!(
                    "SQL: {}",
                    info.statement.sql.chars().take(160).collect::<String>()
                );
            }
        });
        let state = AppState::build(config, db).await.expect("build app state");
        let router = build_router(state.clone());
        TestApp {
            state,
            router,
            statements,
            backend,
            _cleanup: cleanup,
        }
    }

    /// Waits for background work (duplicate detection) so it cannot run during a measurement.
    pub async fn settle(&self) {
        self.state.tasks.close();
        self.state.tasks.wait().await;
        self.state.tasks.reopen();
    }

    /// Statements executed so far.
    pub fn statement_count(&self) -> usize {
        self.statements.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    /// Ends every server session of this PostgreSQL test database, as a server restart would
    /// (the pool is not told); returns how many there were.
    pub async fn terminate_postgres_connections(&self) -> i64 {
        self.count_sessions("count(pg_terminate_backend(pid))", "true")
            .await
            .expect("a PostgreSQL test app")
    }

    /// Server sessions of this PostgreSQL test database left inside a transaction with no
    /// statement running ("idle in transaction"); always 0 on SQLite.
    pub async fn idle_in_transaction(&self) -> i64 {
        self.count_sessions("count(*)", "state LIKE 'idle in transaction%'")
            .await
            .unwrap_or(0)
    }

    /// `aggregate` over this PostgreSQL test database's server sessions that match `condition`
    /// (from `pg_stat_activity`, through an admin connection); `None` on SQLite.
    async fn count_sessions(&self, aggregate: &str, condition: &str) -> Option<i64> {
        let Backend::Postgres { admin_url, name } = &self.backend else {
            return None;
        };
        let admin = Database::connect(admin_url.as_str())
            .await
            .expect("connect to the PostgreSQL server");
        let row = admin
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT {aggregate} AS n FROM pg_stat_activity WHERE datname = $1 AND {condition}"
                ),
                [name.clone().into()],
            ))
            .await
            .expect("pg_stat_activity")
            .expect("a row");
        admin.close().await.ok();
        Some(row.try_get::<i64>("", "n").expect("count"))
    }

    /// A connection of the test's own to its database, outside the app's pool.
    pub async fn outside_connection(&self) -> DatabaseConnection {
        Database::connect(self.state.config.database_url())
            .await
            .expect("connect to the test database")
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// Creates a tenant with an owner (logged in) and a live full-scope key.
    pub async fn tenant(&self, name: &str, plan: Plan) -> TestTenant {
        let email = format!("owner-{}@example.com", unique());
        let b = service::tenant::bootstrap(
            &self.state,
            name,
            &email,
            Some("owner-password".into()),
            plan,
        )
        .await
        .expect("bootstrap tenant");
        let owner = self.login(&b.email, &b.password).await;
        TestTenant {
            id: b.tenant_id,
            slug: b.tenant_slug,
            owner,
            key: b.api_key,
        }
    }

    /// Creates a user of `tenant` with `role` through `createUser` and logs it in.
    pub async fn user(&self, tenant: &TestTenant, role: Role) -> TestUser {
        let email = format!("user-{}@example.com", unique());
        let role = role.as_str().to_uppercase();
        let r = self
            .gql(
                Auth::Bearer(&tenant.owner.token),
                &format!(
                    r#"mutation {{ createUser(input: {{email: "{email}", name: "Test User", role: {role}, password: "user-password"}}) {{ id }} }}"#
                ),
                json!({}),
            )
            .await;
        r.data();
        self.login(&email, "user-password").await
    }

    /// Logs a user in through GraphQL.
    pub async fn login(&self, email: &str, password: &str) -> TestUser {
        let r = self
            .gql(
                Auth::None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token refreshToken user { id } } }",
                json!({"e": email, "p": password}),
            )
            .await;
        let s = &r.data()["login"];
        TestUser {
            id: s["user"]["id"].as_str().expect("user id").to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            token: s["token"].as_str().expect("token").to_owned(),
            refresh_token: s["refreshToken"]
                .as_str()
                .expect("refresh token")
                .to_owned(),
        }
    }

    /// Creates an API key through a session; returns `(id, key)`.
    pub async fn key(&self, token: &str, scope: &str, environment: &str) -> (String, String) {
        let r = self
            .gql(
                Auth::Bearer(token),
                &format!(
                    r#"mutation {{ createApiKey(input: {{label: "test", scope: {scope}, environment: {environment}}}) {{ key apiKey {{ id }} }} }}"#
                ),
                json!({}),
            )
            .await;
        let d = &r.data()["createApiKey"];
        (
            d["apiKey"]["id"].as_str().expect("id").to_owned(),
            d["key"].as_str().expect("key").to_owned(),
        )
    }

    /// Sends a GraphQL request.
    pub async fn gql(&self, auth: Auth<'_>, query: &str, variables: Value) -> Resp {
        self.gql_with(auth, query, variables, &[]).await
    }

    /// Sends a GraphQL request with extra headers.
    pub async fn gql_with(
        &self,
        auth: Auth<'_>,
        query: &str,
        variables: Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        let body = json!({"query": query, "variables": variables});
        self.post_graphql(auth, &body, headers).await
    }

    /// POSTs any JSON body to `/graphql` with extra headers.
    pub async fn post_graphql(
        &self,
        auth: Auth<'_>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut all: Vec<(&str, String)> =
            headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        all.push(("content-type", "application/json".into()));
        match auth {
            Auth::None => {}
            Auth::Key(k) => all.push(("x-api-key", k.to_owned())),
            Auth::Bearer(t) => all.push(("authorization", format!("Bearer {t}"))),
        }
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.request(
            Method::POST,
            "/graphql",
            &refs,
            Body::from(body.to_string()),
        )
        .await
    }

    /// Sends any request through the router, from 127.0.0.1.
    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Resp {
        self.request_from(
            "127.0.0.1:40000".parse().expect("addr"),
            method,
            uri,
            headers,
            body,
        )
        .await
    }

    /// `GET uri` with `key` as the API key, from 127.0.0.1.
    pub async fn get(&self, uri: &str, key: &str) -> Resp {
        self.request(Method::GET, uri, &[("x-api-key", key)], Body::empty())
            .await
    }

    /// `GET /v1/leads` with `key` as the API key, from 127.0.0.1.
    pub async fn list_leads(&self, key: &str) -> Resp {
        self.request(
            Method::GET,
            "/v1/leads",
            &[("x-api-key", key)],
            Body::empty(),
        )
        .await
    }

    /// Sends any request through the router from a given client address.
    pub async fn request_from(
        &self,
        peer: SocketAddr,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(body).expect("request");
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// Rows in a table.
    pub async fn count(&self, table: &str) -> i64 {
        let row = self
            .db()
            .query_one_raw(sea_orm::Statement::from_string(
                self.db().get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count query")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("count")
    }
}

/// The status of a request sent from 127.0.0.1 through the router of `state`: another
/// instance (a second server state on the same database) than the test's own app.
pub async fn status_via(
    state: &AppState,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> StatusCode {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body).expect("request");
    req.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40001".parse::<SocketAddr>().expect("addr"),
    ));
    build_router(state.clone())
        .oneshot(req)
        .await
        .expect("router is infallible")
        .status()
}

/// `GET uri` with `key` as the API key through the router of `state` (see [`status_via`]).
pub async fn get_via(state: &AppState, uri: &str, key: &str) -> StatusCode {
    status_via(
        state,
        Method::GET,
        uri,
        &[("x-api-key", key)],
        Body::empty(),
    )
    .await
}

/// Every table's row count, to prove a refusal wrote nothing.
pub async fn snapshot(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for t in [
        "tenants",
        "users",
        "refresh_tokens",
        "api_keys",
        "sources",
        "pipelines",
        "stages",
        "leads",
        "lead_tags",
        "audit_log",
        "events",
    ] {
        out.push((t, app.count(t).await));
    }
    out
}
