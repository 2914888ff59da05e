//! Rate limits, GraphQL document limits, cost feedback and transport limits.

#[macro_use]
mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{Auth, Resp, TestApp};
use entity::enums::Plan;
use serde_json::json;

fn budget(r: &Resp) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        r.header("x-ratelimit-limit"),
        r.header("x-ratelimit-remaining"),
        r.header("x-ratelimit-reset"),
    )
}

async fn limited(app: TestApp, per_ip: u32) -> TestApp {
    let app = app
        .sibling(|c| {
            c.rate_limit_per_ip = per_ip;
            c.tenant_rate_limits = true;
        })
        .await;
    app.state.limits.clock.freeze();
    app
}

db_tests!(
    plan_budget_headers_over_a_sequence,
    keys_of_a_tenant_share_one_budget,
    failed_logins_are_throttled_per_ip,
    every_credential_check_counts_against_the_ip,
    failed_logins_are_limited_per_account,
    headers_describe_the_limit_that_binds,
    forwarded_for_counts_only_behind_a_trusted_proxy,
    documents_over_a_limit_are_refused,
    the_named_operation_is_the_one_checked_and_run,
    introspection_can_be_turned_off,
    cost_feedback_in_extensions,
    timeouts_and_saturation_are_503,
    metrics_count_requests_refusals_and_failures,
);

