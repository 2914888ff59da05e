//! The change feed (SPEC.md section 10): one event per committed lead change, in the change's
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
    append(&a, actor, vec![event]).await.expect("A appends");
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
