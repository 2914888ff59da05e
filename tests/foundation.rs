//! Foundation: health, request IDs, GraphQL over HTTP basics, schema drift, IDs, bootstrap.

#[macro_use]
mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{Auth, TestApp};
use entity::enums::Plan;
use serde_json::json;

db_tests!(
    health_and_readiness,
    request_id_on_every_response,
    graphql_get_post_and_graphiql,
    validated_documents_skip_revalidation_safely,
    graphiql_is_served_by_the_server_itself,
    compression_is_opt_in,
    malformed_graphql_requests_are_400,
    node_resolves_visible_objects_only,
    unknown_route_is_a_404_envelope,
    first_start_bootstraps_once,
    secrets_survive_restarts,
    a_database_migrated_by_a_newer_version_is_refused,
    the_root_url_points_to_the_api,
    operators_recover_access_from_the_cli,
    timestamps_are_utc_with_milliseconds_everywhere,
);

async fn health_and_readiness(app: TestApp) {
    let r = app
        .request(Method::GET, "/healthz", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = app
        .request(Method::GET, "/readyz", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"status": "ready"}));
}

async fn request_id_on_every_response(app: TestApp) {
    let r = app
        .request(Method::GET, "/healthz", &[], Body::empty())
        .await;
    let generated = r.header("x-request-id").expect("generated request id");
    let uuid = uuid::Uuid::parse_str(generated).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 4, "random: {generated}");
    assert_eq!(
        generated,
        uuid.hyphenated().to_string(),
        "lower-case, hyphenated"
    );
    let again = app
        .request(Method::GET, "/healthz", &[], Body::empty())
        .await;
    assert_ne!(
        again.header("x-request-id"),
        Some(generated),
        "one per request"
    );
    let r = app
        .request(
            Method::GET,
            "/nope",
            &[("x-request-id", "client-chosen-42")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("client-chosen-42"));
    let r = app.gql(Auth::None, "{ __typename }", json!({})).await;
    assert!(r.header("x-request-id").is_some());
}