/// The value of one Prometheus sample, `0` when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics_count_requests_refusals_and_failures(app: TestApp) {
    let app = limited(app, 0).await;
    let t = app.tenant("Tiny", Plan::Free).await;
    for _ in 0..11 {
        app.list_leads(&t.key).await;
    }
    app.list_leads("lg_live_sk_notakeynotakeynotakeynota000000")
        .await;
    let named = app
        .gql(
            Auth::Key(&t.key),
            "query PageOne { leads(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(named.code(), Some("RATE_LIMITED"));
    let me = app
        .gql(Auth::None, "query Who { me { id } }", json!({}))
        .await;
    assert_eq!(me.code(), Some("MISSING_TOKEN"));

    let r = app
        .request(Method::GET, "/metrics", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let m = r.text.as_str();
    let ok = r#"leadgraph_http_requests_total{method="GET",route="/v1/leads",operation="",status="200"}"#;
    let refused = r#"leadgraph_http_requests_total{method="GET",route="/v1/leads",operation="",status="429"}"#;
    assert_eq!(sample(m, ok), 10.0, "{m}");
    assert_eq!(sample(m, refused), 1.0, "{m}");
    assert_eq!(
        sample(m, r#"leadgraph_rate_limit_refusals_total{scope="tenant"}"#),
        2.0
    );
    assert_eq!(
        sample(m, r#"leadgraph_auth_failures_total{code="INVALID_TOKEN"}"#),
        1.0
    );
    assert_eq!(
        sample(m, r#"leadgraph_auth_failures_total{code="MISSING_TOKEN"}"#),
        1.0
    );
    let who = r#"leadgraph_http_requests_total{method="POST",route="/graphql",operation="Who",status="401"}"#;
    assert_eq!(sample(m, who), 1.0, "{m}");
    let hist = r#"leadgraph_http_request_duration_seconds_count{method="GET",route="/v1/leads"}"#;
    assert_eq!(sample(m, hist), 12.0, "{m}");
    assert!(sample(m, "leadgraph_db_pool_max_connections") >= 1.0, "{m}");
    assert!(
        m.contains(r#"leadgraph_db_pool_connections{state="idle"}"#),
        "{m}"
    );
    // The caches' sizes, read when scraped: a new lead's encoded ID and a second key show.
    let ids = r#"leadgraph_cache_entries{cache="encoded_ids"}"#;
    let keys = r#"leadgraph_cache_entries{cache="api_keys"}"#;
    let docs = r#"leadgraph_cache_entries{cache="documents"}"#;
    assert_eq!(sample(m, keys), 1.0, "{m}");
    let big = app.tenant("Big", Plan::Enterprise).await;
    let scrape = || async {
        app.request(Method::GET, "/metrics", &[], Body::empty())
            .await
            .text
    };
    let before = scrape().await;
    let before = before.as_str();
    let created = app
        .gql(
            Auth::Key(&big.key),
            r#"mutation { createLead(input: {email: "m@example.com", firstName: "M", lastName: "E", source: API}) { id } }"#,
            json!({}),
        )
        .await;
    assert!(
        created.data()["createLead"]["id"].is_string(),
        "{}",
        created.text
    );
    let after = scrape().await;
    let after = after.as_str();
    assert_eq!(sample(after, keys), 2.0, "{after}");
    assert_eq!(sample(after, ids), sample(before, ids) + 1.0, "{after}");
    assert!(sample(after, docs) > sample(before, docs), "{after}");

    // With --metrics-bind the public router has no /metrics.
    let private = app
        .sibling(|c| c.metrics_bind = Some("127.0.0.1:0".parse().expect("addr")))
        .await;
    let r = private
        .request(Method::GET, "/metrics", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn plan_budget_headers_over_a_sequence(app: TestApp) {
    let app = limited(app, 0).await;
    let t = app.tenant("Tiny", Plan::Free).await;
    // free: 60/minute, burst 10: one request comes back per second.
    for i in 1..=10u32 {
        let r = app.list_leads(&t.key).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
        let (remaining, reset) = ((10 - i).to_string(), i.to_string());
        assert_eq!(
            budget(&r),
            (Some("60"), Some(remaining.as_str()), Some(reset.as_str())),
            "request {i}"
        );
    }
    let r = app.list_leads(&t.key).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(budget(&r), (Some("60"), Some("0"), Some("10")));
    assert_eq!(r.body["error"], "RATE_LIMITED");
    assert_eq!(r.body["success"], false);
    // GraphQL gets a GraphQL error body with the same code and headers.
    let g = app.gql(Auth::Key(&t.key), "{ me { id } }", json!({})).await;
    assert_eq!(g.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(g.code(), Some("RATE_LIMITED"));
    assert_eq!(g.header("retry-after"), Some("1"));
    // A second later one request is allowed again.
    app.state
        .limits
        .clock
        .advance(std::time::Duration::from_secs(1));
    let r = app.list_leads(&t.key).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(budget(&r), (Some("60"), Some("0"), Some("10")));
    // Other plans have their own numbers.
    let pro = app.tenant("Big", Plan::Pro).await;
    let r = app.list_leads(&pro.key).await;
    assert_eq!(budget(&r), (Some("1000"), Some("99"), Some("1")));
}

async fn keys_of_a_tenant_share_one_budget(app: TestApp) {
    let app = limited(app, 0).await;
    let t = app.tenant("Tiny", Plan::Free).await;
    let (_, second) = app.key(&t.owner.token, "READ", "LIVE").await;
    // The session's createApiKey above used one request of the tenant's budget.
    for _ in 0..4 {
        app.list_leads(&t.key).await;
    }
    let r = app.list_leads(&second).await;
    assert_eq!(
        r.header("x-ratelimit-remaining"),
        Some("4"),
        "10 - 1 - 4 - 1"
    );
    // Sandbox is a separate budget; another tenant too.
    let (_, sandbox) = app.key(&t.owner.token, "READ", "SANDBOX").await;
    let r = app.list_leads(&sandbox).await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("9"));
    let other = app.tenant("Other", Plan::Free).await;
    let r = app.list_leads(&other.key).await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("9"));
}

/// `POST /v1/auth/login` from `peer`.
async fn rest_login(
    app: &TestApp,
    peer: std::net::SocketAddr,
    email: &str,
    password: &str,
) -> Resp {
    let body = json!({"email": email, "password": password}).to_string();
    app.request_from(
        peer,
        Method::POST,
        "/v1/auth/login",
        &[("content-type", "application/json")],
        Body::from(body),
    )
    .await
}

async fn failed_logins_are_throttled_per_ip(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let app2 = limited(app, 5).await;
    let t2 = app2.tenant("Acme", Plan::Pro).await;
    let _ = t;
    let login = |password: &'static str, ip: &'static str| {
        rest_login(&app2, ip.parse().expect("addr"), &t2.owner.email, password)
    };
    for i in 1..=5 {
        let r = login("wrong-guess", "203.0.113.7:5000").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {i}");
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((5 - i).to_string().as_str())
        );
    }
    // The sixth attempt is refused before the password is even checked, right or wrong.
    let r = login("owner-password", "203.0.113.7:5000").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"], "RATE_LIMITED");
    assert_eq!(
        r.header("retry-after"),
        Some("12"),
        "100/min… here 5/min: one every 12 s"
    );
    // Another address is not affected.
    let r = login("owner-password", "198.51.100.1:5000").await;
    assert_eq!(r.status, StatusCode::OK);
    // Invalid keys count against the address too.
    for _ in 0..4 {
        app2.request_from(
            "192.0.2.9:1".parse().expect("addr"),
            Method::GET,
            "/v1/leads",
            &[("x-api-key", "lg_live_sk_bad")],
            Body::empty(),
        )
        .await;
    }
    let r = app2
        .request_from(
            "192.0.2.9:1".parse().expect("addr"),
            Method::GET,
            "/v1/leads",
            &[("x-api-key", "lg_live_sk_bad")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app2
        .request_from(
            "192.0.2.9:1".parse().expect("addr"),
            Method::GET,
            "/v1/leads",
            &[("x-api-key", &t2.key)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn forwarded_for_counts_only_behind_a_trusted_proxy(app: TestApp) {
    let app = app
        .sibling(|c| {
            c.rate_limit_per_ip = 2;
            c.trusted_proxies = vec!["10.0.0.1".parse().expect("ip")];
        })
        .await;
    app.state.limits.clock.freeze();
    let typename = |peer: &'static str, forwarded: &'static str| {
        let app = &app;
        async move {
            app.request_from(
                peer.parse().expect("addr"),
                Method::POST,
                "/graphql",
                &[
                    ("content-type", "application/json"),
                    ("x-forwarded-for", forwarded),
                ],
                Body::from(json!({"query": "{ __typename }"}).to_string()),
            )
            .await
        }
    };
    // Behind the trusted proxy, each forwarded client has its own budget.
    let r = typename("10.0.0.1:1", "203.0.113.7").await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    let r = typename("10.0.0.1:1", "203.0.113.7").await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    let r = typename("10.0.0.1:1", "203.0.113.7").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = typename("10.0.0.1:1", "198.51.100.1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    // Anyone else's X-Forwarded-For is ignored: the peer is counted, not the claimed client.
    let r = typename("192.0.2.50:1", "198.51.100.1").await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    let r = typename("10.0.0.1:1", "198.51.100.1").await;
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
}

/// A GET of `/graphql` with these query-string parameters, with the tenant's key.
async fn send_get_with(app: &TestApp, key: &str, params: &[(&str, &str)]) -> Resp {
    let uri = format!(
        "/graphql?{}",
        serde_urlencoded::to_string(params).expect("encodes")
    );
    app.request(Method::GET, &uri, &[("x-api-key", key)], Body::empty())
        .await
}

/// A POST (or, with `get`, a GET) of `query` naming `operation`, with the tenant's key.
async fn send(app: &TestApp, key: &str, query: &str, operation: Option<&str>, get: bool) -> Resp {
    if get {
        let mut params = vec![("query", query)];
        params.extend(operation.map(|op| ("operationName", op)));
        return send_get_with(app, key, &params).await;
    }
    let body = json!({"query": query, "operationName": operation});
    app.post_graphql(Auth::Key(key), &body, &[]).await
}

async fn the_named_operation_is_the_one_checked_and_run(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let deep = "duplicateOf { ".repeat(10) + "id" + &" }".repeat(10);
    let doc = format!(
        r#"query A {{ me {{ id }} }}
           query Deep {{ lead(id: "x") {{ {deep} }} }}
           mutation B {{ createLead(input: {{email: "op@example.com", firstName: "O", lastName: "P", source: API}}) {{ id }} }}"#
    );
    let before = app.count("leads").await;
    // The named query runs, and only it.
    let r = send(&app, &t.key, &doc, Some("A"), false).await;
    assert!(r.data()["me"]["id"].is_string(), "{}", r.text);
    assert!(r.data().get("createLead").is_none());
    let r = send(&app, &t.key, &doc, Some("A"), true).await;
    assert!(r.data()["me"]["id"].is_string(), "{}", r.text);
    // The limits judge the named operation, not the first one.
    let r = send(&app, &t.key, &doc, Some("Deep"), false).await;
    assert_eq!(r.code(), Some("QUERY_TOO_COMPLEX"), "{}", r.text);
    assert_eq!(r.body["errors"][0]["extensions"]["limit"], "depth");
    // A GET naming the mutation is refused before anything runs.
    let r = send(&app, &t.key, &doc, Some("B"), true).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // No name with several operations, or a name the document lacks: nothing runs.
    for (name, get) in [(None, false), (None, true), (Some("C"), false)] {
        let r = send(&app, &t.key, &doc, name, get).await;
        assert!(r.body["data"].is_null(), "{name:?} get={get}: {}", r.text);
        assert!(!r.body["errors"][0]["message"].is_null(), "{}", r.text);
    }
    assert_eq!(app.count("leads").await, before, "nothing written");
    // Naming the mutation in a POST runs it once.
    let r = send(&app, &t.key, &doc, Some("B"), false).await;
    let id = r.data()["createLead"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(app.count("leads").await, before + 1);
    // GET takes variables as a JSON text, and refuses one that is not.
    let doc = "query($id: ID!) { lead(id: $id) { id } }";
    let vars = json!({"id": id}).to_string();
    let r = send_get_with(&app, &t.key, &[("query", doc), ("variables", &vars)]).await;
    assert_eq!(r.data()["lead"]["id"], id.as_str());
    let r = send_get_with(&app, &t.key, &[("query", doc), ("variables", "{id")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("invalid variables"), "{}", r.text);
}

async fn documents_over_a_limit_are_refused(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let k = Auth::Key(&t.key);
    let deep = "{ lead(id: \"x\") { duplicateOf { duplicateOf { duplicateOf { duplicateOf { duplicateOf { duplicateOf { duplicateOf { duplicateOf { duplicateOf { duplicateOf { id } } } } } } } } } } } }";
    let complex = "{ leads(first: 100) { edges { node { source { name } pipeline { stages { name } } stage { name } assignedTo { name } } } } }";
    let aliases = format!(
        "{{ {} }}",
        (0..31)
            .map(|i| format!("a{i}: me {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let roots = format!(
        "{{ {} }}",
        (0..21)
            .map(|i| format!("r{i}: __typename"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (q, limit) in [
        (deep, "depth"),
        (complex, "complexity"),
        (aliases.as_str(), "aliases"),
        (roots.as_str(), "rootFields"),
    ] {
        let r = app.gql(k, q, json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{limit}");
        assert_eq!(r.code(), Some("QUERY_TOO_COMPLEX"));
        assert_eq!(r.body["errors"][0]["extensions"]["limit"], limit);
    }
    // Under the limits, the same shapes run.
    let r = app.gql(k, "{ leads(first: 50) { edges { node { source { name } pipeline { name } stage { name } assignedTo { name } tags } } } }", json!({})).await;
    r.data();
    // Batches are capped.
    let batch = format!("[{}]", [r#"{"query":"{ __typename }"}"#; 11].join(","));
    let r = app
        .request(
            Method::POST,
            "/graphql",
            &[("content-type", "application/json")],
            Body::from(batch),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn introspection_can_be_turned_off(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ __schema { queryType { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["__schema"]["queryType"]["name"], "Query");
    let app = app.sibling(|c| c.graphql_introspection = false).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ __schema { queryType { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), Some("INTROSPECTION_DISABLED"));
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ __type(name: \"Lead\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), Some("INTROSPECTION_DISABLED"));
    let r = app
        .gql(Auth::Key(&t.key), "{ __typename }", json!({}))
        .await;
    assert_eq!(
        r.data()["__typename"],
        "Query",
        "__typename is not introspection"
    );
    let r = app
        .gql(Auth::Key(&t.key), "{ leadz { totalCount } }", json!({}))
        .await;
    let message = r.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        !message.contains("Did you mean"),
        "no field suggestions: {message}"
    );
}

async fn cost_feedback_in_extensions(app: TestApp) {
    let app = limited(app, 0).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 10) { edges { node { id source { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.body["extensions"]["cost"],
        json!({"requested": 10 * (1 + (1 + (1 + 1))), "maximum": 1000})
    );
    assert_eq!(
        r.body["extensions"]["rateLimit"],
        json!({"limit": 1000, "remaining": 99, "resetSeconds": 1})
    );
}

async fn timeouts_and_saturation_are_503(app: TestApp) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let slow = app.sibling(|c| c.request_timeout_ms = 300).await;
    let t = slow.tenant("Acme", Plan::Pro).await;
    // Hold the leads table so a create has to wait for longer than the request timeout.
    let lock = slow.db().begin().await.expect("begin");
    if slow.is_postgres() {
        lock.execute_unprepared("LOCK TABLE leads IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock");
    } else {
        lock.execute_unprepared("DELETE FROM leads WHERE id < 0")
            .await
            .expect("take the write lock");
    }
    let started = std::time::Instant::now();
    let r = slow
        .gql(Auth::Key(&t.key), "mutation { createLead(input: {email: \"a@b.co\", firstName: \"A\", lastName: \"B\"}) { id } }", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "SERVICE_UNAVAILABLE");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered at the timeout, not after the lock"
    );
    lock.rollback().await.expect("rollback");
    let busy = app.sibling(|c| c.max_concurrent_requests = 0).await;
    let r = busy
        .request(Method::GET, "/healthz", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "SERVICE_UNAVAILABLE");
    let r = app
        .request(Method::GET, "/healthz", &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// `{ __typename(a: …) }` with `value` as the argument, sent unauthenticated.
fn typename_with(value: &str) -> String {
    format!("{{ __typename(a: {value}) }}")
}

/// An unauthenticated GET of `/graphql` with these query-string parameters.
async fn anonymous_get(app: &TestApp, params: &[(&str, &str)]) -> Resp {
    let uri = format!(
        "/graphql?{}",
        serde_urlencoded::to_string(params).expect("encodes")
    );
    app.request(Method::GET, &uri, &[], Body::empty()).await
}

/// The server still answers a plain request.
async fn still_answers(app: &TestApp) {
    let r = app.gql(Auth::None, "{ __typename }", json!({})).await;
    assert_eq!(r.data()["__typename"], "Query", "{}", r.text);
}

fn refused_for(r: &Resp, limit: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), Some("QUERY_TOO_COMPLEX"), "{}", r.text);
    assert_eq!(
        r.body["errors"][0]["extensions"]["limit"], limit,
        "{}",
        r.text
    );
}

// Document bounds do not depend on the database: SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_nested_too_deep_are_refused_before_parsing() {
    let app = TestApp::sqlite().await;
    let lists = typename_with(&format!("{}1{}", "[".repeat(500), "]".repeat(500)));
    let objects = typename_with(&format!("{}1{}", "{a: ".repeat(500), "}".repeat(500)));
    for q in [&lists, &objects] {
        refused_for(&app.gql(Auth::None, q, json!({})).await, "nesting");
        refused_for(&anonymous_get(&app, &[("query", q)]).await, "nesting");
    }
    // In variables, over POST and GET.
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({ "a": [deep] });
    }
    let q = "query($v: String) { __typename }";
    let r = app.gql(Auth::None, q, json!({ "v": deep })).await;
    refused_for(&r, "nesting");
    let vars = json!({ "v": deep }).to_string();
    let r = anonymous_get(&app, &[("query", q), ("variables", &vars)]).await;
    refused_for(&r, "nesting");
    // Brackets inside strings and comments are text, not nesting.
    let q = format!("{{ __typename # {}\n a: __typename }}", "[".repeat(3000));
    assert_eq!(
        app.gql(Auth::None, &q, json!({})).await.data()["a"],
        "Query"
    );
    still_answers(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_deep_documents_never_take_the_server_down() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let app = TestApp::sqlite().await;
    let handle = tokio::runtime::Handle::current();
    // Lists and input objects, balanced, as deep as the parser's own guard lets through and
    // past it.
    let wrappers = prop::sample::select(vec![("[", "]"), ("{a: ", "}"), ("[{a: ", "}]")]);
    let strategy = (
        prop::collection::vec(wrappers, 1..8),
        60usize..2500,
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(pattern, depth, get)| {
        let layers: Vec<_> = pattern.iter().cycle().take(depth).collect();
        let open: String = layers.iter().map(|(o, _)| *o).collect();
        let close: String = layers.iter().rev().map(|(_, c)| *c).collect();
        let query = typename_with(&format!("{open}1{close}"));
        let r = tokio::task::block_in_place(|| {
            handle.block_on(async {
                if get {
                    anonymous_get(&app, &[("query", &query)]).await
                } else {
                    app.gql(Auth::None, &query, json!({})).await
                }
            })
        });
        prop_assert!(r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST);
        Ok(())
    });
    result.expect("every document gets an answer");
    still_answers(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_expansion_and_introspection_are_bounded() {
    let app = TestApp::sqlite().await;
    let mut q = String::from("{ ...F0 }");
    for i in 0..30 {
        q.push_str(&format!(
            " fragment F{i} on Query {{ ...F{n} ...F{n} }}",
            n = i + 1
        ));
    }
    q.push_str(" fragment F30 on Query { __typename }");
    // Refused by count: walking 2^30 fields would hold a core for minutes.
    refused_for(&app.gql(Auth::None, &q, json!({})).await, "selections");
    // Introspection that walks the schema's graph is refused at its third nested list.
    let walk = r#"{ __type(name: "Node") { possibleTypes { interfaces { possibleTypes { interfaces { possibleTypes { name } } } } } } }"#;
    refused_for(
        &app.gql(Auth::None, walk, json!({})).await,
        "introspectionDepth",
    );
    // ... and counts toward depth like any other field.
    let deep = format!(
        "{{ __schema {{ {} }} }}",
        "types { fields { args { type { ".repeat(3) + "name" + &" } } } }".repeat(3)
    );
    let r = app.gql(Auth::None, &deep, json!({})).await;
    assert_eq!(r.code(), Some("QUERY_TOO_COMPLEX"), "{}", r.text);
    // GraphiQL's own introspection query passes.
    let graphiql = include_str!("fixtures/introspection.graphql");
    let r = app.gql(Auth::None, graphiql, json!({})).await;
    assert!(
        r.data()["__schema"]["types"]
            .as_array()
            .is_some_and(|t| t.len() > 20)
    );
    still_answers(&app).await;
}

async fn every_credential_check_counts_against_the_ip(app: TestApp) {
    let app = limited(app, 30).await;
    // Two batched operations of 20 aliased logins each: 40 password checks in one request.
    let op = |n: usize| {
        let fields: Vec<String> = (0..20)
            .map(|i| {
                format!(
                    r#"l{i}: login(email: "nobody-{n}-{i}@example.com", password: "guess-{i}") {{ token }}"#
                )
            })
            .collect();
        json!({"query": format!("mutation {{ {} }}", fields.join(" "))})
    };
    let r = app
        .request_from(
            "203.0.113.20:1".parse().expect("addr"),
            Method::POST,
            "/graphql",
            &[("content-type", "application/json")],
            Body::from(json!([op(0), op(1)]).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes: Vec<&str> = r
        .body
        .as_array()
        .expect("batch")
        .iter()
        .flat_map(|resp| resp["errors"].as_array().cloned().unwrap_or_default())
        .map(|e| match e["extensions"]["code"].as_str() {
            Some("RATE_LIMITED") => "RATE_LIMITED",
            Some(_) => "checked",
            None => "none",
        })
        .collect();
    assert_eq!(codes.len(), 40, "{}", r.text);
    // The request's own unit covers the first check; the 29 left cover 29 more.
    assert_eq!(
        codes.iter().filter(|c| **c == "checked").count(),
        30,
        "{}",
        r.text
    );
    assert_eq!(codes.iter().filter(|c| **c == "RATE_LIMITED").count(), 10);
    let r = app
        .request_from(
            "203.0.113.20:1".parse().expect("addr"),
            Method::POST,
            "/graphql",
            &[("content-type", "application/json")],
            Body::from(op(2).to_string()),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address's budget is spent"
    );
}

async fn failed_logins_are_limited_per_account(app: TestApp) {
    let app = limited(app, 1000).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.user(&t, entity::enums::Role::Member).await;
    let app = &app;
    let login = |email: String, password: &'static str, n: u32| async move {
        let peer = format!("198.51.100.{n}:1").parse().expect("addr");
        rest_login(app, peer, &email, password).await
    };
    // Ten wrong passwords, each from another address.
    for n in 1..=10 {
        let r = login(t.owner.email.clone(), "wrong", n).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    // The account is closed to logins, even with the right password, from anywhere.
    let r = login(t.owner.email.to_uppercase(), "owner-password", 11).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["error"], "RATE_LIMITED");
    assert_eq!(r.header("retry-after"), Some("900"));
    // Other accounts are not.
    let r = login(other.email.clone(), "user-password", 12).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // When the window has passed, the right password works again.
    app.state
        .limits
        .clock
        .advance(std::time::Duration::from_secs(15 * 60));
    let r = login(t.owner.email.clone(), "owner-password", 13).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Serves the app on a real socket with short transport limits; returns its address.
async fn serve_for_real(app: &TestApp, header_read_timeout_ms: u64) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = leadgraph::transport::Limits {
        header_read_timeout: std::time::Duration::from_millis(header_read_timeout_ms),
        max_header_bytes: 16 * 1024,
        shutdown_grace: std::time::Duration::from_secs(1),
    };
    tokio::spawn(leadgraph::transport::serve(
        listener,
        app.router.clone(),
        limits,
        std::future::pending(),
    ));
    addr
}

/// Reads until the server closes the connection (or `within` passes); returns what came.
async fn read_until_closed(
    s: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&all).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_oversized_headers_are_cut_off() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let app = TestApp::sqlite().await;
    let addr = serve_for_real(&app, 300).await;
    // Half a request's headers: the connection is closed once the timeout passes.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let closed = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a slow client is cut off");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A kept-alive connection idle after its request is closed too.
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let got = read_until_closed(&mut idle, Duration::from_secs(5))
        .await
        .expect("closed after idling");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // Headers over the limit are refused.
    let mut big = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = big.write_all(request.as_bytes()).await;
    let got = read_until_closed(&mut big, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    // Meanwhile ordinary clients are served.
    let mut ok = tokio::net::TcpStream::connect(addr).await.expect("connect");
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let got = read_until_closed(&mut ok, Duration::from_secs(5))
        .await
        .expect("answer");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

async fn headers_describe_the_limit_that_binds(app: TestApp) {
    let app = limited(app, 5).await;
    let t = app.tenant("Acme", Plan::Team).await;
    // The team plan allows 500 at once, the address 5: the address's budget is reported.
    let headers = [("x-api-key", t.key.as_str())];
    let list = || {
        app.request_from(
            "203.0.113.50:1".parse().expect("addr"),
            Method::GET,
            "/v1/leads",
            &headers,
            Body::empty(),
        )
    };
    for left in (0..5).rev() {
        let r = list().await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            budget(&r),
            (
                Some("5"),
                Some(left.to_string().as_str()),
                r.header("x-ratelimit-reset")
            ),
            "{left}"
        );
    }
    let r = list().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

// ---- Limits shared through Redis (docs/deployment.md) ----

/// Two instances on one database counting in the Redis at `url`, under a prefix of their own.
async fn two_instances(url: &str) -> (TestApp, leadgraph::web::AppState) {
    let prefix = format!("leadgraph-test:{}:", uuid::Uuid::new_v4().simple());
    let url = url.to_owned();
    let app = TestApp::sqlite_with(move |c| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
        c.redis_timeout_ms = 200;
        c.tenant_rate_limits = true;
        c.rate_limit_per_ip = 0;
    })
    .await;
    let b =
        leadgraph::web::AppState::build(app.state.config.clone(), app.outside_connection().await)
            .await
            .expect("second instance");
    (app, b)
}

/// A tenant on the free plan (burst 10) sending to two instances in turn gets 10 requests in
/// all, then 429: the budget is one, in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget_in_redis() {
    let (a, b) = two_instances("redis://127.0.0.1:6379").await;
    let t = a.tenant("Acme", Plan::Free).await;
    let mut statuses = Vec::new();
    for i in 0..14 {
        let status = if i % 2 == 0 {
            a.get("/v1/leads", &t.key).await.status
        } else {
            common::get_via(&b, "/v1/leads", &t.key).await
        };
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(&statuses[10..], &[429, 429, 429, 429], "{statuses:?}");
    let r = a.get("/v1/leads", &t.key).await;
    assert_eq!(budget(&r).0, Some("60"));
    assert!(r.header("retry-after").is_some());
    let fallbacks = a
        .state
        .limits
        .shared
        .as_ref()
        .expect("shared")
        .fallbacks
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(fallbacks, 0);
}

/// A Redis of the test's own on a free port.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    async fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        PrivateRedis { child, port }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// With Redis stopped, both instances keep serving on their local limiters (no 5xx), counting
/// the fallbacks; when it is back they share the budget again by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_instances_fall_back_and_recover() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let redis = PrivateRedis::start(port).await;
    let (a, b) = two_instances(&format!("redis://127.0.0.1:{}", redis.port)).await;
    let t = a.tenant("Acme", Plan::Pro).await;
    assert_eq!(a.get("/v1/leads", &t.key).await.status, 200);
    drop(redis);
    for _ in 0..5 {
        assert_eq!(a.get("/v1/leads", &t.key).await.status, 200);
        assert_eq!(common::get_via(&b, "/v1/leads", &t.key).await, 200);
    }
    let fallbacks = |s: &leadgraph::web::AppState| {
        s.limits
            .shared
            .as_ref()
            .expect("shared")
            .fallbacks
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(fallbacks(&a.state) >= 5 && fallbacks(&b) >= 5);
    let metrics = a.request(Method::GET, "/metrics", &[], Body::empty()).await;
    assert!(
        metrics
            .text
            .contains("leadgraph_rate_limit_fallbacks_total"),
        "{}",
        metrics.text
    );
    // Back: within a couple of seconds the checks are answered by Redis again.
    let _redis = PrivateRedis::start(port).await;
    let mut shared_again = false;
    for _ in 0..60 {
        let before = fallbacks(&a.state);
        assert_eq!(a.get("/v1/leads", &t.key).await.status, 200);
        if fallbacks(&a.state) == before {
            shared_again = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shared_again, "still falling back");
}
