//! Attack cases (OWASP API Top 10 as they apply) and concurrency guarantees.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{Auth, TestApp, snapshot};
use entity::enums::Plan;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

db_tests!(
    injection_strings_are_stored_and_returned_verbatim,
    nul_bytes_bad_encodings_and_huge_inputs_are_refused,
    mass_assignment_is_refused,
    concurrent_updates_of_one_lead_are_serializable,
    concurrent_refreshes_keep_the_session,
    no_request_passes_after_a_revocation_returns,
    concurrent_tag_additions_lose_nothing,
    an_assignment_racing_an_update_is_kept,
    owners_demoting_each_other_leave_an_owner,
    a_key_deleted_twice_at_once_is_deleted_once,
    requests_dropped_mid_transaction_leave_no_transaction_open,
    responses_carry_security_headers_and_bounded_request_ids,
    custom_field_values_are_bounded,
);

const CREATE: &str = "mutation($i: CreateLeadInput!) { createLead(input: $i) { id firstName lastName customFields tags } }";

async fn injection_strings_are_stored_and_returned_verbatim(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let evil = json!({
        "email": "bobby@example.com",
        "firstName": "Robert'); DROP TABLE leads;--",
        "lastName": "<script>alert(1)</script>",
        "customFields": {"q": "' OR 1=1 --", "html": "<img src=x onerror=alert(1)>", "\"; DROP": "x"},
        "tags": ["'; DELETE FROM lead_tags; --", "%_\\"]
    });
    let r = app.gql(Auth::Key(&t.key), CREATE, json!({"i": evil})).await;
    let l = r.data()["createLead"].clone();
    assert_eq!(l["firstName"], evil["firstName"]);
    assert_eq!(l["lastName"], evil["lastName"]);
    assert_eq!(l["customFields"], evil["customFields"]);
    let mut tags: Vec<Value> = evil["tags"].as_array().expect("tags").clone();
    tags.sort_by_key(|v| v.as_str().unwrap_or("").to_owned());
    assert_eq!(l["tags"], json!(tags));
    let other = app
        .gql(
            Auth::Key(&t.key),
            CREATE,
            json!({"i": {"email": "plain@example.com", "firstName": "Plain", "lastName": "Lead"}}),
        )
        .await;
    other.data();
    // Injection in filters is just text.
    for (filter, want) in [
        (json!({"search": "' OR 1=1 --"}), 0),
        (json!({"search": "DROP"}), 1),
        (json!({"tag": "'; DELETE FROM lead_tags; --"}), 1),
        (json!({"tag": "%_\\"}), 1),
        (json!({"search": "%"}), 0),
        (json!({"search": "_"}), 0),
    ] {
        let r = app
            .gql(
                Auth::Key(&t.key),
                "query($f: LeadFilter) { leads(filter: $f) { totalCount } }",
                json!({"f": filter}),
            )
            .await;
        assert_eq!(r.data()["leads"]["totalCount"], want, "{filter}");
    }
    let r = app
        .request(
            Method::GET,
            "/v1/leads?q=%27%20OR%201%3D1%20--&tag=x%27%3B--",
            &[("x-api-key", &t.key)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.count("leads").await, 2);
    assert_eq!(app.count("lead_tags").await, 2);
}

async fn nul_bytes_bad_encodings_and_huge_inputs_are_refused(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    let fields_of = |r: &common::Resp| -> Vec<String> {
        r.body["errors"][0]["extensions"]["fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["field"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let r = app
        .gql(Auth::Key(&t.key), CREATE, json!({"i": {"email": "a\u{0}b@example.com", "firstName": "A\u{0}", "lastName": "x".repeat(100_000), "customFields": {"k": "v\u{0}", "k\u{0}": 1}, "tags": ["t\u{0}"]}}))
        .await;
    assert_eq!(r.code(), Some("VALIDATION_FAILED"));
    let mut f = fields_of(&r);
    f.sort();
    assert_eq!(
        f,
        [
            "customFields",
            "customFields.k",
            "email",
            "firstName",
            "lastName",
            "tags"
        ]
    );
    // Filters and logins with NUL match nothing instead of failing.
    let r = app
        .gql(
            Auth::Key(&t.key),
            "query($f: LeadFilter) { leads(filter: $f) { totalCount } }",
            json!({"f": {"search": "a\u{0}", "tag": "b\u{0}"}}),
        )
        .await;
    assert_eq!(r.data()["leads"]["totalCount"], 0);
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "query($a: String) { auditLog(filter: {action: $a}) { edges { cursor } } }",
            json!({"a": "x\u{0}"}),
        )
        .await;
    assert_eq!(r.data()["auditLog"]["edges"], json!([]));
    let r = app
        .gql(
            Auth::None,
            "mutation($e: String!) { login(email: $e, password: \"p\") { token } }",
            json!({"e": "a\u{0}@example.com"}),
        )
        .await;
    assert_eq!(r.code(), Some("INVALID_CREDENTIALS"));
    let r = app
        .request(
            Method::GET,
            "/v1/leads?q=%00&tag=%00",
            &[("x-api-key", &t.key)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Invalid UTF-8 and deeply nested JSON are malformed requests.
    let json_ct = [
        ("x-api-key", t.key.as_str()),
        ("content-type", "application/json"),
    ];
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &json_ct,
            Body::from(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let deep = format!(
        "{{\"customFields\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &json_ct,
            Body::from(deep.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .request(
            Method::POST,
            "/graphql",
            &json_ct,
            Body::from(format!(
                "{{\"query\": \"{{ __typename }}\", \"variables\": {}}}",
                &deep[16..deep.len() - 1]
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(snapshot(&app).await, before, "nothing was written");
}

async fn mass_assignment_is_refused(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.tenant("Globex", Plan::Pro).await;
    let before = snapshot(&app).await;
    let body = json!({"email": "a@b.co", "firstName": "A", "lastName": "B", "id": "x", "tenantId": other.id,
                      "createdAt": "2000-01-01T00:00:00Z", "duplicateOf": "y", "environment": "sandbox"});
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &[("x-api-key", &t.key), ("content-type", "application/json")],
            Body::from(body.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut f: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    f.sort_unstable();
    assert_eq!(
        f,
        ["createdAt", "duplicateOf", "environment", "id", "tenantId"]
    );
    let (key_id, _) = app.key(&t.owner.token, "READ", "LIVE").await;
    let before_key = snapshot(&app).await;
    let r = app
        .request(
            Method::PATCH,
            &format!("/v1/api-keys/{key_id}"),
            &[
                ("authorization", &format!("Bearer {}", t.owner.token)),
                ("content-type", "application/json"),
            ],
            Body::from(
                json!({"usageCount": 0, "scope": "full", "environment": "sandbox"}).to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // GraphQL inputs have no such fields at all.
    let r = app.gql(Auth::Key(&t.key), CREATE, json!({"i": {"email": "a@b.co", "firstName": "A", "lastName": "B", "tenantId": other.id}})).await;
    assert!(r.body["errors"].is_array());
    assert_eq!(snapshot(&app).await, before_key);
    assert_eq!(
        before.iter().find(|(t, _)| *t == "leads"),
        before_key.iter().find(|(t, _)| *t == "leads")
    );
}

async fn concurrent_updates_of_one_lead_are_serializable(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            CREATE,
            json!({"i": {"email": "c@example.com", "firstName": "C", "lastName": "D"}}),
        )
        .await;
    let id = r.data()["createLead"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for i in 1..=16i64 {
        let (app, key, id) = (app.clone(), t.key.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let r = app
                .gql(Auth::Key(&key), "mutation($id: ID!, $s: Int!, $n: String!) { updateLead(id: $id, input: {score: $s, firstName: $n}) { score } }", json!({"id": id, "s": i, "n": format!("W{i}")}))
                .await;
            (i, r.status, r.body.get("errors").is_none())
        }));
    }
    let mut ok = Vec::new();
    for task in tasks {
        let (i, status, success) = task.await.expect("task");
        assert!(status == StatusCode::OK, "write {i}: {status}");
        if success {
            ok.push(i);
        }
    }
    assert_eq!(ok.len(), 16, "every write succeeds, one after the other");
    let r = app
        .gql(
            Auth::Key(&t.key),
            "query($id: ID!) { lead(id: $id) { score firstName } }",
            json!({"id": id}),
        )
        .await;
    let score = r.data()["lead"]["score"].as_i64().expect("score");
    assert!(ok.contains(&score));
    assert_eq!(
        r.data()["lead"]["firstName"],
        json!(format!("W{score}")),
        "the state equals one whole write"
    );
    let r = app.gql(Auth::Bearer(&t.owner.token), "query($id: ID!) { auditLog(first: 100, filter: {resourceId: $id, action: \"lead.update\"}) { edges { node { changes } } } }", json!({"id": id})).await;
    assert_eq!(
        r.data()["auditLog"]["edges"].as_array().map(Vec::len),
        Some(ok.len()),
        "one audit entry per successful write"
    );
}

async fn concurrent_refreshes_keep_the_session(app: TestApp) {
    // Two open tabs refreshing one token at once both stay logged in.
    let app = Arc::new(app.sibling(|c| c.refresh_reuse_interval_ms = 1000).await);
    let t = app.tenant("Acme", Plan::Pro).await;
    let results = race(8, |_| {
        let (app, token) = (app.clone(), t.owner.refresh_token.clone());
        async move {
            app.gql(
                Auth::None,
                "mutation($t: String!) { refreshSession(refreshToken: $t) { token refreshToken } }",
                json!({"t": token}),
            )
            .await
        }
    })
    .await;
    for r in &results {
        let token = r.data()["refreshSession"]["token"].as_str().expect("token");
        app.gql(Auth::Bearer(token), "{ me { id } }", json!({}))
            .await
            .data();
    }
    let next = results[0].data()["refreshSession"]["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    // Past the interval, presenting the used token again is reuse: the session ends.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app
        .gql(
            Auth::None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { token } }",
            json!({"t": t.owner.refresh_token}),
        )
        .await;
    assert_eq!(r.code(), Some("REVOKED_TOKEN"), "{}", r.body);
    let r = app
        .gql(
            Auth::None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { token } }",
            json!({"t": next}),
        )
        .await;
    assert_eq!(r.code(), Some("REVOKED_TOKEN"), "{}", r.body);
}

async fn no_request_passes_after_a_revocation_returns(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (id, key) = app.key(&t.owner.token, "READ", "LIVE").await;
    let app = Arc::new(app);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut users = Vec::new();
    for _ in 0..3 {
        let (app, key, stop) = (app.clone(), key.clone(), stop.clone());
        users.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                let r = app.gql(Auth::Key(&key), "{ me { id } }", json!({})).await;
                seen.push((started, r.status));
                // A cached key needs no I/O: yield so the revoking request gets its turn.
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation($id: ID!) { deleteApiKey(id: $id) }",
            json!({"id": id}),
        )
        .await;
    r.data();
    let revoked = Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut before_ok = 0;
    let mut after = 0;
    for u in users {
        for (started, status) in u.await.expect("task") {
            if started > revoked {
                after += 1;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "a request started after the revocation got through"
                );
            } else if status == StatusCode::OK {
                before_ok += 1;
            }
        }
    }
    assert!(
        before_ok > 0 && after > 0,
        "the key was in use on both sides of the revocation ({before_ok}, {after})"
    );
}

db_tests!(acknowledged_creates_survive_sigkill);

/// A minimal HTTP/1.1 client over a TCP socket (the server under test is another process).
fn http(
    port: u16,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((
        status,
        buf.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    ))
}

fn spawn_server(url: &str, port: u16) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_leadgraph"))
        .args([
            "serve",
            "--no-bootstrap",
            "--rate-limit-per-ip",
            "0",
            "--tenant-rate-limits=false",
            "--log",
            "error",
        ])
        .args([
            "--database-url",
            url,
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the server");
    for _ in 0..400 {
        if http(port, "GET", "/healthz", "", "").is_ok_and(|(s, _)| s == 200) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    child
}

async fn acknowledged_creates_survive_sigkill(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let url = app.state.config.database_url();
    let key = t.key.clone();
    let acknowledged = tokio::task::spawn_blocking(move || {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut server = spawn_server(&url, port);
        let mut writers = Vec::new();
        for w in 0..4 {
            let key = key.clone();
            writers.push(std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0.. {
                    let body = json!({"email": format!("w{w}-{i}@example.com"), "firstName": "W", "lastName": format!("{i}")}).to_string();
                    match http(port, "POST", "/v1/leads", &key, &body) {
                        Ok((201, b)) => {
                            let v: Value = serde_json::from_str(&b).unwrap_or(Value::Null);
                            ids.push(v["data"]["id"].as_str().unwrap_or("").to_owned());
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                ids
            }));
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        server.kill().expect("SIGKILL");
        server.wait().expect("reaped");
        let ids: Vec<String> = writers.into_iter().flat_map(|w| w.join().expect("writer")).collect();
        // Restart on the same database: it must come up, and serve every acknowledged lead.
        let mut again = spawn_server(&url, port);
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !http(port, "GET", &format!("/v1/leads/{id}"), &key, "").is_ok_and(|(s, _)| s == 200))
            .cloned()
            .collect();
        let _ = again.kill();
        let _ = again.wait();
        (ids, missing)
    })
    .await
    .expect("load phase");
    let (ids, missing) = acknowledged;
    assert!(
        ids.len() >= 10,
        "the load ran ({} creates acknowledged)",
        ids.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // Each acknowledged create has its audit entry.
    for id in &ids {
        let r = app
            .gql(Auth::Bearer(&t.owner.token), "query($id: ID!) { auditLog(filter: {resourceId: $id, action: \"lead.create\"}) { edges { cursor } } }", json!({"id": id}))
            .await;
        assert_eq!(
            r.data()["auditLog"]["edges"].as_array().map(Vec::len),
            Some(1),
            "audit entry of {id}"
        );
    }
}

db_tests!(a_full_pool_is_503_after_the_acquire_timeout);

async fn a_full_pool_is_503_after_the_acquire_timeout(app: TestApp) {
    use sea_orm::TransactionTrait;
    let app = app
        .sibling(|c| {
            c.db_pool_size = Some(2);
            c.db_acquire_timeout_ms = 300;
        })
        .await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let list = || async { app.list_leads(&t.key).await.status };
    assert_eq!(list().await, StatusCode::OK);
    // Hold every pooled connection, as long transactions or a slow database would.
    let held = (
        app.db().begin().await.expect("one"),
        app.db().begin().await.expect("two"),
    );
    let started = Instant::now();
    let status = list().await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        waited >= std::time::Duration::from_millis(250)
            && waited < std::time::Duration::from_secs(10),
        "answered after the acquire timeout, not at once and not never: {waited:?}"
    );
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), Some("SERVICE_UNAVAILABLE"));
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    drop(held);
    assert_eq!(list().await, StatusCode::OK);
}

/// A PostgreSQL server of the test's own (initdb in a temporary directory, another port), so
/// it can be stopped without disturbing the tests sharing the machine's server.
struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// `None` when PostgreSQL tests are not configured; panics when they are but the server
    /// binaries are missing, so CI cannot skip the test by accident.
    fn start() -> Option<Self> {
        std::env::var("LEADGRAPH_TEST_POSTGRES_URL")
            .ok()
            .filter(|s| !s.is_empty())?;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb");
        let dir = std::env::temp_dir().join(format!("lg-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pg = PrivatePostgres { bin, dir, port };
        // PostgreSQL refuses to run as root: run it as the `postgres` user when we are root.
        pg.run(
            "chown",
            &["-R", "postgres:postgres", &pg.dir.display().to_string()],
            false,
        );
        let data = pg.dir.join("data").display().to_string();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
            true,
        );
        pg.ctl("start");
        Some(pg)
    }

    fn run(&self, program: &str, args: &[&str], pg_binary: bool) {
        let program = if pg_binary {
            self.bin.join(program).display().to_string()
        } else {
            program.to_owned()
        };
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root && pg_binary {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            std::process::Command::new(&program)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL command");
        if root || pg_binary {
            assert!(
                out.status.success(),
                "{program} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        match action {
            "start" => self.run(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"],
                true,
            ),
            _ => self.run(
                "pg_ctl",
                &["-D", &data, "-m", "immediate", "-w", "stop"],
                true,
            ),
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = std::process::Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Busy connections skip the ping on acquire (src/db.rs); one that has sat idle for a second
/// is tested first, so connections the server dropped meanwhile are replaced, not handed out.
#[tokio::test]
async fn connections_dropped_while_idle_are_replaced_before_use() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let t = app.tenant("Acme", Plan::Pro).await;
    let list = || async { app.list_leads(&t.key).await.status };
    assert_eq!(list().await, StatusCode::OK);
    assert!(app.terminate_postgres_connections().await > 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_eq!(list().await, StatusCode::OK);
    }
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(leadgraph_no_postgres, ignore = "needs LEADGRAPH_TEST_POSTGRES_URL")]
async fn database_outage_is_503_and_the_server_recovers() {
    let pg = PrivatePostgres::start().expect("LEADGRAPH_TEST_POSTGRES_URL");
    let app = TestApp::postgres_at(pg.url(), |c| c.db_acquire_timeout_ms = 1000).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let auth = [("x-api-key", t.key.as_str())];
    let rest = |path: &'static str| app.request(Method::GET, path, &auth, Body::empty());
    let json_auth = [
        ("x-api-key", t.key.as_str()),
        ("content-type", "application/json"),
    ];
    let create = || {
        let body = r#"{"email":"a@example.com","firstName":"A","lastName":"B"}"#;
        app.request(Method::POST, "/v1/leads", &json_auth, Body::from(body))
    };
    assert_eq!(rest("/v1/leads").await.status, StatusCode::OK);

    pg.ctl("stop");
    // Every kind of request fails fast with 503 and its code; the process stays up.
    let started = Instant::now();
    let r = rest("/v1/leads").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["error"], "SERVICE_UNAVAILABLE");
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.code(), Some("SERVICE_UNAVAILABLE"));
    let r = create().await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    let r = rest("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "unavailable");
    assert_eq!(rest("/healthz").await.status, StatusCode::OK);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(15),
        "failed fast: {waited:?}"
    );

    pg.ctl("start");
    // Back without a restart: the pool replaces its broken connections.
    let mut ready = false;
    for _ in 0..100 {
        if rest("/readyz").await.status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz recovered");
    assert_eq!(rest("/v1/leads").await.status, StatusCode::OK);
    let r = create().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Runs `n` copies of `f(i)` at once and returns their results in order.
async fn race<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Of two racing requests, exactly one succeeded and the other failed with one of `losers`.
fn one_won(results: &[common::Resp], trial: usize, losers: &[&str]) {
    let won = results
        .iter()
        .filter(|r| r.body.get("errors").is_none())
        .count();
    assert_eq!(won, 1, "trial {trial}: {results:?}");
    assert!(
        results
            .iter()
            .any(|r| r.code().is_some_and(|c| losers.contains(&c))),
        "trial {trial}: {results:?}"
    );
}

async fn new_lead(app: &TestApp, key: &str) -> String {
    let r = app
        .gql(
            Auth::Key(key),
            CREATE,
            json!({"i": {"email": "race@example.com", "firstName": "R", "lastName": "Ace"}}),
        )
        .await;
    r.data()["createLead"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn concurrent_tag_additions_lose_nothing(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let id = new_lead(&app, &t.key).await;
    let app = Arc::new(app);
    let results = race(20, |i| {
        let (app, key, id) = (app.clone(), t.key.clone(), id.clone());
        async move {
            app.gql(
                Auth::Key(&key),
                "mutation($id: ID!, $t: [String!]!) { addLeadTags(id: $id, tags: $t) { id } }",
                json!({"id": id, "t": [format!("tag-{i:02}")]}),
            )
            .await
        }
    })
    .await;
    for r in &results {
        r.data();
    }
    let r = app
        .gql(
            Auth::Key(&t.key),
            "query($id: ID!) { lead(id: $id) { tags } }",
            json!({"id": id}),
        )
        .await;
    let want: Vec<String> = (0..20).map(|i| format!("tag-{i:02}")).collect();
    assert_eq!(r.data()["lead"]["tags"], json!(want), "every tag kept");
    // Each audit entry starts from the state the one before it left.
    let r = app.gql(Auth::Bearer(&t.owner.token), "query($id: ID!) { auditLog(first: 100, filter: {resourceId: $id, action: \"lead.add_tags\"}) { edges { node { changes } } } }", json!({"id": id})).await;
    let mut before: Vec<usize> = r.data()["auditLog"]["edges"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            e["node"]["changes"]["before"]["tags"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    before.sort_unstable();
    assert_eq!(
        before,
        (0..20).collect::<Vec<_>>(),
        "audit before-values are current"
    );
}

async fn an_assignment_racing_an_update_is_kept(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let app = Arc::new(app);
    for trial in 0..10i64 {
        let id = new_lead(&app, &t.key).await;
        let results = race(2, |i| {
            let (app, key, id, owner) = (app.clone(), t.key.clone(), id.clone(), t.owner.id.clone());
            async move {
                if i == 0 {
                    app.gql(Auth::Key(&key), "mutation($id: ID!, $u: ID) { assignLead(id: $id, userId: $u) { id } }", json!({"id": id, "u": owner})).await
                } else {
                    app.gql(Auth::Key(&key), "mutation($id: ID!, $s: Int!) { updateLead(id: $id, input: {score: $s}) { id } }", json!({"id": id, "s": 50 + trial})).await
                }
            }
        })
        .await;
        for r in &results {
            r.data();
        }
        let r = app
            .gql(
                Auth::Key(&t.key),
                "query($id: ID!) { lead(id: $id) { score assignedTo { id } } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(r.data()["lead"]["score"], 50 + trial, "trial {trial}");
        assert_eq!(
            r.data()["lead"]["assignedTo"]["id"],
            json!(t.owner.id),
            "trial {trial}"
        );
    }
}

async fn owners_demoting_each_other_leave_an_owner(app: TestApp) {
    let app = Arc::new(app);
    for trial in 0..8 {
        let t = app.tenant("Acme", Plan::Pro).await;
        let second = app.user(&t, entity::enums::Role::Owner).await;
        let pairs = [
            (t.owner.token.clone(), second.id.clone()),
            (second.token.clone(), t.owner.id.clone()),
        ];
        let results = race(2, |i| {
            let (app, (token, target)) = (app.clone(), pairs[i].clone());
            async move {
                app.gql(
                    Auth::Bearer(&token),
                    "mutation($id: ID!) { updateUser(id: $id, input: {role: ADMIN}) { role } }",
                    json!({"id": target}),
                )
                .await
            }
        })
        .await;
        // The loser either sees the last owner, or was demoted (and its session ended) first.
        one_won(&results, trial, &["CONFLICT", "FORBIDDEN", "REVOKED_TOKEN"]);
    }
    let owners = app.count("users WHERE role = 'owner' AND active").await;
    assert_eq!(owners, 8, "each tenant keeps one owner");
}

async fn a_key_deleted_twice_at_once_is_deleted_once(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let app = Arc::new(app);
    for trial in 0..8 {
        let (id, _) = app.key(&t.owner.token, "READ", "LIVE").await;
        let audits = app.count("audit_log").await;
        let results = race(2, |_| {
            let (app, token, id) = (app.clone(), t.owner.token.clone(), id.clone());
            async move {
                app.gql(
                    Auth::Bearer(&token),
                    "mutation($id: ID!) { deleteApiKey(id: $id) }",
                    json!({"id": id}),
                )
                .await
            }
        })
        .await;
        one_won(&results, trial, &["NOT_FOUND"]);
        assert_eq!(app.count("audit_log").await, audits + 1, "one audit entry");
    }
}

/// Holds the lock a write to `lead` needs, from outside the app's pool, until dropped or
/// committed: the lead's row on PostgreSQL, the database's write lock on SQLite.
async fn hold_lock(
    app: &TestApp,
    lead: &str,
) -> (sea_orm::DatabaseConnection, sea_orm::DatabaseTransaction) {
    let conn = app.outside_connection().await;
    let tx = leadgraph::db::begin_write(&conn).await.expect("begin");
    if app.is_postgres() {
        let id = app
            .state
            .ids
            .decode(leadgraph::ids::Kind::Lead, lead)
            .expect("lead id");
        tx.execute_unprepared(&format!("SELECT id FROM leads WHERE id = {id} FOR UPDATE"))
            .await
            .expect("lock the row");
    }
    (conn, tx)
}

async fn requests_dropped_mid_transaction_leave_no_transaction_open(app: TestApp) {
    use std::time::Duration;
    let app = Arc::new(app.sibling(|c| c.request_timeout_ms = 700).await);
    let t = app.tenant("Acme", Plan::Pro).await;
    let id = new_lead(&app, &t.key).await;
    let update =
        "mutation($id: ID!, $s: Int!) { updateLead(id: $id, input: {score: $s}) { score } }";
    // Writers wait for a lock held elsewhere: some clients give up (their futures are
    // dropped), one waits until the server's own timeout answers 503.
    let (_conn, blocker) = hold_lock(&app, &id).await;
    for s in 1..=3 {
        let gone = tokio::time::timeout(
            Duration::from_millis(150),
            app.gql(Auth::Key(&t.key), update, json!({"id": id, "s": s})),
        )
        .await;
        assert!(gone.is_err(), "the client gave up first");
    }
    let timed_out = app
        .gql(Auth::Key(&t.key), update, json!({"id": id, "s": 4}))
        .await;
    assert_eq!(
        timed_out.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        timed_out.text
    );
    blocker.commit().await.expect("release");
    // Creates cancelled at random points: in BEGIN, in a statement, in COMMIT.
    let cancelled = race(60, |i| {
        let (app, key) = (app.clone(), t.key.clone());
        async move {
            let input = json!({"i": {"email": format!("c{i}@example.com"), "firstName": "C", "lastName": "X"}});
            let wait = Duration::from_micros(500 + (i as u64 * 7919) % 15_000);
            tokio::time::timeout(wait, app.gql(Auth::Key(&key), CREATE, input)).await.is_err()
        }
    })
    .await;
    assert!(cancelled.iter().any(|c| *c), "some requests were cancelled");
    // Executions the clients abandoned finish on their own.
    app.settle().await;
    assert_eq!(
        app.idle_in_transaction().await,
        0,
        "no pooled connection left in a transaction"
    );
    // Every lead write is whole: one audit entry per lead, each update applied with its entry.
    let leads = app.count("leads").await;
    let audited = |action: &str| format!("audit_log WHERE action = '{action}'");
    assert_eq!(app.count(&audited("lead.create")).await, leads);
    assert_eq!(
        app.count(&audited("lead.update")).await,
        4,
        "abandoned updates ran to their end"
    );
    // Nothing holds the database: a writer from outside the pool gets through, and so does
    // the app.
    let outside = app.outside_connection().await;
    let tx = tokio::time::timeout(Duration::from_secs(3), leadgraph::db::begin_write(&outside))
        .await
        .expect("no lock held")
        .expect("begin");
    tx.rollback().await.expect("rollback");
    let r = app
        .gql(Auth::Key(&t.key), update, json!({"id": id, "s": 9}))
        .await;
    assert_eq!(r.data()["updateLead"]["score"], 9);
}

async fn responses_carry_security_headers_and_bounded_request_ids(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .request(Method::GET, "/healthz", &[], Body::empty())
        .await;
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), None, "public and harmless");
    let r = app.list_leads(&t.key).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = app
        .gql(
            Auth::None,
            "mutation { login(email: \"x@example.com\", password: \"nope-nope\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // A plain request ID is kept; a long or strange one is replaced before it is logged or
    // stored.
    let create = |id: String| {
        let (app, key) = (&app, t.key.clone());
        async move {
            app.gql_with(
                Auth::Key(&key),
                CREATE,
                json!({"i": {"email": "rid@example.com", "firstName": "R", "lastName": "Id"}}),
                &[("x-request-id", id.as_str())],
            )
            .await
        }
    };
    let r = create("trace-42.a:b".into()).await;
    assert_eq!(r.header("x-request-id"), Some("trace-42.a:b"));
    for bad in ["x".repeat(10_000), "<script>alert(1)</script>".into()] {
        let r = create(bad.clone()).await;
        let id = r.header("x-request-id").expect("an ID").to_owned();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "a generated UUID");
    }
    let longest = app
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            app.db().get_database_backend(),
            "SELECT MAX(LENGTH(request_id)) AS n FROM audit_log".to_owned(),
        ))
        .await
        .expect("query")
        .expect("row")
        .try_get::<i32>("", "n")
        .expect("n");
    assert!(longest <= 128, "{longest}");
}

async fn custom_field_values_are_bounded(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    let lead = |note: String| json!({"i": {"email": "cf@example.com", "firstName": "C", "lastName": "F", "customFields": {"note": note}}});
    let r = app
        .gql(Auth::Key(&t.key), CREATE, lead("n".repeat(2001)))
        .await;
    assert_eq!(r.code(), Some("VALIDATION_FAILED"), "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["extensions"]["fields"][0]["field"],
        "customFields.note"
    );
    assert_eq!(snapshot(&app).await, before, "nothing written");
    let r = app
        .gql(Auth::Key(&t.key), CREATE, lead("é".repeat(2000)))
        .await;
    r.data();
}