async fn graphql_get_post_and_graphiql(app: TestApp) {
    let r = app.gql(Auth::None, "{ __typename }", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"], json!({"__typename": "Query"}));
    assert_eq!(
        r.body["extensions"]["cost"],
        json!({"requested": 0, "maximum": 1000})
    );

    let r = app
        .request(
            Method::GET,
            "/graphql?query=%7B__typename%7D",
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"], json!({"__typename": "Query"}));
    assert_eq!(
        r.body["extensions"]["cost"],
        json!({"requested": 0, "maximum": 1000})
    );

    // Mutations are refused over GET, before anything runs.
    let q = "/graphql?query=mutation%20%7Blogout(refreshToken%3A%22x%22)%7D";
    let r = app.request(Method::GET, q, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));

    let r = app
        .request(
            Method::GET,
            "/graphql",
            &[("accept", "text/html,application/xhtml+xml")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    assert!(r.text.contains("graphiql"), "GraphiQL page");

    // application/graphql-response+json is honoured.
    let r = app
        .request(
            Method::POST,
            "/graphql",
            &[
                ("content-type", "application/json"),
                ("accept", "application/graphql-response+json"),
            ],
            Body::from(r#"{"query":"{ __typename }"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/graphql-response+json")
    );

    // Batches run each operation.
    let r = app
        .request(
            Method::POST,
            "/graphql",
            &[("content-type", "application/json")],
            Body::from(r#"[{"query":"{ __typename }"},{"query":"{ a: __typename }"}]"#),
        )
        .await;
    assert_eq!(r.body[0]["data"], json!({"__typename": "Query"}));
    assert_eq!(r.body[1]["data"], json!({"a": "Query"}));
}

async fn graphiql_is_served_by_the_server_itself(app: TestApp) {
    let html = [("accept", "text/html")];
    // By default the page loads its files from this server, which embeds them.
    let r = app
        .request(Method::GET, "/graphql", &html, Body::empty())
        .await;
    assert!(
        r.text.contains(r#"src="/graphiql/graphiql.js""#),
        "{}",
        r.text
    );
    assert!(!r.text.contains("https://"), "no other origin: {}", r.text);
    // Each file is pinned by its hash, and the page's policy allows its own inline script
    // (by hash) and nothing but this server besides.
    assert_eq!(
        r.text.matches(r#"integrity="sha384-"#).count(),
        4,
        "{}",
        r.text
    );
    let csp = r
        .header("content-security-policy")
        .expect("a policy")
        .to_owned();
    let inline = r
        .text
        .rsplit("<script>")
        .next()
        .and_then(|rest| rest.split("</script>").next())
        .expect("inline script");
    let hash = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(inline.as_bytes()))
    };
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(
        csp.contains("script-src 'self' ") && !csp.contains("https:"),
        "{csp}"
    );
    for (file, ct, starts) in [
        ("react.js", "text/javascript", "/**"),
        ("react-dom.js", "text/javascript", "/**"),
        ("graphiql.js", "text/javascript", ""),
        ("graphiql.css", "text/css", ""),
    ] {
        let r = app
            .request(
                Method::GET,
                &format!("/graphiql/{file}"),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{file}");
        assert!(
            r.text.len() > 10_000 && r.text.starts_with(starts),
            "{file}"
        );
        assert!(r.header("content-type").unwrap_or("").starts_with(ct));
    }
    for other in [
        "/graphiql/..%2Fsecret",
        "/graphiql/index.html",
        "/graphiql/",
    ] {
        let r = app.request(Method::GET, other, &[], Body::empty()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}");
    }

    // --graphiql-cdn: the same pinned files from unpkg.com, and the policy allows it alone.
    let cdn = app.sibling(|c| c.graphiql_cdn = true).await;
    let r = cdn
        .request(Method::GET, "/graphql", &html, Body::empty())
        .await;
    assert!(
        r.text
            .contains("https://unpkg.com/graphiql@4.1.2/graphiql.min.js")
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src https://unpkg.com "), "{csp}");
}

async fn malformed_graphql_requests_are_400(app: TestApp) {
    let json_ct = [("content-type", "application/json")];
    let r = app
        .request(Method::POST, "/graphql", &json_ct, Body::from("{not json"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), Some("BAD_REQUEST"));

    let r = app
        .request(
            Method::POST,
            "/graphql",
            &[("content-type", "text/plain")],
            Body::from("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let too_many = format!("[{}]", [r#"{"query":"{ __typename }"}"#; 11].join(","));
    let r = app
        .request(Method::POST, "/graphql", &json_ct, Body::from(too_many))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let big = format!(
        r#"{{"query":"{{ __typename }}","variables":{{"x":"{}"}}}}"#,
        "a".repeat(1_100_000)
    );
    let r = app
        .request(Method::POST, "/graphql", &json_ct, Body::from(big))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), Some("PAYLOAD_TOO_LARGE"));

    // A syntax error is a GraphQL request error.
    let r = app.gql(Auth::None, "{ __typename", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["errors"][0]["message"].as_str().is_some());
}

async fn node_resolves_visible_objects_only(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.tenant("Globex", Plan::Pro).await;
    let q = "query($id: ID!) { node(id: $id) { __typename id } }";
    for (id, typename) in [(&t.owner.id, "User"), (&t.id, "Tenant")] {
        let r = app.gql(Auth::Key(&t.key), q, json!({"id": id})).await;
        assert_eq!(r.data()["node"], json!({"__typename": typename, "id": id}));
    }
    let (key_id, _) = app.key(&t.owner.token, "READ", "LIVE").await;
    let r = app
        .gql(Auth::Bearer(&t.owner.token), q, json!({"id": key_id}))
        .await;
    assert_eq!(
        r.data()["node"],
        json!({"__typename": "ApiKey", "id": key_id})
    );
    // Another tenant's objects and garbage resolve to null.
    for id in [
        other.owner.id.as_str(),
        other.id.as_str(),
        "garbage",
        "AAAAAAAAAAAAAAAA",
    ] {
        let r = app.gql(Auth::Key(&t.key), q, json!({"id": id})).await;
        assert_eq!(r.data()["node"], json!(null), "{id}");
    }
    // Without a credential node is refused.
    let r = app.gql(Auth::None, q, json!({"id": t.id})).await;
    assert_eq!(r.code(), Some("MISSING_TOKEN"));
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn compression_is_opt_in(app: TestApp) {
    let gzip = [("accept-encoding", "gzip")];
    let r = app
        .request(Method::GET, "/v1/openapi.json", &gzip, Body::empty())
        .await;
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body["openapi"].is_string());
    let app = app.sibling(|c| c.compression = true).await;
    let r = app
        .request(Method::GET, "/v1/openapi.json", &gzip, Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.body.is_null(), "the body is gzip, not JSON");
    let r = app
        .request(Method::GET, "/v1/openapi.json", &[], Body::empty())
        .await;
    assert_eq!(
        r.header("content-encoding"),
        None,
        "only for clients that accept it"
    );
    assert!(r.body["openapi"].is_string());
}

async fn unknown_route_is_a_404_envelope(app: TestApp) {
    let r = app
        .request(Method::GET, "/v1/nothing-here", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["success"], json!(false));
    assert_eq!(r.body["status"], json!(404));
    assert_eq!(r.body["error"], json!("NOT_FOUND"));
    assert_eq!(r.body["message"], json!("Resource not found"));
    assert_eq!(r.body["meta"]["version"], json!("v1"));
}

async fn first_start_bootstraps_once(app: TestApp) {
    use leadgraph::service::tenant::bootstrap_if_empty;
    let first = bootstrap_if_empty(&app.state, Some("Boss@Example.com".into()), None)
        .await
        .expect("bootstrap")
        .expect("first start bootstraps");
    assert_eq!(first.email, "boss@example.com");
    assert_eq!(first.password.len(), 20);
    assert!(first.api_key.starts_with("lg_live_sk_"));
    assert_eq!(app.count("tenants").await, 1);
    let second = bootstrap_if_empty(&app.state, None, None)
        .await
        .expect("second start");
    assert!(second.is_none());
    assert_eq!(app.count("tenants").await, 1);
    assert_eq!(app.count("api_keys").await, 1);
    // What was printed works.
    let r = app
        .gql(
            Auth::Key(&first.api_key),
            "{ me { role scope environment } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.data()["me"],
        json!({"role": "OWNER", "scope": "FULL", "environment": "LIVE"})
    );
    app.login(&first.email, &first.password).await;
}

async fn secrets_survive_restarts(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    // A second process on the same database reads the stored secrets: IDs and tokens still work.
    let again = leadgraph::web::AppState::build(app.state.config.clone(), app.state.db.clone())
        .await
        .expect("restart");
    assert_eq!(
        again.ids.encode(leadgraph::ids::Kind::Tenant, 1),
        app.state.ids.encode(leadgraph::ids::Kind::Tenant, 1)
    );
    let claims = again
        .jwt
        .verify(&t.owner.token)
        .expect("token from before the restart");
    assert_eq!(claims.sub, t.owner.id);
}

#[test]
fn schema_graphql_matches_the_code() {
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql");
    let sdl = leadgraph::graphql::schema::sdl();
    assert!(
        file == sdl,
        "schema.graphql is stale: run `cargo run -q -- schema > schema.graphql`"
    );
}

#[test]
fn cli_schema_and_bootstrap() {
    let bin = env!("CARGO_BIN_EXE_leadgraph");
    let out = std::process::Command::new(bin)
        .arg("schema")
        .output()
        .expect("run leadgraph schema");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        leadgraph::graphql::schema::sdl()
    );

    let dir = std::env::temp_dir().join(format!("leadgraph-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("cli.db").display());
    let out = std::process::Command::new(bin)
        .args([
            "bootstrap",
            "--tenant",
            "Acme Corp",
            "--email",
            "Ops@Acme.test",
            "--plan",
            "team",
            "--json",
        ])
        .env("LEADGRAPH_DATABASE_URL", &url)
        .output()
        .expect("run leadgraph bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    for field in ["tenantId", "userId", "email", "password", "apiKey"] {
        assert!(printed[field].is_string(), "{field} in {printed}");
    }
    assert_eq!(printed["email"], "ops@acme.test");
    assert_eq!(printed["tenantId"].as_str().map(str::len), Some(16));

    let out = std::process::Command::new(bin)
        .args(["set-plan", "--tenant", "acme-corp", "--plan", "free"])
        .env("LEADGRAPH_DATABASE_URL", &url)
        .output()
        .expect("run leadgraph set-plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each command's help lists what it uses: the server's flags belong to `serve`.
    let help = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("run leadgraph --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let set_plan = help(&["set-plan", "--help"]);
    assert!(
        set_plan.contains("--tenant") && set_plan.contains("--database-url"),
        "{set_plan}"
    );
    assert!(
        !set_plan.contains("--bind") && !set_plan.contains("--jwt-secret"),
        "{set_plan}"
    );
    assert!(help(&["serve", "--help"]).contains("--request-timeout-ms"));
    assert!(!help(&["keys", "create", "--help"]).contains("--rate-limit"));
    // A server flag before another command would be dropped: it is refused.
    let out = std::process::Command::new(bin)
        .args(["--bind", "127.0.0.1:1", "tenants"])
        .env("LEADGRAPH_DATABASE_URL", &url)
        .output()
        .expect("run leadgraph");
    assert!(!out.status.success());
    let out = std::process::Command::new(bin)
        .args(["set-plan", "--tenant", "no-such-tenant", "--plan", "free"])
        .env("LEADGRAPH_DATABASE_URL", &url)
        .output()
        .expect("run leadgraph set-plan");
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

/// A document that passed validation once runs without it afterwards (see
/// `src/graphql/documents.rs`): same answers, and documents whose validity depends on the
/// request are still validated every time.
async fn validated_documents_skip_revalidation_safely(app: TestApp) {
    let t = app.tenant("acme", Plan::Free).await;
    let first = app
        .gql(Auth::Key(&t.key), "{ me { id role } }", json!({}))
        .await;
    assert!(first.body["data"]["me"]["id"].is_string(), "{}", first.text);
    for _ in 0..2 {
        let again = app
            .gql(Auth::Key(&t.key), "{ me { id role } }", json!({}))
            .await;
        assert_eq!(again.body["data"], first.body["data"]);
        assert_eq!(again.body["errors"], first.body["errors"]);
    }

    // An invalid document is never remembered as valid: neither a misspelt field nor
    // federation's `_service`, which the schema validated documents run on also holds (see
    // `src/graphql/schema.rs`).
    for doc in ["{ me { id nope } }", "{ _service { sdl } }"] {
        for _ in 0..2 {
            let r = app.gql(Auth::Key(&t.key), doc, json!({})).await;
            assert!(r.body.get("data").is_none(), "{}", r.text);
            let message = r.body["errors"][0]["message"].as_str().unwrap_or("");
            assert!(message.contains("Unknown field"), "{message}");
        }
    }

    // Nor does introspection reach federation's types, however often it is sent.
    let introspect = "{ __type(name: \"Query\") { fields { name } } hidden: __type(name: \"_Service\") { name } \
                      __schema { types { name } } }";
    let first = app.gql(Auth::Key(&t.key), introspect, json!({})).await;
    let fields = first.body["data"]["__type"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", first.text));
    assert!(fields.iter().any(|f| f["name"] == "me"), "{}", first.text);
    assert!(!first.text.contains("_service"), "{}", first.text);
    assert!(!first.text.contains("_Any"), "{}", first.text);
    assert_eq!(first.body["data"]["hidden"], json!(null));
    for _ in 0..2 {
        let again = app.gql(Auth::Key(&t.key), introspect, json!({})).await;
        assert_eq!(again.body, first.body);
    }

    // With variables, validity depends on their values: a bad value after a good one is still
    // a request error found by validation, not a field error found while running.
    let q = "query($n: Int!) { leads(first: $n) { totalCount } }";
    let ok = app.gql(Auth::Key(&t.key), q, json!({"n": 5})).await;
    assert!(
        ok.body["data"]["leads"]["totalCount"].is_number(),
        "{}",
        ok.text
    );
    let bad = app.gql(Auth::Key(&t.key), q, json!({"n": "five"})).await;
    assert!(bad.body.get("data").is_none(), "{}", bad.text);
    let message = bad.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("Invalid value"), "{message}");
}

async fn a_database_migrated_by_a_newer_version_is_refused(app: TestApp) {
    use sea_orm::ConnectionTrait;
    let db = app.db();
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000001_future', 0)",
    )
    .await
    .expect("a future migration");
    db.execute_unprepared("UPDATE settings SET value = '9.9.9' WHERE key = 'migrated_by'")
        .await
        .expect("a future version");
    let err = leadgraph::db::migrate(db)
        .await
        .expect_err("refused")
        .to_string();
    for part in [
        "leadgraph 9.9.9",
        "m20991231_000001_future",
        env!("CARGO_PKG_VERSION"),
    ] {
        assert!(err.contains(part), "{part:?} missing from {err}");
    }
    // The binary refuses to start with the same words.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadgraph"))
        .args([
            "migrate",
            "--database-url",
            &app.state.config.database_url(),
        ])
        .output()
        .expect("run migrate");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("leadgraph 9.9.9"));
}

/// Instances starting at once on one PostgreSQL database migrate it once, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(leadgraph_no_postgres, ignore = "needs LEADGRAPH_TEST_POSTGRES_URL")]
async fn concurrent_starts_migrate_once() {
    use sea_orm::ConnectionTrait;
    let admin_url =
        std::env::var("LEADGRAPH_TEST_POSTGRES_URL").expect("LEADGRAPH_TEST_POSTGRES_URL");
    let name = format!("lg_migrate_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(&admin_url).await.expect("admin");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create");
    let url = format!(
        "{}/{name}",
        admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b)
    );
    let a = sea_orm::Database::connect(&url).await.expect("a");
    let b = sea_orm::Database::connect(&url).await.expect("b");
    let c = sea_orm::Database::connect(&url).await.expect("c");
    let (ra, rb, rc) = tokio::join!(
        leadgraph::db::migrate(&a),
        leadgraph::db::migrate(&b),
        leadgraph::db::migrate(&c)
    );
    let applied = a
        .query_one_raw(sea_orm::Statement::from_string(
            a.get_database_backend(),
            "SELECT COUNT(*) AS n FROM seaql_migrations",
        ))
        .await
        .expect("count")
        .expect("row")
        .try_get::<i64>("", "n")
        .expect("n");
    for db in [a, b, c] {
        db.close().await.ok();
    }
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .ok();
    ra.expect("first");
    rb.expect("second");
    rc.expect("third");
    use migration::MigratorTrait;
    assert_eq!(applied, migration::Migrator::migrations().len() as i64);
}

async fn the_root_url_points_to_the_api(app: TestApp) {
    let r = app.request(Method::GET, "/", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["graphql"], "/graphql");
    assert_eq!(r.body["openapi"], "/v1/openapi.json");
    let page = app
        .request(
            Method::GET,
            "/",
            &[("accept", "text/html,application/xhtml+xml")],
            Body::empty(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(page.text.contains("href=\"/graphql\"") && page.text.contains("/v1/openapi.json"));
}

/// Logs written to a file or a pipe carry no ANSI colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = std::env::temp_dir().join(format!("leadgraph-log-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadgraph"))
        .args(["migrate", "--log", "info"])
        .env(
            "LEADGRAPH_DATABASE_URL",
            format!("sqlite://{}", dir.join("log.db").display()),
        )
        .output()
        .expect("run migrate");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("migrations applied"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in {err:?}");
}

/// After a clean stop the SQLite file alone holds the data (the WAL was checkpointed), and
/// `leadgraph backup --to FILE` makes a copy that serves as the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sqlite_file_is_whole_and_backups_restore() {
    use sea_orm::ConnectionTrait;
    use std::io::{BufRead, BufReader};
    let bin = env!("CARGO_BIN_EXE_leadgraph");
    let dir = std::env::temp_dir().join(format!(
        "leadgraph-backup-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("live.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = std::process::Command::new(bin)
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--log",
            "warn",
        ])
        .env(
            "LEADGRAPH_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let key = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim()
                .strip_prefix("API key:")
                .map(|k| k.trim().to_owned())
        })
        .expect("the first start prints a key");
    std::thread::spawn(move || lines.for_each(drop));
    let created = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/leads"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(r#"{"email": "kept@example.com", "firstName": "Kept", "lastName": "Lead"}"#)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    assert!(server.wait().expect("wait").success());
    // The file alone, as a user copying it would take it.
    let copy = dir.join("copy.db");
    std::fs::copy(&db, &copy).expect("copy");
    let leads = |path: std::path::PathBuf| async move {
        let conn = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", path.display()))
            .await
            .expect("open");
        let n = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM leads WHERE email = 'kept@example.com'",
            ))
            .await
            .expect("query")
            .expect("row")
            .try_get::<i64>("", "n")
            .expect("n");
        conn.close().await.ok();
        n
    };
    assert_eq!(
        leads(copy).await,
        1,
        "the stopped database file holds the lead"
    );
    // A backup is a database of its own.
    let backup = dir.join("backup.db");
    let run = |args: &[&str], url: String| {
        std::process::Command::new(bin)
            .args(args)
            .env("LEADGRAPH_DATABASE_URL", url)
            .output()
            .expect("run")
    };
    let url = format!("sqlite://{}", db.display());
    let out = run(
        &["backup", "--to", &backup.display().to_string()],
        url.clone(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leads(backup.clone()).await, 1);
    let again = run(&["backup", "--to", &backup.display().to_string()], url);
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );
    let restored = run(&["migrate"], format!("sqlite://{}", backup.display()));
    assert!(restored.status.success(), "the backup serves as a database");
    let pg = run(
        &["backup", "--to", "x.dump"],
        "postgres://nobody@127.0.0.1:1/none".into(),
    );
    assert!(!pg.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `leadgraph ARGS --database-url URL`; answers success, stdout and stderr.
fn cli(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadgraph"))
        .args(args)
        .args(["--database-url", url, "--log", "warn"])
        .env_remove("LEADGRAPH_DATABASE_URL")
        .output()
        .expect("run leadgraph");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn operators_recover_access_from_the_cli(app: TestApp) {
    let url = app.state.config.database_url();
    let t = app.tenant("Acme Corp", Plan::Pro).await;
    app.tenant("Beta", Plan::Free).await;
    // tenants: one JSON line each, with their numbers of users and keys.
    let (ok, out, err) = cli(&url, &["tenants", "--json"]);
    assert!(ok, "{err}");
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(listed.len(), 2, "{out}");
    let acme = &listed[0];
    assert_eq!(
        (
            &acme["slug"],
            &acme["name"],
            &acme["plan"],
            &acme["users"],
            &acme["keys"],
            &acme["id"]
        ),
        (
            &json!(t.slug),
            &json!("Acme Corp"),
            &json!("pro"),
            &json!(1),
            &json!(1),
            &json!(t.id)
        ),
        "{out}"
    );
    let (ok, table, _) = cli(&url, &["tenants"]);
    assert!(
        ok && table.starts_with("SLUG") && table.contains("Acme Corp"),
        "{table}"
    );

    // set-plan by name and by ID; an unknown tenant is refused with the list of them.
    let plan = |app: &TestApp| {
        let db = app.db().clone();
        async move {
            use sea_orm::EntityTrait;
            entity::tenant::Entity::find()
                .all(&db)
                .await
                .expect("tenants")
                .into_iter()
                .find(|x| x.name == "Acme Corp")
                .map(|x| x.plan)
        }
    };
    let (ok, _, err) = cli(
        &url,
        &["set-plan", "--tenant", "ACME CORP", "--plan", "team"],
    );
    assert!(ok, "{err}");
    assert_eq!(plan(&app).await, Some(Plan::Team));
    let (ok, _, err) = cli(&url, &["set-plan", "--tenant", &t.id, "--plan", "starter"]);
    assert!(ok, "{err}");
    assert_eq!(plan(&app).await, Some(Plan::Starter));
    let before = common::snapshot(&app).await;
    let (ok, _, err) = cli(&url, &["set-plan", "--tenant", "Gamma", "--plan", "free"]);
    assert!(!ok);
    assert!(
        err.contains("\"Gamma\"") && err.contains(&t.slug) && err.contains("beta"),
        "{err}"
    );
    assert_eq!(common::snapshot(&app).await, before);

    // keys create: a sandbox read key of the tenant, which works and only reads.
    let (ok, out, err) = cli(
        &url,
        &[
            "keys",
            "create",
            "--tenant",
            &t.slug,
            "--scope",
            "read",
            "--environment",
            "sandbox",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    let key = created["apiKey"].as_str().expect("key").to_owned();
    assert!(key.starts_with("lg_sandbox_sk_"), "{out}");
    assert_eq!(created["scope"], "read");
    assert_eq!(app.get("/v1/leads", &key).await.status, 200);
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &[
                ("x-api-key", key.as_str()),
                ("content-type", "application/json"),
            ],
            Body::from(r#"{"email": "r@example.com", "firstName": "R", "lastName": "O"}"#),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // keys revoke --prefix: the key is deleted (not listed, not counted); again, none is found.
    let prefix = created["prefix"].as_str().expect("prefix");
    let (ok, out, err) = cli(&url, &["keys", "revoke", "--prefix", prefix]);
    assert!(ok, "{err}");
    assert!(out.contains(prefix), "{out}");
    let (_, out, _) = cli(&url, &["tenants", "--json"]);
    assert!(
        out.lines().next().is_some_and(|l| l.contains("\"keys\":1")),
        "{out}"
    );
    let (ok, _, err) = cli(&url, &["keys", "revoke", "--prefix", prefix]);
    assert!(!ok && err.contains("no API key"), "{err}");

    // users reset-password: a new password that logs in, the old one and the old session end.
    let (ok, out, err) = cli(
        &url,
        &[
            "users",
            "reset-password",
            "--email",
            &t.owner.email.to_uppercase(),
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let reset: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    let password = reset["password"].as_str().expect("password");
    assert_eq!(reset["tenantSlug"], json!(t.slug));
    let login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let old = app
        .gql(
            Auth::None,
            login,
            json!({"e": t.owner.email, "p": t.owner.password}),
        )
        .await;
    assert!(
        old.code().is_some(),
        "the old password is refused: {}",
        old.text
    );
    let new = app
        .gql(
            Auth::None,
            login,
            json!({"e": t.owner.email, "p": password}),
        )
        .await;
    assert!(new.data()["login"]["token"].is_string(), "{}", new.text);
    let refresh = app
        .gql(
            Auth::None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { token } }",
            json!({"t": t.owner.refresh_token}),
        )
        .await;
    assert!(
        refresh.code().is_some(),
        "the old session ended: {}",
        refresh.text
    );
    let before = common::snapshot(&app).await;
    let (ok, _, err) = cli(
        &url,
        &["users", "reset-password", "--email", "nobody@example.com"],
    );
    assert!(!ok && err.contains("no user"), "{err}");
    assert_eq!(common::snapshot(&app).await, before);
}

/// Whether `v` is an RFC 3339 UTC timestamp with milliseconds: `2026-12-05T09:24:55.959Z`.
fn is_millis_utc(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 24
            && s.ends_with('Z')
            && s.as_bytes()[19] == b'.'
            && chrono::DateTime::parse_from_rfc3339(s).is_ok()
    })
}

async fn timestamps_are_utc_with_milliseconds_everywhere(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &[
                ("x-api-key", t.key.as_str()),
                ("content-type", "application/json"),
            ],
            Body::from(r#"{"email": "ts@example.com", "firstName": "T", "lastName": "S"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for field in ["createdAt", "updatedAt"] {
        assert!(
            is_millis_utc(&r.body["data"][field]),
            "REST {field}: {}",
            r.text
        );
    }
    let q = "{ leads(first: 1) { edges { node { createdAt updatedAt } } } me { tenant { createdAt } } }";
    let g = app.gql(Auth::Key(&t.key), q, json!({})).await;
    let node = &g.data()["leads"]["edges"][0]["node"];
    for v in [
        &node["createdAt"],
        &node["updatedAt"],
        &g.data()["me"]["tenant"]["createdAt"],
    ] {
        assert!(is_millis_utc(v), "GraphQL: {}", g.text);
    }
    let login = app
        .gql(
            Auth::None,
            "mutation($e: String!) { login(email: $e, password: \"owner-password\") { expiresAt } }",
            json!({"e": t.owner.email}),
        )
        .await;
    assert!(
        is_millis_utc(&login.data()["login"]["expiresAt"]),
        "{}",
        login.text
    );
    // A key with an expiry, used once: expiresAt, lastUsedAt, createdAt.
    let created = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation { createApiKey(input: {label: \"ts\", expiresInDays: 7}) { key apiKey { id } } }",
            json!({}),
        )
        .await;
    let key = created.data()["createApiKey"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert_eq!(app.get("/v1/leads", &key).await.status, 200);
    let keys = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "{ apiKeys { label expiresAt lastUsedAt createdAt } }",
            json!({}),
        )
        .await;
    let k = keys.data()["apiKeys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["label"] == "ts"))
        .cloned()
        .unwrap_or_default();
    for field in ["expiresAt", "lastUsedAt", "createdAt"] {
        assert!(is_millis_utc(&k[field]), "apiKey {field}: {}", keys.text);
    }
    // The audit log: its entries' times and the times inside their changes.
    let audit = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "{ auditLog(first: 10) { edges { node { action createdAt changes } } } }",
            json!({}),
        )
        .await;
    let entries = audit.data()["auditLog"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!entries.is_empty(), "{}", audit.text);
    for e in &entries {
        assert!(is_millis_utc(&e["node"]["createdAt"]), "{}", audit.text);
    }
    let key_entry = entries
        .iter()
        .find(|e| e["node"]["action"] == "api_key.create")
        .expect("the key's creation is audited");
    assert!(
        is_millis_utc(&key_entry["node"]["changes"]["after"]["expiresAt"]),
        "{key_entry}"
    );
}
