//! Bulk and safe writes (docs/rest.md): idempotency keys on REST writes and
//! GraphQL mutations; batches, upsert and merge.

#[macro_use]
mod common;

use axum::body::Body;
use axum::http::Method;
use common::{Auth, Resp, TestApp, snapshot};
use entity::enums::Plan;
use futures::StreamExt;
use sea_orm::ConnectionTrait;
use serde_json::json;

db_tests!(
    a_retried_write_is_answered_and_writes_nothing,
    a_key_is_for_one_request_of_one_credential,
    bad_keys_and_refusals_are_not_kept,
    a_key_whose_first_request_runs_is_in_progress,
    concurrent_retries_write_once,
    a_batch_is_created_whole_or_not_at_all,
    upsert_creates_then_updates_and_refuses_ambiguity,
    merge_combines_duplicates_into_one_lead,
    concurrent_merges_lose_and_double_nothing,
    a_csv_import_creates_leads_and_lists_bad_rows,
    imports_skip_update_or_create_duplicates_and_dry_runs_write_nothing,
    a_bad_header_or_body_refuses_the_import_whole,
    an_export_imported_into_an_empty_tenant_reproduces_its_leads,
    an_import_killed_mid_way_resumes_and_imports_each_row_once,
    graphql_uploads_a_file_to_import,
    a_cancelled_import_writes_no_more,
    an_upload_under_a_key_is_received_once,
    a_graphql_upload_retried_with_a_new_boundary_is_replayed,
);

/// `POST /v1/leads` with `body` as `key`, and an `Idempotency-Key` when given.
async fn post_lead(app: &TestApp, key: &str, idem: Option<&str>, body: &str) -> Resp {
    let mut headers = vec![("x-api-key", key), ("content-type", "application/json")];
    if let Some(k) = idem {
        headers.push(("idempotency-key", k));
    }
    app.request(
        Method::POST,
        "/v1/leads",
        &headers,
        Body::from(body.to_owned()),
    )
    .await
}

const JANE: &str =
    r#"{"email": "jane@example.com", "firstName": "Jane", "lastName": "Doe", "tags": ["a", "b"]}"#;

async fn a_retried_write_is_answered_and_writes_nothing(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let first = post_lead(&app, &t.key, Some("order-1"), JANE).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    app.settle().await;
    let before = snapshot(&app).await;
    // The same request again, its keys in another order and spaced otherwise: the first
    // response, marked, and no second lead, event or audit entry.
    let again = post_lead(
        &app,
        &t.key,
        Some("order-1"),
        r#"{"tags":["a","b"],"lastName":"Doe","firstName":"Jane","email":"jane@example.com"}"#,
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["data"], first.body["data"]);
    assert_eq!(again.header("content-type"), first.header("content-type"));
    app.settle().await;
    assert_eq!(snapshot(&app).await, before);

    // GraphQL: a mutation request is keyed the same way.
    let m = "mutation { createLead(input: {email: \"john@example.com\", firstName: \"J\", lastName: \"D\"}) { id } }";
    let run = || {
        app.gql_with(
            Auth::Key(&t.key),
            m,
            json!({}),
            &[("idempotency-key", "gql-1")],
        )
    };
    let one = run().await;
    let id = one.data()["createLead"]["id"].clone();
    app.settle().await;
    let before = snapshot(&app).await;
    let two = run().await;
    assert_eq!(two.header("idempotent-replayed"), Some("true"));
    assert_eq!(two.data()["createLead"]["id"], id);
    app.settle().await;
    assert_eq!(snapshot(&app).await, before);

    // A query carries no write: its key is ignored and it runs each time.
    let q = || {
        app.gql_with(
            Auth::Key(&t.key),
            "{ leads(first: 1) { totalCount } }",
            json!({}),
            &[("idempotency-key", "read-1")],
        )
    };
    assert_eq!(q().await.header("idempotent-replayed"), None);
    assert_eq!(q().await.header("idempotent-replayed"), None);

    // DELETE and PATCH too.
    let lead = first.body["data"]["id"].as_str().expect("id").to_owned();
    let uri = format!("/v1/leads/{lead}");
    let patch_headers = [
        ("x-api-key", t.key.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "p-1"),
    ];
    let patch = || {
        app.request(
            Method::PATCH,
            &uri,
            &patch_headers,
            Body::from(r#"{"score": 50}"#),
        )
    };
    assert_eq!(patch().await.status, 200);
    let before = snapshot(&app).await;
    let r = patch().await;
    assert_eq!(
        (r.status.as_u16(), r.header("idempotent-replayed")),
        (200, Some("true"))
    );
    assert_eq!(snapshot(&app).await, before);
    let delete_headers = [("x-api-key", t.key.as_str()), ("idempotency-key", "d-1")];
    let delete = || app.request(Method::DELETE, &uri, &delete_headers, Body::empty());
    assert_eq!(delete().await.status, 200);
    // Without the key the second delete would be 404; with it, the first answer.
    let r = delete().await;
    assert_eq!(
        (r.status.as_u16(), r.header("idempotent-replayed")),
        (200, Some("true"))
    );
}

async fn a_key_is_for_one_request_of_one_credential(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    assert_eq!(post_lead(&app, &t.key, Some("k"), JANE).await.status, 201);
    let before = snapshot(&app).await;
    // Another body under the same key: refused, nothing written.
    let other = JANE.replace("Jane", "Janet");
    let r = post_lead(&app, &t.key, Some("k"), &other).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"], "IDEMPOTENCY_KEY_REUSED");
    // Another path under the same key: refused too.
    let r = app
        .request(
            Method::POST,
            "/v1/sources",
            &[
                ("x-api-key", &t.key),
                ("content-type", "application/json"),
                ("idempotency-key", "k"),
            ],
            Body::from(r#"{"name": "Fair", "channel": "event"}"#),
        )
        .await;
    assert_eq!(r.body["error"], "IDEMPOTENCY_KEY_REUSED", "{}", r.text);
    app.settle().await;
    assert_eq!(snapshot(&app).await, before);
    // In GraphQL the same code, as a GraphQL error.
    let m = "mutation { createLead(input: {email: \"x@example.com\", firstName: \"J\", lastName: \"D\"}) { id } }";
    let r = app
        .gql_with(Auth::Key(&t.key), m, json!({}), &[("idempotency-key", "k")])
        .await;
    assert_eq!(r.code(), Some("IDEMPOTENCY_KEY_REUSED"), "{}", r.text);
    assert_eq!(r.status, 422);
    // The same key string of another credential is another key.
    let (_, second) = app.key(&t.owner.token, "FULL", "LIVE").await;
    let r = post_lead(&app, &second, Some("k"), JANE).await;
    assert_eq!(
        (r.status.as_u16(), r.header("idempotent-replayed")),
        (201, None)
    );
    // A refusal that a retry cannot change is kept like a success: 422 stays 422.
    let bad = r#"{"email": "nope", "firstName": "A", "lastName": "B"}"#;
    let r = post_lead(&app, &t.key, Some("bad-1"), bad).await;
    assert_eq!(r.body["error"], "VALIDATION_FAILED");
    let r = post_lead(&app, &t.key, Some("bad-1"), bad).await;
    assert_eq!(
        (r.body["error"].as_str(), r.header("idempotent-replayed")),
        (Some("VALIDATION_FAILED"), Some("true"))
    );
}

async fn bad_keys_and_refusals_are_not_kept(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    let long = "x".repeat(256);
    for bad in ["", long.as_str(), "caf\u{e9}", "tab\there"] {
        let r = post_lead(&app, &t.key, Some(bad), JANE).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text);
        assert_eq!(r.body["error"], "BAD_REQUEST");
    }
    let r = post_lead(&app, &t.key, Some(&"x".repeat(255)), JANE).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.settle().await;
    let after_one = snapshot(&app).await;
    assert_ne!(after_one, before);
    // 403 (a read key) and 401 are not kept: nothing claims the key.
    let (_, read) = app.key(&t.owner.token, "READ", "LIVE").await;
    let r = post_lead(&app, &read, Some("r-1"), JANE).await;
    assert_eq!(r.status, 403);
    let r = post_lead(&app, "lg_live_nope", Some("r-1"), JANE).await;
    assert_eq!(r.status, 401);
    assert_eq!(app.count("idempotency_keys").await, 1);
    // Expired keys are deleted by housekeeping; the 24 hours are counted from the first.
    app.db()
        .execute_unprepared("UPDATE idempotency_keys SET expires_at = started_at")
        .await
        .expect("expire");
    assert_eq!(
        leadgraph::service::idempotency::prune(app.db())
            .await
            .expect("prune"),
        1
    );
    assert_eq!(app.count("idempotency_keys").await, 0);
}

/// Claims `idem` for the newest API key as a running first request would, `ago_secs` ago.
async fn claim(app: &TestApp, idem: &str, body: &str, ago_secs: i64) {
    let row = app
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            app.db().get_database_backend(),
            "SELECT MAX(id) AS id, MAX(tenant_id) AS tenant FROM api_keys".to_owned(),
        ))
        .await
        .expect("query")
        .expect("row");
    let (key_id, tenant): (i64, i64) = (
        row.try_get("", "id").expect("id"),
        row.try_get("", "tenant").expect("tenant"),
    );
    let fp = leadgraph::service::idempotency::fingerprint("POST", "/v1/leads", body.as_bytes());
    let started = chrono::Utc::now() - chrono::Duration::seconds(ago_secs);
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    entity::idempotency_key::ActiveModel {
        tenant_id: Set(tenant),
        environment: Set(entity::enums::Environment::Live),
        credential: Set(format!("key:{key_id}")),
        key: Set(idem.to_owned()),
        fingerprint: Set(fp),
        status_code: Set(None),
        response_headers: Set(None),
        response_body: Set(None),
        started_at: Set(started),
        expires_at: Set(started + chrono::Duration::hours(24)),
        ..Default::default()
    }
    .insert(app.db())
    .await
    .expect("claim");
}

