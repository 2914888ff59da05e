//! The change feed (docs/events.md): one event per committed lead change, in the change's
//! transaction; `events` and `GET /v1/events`, resumable with `after`, never skipping an event
//! when writers commit out of numbering order; retention and `410 CURSOR_EXPIRED`.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Auth, TestApp, TestTenant, snapshot};
use entity::enums::{EventType, Plan};
use leadgraph::ids::Kind;
use leadgraph::service::audit::Actor;
use leadgraph::service::event::{NewEvent, append};
use serde_json::{Value, json};

db_tests!(
    every_lead_change_appends_one_event,
    refused_and_empty_changes_append_nothing,
    the_feed_pages_filters_and_resumes,
    a_reader_never_skips_an_event_committed_out_of_order,
    an_expired_cursor_is_gone,
);

const NODE: &str = "id type occurredAt resourceType resourceId actor { userId onBehalfOfUserId apiKeyId } data changes";

/// `events(...)` as `key`; returns the connection.
async fn feed(app: &TestApp, key: &str, args: &str) -> Value {
    let q = format!(
        "{{ events{args} {{ edges {{ cursor node {{ {NODE} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let r = app.gql(Auth::Key(key), &q, json!({})).await;
    r.data()["events"].clone()
}

fn types(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["type"].as_str().expect("type").to_owned())
        .collect()
}