async fn a_key_whose_first_request_runs_is_in_progress(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    claim(&app, "busy", JANE, 0).await;
    let r = post_lead(&app, &t.key, Some("busy"), JANE).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"], "IDEMPOTENCY_IN_PROGRESS");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(snapshot(&app).await, before);
    // A first request that died long ago (past the request timeout) left its claim behind:
    // the retry runs.
    claim(&app, "dead", JANE, 3600).await;
    let r = post_lead(&app, &t.key, Some("dead"), JANE).await;
    assert_eq!(
        (r.status.as_u16(), r.header("idempotent-replayed")),
        (201, None),
        "{}",
        r.text
    );
    let r = post_lead(&app, &t.key, Some("dead"), JANE).await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
}

async fn concurrent_retries_write_once(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let runs =
        futures::future::join_all((0..8).map(|_| post_lead(&app, &t.key, Some("race"), JANE)))
            .await;
    let mut created = 0;
    for r in &runs {
        match (r.status.as_u16(), r.header("idempotent-replayed")) {
            (201, None) => created += 1,
            (201, Some("true")) => {}
            (409, _) => assert_eq!(r.body["error"], "IDEMPOTENCY_IN_PROGRESS"),
            other => panic!("{other:?}: {}", r.text),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(app.count("leads").await, 1);
    if !app.is_postgres() {
        return;
    }
    // On PostgreSQL, hold the first request inside its write (the leads table locked from
    // outside) and send the retry meanwhile: it is told the first still runs.
    let outside = app.outside_connection().await;
    use sea_orm::TransactionTrait;
    let lock = outside.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE leads IN EXCLUSIVE MODE")
        .await
        .expect("lock");
    let slow = post_lead(&app, &t.key, Some("held"), JANE);
    let retry = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let r = post_lead(&app, &t.key, Some("held"), JANE).await;
        lock.rollback().await.expect("release");
        r
    };
    let (first, retry) = tokio::join!(slow, retry);
    assert_eq!(retry.status, 409, "{}", retry.text);
    assert_eq!(retry.body["error"], "IDEMPOTENCY_IN_PROGRESS");
    assert_eq!(first.status, 201, "{}", first.text);
    let again = post_lead(&app, &t.key, Some("held"), JANE).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("leads").await, 2);
}

// ---- Batches, upsert, merge (docs/rest.md) ----

const LEAD: &str = "id email firstName lastName phone score tags customFields duplicateOfId";