async fn create(app: &TestApp, t: &TestTenant, email: &str) -> String {
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($e: String!) { createLead(input: {email: $e, firstName: \"A\", lastName: \"B\"}) { id } }",
            json!({"e": email}),
        )
        .await;
    r.data()["createLead"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn every_lead_change_appends_one_event(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation { createPipeline(input: {name: \"Sales\", stages: [\"New\", \"Won\"]}) { id stages { id } } }",
            json!({}),
        )
        .await;
    let pipeline = r.data()["createPipeline"].clone();
    let lead = create(&app, &t, "jane@example.com").await;
    let vars =
        json!({"id": lead, "p": pipeline["id"], "s": pipeline["stages"][1]["id"], "u": t.owner.id});
    for q in [
        "mutation($id: ID!) { updateLead(id: $id, input: {score: 40, status: QUALIFIED}) { id } }",
        "mutation($id: ID!, $u: ID!) { assignLead(id: $id, userId: $u) { id } }",
        "mutation($id: ID!) { addLeadTags(id: $id, tags: [\"hot\"]) { id } }",
        "mutation($id: ID!) { removeLeadTags(id: $id, tags: [\"hot\"]) { id } }",
        "mutation($id: ID!, $p: ID!) { updateLead(id: $id, input: {pipelineId: $p}) { id } }",
        "mutation($id: ID!, $s: ID!) { moveLeadToStage(id: $id, stageId: $s) { id } }",
    ] {
        let mut v = vars.clone();
        // Send only the variables the operation declares.
        for k in ["p", "s", "u"] {
            if !q.contains(&format!("${k}:")) {
                v.as_object_mut().expect("object").remove(k);
            }
        }
        app.gql(Auth::Key(&t.key), q, v).await.data();
    }
    // A second lead with the same email is linked by duplicate detection, off the request.
    let copy = create(&app, &t, "JANE@example.com").await;
    app.settle().await;
    let v = json!({"id": lead});
    app.gql(
        Auth::Key(&t.key),
        "mutation($id: ID!) { deleteLead(id: $id) }",
        v,
    )
    .await
    .data();

    let conn = feed(&app, &t.key, "(first: 100)").await;
    assert_eq!(
        types(&conn),
        [
            "LEAD_CREATED",
            "LEAD_UPDATED",
            "LEAD_ASSIGNED",
            "LEAD_TAGS_CHANGED",
            "LEAD_TAGS_CHANGED",
            "LEAD_UPDATED",
            "LEAD_STAGE_CHANGED",
            "LEAD_CREATED",
            "LEAD_DUPLICATE_DETECTED",
            // Deleting the original unlinks its copy (a change of the copy), then deletes it.
            "LEAD_UPDATED",
            "LEAD_DELETED",
        ]
    );
    let node = |i: usize| conn["edges"][i]["node"].clone();
    let created = node(0);
    assert_eq!(created["resourceType"], "lead");
    assert_eq!(created["resourceId"], json!(lead));
    assert_eq!(created["data"]["email"], "jane@example.com");
    assert_eq!(created["data"]["status"], "new");
    assert_eq!(created["changes"], Value::Null);
    assert!(created["actor"]["apiKeyId"].is_string());
    assert_eq!(created["actor"]["userId"], json!(t.owner.id));
    let updated = node(1);
    assert_eq!(
        updated["changes"],
        json!({"score": {"from": 0, "to": 40}, "status": {"from": "new", "to": "qualified"}})
    );
    assert_eq!(updated["data"]["score"], 40);
    assert_eq!(node(2)["changes"]["assignedTo"]["to"], json!(t.owner.id));
    assert_eq!(
        node(3)["changes"]["tags"],
        json!({"from": [], "to": ["hot"]})
    );
    assert_eq!(
        node(6)["changes"]["stageId"]["to"],
        pipeline["stages"][1]["id"]
    );
    let detected = node(8);
    assert_eq!(detected["resourceId"], json!(copy));
    assert_eq!(
        detected["changes"]["duplicateOf"],
        json!({"from": null, "to": lead})
    );
    assert_eq!(
        detected["actor"],
        json!({"userId": null, "onBehalfOfUserId": null, "apiKeyId": null})
    );
    assert_eq!(node(9)["resourceId"], json!(copy));
    assert_eq!(
        node(9)["changes"]["duplicateOf"],
        json!({"from": lead, "to": null})
    );
    let deleted = node(10);
    assert_eq!(deleted["resourceId"], json!(lead));
    assert_eq!(deleted["data"]["stageId"], pipeline["stages"][1]["id"]);
    // Each event's data is the lead as REST shows it.
    let rest = app.get(&format!("/v1/leads/{copy}"), &t.key).await;
    assert_eq!(node(9)["data"], rest.body["data"]);
    // REST spells types as the spec does, and shows the same events.
    let r = app.get("/v1/events?limit=100", &t.key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["data"].as_array().expect("data");
    assert_eq!(items.len(), 11);
    assert_eq!(items[0]["type"], "lead.created");
    assert_eq!(items[6]["type"], "lead.stage_changed");
    assert_eq!(items[1]["changes"], updated["changes"]);
    assert_eq!(items[0]["id"], created["id"]);
}

async fn refused_and_empty_changes_append_nothing(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let lead = create(&app, &t, "jane@example.com").await;
    let before = snapshot(&app).await;
    // Invalid input, a read key, another tenant's lead: nothing is written, no event.
    let read = app.key(&t.owner.token, "READ", "LIVE").await.1;
    let other = app.tenant("Globex", Plan::Pro).await;
    for (key, q) in [
        (
            &t.key,
            "mutation($id: ID!) { updateLead(id: $id, input: {score: 101}) { id } }",
        ),
        (
            &read,
            "mutation($id: ID!) { updateLead(id: $id, input: {score: 1}) { id } }",
        ),
        (&other.key, "mutation($id: ID!) { deleteLead(id: $id) }"),
    ] {
        let r = app.gql(Auth::Key(key), q, json!({"id": lead})).await;
        assert!(r.code().is_some(), "{}", r.body);
    }
    let r = app
        .request(
            axum::http::Method::POST,
            "/v1/leads",
            &[("x-api-key", &t.key), ("content-type", "application/json")],
            axum::body::Body::from(r#"{"email": "bad", "firstName": "A", "lastName": "B"}"#),
        )
        .await;
    assert_eq!(r.status, 422);
    // An update that changes nothing is audited but tells the feed nothing.
    app.gql(
        Auth::Key(&t.key),
        "mutation($id: ID!) { updateLead(id: $id, input: {firstName: \"A\"}) { id } }",
        json!({"id": lead}),
    )
    .await
    .data();
    let after = snapshot(&app).await;
    let events = |s: &[(&str, i64)]| s.iter().find(|(t, _)| *t == "events").map(|(_, n)| *n);
    assert_eq!(events(&after), events(&before));
    assert_eq!(events(&after), Some(1));
    // The feed is the caller's tenant's and environment's: others see none of it.
    assert_eq!(types(&feed(&app, &other.key, "").await).len(), 0);
    let sandbox = app.key(&t.owner.token, "FULL", "SANDBOX").await.1;
    assert_eq!(types(&feed(&app, &sandbox, "").await).len(), 0);
    // A read key may read the feed.
    assert_eq!(types(&feed(&app, &read, "").await), ["LEAD_CREATED"]);
}

async fn the_feed_pages_filters_and_resumes(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let mut leads = Vec::new();
    for i in 0..5 {
        leads.push(create(&app, &t, &format!("l{i}@example.com")).await);
    }
    app.gql(
        Auth::Key(&t.key),
        "mutation($id: ID!) { updateLead(id: $id, input: {score: 9}) { id } }",
        json!({"id": leads[2]}),
    )
    .await
    .data();
    // Pages of two, following endCursor, see all six in order, once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let args = match &after {
            Some(c) => format!("(first: 2, after: \"{c}\")"),
            None => "(first: 2)".to_owned(),
        };
        let conn = feed(&app, &t.key, &args).await;
        for e in conn["edges"].as_array().expect("edges") {
            seen.push(e["node"]["id"].as_str().expect("id").to_owned());
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
    }
    assert_eq!(seen.len(), 6);
    // At the end the cursor stays where the reader is: a later change appears after it.
    let end = after.expect("a cursor");
    let empty = feed(&app, &t.key, &format!("(after: \"{end}\")")).await;
    assert_eq!(types(&empty).len(), 0);
    assert_eq!(empty["pageInfo"]["endCursor"], json!(end));
    let fresh = create(&app, &t, "late@example.com").await;
    let next = feed(&app, &t.key, &format!("(after: \"{end}\")")).await;
    assert_eq!(next["edges"][0]["node"]["resourceId"], json!(fresh));
    // Filters: by type, by lead.
    let updates = feed(&app, &t.key, "(types: [LEAD_UPDATED])").await;
    assert_eq!(types(&updates), ["LEAD_UPDATED"]);
    let of_lead = feed(&app, &t.key, &format!("(resourceId: \"{}\")", leads[2])).await;
    assert_eq!(types(&of_lead), ["LEAD_CREATED", "LEAD_UPDATED"]);
    // REST: limit, after = meta.nextCursor, type list.
    let r = app.get("/v1/events?limit=4", &t.key).await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(4));
    assert_eq!(r.body["meta"]["hasMore"], true);
    let cursor = r.body["meta"]["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let r = app.get(&format!("/v1/events?after={cursor}"), &t.key).await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(r.body["meta"]["hasMore"], false);
    let r = app
        .get("/v1/events?type=lead.updated,lead.deleted", &t.key)
        .await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1));
    // Bad arguments are refused with the documented codes.
    let r = app.get("/v1/events?type=lead.exploded", &t.key).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{}",
        r.text
    );
    let r = app
        .get(&format!("/v1/events?after={}", leads[0]), &t.key)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "after");
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ events(first: 101) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), Some("VALIDATION_FAILED"));
    let r = app.get("/v1/events", "lg_live_nope").await;
    assert_eq!(r.status, 401);
}

/// Writer A takes number N and has not committed; writer B changes a lead meanwhile. Until A
/// commits, a reader must see neither (with a plain sequence it would see B's N+1 and, resuming
/// after it, never see N).
async fn a_reader_never_skips_an_event_committed_out_of_order(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let lead = create(&app, &t, "jane@example.com").await;
    let start = feed(&app, &t.key, "").await["pageInfo"]["endCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let tenant_id = app
        .state
        .ids
        .decode(Kind::Tenant, &t.id)
        .expect("tenant id");
    let lead_id = app.state.ids.decode(Kind::Lead, &lead).expect("lead id");
    let outside = app.outside_connection().await;
    let a = leadgraph::db::begin_write(&outside).await.expect("begin A");
    let actor = Actor {
        tenant_id,
        environment: entity::enums::Environment::Live,
        actor_user_id: None,
        on_behalf_of_user_id: None,
        api_key_id: None,
    };
    let event = NewEvent::lead(EventType::LeadUpdated, lead_id, None, json!({"by": "A"}));
    append(&app.state.outbox, &a, actor, vec![event])
        .await
        .expect("A appends");
    let b = app.gql(
        Auth::Key(&t.key),
        "mutation($id: ID!) { updateLead(id: $id, input: {score: 7}) { id } }",
        json!({"id": lead}),
    );
    let reader = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let seen = types(&feed(&app, &t.key, &format!("(after: \"{start}\")")).await);
        a.commit().await.expect("commit A");
        seen
    };
    let (b, seen_before_a) = tokio::join!(b, reader);
    b.data();
    assert!(
        seen_before_a.is_empty(),
        "saw {seen_before_a:?} before A committed"
    );
    let conn = feed(&app, &t.key, &format!("(after: \"{start}\")")).await;
    assert_eq!(types(&conn), ["LEAD_UPDATED", "LEAD_UPDATED"]);
    assert_eq!(conn["edges"][0]["node"]["data"], json!({"by": "A"}));
    assert_eq!(conn["edges"][1]["node"]["data"]["score"], 7);
}

async fn an_expired_cursor_is_gone(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    create(&app, &t, "a@example.com").await;
    let first = feed(&app, &t.key, "").await["pageInfo"]["endCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    create(&app, &t, "b@example.com").await;
    let second = feed(&app, &t.key, "").await["pageInfo"]["endCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    create(&app, &t, "c@example.com").await;
    // The first two events fall out of a 30-day retention.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let old = chrono::Utc::now() - chrono::Duration::days(31);
    let tenant_id = app
        .state
        .ids
        .decode(Kind::Tenant, &t.id)
        .expect("tenant id");
    entity::event::Entity::update_many()
        .col_expr(entity::event::Column::OccurredAt, Expr::value(old))
        .filter(entity::event::Column::TenantId.eq(tenant_id))
        .filter(entity::event::Column::Seq.lte(2))
        .exec(app.db())
        .await
        .expect("age two events");
    let other = app.tenant("Globex", Plan::Pro).await;
    create(&app, &other, "x@example.com").await;
    let deleted = leadgraph::service::event::prune(app.db(), 30)
        .await
        .expect("prune");
    assert_eq!(deleted, 2);
    // After the first event: the second is gone, so the reader would miss it.
    let r = app.get(&format!("/v1/events?after={first}"), &t.key).await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(r.body["error"], "CURSOR_EXPIRED");
    let r = app
        .gql(
            Auth::Key(&t.key),
            &format!("{{ events(after: \"{first}\") {{ edges {{ cursor }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(r.code(), Some("CURSOR_EXPIRED"));
    // After the second (the last pruned) nothing is missing; without a cursor the oldest kept.
    let r = app.get(&format!("/v1/events?after={second}"), &t.key).await;
    assert_eq!(
        r.body["data"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    assert_eq!(types(&feed(&app, &t.key, "").await).len(), 1);
    // Other tenants' streams keep their events.
    assert_eq!(types(&feed(&app, &other.key, "").await).len(), 1);
}

// ---- Outbound webhooks (docs/events.md) ----

db_tests!(
    webhook_endpoints_are_managed_and_refusals_write_nothing,
    deliveries_are_signed_retried_and_logged,
    private_targets_are_refused_at_send_time,
    a_failing_endpoint_is_disabled_with_a_reason,
    a_stream_counts_its_enabled_endpoints,
);

/// A local HTTP receiver: records each request; answers the statuses of `answers` in turn,
/// then 200.
struct Receiver {
    url: String,
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

async fn receiver(answers: Vec<u16>) -> Receiver {
    use axum::http::{HeaderMap, StatusCode};
    let got: std::sync::Arc<std::sync::Mutex<Vec<(HeaderMap, String)>>> = Default::default();
    let answers = std::sync::Arc::new(std::sync::Mutex::new(answers.into_iter()));
    let (g, a) = (got.clone(), answers.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (g, a) = (g.clone(), a.clone());
            async move {
                g.lock().expect("lock").push((headers, body));
                let code = a.lock().expect("lock").next().unwrap_or(200);
                (StatusCode::from_u16(code).expect("status"), "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://127.0.0.1:{port}/hook"),
        port,
        got,
    }
}

impl Receiver {
    fn count(&self) -> usize {
        self.got.lock().expect("lock").len()
    }
    async fn wait_for(&self, n: usize) {
        for _ in 0..1200 {
            if self.count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the receiver got {} requests, not {n}", self.count());
    }
}

/// The app with a running delivery worker and fast retries; `allow_private` lets it reach the
/// local receiver.
async fn with_worker(
    app: &TestApp,
    allow_private: bool,
    disable_after_secs: u64,
) -> (TestApp, tokio_util::sync::CancellationToken) {
    let app = app
        .sibling(|c| {
            c.webhook_allow_private_targets = allow_private;
            c.webhook_retry_scale = 0.01;
            c.webhook_poll_ms = 20;
            c.webhook_disable_after_secs = disable_after_secs;
        })
        .await;
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(leadgraph::service::delivery::run(
        app.state.app.clone(),
        stop.clone(),
    ));
    (app, stop)
}

async fn endpoint(app: &TestApp, t: &TestTenant, url: &str, events: &str) -> (String, String) {
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            &format!("mutation($u: String!) {{ createWebhookEndpoint(input: {{url: $u{events}}}) {{ secret endpoint {{ id }} }} }}"),
            json!({"u": url}),
        )
        .await;
    let d = &r.data()["createWebhookEndpoint"];
    (
        d["endpoint"]["id"].as_str().expect("id").to_owned(),
        d["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn deliveries(app: &TestApp, t: &TestTenant, endpoint: &str) -> Value {
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 100) { edges { node { \
             id messageId eventType status attempts lastStatusCode payload \
             attemptLog { statusCode error latencyMs responseBody } } } } }",
            json!({"e": endpoint}),
        )
        .await;
    r.data()["webhookDeliveries"]["edges"].clone()
}

async fn webhook_endpoints_are_managed_and_refusals_write_nothing(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (id, secret) = endpoint(
        &app,
        &t,
        "https://hooks.example.com/leads",
        ", events: [LEAD_CREATED]",
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .expect("base64");
    assert_eq!(key.len(), 32);
    // REST: list (no secret), get, patch, rotate (a new secret), delete.
    let r = app.get("/v1/webhook-endpoints", &t.key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"][0]["events"], json!(["lead.created"]));
    assert!(r.body["data"][0].get("secret").is_none());
    assert!(!r.text.contains(&secret));
    let uri = format!("/v1/webhook-endpoints/{id}");
    let headers = [
        ("x-api-key", t.key.as_str()),
        ("content-type", "application/json"),
    ];
    let patch = |body: Value| {
        app.request(
            axum::http::Method::PATCH,
            &uri,
            &headers,
            axum::body::Body::from(body.to_string()),
        )
    };
    let r = patch(json!({"events": ["lead.updated", "lead.deleted"], "enabled": false})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"]["events"],
        json!(["lead.deleted", "lead.updated"])
    );
    assert_eq!(r.body["data"]["enabled"], false);
    let rotate = app
        .request(
            axum::http::Method::POST,
            &format!("/v1/webhook-endpoints/{id}/rotate-secret"),
            &[("x-api-key", &t.key)],
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(rotate.status, 200, "{}", rotate.text);
    let new_secret = rotate.body["data"]["secret"].as_str().expect("secret");
    assert_ne!(new_secret, secret);
    assert!(rotate.body["data"]["previousSecretExpiresAt"].is_string());

    // Refusals write nothing: bad URLs, bad types, members, read keys, the free plan.
    let before = snapshot(&app).await;
    let endpoints_before = app.count("webhook_endpoints").await;
    let r = patch(json!({"events": ["lead.exploded"]})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    for url in [
        "ftp://example.com/x",
        "not a url",
        "https://user:pw@example.com/",
    ] {
        let r = app
            .gql(
                Auth::Bearer(&t.owner.token),
                "mutation($u: String!) { createWebhookEndpoint(input: {url: $u}) { secret } }",
                json!({"u": url}),
            )
            .await;
        assert_eq!(r.code(), Some("VALIDATION_FAILED"), "{url}: {}", r.body);
    }
    let member = app.user(&t, entity::enums::Role::Member).await;
    let read = app.key(&t.owner.token, "READ", "LIVE").await.1;
    let free = app.tenant("Tiny", Plan::Free).await;
    for (auth, code) in [
        (Auth::Bearer(&member.token), "FORBIDDEN"),
        (Auth::Key(&read), "INSUFFICIENT_SCOPE"),
        (Auth::Bearer(&free.owner.token), "INSUFFICIENT_PLAN"),
    ] {
        let r = app
            .gql(auth, "mutation { createWebhookEndpoint(input: {url: \"https://x.example.com\"}) { secret } }", json!({}))
            .await;
        assert_eq!(r.code(), Some(code), "{}", r.body);
    }
    // REST checks the caller before the body: a read key's invalid create is 403.
    let r = app
        .request(
            axum::http::Method::POST,
            "/v1/webhook-endpoints",
            &[("x-api-key", &read), ("content-type", "application/json")],
            axum::body::Body::from(r#"{"url": 5}"#),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(app.count("webhook_endpoints").await, endpoints_before);
    let after = snapshot(&app).await;
    // Only the free tenant made above was written.
    let tenants = |s: &[(&str, i64)]| s.iter().find(|(n, _)| *n == "tenants").map(|(_, n)| *n);
    assert_eq!(tenants(&after), tenants(&before).map(|n| n + 1));
    // Another tenant cannot see or touch the endpoint.
    let other = app.tenant("Globex", Plan::Pro).await;
    let r = app
        .get(&format!("/v1/webhook-endpoints/{id}"), &other.key)
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .request(
            axum::http::Method::DELETE,
            &format!("/v1/webhook-endpoints/{id}"),
            &[("x-api-key", &t.key)],
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.count("webhook_endpoints").await, 0);
}

async fn deliveries_are_signed_retried_and_logged(app: TestApp) {
    let (app, stop) = with_worker(&app, true, 3600).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    // The first attempt fails; the retry succeeds.
    let rx = receiver(vec![500]).await;
    let (id, secret) = endpoint(&app, &t, &rx.url, ", events: [LEAD_CREATED, LEAD_UPDATED]").await;
    let lead = create(&app, &t, "jane@example.com").await;
    // Not subscribed: a tag change queues nothing.
    app.gql(
        Auth::Key(&t.key),
        "mutation($id: ID!) { addLeadTags(id: $id, tags: [\"x\"]) { id } }",
        json!({"id": lead}),
    )
    .await
    .data();
    rx.wait_for(2).await;
    let got = rx.got.lock().expect("lock").clone();
    let (h0, b0) = &got[0];
    let (h1, b1) = &got[1];
    assert_eq!(
        h0["webhook-id"], h1["webhook-id"],
        "retries keep the webhook-id"
    );
    assert_eq!(b0, b1, "retries send the same body");
    assert_eq!(h1["content-type"], "application/json");
    assert!(
        h1["user-agent"]
            .to_str()
            .expect("ua")
            .starts_with("leadgraph/")
    );
    let body: Value = serde_json::from_str(b1).expect("json");
    assert_eq!(body["type"], "lead.created");
    assert_eq!(body["id"], h1["webhook-id"].to_str().expect("id"));
    assert_eq!(body["data"]["resourceId"], json!(lead));
    assert_eq!(body["data"]["data"]["email"], "jane@example.com");
    // The signature is Standard Webhooks' (the client tests verify it with its library too).
    let ts: i64 = h1["webhook-timestamp"]
        .to_str()
        .expect("ts")
        .parse()
        .expect("int");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    let expected = leadgraph::service::delivery::signature(
        &[&secret],
        h1["webhook-id"].to_str().expect("id"),
        ts,
        b1,
    );
    assert_eq!(h1["webhook-signature"].to_str().expect("sig"), expected);
    // The log: one delivery, two attempts (500, then 200), succeeded.
    let mut log = deliveries(&app, &t, &id).await;
    for _ in 0..100 {
        if log[0]["node"]["status"] == "SUCCEEDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = deliveries(&app, &t, &id).await;
    }
    assert_eq!(log.as_array().map(Vec::len), Some(1));
    let d = &log[0]["node"];
    assert_eq!(d["status"], "SUCCEEDED");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["attemptLog"][0]["statusCode"], 500);
    assert_eq!(d["attemptLog"][1]["statusCode"], 200);
    assert_eq!(d["attemptLog"][1]["responseBody"], "ok");
    let m = app
        .request(
            axum::http::Method::GET,
            "/metrics",
            &[],
            axum::body::Body::empty(),
        )
        .await;
    for line in [
        "leadgraph_webhook_attempts_total{outcome=\"succeeded\"} 1",
        "leadgraph_webhook_attempts_total{outcome=\"retrying\"} 1",
        "leadgraph_webhook_attempt_seconds_count 2",
        "leadgraph_webhook_queue_depth ",
    ] {
        assert!(m.text.contains(line), "{line} in {}", m.text);
    }
    // Redelivery sends the same message again; a test send reaches it too.
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { status } }",
            json!({"d": d["id"]}),
        )
        .await;
    r.data();
    rx.wait_for(3).await;
    let r = app
        .request(
            axum::http::Method::POST,
            &format!("/v1/webhook-endpoints/{id}/test"),
            &[("x-api-key", &t.key)],
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    rx.wait_for(4).await;
    let got = rx.got.lock().expect("lock").clone();
    assert_eq!(got[2].0["webhook-id"], h0["webhook-id"]);
    let test: Value = serde_json::from_str(&got[3].1).expect("json");
    assert_eq!(test["type"], "webhook.test");
    // After a rotation both secrets sign, for the overlap.
    app.gql(
        Auth::Bearer(&t.owner.token),
        "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { secret } }",
        json!({"id": id}),
    )
    .await
    .data();
    app.gql(
        Auth::Key(&t.key),
        "mutation($id: ID!) { updateLead(id: $id, input: {score: 3}) { id } }",
        json!({"id": lead}),
    )
    .await
    .data();
    rx.wait_for(5).await;
    let got = rx.got.lock().expect("lock").clone();
    let sig = got[4].0["webhook-signature"]
        .to_str()
        .expect("sig")
        .to_owned();
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
    stop.cancel();
}

async fn private_targets_are_refused_at_send_time(app: TestApp) {
    let (app, stop) = with_worker(&app, false, 3600).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let rx = receiver(vec![]).await;
    // A literal loopback address, and a name that resolves to one.
    let (literal, _) = endpoint(&app, &t, &rx.url, "").await;
    let named = format!("http://localhost:{}/hook", rx.port);
    let (by_name, _) = endpoint(&app, &t, &named, "").await;
    create(&app, &t, "jane@example.com").await;
    for id in [&literal, &by_name] {
        let mut log = deliveries(&app, &t, id).await;
        for _ in 0..200 {
            if log[0]["node"]["attempts"].as_i64().unwrap_or(0) >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            log = deliveries(&app, &t, id).await;
        }
        let error = log[0]["node"]["attemptLog"][0]["error"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(error.contains("refused"), "{id}: {log}");
        assert_eq!(log[0]["node"]["attemptLog"][0]["statusCode"], Value::Null);
    }
    assert_eq!(rx.count(), 0, "nothing reached the private address");
    stop.cancel();
}

async fn a_failing_endpoint_is_disabled_with_a_reason(app: TestApp) {
    let (app, stop) = with_worker(&app, true, 0).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let rx = receiver(vec![503, 503, 503]).await;
    let (id, _) = endpoint(&app, &t, &rx.url, "").await;
    create(&app, &t, "jane@example.com").await;
    rx.wait_for(1).await;
    let q = "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason } }";
    let mut e = Value::Null;
    for _ in 0..200 {
        e = app
            .gql(Auth::Bearer(&t.owner.token), q, json!({"id": id}))
            .await
            .data()["webhookEndpoint"]
            .clone();
        if e["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e["enabled"], false, "{e}");
    assert_eq!(stream_endpoints(&app).await, 0);
    assert!(
        e["disabledReason"]
            .as_str()
            .expect("reason")
            .contains("503"),
        "{e}"
    );
    // Disabled: it receives nothing, and what was pending waits. Enabled again: the reason
    // is gone and the pending retry goes at once.
    let sent = rx.count();
    create(&app, &t, "john@example.com").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), sent);
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: true}) { enabled disabledReason } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        r.data()["updateWebhookEndpoint"],
        json!({"enabled": true, "disabledReason": null})
    );
    rx.wait_for(sent + 1).await;
    stop.cancel();
}

/// The enabled endpoints the event streams count (what appending trusts).
async fn stream_endpoints(app: &TestApp) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = app
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            app.db().get_database_backend(),
            "SELECT CAST(COALESCE(SUM(endpoints), 0) AS BIGINT) AS n FROM event_streams",
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

async fn a_stream_counts_its_enabled_endpoints(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    // Created at once: each counts after the others' commits, so none is lost.
    let urls: Vec<String> = (0..4)
        .map(|i| format!("https://hooks.example.com/{i}"))
        .collect();
    let ids: Vec<String> =
        futures::future::join_all(urls.iter().map(|u| endpoint(&app, &t, u, "")))
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
    assert_eq!(stream_endpoints(&app).await, 4);
    // Each create a new email, so no duplicate is detected to be delivered meanwhile.
    let made = std::sync::atomic::AtomicUsize::new(0);
    let queued = |n: i64| {
        let (app, t) = (&app, &t);
        let i = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let before = app.count("webhook_deliveries").await;
            create(app, t, &format!("lead{i}@example.com")).await;
            assert_eq!(app.count("webhook_deliveries").await - before, n);
        }
    };
    queued(4).await;
    let set = |id: String, enabled: bool| {
        let t = &t;
        let app = &app;
        async move {
            let r = app
                .gql(
                    Auth::Bearer(&t.owner.token),
                    "mutation($id: ID!, $on: Boolean!) { updateWebhookEndpoint(id: $id, input: {enabled: $on}) { enabled } }",
                    json!({"id": id, "on": enabled}),
                )
                .await;
            assert_eq!(r.data()["updateWebhookEndpoint"]["enabled"], enabled);
        }
    };
    set(ids[0].clone(), false).await;
    assert_eq!(stream_endpoints(&app).await, 3);
    queued(3).await;
    let r = app
        .request(
            axum::http::Method::DELETE,
            &format!("/v1/webhook-endpoints/{}", ids[1]),
            &[("x-api-key", t.key.as_str())],
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(stream_endpoints(&app).await, 2);
    queued(2).await;
    set(ids[0].clone(), true).await;
    assert_eq!(stream_endpoints(&app).await, 3);
    queued(3).await;
    // Another environment's stream has none.
    let (_, sandbox) = app.key(&t.owner.token, "FULL", "SANDBOX").await;
    let before = app.count("webhook_deliveries").await;
    let r = app
        .gql(
            Auth::Key(&sandbox),
            "mutation { createLead(input: {email: \"s@example.com\", firstName: \"A\", lastName: \"B\"}) { id } }",
            json!({}),
        )
        .await;
    r.data();
    assert_eq!(app.count("webhook_deliveries").await, before);
}

// ---- Several instances on one PostgreSQL database (docs/deployment.md) ----

pg_tests!(
    a_subscriber_hears_events_committed_by_another_instance,
    two_instances_share_the_delivery_queue_without_sending_twice,
    a_key_revoked_through_one_instance_is_refused_by_another_within_a_second,
);

/// A second server state on the same database, as a second process would have.
async fn second_instance(app: &TestApp) -> leadgraph::web::AppState {
    leadgraph::web::AppState::build(app.state.config.clone(), app.outside_connection().await)
        .await
        .expect("second instance")
}

async fn a_subscriber_hears_events_committed_by_another_instance(app: TestApp) {
    let b = second_instance(&app).await;
    let mut heard = b.outbox.committed.subscribe();
    // The listener of instance B needs a moment to LISTEN.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let lead = create(&app, &t, "jane@example.com").await;
    let lead_id = app.state.ids.decode(Kind::Lead, &lead).expect("id");
    let e = tokio::time::timeout(Duration::from_secs(1), heard.recv())
        .await
        .expect("within a second")
        .expect("an event");
    assert_eq!(e.event_type, EventType::LeadCreated);
    assert_eq!(e.resource_id, Some(lead_id));
}

async fn two_instances_share_the_delivery_queue_without_sending_twice(app: TestApp) {
    let (app, stop) = with_worker(&app, true, 3600).await;
    let b = second_instance(&app).await;
    tokio::spawn(leadgraph::service::delivery::run(
        b.app.clone(),
        stop.clone(),
    ));
    let t = app.tenant("Acme", Plan::Pro).await;
    let rx = receiver(vec![]).await;
    endpoint(&app, &t, &rx.url, "").await;
    // 1 000 events: 500 leads created and updated, twenty requests at a time.
    for chunk in 0..25 {
        let emails: Vec<String> = (0..20)
            .map(|i| format!("l{chunk}-{i}@example.com"))
            .collect();
        let leads = futures::future::join_all(emails.iter().map(|e| create(&app, &t, e))).await;
        let updates = leads.iter().map(|id| {
            app.gql(
                Auth::Key(&t.key),
                "mutation($id: ID!) { updateLead(id: $id, input: {score: 1}) { id } }",
                json!({"id": id}),
            )
        });
        for r in futures::future::join_all(updates).await {
            r.data();
        }
    }
    rx.wait_for(1000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.got.lock().expect("lock").clone();
    let mut ids: Vec<String> = got
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1000, "no delivery was sent twice");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
    stop.cancel();
}

async fn a_key_revoked_through_one_instance_is_refused_by_another_within_a_second(app: TestApp) {
    let b = second_instance(&app).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let (key_id, key) = app.key(&t.owner.token, "FULL", "LIVE").await;
    // B has looked the key up and caches it (for --key-cache-ttl-secs, far over a second).
    assert_eq!(common::get_via(&b, "/v1/leads", &key).await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .request(
            axum::http::Method::DELETE,
            &format!("/v1/api-keys/{key_id}"),
            &[("authorization", &format!("Bearer {}", t.owner.token))],
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let started = std::time::Instant::now();
    let mut status = axum::http::StatusCode::OK;
    while started.elapsed() < Duration::from_secs(1) {
        status = common::get_via(&b, "/v1/leads", &key).await;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401, "still accepted after {:?}", started.elapsed());
    // A plan change (an operator command on another process) reaches B's cache too: the
    // tenant's key, cached as pro, may no longer write.
    let (_, writer) = app.key(&t.owner.token, "FULL", "LIVE").await;
    assert_eq!(common::get_via(&b, "/v1/leads", &writer).await, 200);
    let tenant = leadgraph::service::tenant::find(&app.state, &t.slug)
        .await
        .expect("the tenant");
    leadgraph::service::tenant::set_plan(app.db(), tenant.id, Plan::Free)
        .await
        .expect("set plan");
    let create = |key: String| {
        let b = &b;
        async move {
            let headers = [
                ("x-api-key", key.as_str()),
                ("content-type", "application/json"),
            ];
            let body = r#"{"email": "p@example.com", "firstName": "P", "lastName": "Q"}"#;
            common::status_via(
                b,
                axum::http::Method::POST,
                "/v1/leads",
                &headers,
                body.into(),
            )
            .await
        }
    };
    let started = std::time::Instant::now();
    let mut status = axum::http::StatusCode::CREATED;
    while started.elapsed() < Duration::from_secs(1) {
        status = create(writer.clone()).await;
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status,
        403,
        "the old plan still applied after {:?}",
        started.elapsed()
    );
}