fn field_names(r: &Resp) -> Vec<String> {
    let list = if r.body["errors"].is_array() && r.body["errors"][0]["extensions"].is_object() {
        r.body["errors"][0]["extensions"]["fields"].clone()
    } else {
        r.body["errors"].clone()
    };
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|f| f["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn a_batch_is_created_whole_or_not_at_all(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let q = format!("mutation($i: [CreateLeadInput!]!) {{ createLeads(inputs: $i) {{ {LEAD} }} }}");
    let item = |n: usize| json!({"email": format!("l{n}@example.com"), "firstName": "L", "lastName": "N", "tags": ["fair"]});
    let audited = app.count("audit_log").await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            &q,
            json!({"i": [item(0), item(1), item(2)]}),
        )
        .await;
    assert_eq!(r.data()["createLeads"].as_array().map(Vec::len), Some(3));
    assert_eq!(app.count("leads").await, 3);
    let events = app.get("/v1/events", &t.key).await;
    assert_eq!(
        events.body["data"].as_array().map(Vec::len),
        Some(3),
        "{}",
        events.text
    );
    assert_eq!(app.count("audit_log").await - audited, 3);
    app.settle().await;
    let before = snapshot(&app).await;
    // One bad item refuses the batch; each error names its item.
    let bad = json!([item(3), {"email": "nope", "firstName": "A", "lastName": "B"}, {"email": "x@example.com", "firstName": "", "lastName": "B", "sourceId": "AAAA"}]);
    let r = app.gql(Auth::Key(&t.key), &q, json!({"i": bad})).await;
    assert_eq!(r.code(), Some("VALIDATION_FAILED"), "{}", r.text);
    assert_eq!(
        field_names(&r),
        [
            "inputs[1].email",
            "inputs[2].firstName",
            "inputs[2].sourceId"
        ]
    );
    // A reference that does not resolve is found in the second pass, still naming the item.
    let ghost = app.state.ids.encode(leadgraph::ids::Kind::Source, 999_999);
    let r = app.gql(Auth::Key(&t.key), &q, json!({"i": [item(4), {"email": "y@example.com", "firstName": "A", "lastName": "B", "sourceId": ghost}]})).await;
    assert_eq!(field_names(&r), ["inputs[1].sourceId"], "{}", r.text);
    let many: Vec<_> = (0..101).map(item).collect();
    let r = app.gql(Auth::Key(&t.key), &q, json!({"i": many})).await;
    assert_eq!(field_names(&r), ["inputs"], "{}", r.text);
    // REST names the items after its body.
    let headers = [
        ("x-api-key", t.key.as_str()),
        ("content-type", "application/json"),
    ];
    let post = |body: serde_json::Value| {
        app.request(
            Method::POST,
            "/v1/leads/batch",
            &headers,
            Body::from(body.to_string()),
        )
    };
    let r = post(json!({"leads": bad})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        field_names(&r),
        ["leads[1].email", "leads[2].firstName", "leads[2].sourceId"]
    );
    let r = post(json!({"leads": [item(5), {"email": "z@example.com", "firstName": "A", "lastName": "B", "extra": 1}]})).await;
    assert_eq!(field_names(&r), ["leads[1].extra"], "{}", r.text);
    let r = post(json!({"leads": []})).await;
    assert_eq!(field_names(&r), ["leads"], "{}", r.text);
    app.settle().await;
    assert_eq!(snapshot(&app).await, before);
    let r = post(json!({"leads": [item(6), item(7)]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["data"][1]["email"], "l7@example.com");
    assert_eq!(app.count("leads").await, 5);
}

async fn put_by_email(app: &TestApp, key: &str, email: &str, body: serde_json::Value) -> Resp {
    app.request(
        Method::PUT,
        &format!("/v1/leads/by-email/{email}"),
        &[("x-api-key", key), ("content-type", "application/json")],
        Body::from(body.to_string()),
    )
    .await
}

async fn upsert_creates_then_updates_and_refuses_ambiguity(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    // Creating needs the names.
    let r = put_by_email(&app, &t.key, "ann@example.com", json!({"score": 10})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(field_names(&r), ["firstName", "lastName"]);
    let r = put_by_email(
        &app,
        &t.key,
        "not-an-email",
        json!({"firstName": "A", "lastName": "B"}),
    )
    .await;
    assert_eq!(field_names(&r), ["email"], "{}", r.text);
    assert_eq!(snapshot(&app).await, before);
    let r = put_by_email(
        &app,
        &t.key,
        "Ann@Example.com",
        json!({"firstName": "Ann", "lastName": "Lee"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].clone();
    let r = put_by_email(
        &app,
        &t.key,
        "ann@example.com",
        json!({"firstName": "Ann", "lastName": "Lee", "score": 40}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["id"], id);
    assert_eq!(
        (
            r.body["data"]["score"].as_i64(),
            r.body["data"]["firstName"].as_str()
        ),
        (Some(40), Some("Ann"))
    );
    assert_eq!(app.count("leads").await, 1);
    // GraphQL says which it did.
    let q = format!(
        "mutation($i: UpsertLeadInput!) {{ upsertLead(input: $i) {{ outcome lead {{ {LEAD} }} }} }}"
    );
    let r = app
        .gql(
            Auth::Key(&t.key),
            &q,
            json!({"i": {"email": "ANN@example.com", "tags": ["vip"]}}),
        )
        .await;
    assert_eq!(r.data()["upsertLead"]["outcome"], "UPDATED");
    assert_eq!(r.data()["upsertLead"]["lead"]["tags"], json!(["vip"]));
    // Two leads with the email: which one is meant cannot be told.
    let create = "mutation { createLead(input: {email: \"bo@example.com\", firstName: \"B\", lastName: \"O\"}) { id } }";
    let a = app.gql(Auth::Key(&t.key), create, json!({})).await.data()["createLead"]["id"].clone();
    let b = app.gql(Auth::Key(&t.key), create, json!({})).await.data()["createLead"]["id"].clone();
    app.settle().await;
    let before = snapshot(&app).await;
    let r = put_by_email(
        &app,
        &t.key,
        "bo@example.com",
        json!({"firstName": "B", "lastName": "O", "score": 1}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"], "AMBIGUOUS_MATCH");
    assert_eq!(r.body["candidates"], json!([a, b]));
    let r = app
        .gql(
            Auth::Key(&t.key),
            &q,
            json!({"i": {"email": "bo@example.com"}}),
        )
        .await;
    assert_eq!(r.code(), Some("AMBIGUOUS_MATCH"));
    assert_eq!(
        r.body["errors"][0]["extensions"]["candidates"],
        json!([a, b])
    );
    assert_eq!(snapshot(&app).await, before);
    // Concurrent upserts of a new email create it once.
    let runs = futures::future::join_all((0..6).map(|_| {
        app.gql(
            Auth::Key(&t.key),
            &q,
            json!({"i": {"email": "new@example.com", "firstName": "N", "lastName": "W"}}),
        )
    }))
    .await;
    let created = runs
        .iter()
        .filter(|r| r.data()["upsertLead"]["outcome"] == "CREATED")
        .count();
    assert_eq!(created, 1);
    app.settle().await;
    let row = app
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            app.db().get_database_backend(),
            "SELECT COUNT(*) AS n FROM leads WHERE email_normalized = 'new@example.com'".to_owned(),
        ))
        .await
        .expect("query")
        .expect("row");
    assert_eq!(row.try_get::<i64>("", "n").expect("n"), 1);
}

/// Creates a lead through GraphQL; returns its ID.
async fn lead(app: &TestApp, key: &str, input: serde_json::Value) -> String {
    let r = app
        .gql(
            Auth::Key(key),
            "mutation($i: CreateLeadInput!) { createLead(input: $i) { id } }",
            json!({"i": input}),
        )
        .await;
    r.data()["createLead"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn merge_combines_duplicates_into_one_lead(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let k = t.key.as_str();
    let email = "sam@example.com";
    let d1 = lead(&app, k, json!({"email": email, "firstName": "Samuel", "lastName": "Old", "phone": "+1 555 0100", "tags": ["b"], "customFields": {"x": 2, "y": 1}})).await;
    let d2 = lead(&app, k, json!({"email": email, "firstName": "Sam", "lastName": "Older", "phone": "+1 555 0200", "tags": ["c"], "customFields": {"z": 3}})).await;
    let p = lead(&app, k, json!({"email": email, "firstName": "Sam", "lastName": "Primary", "tags": ["a"], "customFields": {"x": 1}})).await;
    let copy = lead(
        &app,
        k,
        json!({"email": email, "firstName": "S", "lastName": "Copy"}),
    )
    .await;
    app.settle().await;
    let q = format!(
        "mutation($p: ID!, $d: [ID!]!, $dry: Boolean) {{ mergeLeads(primaryId: $p, duplicateIds: $d, dryRun: $dry) {{ merged dryRun lead {{ {LEAD} }} }} }}"
    );
    let before = snapshot(&app).await;
    // Refusals write nothing.
    for (dups, field) in [
        (json!([p]), "duplicateIds[0]"),
        (json!(["nope"]), "duplicateIds[0]"),
        (json!([]), "duplicateIds"),
        (
            json!([
                d1,
                app.state.ids.encode(leadgraph::ids::Kind::Lead, 999_999)
            ]),
            "duplicateIds[1]",
        ),
    ] {
        let r = app.gql(Auth::Key(k), &q, json!({"p": p, "d": dups})).await;
        assert_eq!(field_names(&r), [field], "{}", r.text);
    }
    // A dry run shows the result and writes nothing.
    let r = app
        .gql(
            Auth::Key(k),
            &q,
            json!({"p": p, "d": [d2, d1], "dry": true}),
        )
        .await;
    let m = r.data()["mergeLeads"].clone();
    assert_eq!(m["dryRun"], true);
    let merged = &m["lead"];
    assert_eq!(merged["id"], p.as_str());
    assert_eq!(merged["lastName"], "Primary", "the primary's fields win");
    assert_eq!(
        merged["phone"], "+1 555 0100",
        "nulls filled from the oldest duplicate"
    );
    assert_eq!(merged["tags"], json!(["a", "b", "c"]));
    assert_eq!(merged["customFields"], json!({"x": 1, "y": 1, "z": 3}));
    assert_eq!(
        merged["duplicateOfId"],
        serde_json::Value::Null,
        "it pointed at a merged lead"
    );
    assert_eq!(snapshot(&app).await, before);
    // The merge itself, through REST.
    let r = app
        .request(
            Method::POST,
            &format!("/v1/leads/{p}/merge"),
            &[("x-api-key", k), ("content-type", "application/json")],
            Body::from(json!({"duplicateIds": [d1, d2]}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["lead"]["tags"], json!(["a", "b", "c"]));
    assert_eq!(r.body["data"]["merged"], json!([d1, d2]));
    for gone in [&d1, &d2] {
        assert_eq!(app.get(&format!("/v1/leads/{gone}"), k).await.status, 404);
    }
    let r = app.get(&format!("/v1/leads/{copy}"), k).await;
    assert_eq!(
        r.body["data"]["duplicateOf"],
        p.as_str(),
        "copies point to the primary"
    );
    let after = snapshot(&app).await;
    let delta = |t: &str| {
        let n = |s: &Vec<(&str, i64)>| {
            s.iter()
                .find(|(n, _)| *n == t)
                .map(|(_, c)| *c)
                .unwrap_or(0)
        };
        n(&after) - n(&before)
    };
    assert_eq!(
        (delta("leads"), delta("audit_log"), delta("events")),
        (-2, 1, 1)
    );
    let ev = app.get("/v1/events?type=lead.merged", k).await;
    assert_eq!(
        ev.body["data"][0]["changes"]["merged"]["from"],
        json!([d1, d2]),
        "{}",
        ev.text
    );
}

async fn concurrent_merges_lose_and_double_nothing(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let k = t.key.as_str();
    let mk = |n: &str, tag: &str| {
        lead(
            &app,
            k,
            json!({"email": format!("{n}@example.com"), "firstName": "A", "lastName": n, "tags": [tag]}),
        )
    };
    let (p, q, shared) = (mk("p", "p").await, mk("q", "q").await, mk("s", "s").await);
    let m = "mutation($p: ID!, $d: [ID!]!) { mergeLeads(primaryId: $p, duplicateIds: $d) { lead { tags } } }";
    let (a, b) = tokio::join!(
        app.gql(Auth::Key(k), m, json!({"p": p, "d": [shared]})),
        app.gql(Auth::Key(k), m, json!({"p": q, "d": [shared]})),
    );
    // One merge took the shared lead; the other found it gone. Its tag went to one lead only.
    let ok: Vec<&Resp> = [&a, &b]
        .into_iter()
        .filter(|r| r.body.get("errors").is_none())
        .collect();
    assert_eq!(ok.len(), 1, "{} / {}", a.text, b.text);
    let failed = if ok[0].text == a.text { &b } else { &a };
    assert_eq!(field_names(failed), ["duplicateIds[0]"], "{}", failed.text);
    assert_eq!(app.count("leads").await, 2);
    let tagged = app
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            app.db().get_database_backend(),
            "SELECT COUNT(*) AS n FROM lead_tags WHERE tag = 's'".to_owned(),
        ))
        .await
        .expect("query")
        .expect("row");
    assert_eq!(tagged.try_get::<i64>("", "n").expect("n"), 1);
}

// ---- Import and export (docs/rest.md) ----

/// Starts an import worker for `app`; stopped when the token is cancelled.
fn import_worker(app: &TestApp) -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(leadgraph::service::import::run(
        app.state.app.clone(),
        stop.clone(),
    ));
    stop
}

async fn upload(app: &TestApp, key: &str, media: &str, query: &str, body: &str) -> Resp {
    app.request(
        Method::POST,
        &format!("/v1/imports{query}"),
        &[("x-api-key", key), ("content-type", media)],
        Body::from(body.to_owned()),
    )
    .await
}

/// Waits for an import job to finish; returns it.
async fn finished(app: &TestApp, key: &str, id: &str) -> serde_json::Value {
    for _ in 0..500 {
        let r = app.get(&format!("/v1/imports/{id}"), key).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if !matches!(
            r.body["data"]["status"].as_str(),
            Some("queued" | "running")
        ) {
            return r.body["data"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the import did not finish");
}

async fn a_csv_import_creates_leads_and_lists_bad_rows(app: TestApp) {
    let stop = import_worker(&app);
    let t = app.tenant("Acme", Plan::Pro).await;
    // A byte-order mark, columns in any order, a quoted cell holding a newline and a comma,
    // tags separated by `;`, custom-field columns; a bad email and a short row.
    let csv = "\u{feff}lastName,email,firstName,tags,customFields.note,customFields.size,score\r\n\
               Doe,jane@example.com,Jane,fair;vip,\"line one\nline two, still\",12,40\r\n\
               Roe,not-an-email,Rich,,,,\r\n\
               Poe,edgar@example.com\r\n\
               Moe,moe@example.com,Mo,,plain,,\r\n";
    let r = upload(&app, &t.key, "text/csv", "", csv).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["total"], 4);
    let id = r.body["data"]["id"].as_str().expect("id").to_owned();
    let job = finished(&app, &t.key, &id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        (
            job["processed"].as_i64(),
            job["created"].as_i64(),
            job["failed"].as_i64()
        ),
        (Some(4), Some(2), Some(2)),
        "{job}"
    );
    let errors = job["errors"].as_array().expect("errors");
    assert_eq!(errors[0]["row"], 2);
    assert_eq!(errors[0]["field"], "email");
    assert_eq!(errors[0]["code"], "VALIDATION_FAILED");
    assert_eq!(errors[1]["row"], 3);
    assert!(
        errors[1]["message"]
            .as_str()
            .expect("message")
            .contains("cells"),
        "{job}"
    );
    let leads = app
        .get(&format!("/v1/leads?importId={id}&sort=lastName"), &t.key)
        .await;
    let jane = &leads.body["data"][0];
    assert_eq!(jane["email"], "jane@example.com", "{}", leads.text);
    assert_eq!(jane["tags"], json!(["fair", "vip"]));
    assert_eq!(
        jane["customFields"],
        json!({"note": "line one\nline two, still", "size": 12})
    );
    assert_eq!(jane["score"], 40);
    assert_eq!(jane["importId"], id.as_str());
    assert_eq!(leads.body["data"].as_array().map(Vec::len), Some(2));
    // One audit entry and one event for the job, none per row.
    let events = app.get("/v1/events", &t.key).await;
    let types: Vec<&str> = events.body["data"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["import.completed"], "{}", events.text);
    assert_eq!(events.body["data"][0]["data"]["created"], 2);
    let list = app.get("/v1/imports", &t.key).await;
    assert_eq!(list.body["data"][0]["id"], id.as_str());
    // A finished job cannot be cancelled.
    let r = app
        .request(
            Method::DELETE,
            &format!("/v1/imports/{id}"),
            &[("x-api-key", t.key.as_str())],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    stop.cancel();
}

async fn imports_skip_update_or_create_duplicates_and_dry_runs_write_nothing(app: TestApp) {
    let stop = import_worker(&app);
    let t = app.tenant("Acme", Plan::Pro).await;
    lead(
        &app,
        &t.key,
        json!({"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee", "score": 5}),
    )
    .await;
    let ndjson = "{\"email\": \"ANN@example.com\", \"firstName\": \"Ann\", \"lastName\": \"Lee\", \"score\": 90}\n\n\
                  {\"email\": \"bob@example.com\", \"firstName\": \"Bob\", \"lastName\": \"Ray\", \"tags\": [\"x\"]}\n\
                  [1, 2]\n";
    let run = |query: &'static str| {
        let (app, key) = (&app, t.key.as_str());
        async move {
            let r = upload(app, key, "application/x-ndjson", query, ndjson).await;
            assert_eq!(r.status, 202, "{}", r.text);
            finished(app, key, r.body["data"]["id"].as_str().expect("id")).await
        }
    };
    let counts = |j: &serde_json::Value| {
        ["created", "updated", "skipped", "failed"].map(|k| j[k].as_i64().unwrap_or(-1))
    };
    app.settle().await;
    let before = snapshot(&app).await;
    let dry = run("?onDuplicate=update&dryRun=true").await;
    assert_eq!(counts(&dry), [1, 1, 0, 1], "{dry}");
    assert_eq!(dry["errors"][0]["row"], 3);
    let after = snapshot(&app).await;
    let leads_of = |s: &Vec<(&str, i64)>| s.iter().find(|(n, _)| *n == "leads").map(|(_, c)| *c);
    assert_eq!(
        leads_of(&after),
        leads_of(&before),
        "a dry run writes no lead"
    );
    let skip = run("").await;
    assert_eq!(counts(&skip), [1, 0, 1, 1], "{skip}");
    let update = run("?onDuplicate=update").await;
    assert_eq!(counts(&update), [0, 2, 0, 1], "{update}");
    let ann = app.get("/v1/leads?q=ann", &t.key).await;
    assert_eq!(ann.body["data"][0]["score"], 90, "{}", ann.text);
    let create = run("?onDuplicate=create").await;
    assert_eq!(counts(&create), [2, 0, 0, 1], "{create}");
    assert_eq!(app.count("leads").await, 4);
    // Imported copies are linked to their originals, as a single create's would be.
    for who in ["ann", "bob"] {
        let r = app.get(&format!("/v1/leads?q={who}"), &t.key).await;
        let leads = r.body["data"].as_array().cloned().unwrap_or_default();
        let original = leads.iter().find(|l| l["duplicateOf"].is_null());
        let copy = leads.iter().find(|l| !l["duplicateOf"].is_null());
        match (original, copy) {
            (Some(o), Some(c)) => assert_eq!(c["duplicateOf"], o["id"], "{}", r.text),
            _ => panic!(
                "{who}: one original and one linked copy expected: {}",
                r.text
            ),
        }
    }
    // By phone too, and within one chunk: to the earliest lead with the email or the phone.
    let fay = lead(
        &app,
        &t.key,
        json!({"email": "fay@example.com", "firstName": "Fay", "lastName": "Lo", "phone": "+1 555 010 0199"}),
    )
    .await;
    let ndjson = "{\"email\": \"cat@example.com\", \"firstName\": \"Cat\", \"lastName\": \"A\", \"phone\": \"+1 555 010 0100\"}\n\
                  {\"email\": \"dan@example.com\", \"firstName\": \"Dan\", \"lastName\": \"B\", \"phone\": \"+1-555-010-0100\"}\n\
                  {\"email\": \"CAT@example.com\", \"firstName\": \"Cat\", \"lastName\": \"C\"}\n\
                  {\"email\": \"gus@example.com\", \"firstName\": \"Gus\", \"lastName\": \"D\", \"phone\": \"+15550100199\"}\n";
    let r = upload(
        &app,
        &t.key,
        "application/x-ndjson",
        "?onDuplicate=create",
        ndjson,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let job = finished(&app, &t.key, r.body["data"]["id"].as_str().expect("id")).await;
    assert_eq!(counts(&job), [4, 0, 0, 0], "{job}");
    let r = app.get("/v1/leads?limit=100", &t.key).await;
    let by_last = |last: &str| {
        r.body["data"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["lastName"] == last))
            .cloned()
            .unwrap_or_default()
    };
    let cat = by_last("A");
    assert!(cat["duplicateOf"].is_null(), "{}", r.text);
    assert_eq!(
        by_last("B")["duplicateOf"],
        cat["id"],
        "same phone, same chunk"
    );
    assert_eq!(
        by_last("C")["duplicateOf"],
        cat["id"],
        "same email, same chunk"
    );
    assert_eq!(by_last("D")["duplicateOf"], fay, "same phone, earlier lead");
    stop.cancel();
}

async fn a_bad_header_or_body_refuses_the_import_whole(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (_, read) = app.key(&t.owner.token, "READ", "LIVE").await;
    let before = snapshot(&app).await;
    let r = upload(
        &app,
        &t.key,
        "text/csv",
        "",
        "email,nickname\njane@example.com,JJ\n",
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "header");
    let r = upload(
        &app,
        &t.key,
        "text/csv",
        "",
        "firstName,lastName\nJane,Doe\n",
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = upload(&app, &t.key, "application/json", "", "[]").await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = upload(&app, &t.key, "text/csv", "?onDuplicate=merge", "email\n").await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = upload(&app, &read, "text/csv", "", "email\nx@example.com\n").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(app.count("import_jobs").await, 0);
    assert_eq!(app.count("import_rows").await, 0);
}

async fn an_export_imported_into_an_empty_tenant_reproduces_its_leads(app: TestApp) {
    let stop = import_worker(&app);
    let a = app.tenant("Acme", Plan::Pro).await;
    let b = app.tenant("Beta", Plan::Pro).await;
    let c = app.tenant("Gamma", Plan::Pro).await;
    for i in 0..25 {
        let status = ["NEW", "CONTACTED", "QUALIFIED"][i % 3];
        let mut input = json!({
            "email": format!("lead{i}@example.com"),
            "firstName": format!("First{i}"),
            "lastName": if i % 3 == 0 { "O'Brien, \"Jr\"".to_owned() } else { format!("Last{i}") },
            "score": i * 4,
            "status": status,
            "tags": [format!("t{}", i % 4), "all"],
            "customFields": {"plan": format!("p{}", i % 2), "seats": i, "paid": i % 2 == 0},
        });
        if i % 2 == 0 {
            input["phone"] = json!(format!("+1 555 01{i:02}"));
            input["source"] = json!("REFERRAL");
        }
        lead(&app, &a.key, input).await;
    }
    app.settle().await;
    let fields = "email firstName lastName phone channel status score tags customFields";
    let dump = |key: String| {
        let app = &app;
        async move {
            let q = format!(
                "{{ leads(first: 100, orderBy: {{field: CREATED_AT, direction: ASC}}) {{ edges {{ node {{ {fields} }} }} }} }}"
            );
            app.gql(Auth::Key(&key), &q, json!({})).await.data()["leads"]["edges"].clone()
        }
    };
    let original = dump(a.key.clone()).await;
    for (format, media, target) in [
        ("csv", "text/csv", &b),
        ("ndjson", "application/x-ndjson", &c),
    ] {
        let file = app
            .get(&format!("/v1/leads/export?format={format}"), &a.key)
            .await;
        assert_eq!(file.status, 200);
        assert!(
            file.header("content-type")
                .expect("type")
                .starts_with(media)
        );
        let r = upload(&app, &target.key, media, "", &file.text).await;
        assert_eq!(r.status, 202, "{}", r.text);
        let job = finished(
            &app,
            &target.key,
            r.body["data"]["id"].as_str().expect("id"),
        )
        .await;
        assert_eq!(job["created"], 25, "{format}: {job}");
        assert_eq!(dump(target.key.clone()).await, original, "{format}");
    }
    // Filters narrow the export; a bad one is refused.
    let file = app
        .get("/v1/leads/export?format=ndjson&status=qualified", &a.key)
        .await;
    assert_eq!(file.text.lines().count(), 8);
    let r = app.get("/v1/leads/export?format=xml", &a.key).await;
    assert_eq!(r.status, 400);
    stop.cancel();
}

/// A `leadgraph serve` process on `url`; killed (SIGKILL) when dropped.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    async fn start(url: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_leadgraph"))
            .args([
                "serve",
                "--no-bootstrap",
                "--log",
                "warn",
                "--rate-limit-per-ip",
                "0",
            ])
            .args(["--tenant-rate-limits=false", "--database-url", url])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the server");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..400 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Server { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn an_import_killed_mid_way_resumes_and_imports_each_row_once(app: TestApp) {
    const ROWS: usize = 40_000;
    let t = app.tenant("Acme", Plan::Pro).await;
    let url = app.state.config.database_url();
    let mut csv = String::from("email,firstName,lastName,tags\n");
    for i in 0..ROWS {
        csv.push_str(&format!("row{i}@example.com,Row,N{i},a;b\n"));
    }
    let http = reqwest::Client::new();
    let job = |server: &Server, id: &str| {
        let req = http
            .get(format!("{}/v1/imports/{id}", server.base))
            .header("x-api-key", &t.key);
        async move {
            let text = req.send().await.expect("get").text().await.expect("body");
            let r: serde_json::Value = serde_json::from_str(&text).expect("json");
            r["data"].clone()
        }
    };
    let first = Server::start(&url).await;
    let r: serde_json::Value = http
        .post(format!("{}/v1/imports", first.base))
        .header("x-api-key", &t.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("upload")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("json"))
        .expect("body");
    let id = r["data"]["id"].as_str().expect("job id").to_owned();
    assert_eq!(r["data"]["total"], ROWS, "{r}");
    // Killed (SIGKILL, no shutdown) once some chunks are in and others not.
    let mut seen = serde_json::Value::Null;
    for _ in 0..2000 {
        seen = job(&first, &id).await;
        if seen["processed"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(first);
    let processed = seen["processed"].as_i64().unwrap_or(0);
    assert!(processed > 0 && processed < ROWS as i64, "killed at {seen}");
    // Restarted: the job is taken up again once its lease has run out, and finishes.
    app.db()
        .execute_unprepared("UPDATE import_jobs SET lease_until = NULL")
        .await
        .expect("expire the dead worker's lease");
    let second = Server::start(&url).await;
    let mut done = serde_json::Value::Null;
    for _ in 0..3000 {
        done = job(&second, &id).await;
        if done["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (done["created"].as_i64(), done["failed"].as_i64()),
        (Some(ROWS as i64), Some(0)),
        "{done}"
    );
    assert_eq!(app.count("leads").await, ROWS as i64);
    assert_eq!(app.count("lead_tags").await, 2 * ROWS as i64);
    assert_eq!(app.count("import_rows").await, 0);
}

async fn graphql_uploads_a_file_to_import(app: TestApp) {
    let stop = import_worker(&app);
    let t = app.tenant("Acme", Plan::Pro).await;
    let upload = |name: &str, media: &str, content: &str| {
        let body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n\
             {{\"query\": \"mutation($f: Upload!) {{ importLeads(file: $f, onDuplicate: UPDATE) {{ id status format total }} }}\", \"variables\": {{\"f\": null}}}}\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.f\"]}}\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"0\"; filename=\"{name}\"\r\nContent-Type: {media}\r\n\r\n{content}\r\n--XyZ--\r\n"
        );
        let headers = [
            ("x-api-key", t.key.clone()),
            (
                "content-type",
                "multipart/form-data; boundary=XyZ".to_owned(),
            ),
        ];
        let app = &app;
        async move {
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.request(Method::POST, "/graphql", &refs, Body::from(body))
                .await
        }
    };
    let r = upload(
        "leads.csv",
        "text/csv",
        "email,firstName,lastName\nup@example.com,Up,Load\nbad,X,Y\n",
    )
    .await;
    let job = r.data()["importLeads"].clone();
    assert_eq!(
        (
            job["status"].as_str(),
            job["format"].as_str(),
            job["total"].as_i64()
        ),
        (Some("QUEUED"), Some("CSV"), Some(2)),
        "{job}"
    );
    let q = "query($id: ID!) { importJob(id: $id) { status created failed errors { row field code } } }";
    let mut done = serde_json::Value::Null;
    for _ in 0..500 {
        done = app
            .gql(Auth::Key(&t.key), q, json!({"id": job["id"]}))
            .await
            .data()["importJob"]
            .clone();
        if done["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        done,
        json!({"status": "COMPLETED", "created": 1, "failed": 1, "errors": [{"row": 2, "field": "email", "code": "VALIDATION_FAILED"}]})
    );
    let r = upload(
        "more.ndjson",
        "application/x-ndjson",
        "{\"email\": \"nd@example.com\", \"firstName\": \"N\", \"lastName\": \"D\"}",
    )
    .await;
    assert_eq!(r.data()["importLeads"]["format"], "NDJSON");
    let jobs = app
        .gql(Auth::Key(&t.key), "{ importJobs { id } }", json!({}))
        .await;
    assert_eq!(jobs.data()["importJobs"].as_array().map(Vec::len), Some(2));
    stop.cancel();
}

/// `leadgraph import FILE --tenant SLUG` imports with a progress bar; `--json` prints the job.
#[test]
fn the_cli_imports_a_file_into_a_tenant() {
    let bin = env!("CARGO_BIN_EXE_leadgraph");
    let dir = std::env::temp_dir().join(format!(
        "leadgraph-import-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("cli.db").display());
    let out = std::process::Command::new(bin)
        .args([
            "bootstrap",
            "--tenant",
            "Acme Corp",
            "--email",
            "ops@acme.test",
            "--json",
        ])
        .env("LEADGRAPH_DATABASE_URL", &url)
        .output()
        .expect("bootstrap");
    let boot: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let slug = boot["tenantSlug"]
        .as_str()
        .expect("the slug is printed")
        .to_owned();
    let file = dir.join("leads.csv");
    let mut csv = String::from("email,firstName,lastName,tags\n");
    for i in 0..2500 {
        csv.push_str(&format!("cli{i}@example.com,Cli,N{i},x;y\n"));
    }
    csv.push_str("broken,A,B,\n");
    std::fs::write(&file, csv).expect("write");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(bin)
            .arg("import")
            .arg(&file)
            .args(["--tenant", &slug])
            .args(extra)
            .env("LEADGRAPH_DATABASE_URL", &url)
            .env("LEADGRAPH_LOG", "warn")
            .output()
            .expect("import");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let out = run(&["--json"]);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(
        (
            job["status"].as_str(),
            job["created"].as_i64(),
            job["failed"].as_i64()
        ),
        (Some("completed"), Some(2500), Some(1)),
        "{job}"
    );
    assert_eq!(job["errors"][0]["row"], 2501);
    // Again: every email is taken now, so every row is skipped; the summary says so.
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2500 skipped"), "{text}");
    let out = std::process::Command::new(bin)
        .args(["import", "nowhere.csv", "--tenant", &slug])
        .env("LEADGRAPH_DATABASE_URL", &url)
        .output()
        .expect("import");
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

async fn a_cancelled_import_writes_no_more(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    // No worker yet: the job waits, queued.
    let r = upload(
        &app,
        &t.key,
        "text/csv",
        "",
        "email,firstName,lastName\na@example.com,A,B\nb@example.com,B,C\n",
    )
    .await;
    assert_eq!(r.body["data"]["status"], "queued", "{}", r.text);
    let id = r.body["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(app.count("import_rows").await, 2);
    let (uri, headers) = (format!("/v1/imports/{id}"), [("x-api-key", t.key.as_str())]);
    let cancel = || app.request(Method::DELETE, &uri, &headers, Body::empty());
    let r = cancel().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "cancelled");
    assert!(r.body["data"]["finishedAt"].is_string());
    assert_eq!(app.count("import_rows").await, 0);
    assert_eq!(cancel().await.status, 409);
    // A worker started now finds nothing to do.
    let stop = import_worker(&app);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.get(&format!("/v1/imports/{id}"), &t.key).await.body["data"]["status"],
        "cancelled"
    );
    assert_eq!(app.count("leads").await, 0);
    // Another tenant cannot see or cancel it.
    let other = app.tenant("Other", Plan::Pro).await;
    assert_eq!(
        app.get(&format!("/v1/imports/{id}"), &other.key)
            .await
            .status,
        404
    );
    stop.cancel();
}

/// `POST /v1/imports` of a CSV `body` under `Idempotency-Key: idem`.
async fn keyed_upload(app: &TestApp, key: &str, idem: &str, body: Body) -> Resp {
    app.request(
        Method::POST,
        "/v1/imports",
        &[
            ("x-api-key", key),
            ("content-type", "text/csv"),
            ("idempotency-key", idem),
        ],
        body,
    )
    .await
}

async fn an_upload_under_a_key_is_received_once(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (head, rest) = (
        "email,firstName,lastName\nk1@example.com,K,One\n",
        "k2@example.com,K,Two\n",
    );
    let whole = format!("{head}{rest}");
    // While the first upload is still arriving, a second under its key is refused.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<bytes::Bytes, std::io::Error>>();
    tx.unbounded_send(Ok(bytes::Bytes::from_static(head.as_bytes())))
        .expect("send");
    let (first, second) = tokio::join!(
        keyed_upload(&app, &t.key, "file-1", Body::from_stream(rx)),
        async {
            // Once the first has claimed the key.
            while app.count("idempotency_keys").await == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let r = keyed_upload(&app, &t.key, "file-1", Body::from(whole.clone())).await;
            tx.unbounded_send(Ok(bytes::Bytes::from_static(rest.as_bytes())))
                .expect("send");
            drop(tx);
            r
        }
    );
    assert_eq!(second.status, 409, "{}", second.text);
    assert_eq!(second.body["error"], "IDEMPOTENCY_IN_PROGRESS");
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(first.body["data"]["total"], 2, "{}", first.text);
    // The same file again, sent whole: the first answer, and no second job.
    let again = keyed_upload(&app, &t.key, "file-1", Body::from(whole.clone())).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    assert_eq!(app.count("import_jobs").await, 1);
    // Another file under the key is refused, and nothing is written.
    let before = snapshot(&app).await;
    let other = keyed_upload(
        &app,
        &t.key,
        "file-1",
        Body::from(format!("{whole}x@example.com,X,Y\n")),
    )
    .await;
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.body["error"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(snapshot(&app).await, before);
    // A file refused for its header is not kept: the key stays free for the corrected one.
    let bad = keyed_upload(&app, &t.key, "file-2", Body::from("nickname\nJJ\n")).await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.body["error"], "VALIDATION_FAILED", "{}", bad.text);
    let good = keyed_upload(&app, &t.key, "file-2", Body::from(whole)).await;
    assert_eq!(good.status, 202, "{}", good.text);
    assert_eq!(good.header("idempotent-replayed"), None);
    assert_eq!(app.count("import_jobs").await, 2);
}

async fn a_graphql_upload_retried_with_a_new_boundary_is_replayed(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let send = |boundary: &'static str, content: &'static str| {
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n\
             {{\"query\": \"mutation($f: Upload!) {{ importLeads(file: $f) {{ id total }} }}\", \"variables\": {{\"f\": null}}}}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.f\"]}}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"leads.csv\"\r\nContent-Type: text/csv\r\n\r\n{content}\r\n--{boundary}--\r\n"
        );
        let media = format!("multipart/form-data; boundary={boundary}");
        let (app, key) = (&app, t.key.clone());
        async move {
            let headers = [
                ("x-api-key", key.as_str()),
                ("content-type", media.as_str()),
                ("idempotency-key", "gql-file-1"),
            ];
            app.request(Method::POST, "/graphql", &headers, Body::from(body))
                .await
        }
    };
    let csv = "email,firstName,lastName\ng1@example.com,G,One\n";
    let first = send("----first7MA4YWxkTrZu0gW", csv).await;
    assert_eq!(first.data()["importLeads"]["total"], 1, "{}", first.text);
    let again = send("----second9XkQ2bLrYq", csv).await;
    assert_eq!(
        again.header("idempotent-replayed"),
        Some("true"),
        "{}",
        again.text
    );
    assert_eq!(again.text, first.text);
    let other = send(
        "----third",
        "email,firstName,lastName\ng2@example.com,G,Two\n",
    )
    .await;
    assert_eq!(
        other.code(),
        Some("IDEMPOTENCY_KEY_REUSED"),
        "{}",
        other.text
    );
    assert_eq!(app.count("import_jobs").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_bounded_by_the_gaps_in_its_body_not_its_length() {
    let app = TestApp::sqlite_with(|c| c.request_timeout_ms = 300).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let slow = |gap_ms: u64| {
        let rows = (0..4).map(|i| format!("slow{i}@example.com,S,{i}\n"));
        let frames = std::iter::once("email,firstName,lastName\n".to_owned()).chain(rows);
        futures::stream::iter(frames.enumerate()).then(move |(i, f)| async move {
            if i > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(gap_ms)).await;
            }
            Ok::<_, std::io::Error>(bytes::Bytes::from(f))
        })
    };
    // Five frames 150 ms apart: longer than the timeout as a whole, each gap within it.
    let r = upload_stream(&app, &t.key, Body::from_stream(slow(150))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["total"], 4, "{}", r.text);
    // A gap longer than the timeout ends the upload, and no job or row is left behind.
    let r = upload_stream(&app, &t.key, Body::from_stream(slow(600))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("no data for 300 ms"), "{}", r.text);
    assert_eq!(app.count("import_jobs").await, 1);
    assert_eq!(app.count("import_rows").await, 4);
}

async fn upload_stream(app: &TestApp, key: &str, body: Body) -> Resp {
    app.request(
        Method::POST,
        "/v1/imports",
        &[("x-api-key", key), ("content-type", "text/csv")],
        body,
    )
    .await
}
