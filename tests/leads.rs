//! Leads, sources, pipelines, tags, stats, duplicate detection, audit log and dataloaders.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Auth, Resp, TestApp, TestTenant, snapshot};
use entity::enums::{Plan, Role};
use serde_json::{Value, json};

const LEAD: &str = "id tenantId email firstName lastName phone channel sourceId pipelineId stageId status score \
                    assignedToId customFields tags duplicateOfId createdAt updatedAt";

async fn create_lead(app: &TestApp, auth: Auth<'_>, input: Value) -> Resp {
    app.gql(
        auth,
        &format!("mutation($i: CreateLeadInput!) {{ createLead(input: $i) {{ {LEAD} }} }}"),
        json!({"i": input}),
    )
    .await
}

async fn lead_ok(app: &TestApp, t: &TestTenant, input: Value) -> Value {
    let r = create_lead(app, Auth::Key(&t.key), input).await;
    r.data()["createLead"].clone()
}

fn jane() -> Value {
    json!({"email": "jane.doe@example.com", "firstName": "Jane", "lastName": "Doe"})
}

async fn source(app: &TestApp, t: &TestTenant, name: &str, channel: &str) -> String {
    let r = app
        .gql(
            Auth::Key(&t.key),
            &format!(r#"mutation {{ createSource(input: {{name: "{name}", channel: {channel}}}) {{ id }} }}"#),
            json!({}),
        )
        .await;
    r.data()["createSource"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Creates a pipeline; returns its ID and its stages' IDs.
async fn pipeline(
    app: &TestApp,
    t: &TestTenant,
    name: &str,
    stages: &[&str],
) -> (String, Vec<String>) {
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($n: String!, $s: [String!]!) { createPipeline(input: {name: $n, stages: $s}) { id stages { id } } }",
            json!({"n": name, "s": stages}),
        )
        .await;
    let p = &r.data()["createPipeline"];
    let stages = p["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    (p["id"].as_str().expect("id").to_owned(), stages)
}

fn fields(r: &Resp) -> Vec<String> {
    let mut f: Vec<String> = r.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|e| e["field"].as_str().unwrap_or("").to_owned())
        .collect();
    f.sort();
    f
}

db_tests!(
    create_and_read_a_lead,
    validation_lists_every_failing_field_and_writes_nothing,
    partial_update_and_clearing,
    delete_keeps_the_whole_row_in_the_audit_log,
    assignment_tags_and_stages,
    sources_crud_and_lead_counts,
    pipelines_and_stages,
    keyset_pagination_in_both_directions,
    cursors_are_stable_under_concurrent_inserts,
    every_filter_and_ordering,
    total_count_only_when_selected,
    stats_by_status_channel_source_stage_and_day,
    duplicate_detection_runs_after_the_create,
    audit_log_records_every_mutation,
    dataloaders_keep_statement_count_flat,
    a_page_reads_what_the_loaders_read,
    later_mutation_fields_read_what_earlier_ones_wrote,
    node_resolves_every_type,
    other_tenants_and_environments_are_not_found,
    read_keys_and_small_plans_cannot_write,
    seed_demo_fills_a_tenant_and_repeats_with_its_seed,
);

async fn create_and_read_a_lead(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let src = source(&app, &t, "Website", "WEB").await;
    let (pl, stages) = pipeline(&app, &t, "Sales", &["New", "Won"]).await;
    let l = lead_ok(
        &app,
        &t,
        json!({
            "email": " Jane.Doe@Example.com ", "firstName": "Jane", "lastName": "Doe",
            "phone": "+1 (555) 019-9000", "sourceId": src, "pipelineId": pl,
            "score": 42, "assignedTo": t.owner.id,
            "customFields": {"company": "Acme Inc", "seats": 12, "vip": true, "note": null},
            "tags": ["b2b", "hot", "b2b"]
        }),
    )
    .await;
    assert_eq!(l["email"], "Jane.Doe@Example.com");
    assert_eq!(l["tenantId"], json!(t.id));
    assert_eq!(l["channel"], "WEB", "the source's channel is the default");
    assert_eq!(l["sourceId"], json!(src));
    assert_eq!(l["pipelineId"], json!(pl));
    assert_eq!(
        l["stageId"],
        json!(stages[0]),
        "a lead enters its pipeline's first stage"
    );
    assert_eq!(l["status"], "NEW");
    assert_eq!(l["score"], 42);
    assert_eq!(l["assignedToId"], json!(t.owner.id));
    assert_eq!(
        l["customFields"],
        json!({"company": "Acme Inc", "seats": 12, "vip": true, "note": null})
    );
    assert_eq!(l["tags"], json!(["b2b", "hot"]));
    assert_eq!(l["duplicateOfId"], json!(null));
    assert_eq!(l["id"].as_str().map(str::len), Some(16));

    let r = app
        .gql(
            Auth::Key(&t.key),
            &format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD} source {{ name }} pipeline {{ name }} stage {{ name }} assignedTo {{ id }} }} }}"),
            json!({"id": l["id"]}),
        )
        .await;
    let got = &r.data()["lead"];
    for k in [
        "id",
        "email",
        "phone",
        "score",
        "tags",
        "customFields",
        "createdAt",
    ] {
        assert_eq!(got[k], l[k], "{k}");
    }
    assert_eq!(got["source"]["name"], "Website");
    assert_eq!(got["pipeline"]["name"], "Sales");
    assert_eq!(got["stage"]["name"], "New");
    assert_eq!(got["assignedTo"]["id"], json!(t.owner.id));

    // Defaults: score 0, status NEW, no tags, empty custom fields.
    let l = lead_ok(&app, &t, jane()).await;
    assert_eq!(
        (l["score"].clone(), l["status"].clone(), l["tags"].clone()),
        (json!(0), json!("NEW"), json!([]))
    );
    assert_eq!(l["customFields"], json!({}));
}

async fn validation_lists_every_failing_field_and_writes_nothing(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.tenant("Globex", Plan::Pro).await;
    let foreign_source = source(&app, &other, "Theirs", "WEB").await;
    let before = snapshot(&app).await;
    let too_many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    let r = create_lead(
        &app,
        Auth::Key(&t.key),
        json!({
            "email": "not-an-email", "firstName": "", "lastName": "x".repeat(101),
            "phone": "555-0199", "score": 101, "sourceId": foreign_source, "assignedTo": "garbage",
            "customFields": too_many, "tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()
        }),
    )
    .await;
    assert_eq!(r.code(), Some("VALIDATION_FAILED"));
    assert_eq!(r.status.as_u16(), 422);
    assert_eq!(
        fields(&r),
        [
            "assignedTo",
            "customFields",
            "email",
            "firstName",
            "lastName",
            "phone",
            "score",
            "sourceId",
            "tags"
        ]
    );
    let r = create_lead(
        &app,
        Auth::Key(&t.key),
        json!({"email": "a@b.co", "firstName": "A", "lastName": "B", "customFields": {"nested": {"x": 1}},
               "tags": ["x".repeat(51)]}),
    )
    .await;
    assert_eq!(fields(&r), ["customFields.nested", "tags"]);
    let r = create_lead(
        &app,
        Auth::Key(&t.key),
        json!({"email": "a@b.co", "firstName": "A", "lastName": "B", "customFields": [1]}),
    )
    .await;
    assert_eq!(fields(&r), ["customFields"]);
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused create writes nothing"
    );

    // Phone normalization accepts the usual punctuation.
    for ok in [
        "+1-555-0199",
        "+44 20 7946 0958",
        "+33.1.23.45.67.89",
        "+1 (555) 0199",
    ] {
        let l = lead_ok(
            &app,
            &t,
            json!({"email": "p@example.com", "firstName": "P", "lastName": "Q", "phone": ok}),
        )
        .await;
        assert_eq!(l["phone"], ok);
    }
    for bad in [
        "5550199",
        "+0123456",
        "+1",
        "+1234567890123456",
        "+1 555 CALL",
    ] {
        let r = create_lead(
            &app,
            Auth::Key(&t.key),
            json!({"email": "p@example.com", "firstName": "P", "lastName": "Q", "phone": bad}),
        )
        .await;
        assert_eq!(fields(&r), ["phone"], "{bad}");
    }
}

async fn partial_update_and_clearing(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let l = lead_ok(&app, &t, json!({"email": "a@example.com", "firstName": "A", "lastName": "B", "phone": "+15550100", "score": 5})).await;
    let q = format!(
        "mutation($id: ID!, $i: UpdateLeadInput!) {{ updateLead(id: $id, input: $i) {{ {LEAD} }} }}"
    );
    let r = app
        .gql(
            Auth::Key(&t.key),
            &q,
            json!({"id": l["id"], "i": {"status": "QUALIFIED", "score": 80, "phone": null}}),
        )
        .await;
    let u = &r.data()["updateLead"];
    assert_eq!(
        (u["status"].clone(), u["score"].clone(), u["phone"].clone()),
        (json!("QUALIFIED"), json!(80), json!(null))
    );
    assert_eq!(u["email"], "a@example.com", "untouched fields stay");
    assert_eq!(u["createdAt"], l["createdAt"]);

    let before = snapshot(&app).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            &q,
            json!({"id": l["id"], "i": {"email": null, "score": -1}}),
        )
        .await;
    assert_eq!(
        fields(&r),
        ["email"],
        "null for a required field is refused first"
    );
    let r = app
        .gql(
            Auth::Key(&t.key),
            &q,
            json!({"id": l["id"], "i": {"email": "bad", "score": -1}}),
        )
        .await;
    assert_eq!(fields(&r), ["email", "score"]);
    assert_eq!(snapshot(&app).await, before);
    let r = app
        .gql(
            Auth::Key(&t.key),
            "query($id: ID!) { lead(id: $id) { score email } }",
            json!({"id": l["id"]}),
        )
        .await;
    assert_eq!(
        r.data()["lead"],
        json!({"score": 80, "email": "a@example.com"})
    );
}

async fn delete_keeps_the_whole_row_in_the_audit_log(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let l = lead_ok(&app, &t, json!({"email": "gone@example.com", "firstName": "Gone", "lastName": "Soon", "tags": ["x"]})).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deleteLead(id: $id) }",
            json!({"id": l["id"]}),
        )
        .await;
    assert_eq!(r.data()["deleteLead"], l["id"]);
    let r = app
        .gql(
            Auth::Key(&t.key),
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({"id": l["id"]}),
        )
        .await;
    assert_eq!(r.code(), Some("NOT_FOUND"));
    assert_eq!(r.status.as_u16(), 404);
    assert_eq!(app.count("lead_tags").await, 0);
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            r#"{ auditLog(first: 1, filter: {action: "lead.delete"}) { edges { node { resourceId changes } } } }"#,
            json!({}),
        )
        .await;
    let e = &r.data()["auditLog"]["edges"][0]["node"];
    assert_eq!(e["resourceId"], l["id"]);
    let row = &e["changes"]["before"];
    assert_eq!(row["email"], "gone@example.com");
    assert_eq!(row["tags"], json!(["x"]));
    assert_eq!(row["id"], l["id"]);
    // A second delete finds nothing.
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deleteLead(id: $id) }",
            json!({"id": l["id"]}),
        )
        .await;
    assert_eq!(r.code(), Some("NOT_FOUND"));
}

async fn assignment_tags_and_stages(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.tenant("Globex", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let l = lead_ok(&app, &t, jane()).await;
    let id = l["id"].clone();

    let assign = "mutation($id: ID!, $u: ID) { assignLead(id: $id, userId: $u) { assignedToId } }";
    let r = app
        .gql(Auth::Key(&t.key), assign, json!({"id": id, "u": member.id}))
        .await;
    assert_eq!(r.data()["assignLead"]["assignedToId"], json!(member.id));
    let r = app
        .gql(
            Auth::Key(&t.key),
            assign,
            json!({"id": id, "u": other.owner.id}),
        )
        .await;
    assert_eq!(
        fields(&r),
        ["assignedTo"],
        "a user of another tenant is not found"
    );
    let r = app
        .gql(Auth::Key(&t.key), assign, json!({"id": id, "u": null}))
        .await;
    assert_eq!(r.data()["assignLead"]["assignedToId"], json!(null));

    let add = "mutation($id: ID!, $t: [String!]!) { addLeadTags(id: $id, tags: $t) { tags } }";
    let r = app
        .gql(
            Auth::Key(&t.key),
            add,
            json!({"id": id, "t": ["vip", " hot ", "vip"]}),
        )
        .await;
    assert_eq!(r.data()["addLeadTags"]["tags"], json!(["hot", "vip"]));
    let r = app
        .gql(
            Auth::Key(&t.key),
            add,
            json!({"id": id, "t": (0..19).map(|i| format!("t{i:02}")).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(
        r.code(),
        Some("CONFLICT"),
        "21 tags in all are refused: {}",
        r.text
    );
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { removeLeadTags(id: $id, tags: [\"vip\", \"absent\"]) { tags } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(r.data()["removeLeadTags"]["tags"], json!(["hot"]));

    let (pl, stages) = pipeline(&app, &t, "Sales", &["New", "Demo", "Won"]).await;
    let (_, other_stages) = pipeline(&app, &t, "Partners", &["Intro"]).await;
    let mv = "mutation($id: ID!, $s: ID!) { moveLeadToStage(id: $id, stageId: $s) { stageId pipelineId } }";
    let r = app
        .gql(Auth::Key(&t.key), mv, json!({"id": id, "s": stages[1]}))
        .await;
    assert_eq!(
        fields(&r),
        ["stageId"],
        "a lead in no pipeline cannot move to a stage"
    );
    let r = app
        .gql(Auth::Key(&t.key), "mutation($id: ID!, $p: ID!) { updateLead(id: $id, input: {pipelineId: $p}) { stageId } }", json!({"id": id, "p": pl}))
        .await;
    assert_eq!(r.data()["updateLead"]["stageId"], json!(stages[0]));
    let r = app
        .gql(Auth::Key(&t.key), mv, json!({"id": id, "s": stages[2]}))
        .await;
    assert_eq!(
        r.data()["moveLeadToStage"],
        json!({"stageId": stages[2], "pipelineId": pl})
    );
    let before = snapshot(&app).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            mv,
            json!({"id": id, "s": other_stages[0]}),
        )
        .await;
    assert_eq!(
        fields(&r),
        ["stageId"],
        "the stage must belong to the lead's pipeline"
    );
    let r = app
        .gql(Auth::Key(&t.key), mv, json!({"id": id, "s": "garbage"}))
        .await;
    assert_eq!(fields(&r), ["stageId"]);
    assert_eq!(snapshot(&app).await, before);
}

async fn sources_crud_and_lead_counts(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let s = source(&app, &t, "Website", "WEB").await;
    let r = app
        .gql(Auth::Key(&t.key), r#"mutation($id: ID!) { updateSource(id: $id, input: {name: "Site", description: "Main form"}) { name channel description } }"#, json!({"id": s}))
        .await;
    assert_eq!(
        r.data()["updateSource"],
        json!({"name": "Site", "channel": "WEB", "description": "Main form"})
    );
    lead_ok(
        &app,
        &t,
        json!({"email": "a@example.com", "firstName": "A", "lastName": "B", "sourceId": s}),
    )
    .await;
    lead_ok(
        &app,
        &t,
        json!({"email": "b@example.com", "firstName": "A", "lastName": "B", "sourceId": s}),
    )
    .await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ sources { id name leadCount hasWebhook } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.data()["sources"],
        json!([{"id": s, "name": "Site", "leadCount": 2, "hasWebhook": false}])
    );

    let before = snapshot(&app).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deleteSource(id: $id) }",
            json!({"id": s}),
        )
        .await;
    assert_eq!(r.code(), Some("CONFLICT"));
    assert_eq!(r.status.as_u16(), 409);
    assert_eq!(snapshot(&app).await, before);
    let r = app
        .gql(
            Auth::Key(&t.key),
            r#"mutation { createSource(input: {name: "", channel: WEB}) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(fields(&r), ["name"]);

    let empty = source(&app, &t, "Unused", "IMPORT").await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deleteSource(id: $id) }",
            json!({"id": empty}),
        )
        .await;
    assert_eq!(r.data()["deleteSource"], json!(empty));
    let r = app
        .gql(
            Auth::Key(&t.key),
            "query($id: ID!) { source(id: $id) { id } }",
            json!({"id": empty}),
        )
        .await;
    assert_eq!(r.code(), Some("NOT_FOUND"));
}

async fn pipelines_and_stages(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (pl, st) = pipeline(&app, &t, "Sales", &["A", "B", "C"]).await;
    let names = |r: &Resp, root: &str| -> Vec<String> {
        r.data()[root]["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|s| s["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let show = "query($id: ID!) { pipeline(id: $id) { name stages { id name position } } }";

    let r = app.gql(Auth::Key(&t.key), r#"mutation($p: ID!) { createStage(input: {pipelineId: $p, name: "A2", position: 1}) { id position } }"#, json!({"p": pl})).await;
    let a2 = r.data()["createStage"]["id"].clone();
    assert_eq!(r.data()["createStage"]["position"], 1);
    let r = app.gql(Auth::Key(&t.key), show, json!({"id": pl})).await;
    assert_eq!(names(&r, "pipeline"), ["A", "A2", "B", "C"]);
    let positions: Vec<i64> = r.data()["pipeline"]["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["position"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(positions, [0, 1, 2, 3]);

    let r = app.gql(Auth::Key(&t.key), r#"mutation($id: ID!) { updateStage(id: $id, input: {name: "Z", position: 0}) { position } }"#, json!({"id": st[2]})).await;
    assert_eq!(r.data()["updateStage"]["position"], 0);
    let r = app.gql(Auth::Key(&t.key), show, json!({"id": pl})).await;
    assert_eq!(names(&r, "pipeline"), ["Z", "A", "A2", "B"]);

    let r = app
        .gql(Auth::Key(&t.key), "mutation($p: ID!, $s: [ID!]!) { reorderStages(pipelineId: $p, stageIds: $s) { stages { name } } }", json!({"p": pl, "s": [st[0], st[1], a2, st[2]]}))
        .await;
    assert_eq!(names(&r, "reorderStages"), ["A", "B", "A2", "Z"]);
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($p: ID!, $s: [ID!]!) { reorderStages(pipelineId: $p, stageIds: $s) { id } }",
            json!({"p": pl, "s": [st[0], st[1]]}),
        )
        .await;
    assert_eq!(fields(&r), ["stageIds"]);

    let r = app
        .gql(
            Auth::Key(&t.key),
            r#"mutation($id: ID!) { updatePipeline(id: $id, input: {name: "Deals"}) { name } }"#,
            json!({"id": pl}),
        )
        .await;
    assert_eq!(r.data()["updatePipeline"]["name"], "Deals");

    // Deleting what leads use is refused; nothing is written.
    lead_ok(
        &app,
        &t,
        json!({"email": "a@example.com", "firstName": "A", "lastName": "B", "stageId": st[1]}),
    )
    .await;
    let before = snapshot(&app).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deleteStage(id: $id) }",
            json!({"id": st[1]}),
        )
        .await;
    assert_eq!(r.code(), Some("CONFLICT"));
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deletePipeline(id: $id) }",
            json!({"id": pl}),
        )
        .await;
    assert_eq!(r.code(), Some("CONFLICT"));
    assert_eq!(snapshot(&app).await, before);
    // An unused stage goes, and positions close up.
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deleteStage(id: $id) }",
            json!({"id": a2}),
        )
        .await;
    r.data();
    let r = app.gql(Auth::Key(&t.key), show, json!({"id": pl})).await;
    assert_eq!(names(&r, "pipeline"), ["A", "B", "Z"]);
    let (empty, _) = pipeline(&app, &t, "Empty", &["x"]).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { deletePipeline(id: $id) }",
            json!({"id": empty}),
        )
        .await;
    assert_eq!(r.data()["deletePipeline"], json!(empty));
    let r = app
        .gql(Auth::Key(&t.key), "{ pipelines { name } }", json!({}))
        .await;
    assert_eq!(r.data()["pipelines"], json!([{"name": "Deals"}]));
}

async fn seed(app: &TestApp, t: &TestTenant, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            lead_ok(app, t, json!({"email": format!("l{i}@example.com"), "firstName": "F", "lastName": format!("L{:02}", (i * 7) % n), "score": (i * 13) % 101}))
                .await,
        );
    }
    out
}

async fn walk(
    app: &TestApp,
    t: &TestTenant,
    order: &str,
    forward: bool,
    size: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = if forward {
            format!(
                "query($c: String) {{ leads(first: {size}, after: $c, orderBy: {order}) {{ edges {{ cursor node {{ id }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
            )
        } else {
            format!(
                "query($c: String) {{ leads(last: {size}, before: $c, orderBy: {order}) {{ edges {{ cursor node {{ id }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"
            )
        };
        let r = app.gql(Auth::Key(&t.key), &q, json!({"c": cursor})).await;
        let conn = &r.data()["leads"];
        let ids: Vec<String> = conn["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(ids.len() <= size);
        let info = &conn["pageInfo"];
        // Edge cursors are encoded on their own: they must match the page's ends.
        let edges = conn["edges"].as_array().expect("edges");
        if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
            assert_eq!(first["cursor"], info["startCursor"]);
            assert_eq!(last["cursor"], info["endCursor"]);
        }
        if forward {
            seen.extend(ids);
            if !info["hasNextPage"].as_bool().unwrap_or(false) {
                break;
            }
            cursor = info["endCursor"].as_str().map(str::to_owned);
        } else {
            let mut all = ids;
            all.extend(seen);
            seen = all;
            if !info["hasPreviousPage"].as_bool().unwrap_or(false) {
                break;
            }
            cursor = info["startCursor"].as_str().map(str::to_owned);
        }
    }
    seen
}

async fn keyset_pagination_in_both_directions(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let leads = seed(&app, &t, 23).await;
    let newest_first: Vec<String> = leads
        .iter()
        .rev()
        .map(|l| l["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        walk(&app, &t, "{field: CREATED_AT, direction: DESC}", true, 5).await,
        newest_first
    );
    assert_eq!(
        walk(&app, &t, "{field: CREATED_AT, direction: DESC}", false, 5).await,
        newest_first
    );
    for order in [
        "{field: SCORE, direction: ASC}",
        "{field: LAST_NAME, direction: DESC}",
        "{field: UPDATED_AT, direction: ASC}",
    ] {
        let fwd = walk(&app, &t, order, true, 4).await;
        assert_eq!(fwd.len(), 23, "{order}");
        assert_eq!(walk(&app, &t, order, false, 7).await, fwd, "{order}");
        let mut unique = fwd.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 23);
    }
    // The page size is capped and cursors belong to their ordering.
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 101) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(fields(&r), ["first"]);
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let c = r.data()["leads"]["pageInfo"]["endCursor"].clone();
    let r = app.gql(Auth::Key(&t.key), "query($c: String) { leads(first: 1, after: $c, orderBy: {field: SCORE}) { edges { cursor } } }", json!({"c": c})).await;
    assert_eq!(fields(&r), ["after"]);
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 1, after: \"bm9wZQ\") { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(fields(&r), ["after"]);
}

async fn cursors_are_stable_under_concurrent_inserts(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let leads = seed(&app, &t, 6).await;
    let q = "query($c: String) { leads(first: 3, after: $c, orderBy: {field: CREATED_AT, direction: ASC}) { edges { node { id } } pageInfo { endCursor } } }";
    let r = app.gql(Auth::Key(&t.key), q, json!({"c": null})).await;
    let cursor = r.data()["leads"]["pageInfo"]["endCursor"].clone();
    // New leads arrive between page requests; the next page continues where the first stopped.
    seed(&app, &t, 2).await;
    let r = app.gql(Auth::Key(&t.key), q, json!({"c": cursor})).await;
    let page2: Vec<Value> = r.data()["leads"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].clone())
        .collect();
    assert_eq!(
        page2,
        leads[3..6]
            .iter()
            .map(|l| l["id"].clone())
            .collect::<Vec<_>>()
    );
}

async fn ids_of(app: &TestApp, t: &TestTenant, filter: &str) -> Vec<String> {
    let r = app
        .gql(Auth::Key(&t.key), &format!("{{ leads(first: 100, filter: {filter}, orderBy: {{field: CREATED_AT, direction: ASC}}) {{ edges {{ node {{ email }} }} }} }}"), json!({}))
        .await;
    r.data()["leads"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["email"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn every_filter_and_ordering(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let s1 = source(&app, &t, "Web", "WEB").await;
    let (pl, st) = pipeline(&app, &t, "Sales", &["A", "B"]).await;
    lead_ok(&app, &t, json!({"email": "ann@example.com", "firstName": "Ann", "lastName": "Smith", "phone": "+44 20 7946 0958", "score": 10, "sourceId": s1, "tags": ["vip"]})).await;
    lead_ok(&app, &t, json!({"email": "bob@example.com", "firstName": "Bob", "lastName": "Jones", "source": "REFERRAL", "score": 50, "status": "CONTACTED", "pipelineId": pl, "assignedTo": member.id})).await;
    lead_ok(&app, &t, json!({"email": "cy@sample.org", "firstName": "Cy", "lastName": "Smithers", "source": "API", "score": 90, "status": "QUALIFIED", "stageId": st[1], "tags": ["vip", "eu"]})).await;

    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "{status: [CONTACTED, QUALIFIED]}".into(),
            vec!["bob@example.com", "cy@sample.org"],
        ),
        ("{channel: [WEB]}".into(), vec!["ann@example.com"]),
        (format!("{{sourceId: \"{s1}\"}}"), vec!["ann@example.com"]),
        (
            format!("{{pipelineId: \"{pl}\"}}"),
            vec!["bob@example.com", "cy@sample.org"],
        ),
        (format!("{{stageId: \"{}\"}}", st[1]), vec!["cy@sample.org"]),
        (
            format!("{{assignedTo: \"{}\"}}", member.id),
            vec!["bob@example.com"],
        ),
        (
            "{tag: \"vip\"}".into(),
            vec!["ann@example.com", "cy@sample.org"],
        ),
        ("{tag: \"eu\"}".into(), vec!["cy@sample.org"]),
        (
            "{scoreMin: 20, scoreMax: 60}".into(),
            vec!["bob@example.com"],
        ),
        (
            "{search: \"smith\"}".into(),
            vec!["ann@example.com", "cy@sample.org"],
        ),
        ("{search: \"ann smith\"}".into(), vec!["ann@example.com"]),
        ("{search: \"SAMPLE.ORG\"}".into(), vec!["cy@sample.org"]),
        ("{search: \"7946\"}".into(), vec!["ann@example.com"]),
        ("{search: \"100%_\"}".into(), vec![]),
        (
            "{createdAfter: \"2000-01-01T00:00:00Z\", createdBefore: \"2100-01-01T00:00:00Z\"}"
                .into(),
            vec!["ann@example.com", "bob@example.com", "cy@sample.org"],
        ),
        ("{createdAfter: \"2100-01-01T00:00:00Z\"}".into(), vec![]),
    ];
    for (filter, want) in cases {
        assert_eq!(ids_of(&app, &t, &filter).await, want, "{filter}");
    }
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(orderBy: {field: SCORE, direction: DESC}) { edges { node { score } } } }",
            json!({}),
        )
        .await;
    let scores: Vec<i64> = r.data()["leads"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["score"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(scores, [90, 50, 10]);
    let r = app.gql(Auth::Key(&t.key), "{ leads(orderBy: {field: LAST_NAME, direction: ASC}) { edges { node { lastName } } } }", json!({})).await;
    let names: Vec<&str> = r.data()["leads"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["lastName"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["Jones", "Smith", "Smithers"]);
}

async fn total_count_only_when_selected(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    seed(&app, &t, 3).await;
    // Warm the key cache so both requests below cost the same apart from the count.
    app.gql(Auth::Key(&t.key), "{ me { id } }", json!({}))
        .await
        .data();
    app.settle().await;
    let n0 = app.statement_count();
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 2) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    r.data();
    let without = app.statement_count() - n0;
    let n1 = app.statement_count();
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 2) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["leads"]["totalCount"], 3);
    let with = app.statement_count() - n1;
    assert_eq!(
        with,
        without + 1,
        "totalCount costs exactly one COUNT statement, and only when selected"
    );
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 1, filter: {scoreMin: 1}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["leads"]["totalCount"], 2);
}

async fn stats_by_status_channel_source_stage_and_day(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let s1 = source(&app, &t, "Web", "WEB").await;
    let (_, st) = pipeline(&app, &t, "Sales", &["A", "B"]).await;
    lead_ok(&app, &t, json!({"email": "a@example.com", "firstName": "A", "lastName": "A", "sourceId": s1, "stageId": st[0]})).await;
    lead_ok(&app, &t, json!({"email": "b@example.com", "firstName": "B", "lastName": "B", "sourceId": s1, "status": "QUALIFIED", "stageId": st[1]})).await;
    lead_ok(&app, &t, json!({"email": "c@example.com", "firstName": "C", "lastName": "C", "source": "API", "status": "QUALIFIED"})).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ stats { total byStatus { status count } byChannel { channel count } bySource { sourceId source { name } count } \
               byStage { stageId stage { name } count } createdPerDay { date count } } }",
            json!({}),
        )
        .await;
    let s = &r.data()["stats"];
    assert_eq!(s["total"], 3);
    assert_eq!(
        s["byStatus"],
        json!([{"status": "NEW", "count": 1}, {"status": "QUALIFIED", "count": 2}])
    );
    assert_eq!(
        s["byChannel"],
        json!([{"channel": "API", "count": 1}, {"channel": "WEB", "count": 2}])
    );
    assert_eq!(
        s["bySource"],
        json!([{"sourceId": null, "source": null, "count": 1}, {"sourceId": s1, "source": {"name": "Web"}, "count": 2}])
    );
    let by_stage = s["byStage"].as_array().expect("byStage");
    assert_eq!(by_stage.len(), 3);
    let days = s["createdPerDay"].as_array().expect("days");
    assert_eq!(days.len(), 31, "30 days back to today, inclusive");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        days.last().expect("today"),
        &json!({"date": today, "count": 3})
    );
    assert_eq!(
        days.iter()
            .map(|d| d["count"].as_i64().unwrap_or(0))
            .sum::<i64>(),
        3
    );
    let r = app.gql(Auth::Key(&t.key), "{ stats(filter: {createdAfter: \"2030-01-01T00:00:00Z\", createdBefore: \"2020-01-01T00:00:00Z\"}) { total } }", json!({})).await;
    // A window that ends before it starts is empty.
    assert_eq!(r.data()["stats"]["total"], 0, "{}", r.text);
}

async fn duplicate_detection_runs_after_the_create(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let first = lead_ok(&app, &t, json!({"email": "Dup@Example.com", "firstName": "A", "lastName": "B", "phone": "+1 555 0100"})).await;
    let by_email = lead_ok(
        &app,
        &t,
        json!({"email": " dup@example.COM ", "firstName": "C", "lastName": "D"}),
    )
    .await;
    let by_phone = lead_ok(&app, &t, json!({"email": "other@example.com", "firstName": "E", "lastName": "F", "phone": "+1-555-0100"})).await;
    let unique = lead_ok(
        &app,
        &t,
        json!({"email": "unique@example.com", "firstName": "G", "lastName": "H"}),
    )
    .await;
    // The creates answered before detection ran: their payloads carry no link.
    for l in [&by_email, &by_phone] {
        assert_eq!(l["duplicateOfId"], json!(null));
    }
    let q = "query($id: ID!) { lead(id: $id) { duplicateOfId duplicateOf { email } } }";
    for l in [&by_email, &by_phone] {
        let mut linked = Value::Null;
        for _ in 0..100 {
            let r = app.gql(Auth::Key(&t.key), q, json!({"id": l["id"]})).await;
            linked = r.data()["lead"].clone();
            if !linked["duplicateOfId"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            linked,
            json!({"duplicateOfId": first["id"], "duplicateOf": {"email": "Dup@Example.com"}})
        );
    }
    app.settle().await;
    for l in [&first, &unique] {
        let r = app.gql(Auth::Key(&t.key), q, json!({"id": l["id"]})).await;
        assert_eq!(r.data()["lead"]["duplicateOfId"], json!(null));
    }
    // Another tenant's lead with the same email is not a duplicate.
    let other = app.tenant("Globex", Plan::Pro).await;
    let theirs = lead_ok(
        &app,
        &other,
        json!({"email": "dup@example.com", "firstName": "X", "lastName": "Y"}),
    )
    .await;
    let linked = leadgraph::service::lead::duplicates::link(
        app.db(),
        &app.state.outbox,
        &lead_model(&app, &theirs).await,
    )
    .await
    .expect("link");
    assert_eq!(linked, None);
}

async fn lead_model(app: &TestApp, l: &Value) -> entity::lead::Model {
    use sea_orm::EntityTrait;
    let id = app
        .state
        .ids
        .decode(leadgraph::ids::Kind::Lead, l["id"].as_str().unwrap_or(""))
        .expect("lead id");
    entity::lead::Entity::find_by_id(id)
        .one(app.db())
        .await
        .expect("query")
        .expect("lead")
}

async fn audit_log_records_every_mutation(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let before = app.count("audit_log").await;
    let l = lead_ok(&app, &t, jane()).await;
    let r = app
        .gql_with(
            Auth::Key(&t.key),
            "mutation($id: ID!) { updateLead(id: $id, input: {score: 7}) { id } }",
            json!({"id": l["id"]}),
            &[("x-request-id", "req-123")],
        )
        .await;
    r.data();
    assert_eq!(
        app.count("audit_log").await,
        before + 2,
        "one entry per mutation"
    );
    let q = "{ auditLog(first: 10) { edges { cursor node { action resourceType resourceId changes ip requestId actor { id } onBehalfOf { id } apiKey { prefix } } } pageInfo { hasNextPage endCursor } } }";
    let r = app.gql(Auth::Bearer(&t.owner.token), q, json!({})).await;
    let edges = r.data()["auditLog"]["edges"]
        .as_array()
        .expect("edges")
        .clone();
    let update = &edges[0]["node"];
    assert_eq!(update["action"], "lead.update");
    assert_eq!(update["resourceType"], "lead");
    assert_eq!(update["resourceId"], l["id"]);
    assert_eq!(
        update["changes"],
        json!({"before": {"score": 0}, "after": {"score": 7}})
    );
    assert_eq!(update["ip"], "127.0.0.1");
    assert_eq!(update["requestId"], "req-123");
    assert_eq!(update["actor"]["id"], json!(t.owner.id));
    assert_eq!(update["onBehalfOf"], json!(null));
    assert!(
        update["apiKey"]["prefix"]
            .as_str()
            .unwrap_or("")
            .starts_with("lg_live_sk_")
    );
    let create = &edges[1]["node"];
    assert_eq!(create["action"], "lead.create");
    assert_eq!(create["changes"]["after"]["email"], "jane.doe@example.com");

    // Filters and paging.
    let r = app.gql(Auth::Bearer(&t.owner.token), r#"{ auditLog(first: 1, filter: {action: "lead.create"}) { edges { node { action } } pageInfo { hasNextPage endCursor } } }"#, json!({})).await;
    assert_eq!(
        r.data()["auditLog"]["edges"][0]["node"]["action"],
        "lead.create"
    );
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "query($id: ID!) { auditLog(filter: {resourceId: $id}) { edges { node { action } } } }",
            json!({"id": l["id"]}),
        )
        .await;
    assert_eq!(
        r.data()["auditLog"]["edges"].as_array().map(Vec::len),
        Some(2)
    );
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "{ auditLog(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let c = r.data()["auditLog"]["pageInfo"]["endCursor"].clone();
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "query($c: String) { auditLog(first: 1, after: $c) { edges { node { action } } } }",
            json!({"c": c}),
        )
        .await;
    assert_eq!(
        r.data()["auditLog"]["edges"][0]["node"]["action"],
        "lead.create"
    );

    // Members cannot read it.
    let r = app
        .gql(
            Auth::Bearer(&member.token),
            "{ auditLog { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), Some("FORBIDDEN"));
    assert_eq!(r.status.as_u16(), 403);
}

async fn dataloaders_keep_statement_count_flat(app: TestApp) {
    // A page of 100 with every relation is beyond the default complexity limit.
    let app = app.sibling(|c| c.graphql_max_complexity = 10_000).await;
    let t = app.tenant("Acme", Plan::Pro).await;
    let (_, stages) = pipeline(&app, &t, "Sales", &["A", "B", "C"]).await;
    let mut sources = Vec::new();
    for i in 0..4 {
        sources.push(source(&app, &t, &format!("S{i}"), "WEB").await);
    }
    for i in 0..100 {
        lead_ok(
            &app,
            &t,
            json!({"email": format!("l{i}@example.com"), "firstName": "F", "lastName": "L", "sourceId": sources[i % 4],
                   "stageId": stages[i % 3], "assignedTo": t.owner.id, "tags": [format!("t{}", i % 5)]}),
        )
        .await;
    }
    let q = |n: usize| {
        format!(
            "{{ leads(first: {n}) {{ edges {{ node {{ id tags source {{ name leadCount }} pipeline {{ name stages {{ name }} }} \
             stage {{ name }} assignedTo {{ email }} duplicateOf {{ id }} }} }} }} }}"
        )
    };
    app.settle().await;
    let mut counts = Vec::new();
    for n in [10, 100] {
        let before = app.statement_count();
        let r = app.gql(Auth::Key(&t.key), &q(n), json!({})).await;
        assert_eq!(r.data()["leads"]["edges"].as_array().map(Vec::len), Some(n));
        counts.push(app.statement_count() - before);
    }
    assert_eq!(
        counts[0], counts[1],
        "statements do not grow with the page size"
    );
    // 1 key look-up + 1 page (tags, and on PostgreSQL source, pipeline, stage and user joined
    // in) + lead counts + stages of pipelines: 4; on SQLite the four relations are loaded: 8
    // (duplicateOf loads nothing: no lead has one yet).
    let most = if app.is_postgres() { 4 } else { 8 };
    assert!(counts[1] <= most, "{} statements", counts[1]);
    // The benchmark's page: on PostgreSQL everything in the page's statement.
    let most = if app.is_postgres() { 2 } else { 6 };
    let before = app.statement_count();
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(first: 50) { edges { node { id email tags source { name } pipeline { name } \
             stage { name } assignedTo { name email } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.data()["leads"]["edges"].as_array().map(Vec::len),
        Some(50)
    );
    assert!(
        app.statement_count() - before <= most,
        "{} statements",
        app.statement_count() - before
    );
}

/// The relations read with a page (joined, tags aggregated) are what the loaders read for one
/// lead: the same rows, tags in the same order, absent relations null.
async fn a_page_reads_what_the_loaders_read(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (pl, stages) = pipeline(&app, &t, "Sales", &["A", "B"]).await;
    // Values unlike the placeholders a column not read holds (empty, zero, first enum value).
    let src = source(&app, &t, "Fair", "REFERRAL").await;
    app.gql(
        Auth::Key(&t.key),
        "mutation($id: ID!) { rotateSourceWebhookToken(id: $id) { token } \
         updateSource(id: $id, input: {description: \"Booth\"}) { id } }",
        json!({"id": src}),
    )
    .await
    .data();
    lead_ok(
        &app,
        &t,
        json!({"email": "a@example.com", "firstName": "A", "lastName": "A", "sourceId": src, "pipelineId": pl,
               "stageId": stages[1], "assignedTo": t.owner.id, "tags": ["b", "A", "a", "B", "z-9", "Ä"],
               "phone": "+1 555 0100", "source": "REFERRAL", "status": "QUALIFIED", "score": 7,
               "customFields": {"k": 1}}),
    )
    .await;
    lead_ok(
        &app,
        &t,
        json!({"email": "b@example.com", "firstName": "B", "lastName": "B"}),
    )
    .await;
    let fields = "id email tags source { id name channel hasWebhook createdAt } pipeline { id name } \
                  stage { id name position pipeline { name } } assignedTo { id name email role active }";
    let page = app
        .gql(
            Auth::Key(&t.key),
            &format!("{{ leads(first: 10) {{ edges {{ node {{ {fields} }} }} }} }}"),
            json!({}),
        )
        .await;
    let edges = page.data()["leads"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 2);
    for e in &edges {
        let one = app
            .gql(
                Auth::Key(&t.key),
                &format!("query($id: ID!) {{ lead(id: $id) {{ {fields} }} }}"),
                json!({"id": e["node"]["id"]}),
            )
            .await;
        assert_eq!(e["node"], one.data()["lead"], "page and lead agree");
    }
    let a = &edges[1]["node"];
    assert_eq!(a["email"], "a@example.com");
    assert_eq!(a["source"]["name"], "Fair");
    assert_eq!(a["source"]["hasWebhook"], true);
    assert_eq!(a["stage"]["name"], "B");
    assert_eq!(a["assignedTo"]["id"], json!(t.owner.id));
    assert_eq!(edges[0]["node"]["tags"], json!([]));
    assert_eq!(edges[0]["node"]["source"], Value::Null);

    // A page reads only the columns its fields show: each field alone must still be right.
    let alone = [
        "tenantId",
        "email",
        "firstName",
        "lastName",
        "phone",
        "channel",
        "sourceId",
        "pipelineId",
        "stageId",
        "status",
        "score",
        "assignedToId",
        "customFields",
        "tags",
        "duplicateOfId",
        "importId",
        "createdAt",
        "updatedAt",
        "duplicateOf { email }",
        "source { name }",
        "source { channel }",
        "source { description }",
        "source { hasWebhook }",
        "source { leadCount }",
        "source { createdAt }",
        "source { updatedAt }",
        "pipeline { name }",
        "pipeline { stages { name } }",
        "pipeline { createdAt }",
        "pipeline { updatedAt }",
        "stage { name }",
        "stage { position }",
        "stage { pipelineId }",
        "stage { pipeline { name } }",
        "assignedTo { email }",
        "assignedTo { name }",
        "assignedTo { role }",
        "assignedTo { active }",
        "assignedTo { tenant { name } }",
        "assignedTo { createdAt }",
        "assignedTo { updatedAt }",
        "a: source { name } b: source { description }",
        "... on Lead { stage { position } }",
    ];
    for field in alone {
        let page = app
            .gql(
                Auth::Key(&t.key),
                &format!("{{ leads(first: 10) {{ edges {{ node {{ id {field} }} }} }} }}"),
                json!({}),
            )
            .await;
        for e in page.data()["leads"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let one = app
                .gql(
                    Auth::Key(&t.key),
                    &format!("query($id: ID!) {{ lead(id: $id) {{ id {field} }} }}"),
                    json!({"id": e["node"]["id"]}),
                )
                .await;
            assert_eq!(
                e["node"],
                one.data()["lead"],
                "{field}: page and lead agree"
            );
        }
    }
}

/// Mutation fields run in order; one must not answer from what an earlier one loaded before
/// a later one changed it.
async fn later_mutation_fields_read_what_earlier_ones_wrote(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let src = source(&app, &t, "Old", "WEB").await;
    let l = lead_ok(&app, &t, jane()).await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($s: ID!, $l: ID!) { \
             a: updateLead(id: $l, input: {sourceId: $s}) { source { name leadCount } } \
             b: updateSource(id: $s, input: {name: \"New\"}) { name } \
             c: updateLead(id: $l, input: {score: 5}) { source { name leadCount } } \
             d: createLead(input: {email: \"x@example.com\", firstName: \"X\", lastName: \"Y\", sourceId: $s}) { source { leadCount } } }",
            json!({"s": src, "l": l["id"]}),
        )
        .await;
    let d = r.data();
    assert_eq!(d["a"]["source"], json!({"name": "Old", "leadCount": 1}));
    assert_eq!(d["b"]["name"], "New");
    assert_eq!(d["c"]["source"], json!({"name": "New", "leadCount": 1}));
    assert_eq!(d["d"]["source"]["leadCount"], 2);
}

async fn node_resolves_every_type(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let l = lead_ok(&app, &t, jane()).await;
    let s = source(&app, &t, "Web", "WEB").await;
    let (pl, st) = pipeline(&app, &t, "Sales", &["A"]).await;
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "{ auditLog(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let audit_id = r.data()["auditLog"]["edges"][0]["node"]["id"].clone();
    let q = "query($id: ID!) { node(id: $id) { __typename id } }";
    for (id, ty) in [
        (l["id"].clone(), "Lead"),
        (json!(s), "Source"),
        (json!(pl), "Pipeline"),
        (json!(st[0]), "Stage"),
        (audit_id, "AuditEntry"),
    ] {
        let r = app
            .gql(Auth::Bearer(&t.owner.token), q, json!({"id": id}))
            .await;
        assert_eq!(r.data()["node"], json!({"__typename": ty, "id": id}));
    }
}

async fn other_tenants_and_environments_are_not_found(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.tenant("Globex", Plan::Pro).await;
    let (_, sandbox_key) = app.key(&t.owner.token, "FULL", "SANDBOX").await;
    let theirs = lead_ok(&app, &other, jane()).await;
    let their_source = source(&app, &other, "Web", "WEB").await;
    let (their_pl, their_st) = pipeline(&app, &other, "P", &["A"]).await;
    let live = lead_ok(&app, &t, jane()).await;
    let live_source = source(&app, &t, "Web", "WEB").await;
    let (live_pl, live_st) = pipeline(&app, &t, "P", &["A"]).await;

    let cases = [
        ("query($id: ID!) { lead(id: $id) { id } }", "lead"),
        (
            "mutation($id: ID!) { updateLead(id: $id, input: {score: 1}) { id } }",
            "lead",
        ),
        ("mutation($id: ID!) { deleteLead(id: $id) }", "lead"),
        (
            "mutation($id: ID!) { assignLead(id: $id, userId: null) { id } }",
            "lead",
        ),
        (
            "mutation($id: ID!) { addLeadTags(id: $id, tags: [\"x\"]) { id } }",
            "lead",
        ),
        (
            "mutation($id: ID!) { removeLeadTags(id: $id, tags: [\"x\"]) { id } }",
            "lead",
        ),
        ("query($id: ID!) { source(id: $id) { id } }", "source"),
        (
            "mutation($id: ID!) { updateSource(id: $id, input: {name: \"x\"}) { id } }",
            "source",
        ),
        ("mutation($id: ID!) { deleteSource(id: $id) }", "source"),
        (
            "mutation($id: ID!) { rotateSourceWebhookToken(id: $id) { token } }",
            "source",
        ),
        ("query($id: ID!) { pipeline(id: $id) { id } }", "pipeline"),
        (
            "mutation($id: ID!) { updatePipeline(id: $id, input: {name: \"x\"}) { id } }",
            "pipeline",
        ),
        ("mutation($id: ID!) { deletePipeline(id: $id) }", "pipeline"),
        (
            "mutation($id: ID!) { updateStage(id: $id, input: {name: \"x\"}) { id } }",
            "stage",
        ),
        ("mutation($id: ID!) { deleteStage(id: $id) }", "stage"),
    ];
    let before = snapshot(&app).await;
    for (q, kind) in cases {
        let (foreign, live_id) = match kind {
            "lead" => (theirs["id"].clone(), live["id"].clone()),
            "source" => (json!(their_source), json!(live_source)),
            "pipeline" => (json!(their_pl), json!(live_pl)),
            _ => (json!(their_st[0]), json!(live_st[0])),
        };
        let r = app.gql(Auth::Key(&t.key), q, json!({"id": foreign})).await;
        assert_eq!(r.code(), Some("NOT_FOUND"), "other tenant: {q}");
        let r = app
            .gql(Auth::Key(&sandbox_key), q, json!({"id": live_id}))
            .await;
        assert_eq!(
            r.code(),
            Some("NOT_FOUND"),
            "sandbox key on a live row: {q}"
        );
        let r = app
            .gql(Auth::Key(&t.key), q, json!({"id": "x".repeat(16)}))
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"), "garbage: {q}");
    }
    assert_eq!(snapshot(&app).await, before, "nothing was written");
    // Lists see only their own tenant and environment.
    let r = app
        .gql(
            Auth::Key(&sandbox_key),
            "{ leads { edges { node { id } } } sources { id } pipelines { id } stats { total } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r.data(),
        &json!({"leads": {"edges": []}, "sources": [], "pipelines": [], "stats": {"total": 0}})
    );
    let sandbox_lead = lead_ok(
        &app,
        &TestTenant {
            key: sandbox_key.clone(),
            ..t.clone()
        },
        jane(),
    )
    .await;
    let r = app
        .gql(
            Auth::Key(&t.key),
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({"id": sandbox_lead["id"]}),
        )
        .await;
    assert_eq!(
        r.code(),
        Some("NOT_FOUND"),
        "a live key cannot read a sandbox lead"
    );
    // References in bodies are checked too.
    let r = create_lead(&app, Auth::Key(&t.key), json!({"email": "a@b.co", "firstName": "A", "lastName": "B", "sourceId": their_source, "pipelineId": their_pl, "stageId": their_st[0]})).await;
    assert_eq!(fields(&r), ["pipelineId", "sourceId", "stageId"]);
    let r = create_lead(
        &app,
        Auth::Key(&sandbox_key),
        json!({"email": "a@b.co", "firstName": "A", "lastName": "B", "sourceId": live_source}),
    )
    .await;
    assert_eq!(fields(&r), ["sourceId"]);
}

async fn read_keys_and_small_plans_cannot_write(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (_, read_key) = app.key(&t.owner.token, "READ", "LIVE").await;
    let free = app.tenant("Tiny", Plan::Free).await;
    let starter = app.tenant("Small", Plan::Starter).await;
    let l = lead_ok(&app, &t, jane()).await;
    let mutations = [
        "mutation { createLead(input: {email: \"a@b.co\", firstName: \"A\", lastName: \"B\"}) { id } }",
        "mutation($id: ID!) { updateLead(id: $id, input: {score: 1}) { id } }",
        "mutation($id: ID!) { deleteLead(id: $id) }",
        "mutation($id: ID!) { assignLead(id: $id, userId: null) { id } }",
        "mutation($id: ID!) { addLeadTags(id: $id, tags: [\"x\"]) { id } }",
        "mutation($id: ID!) { removeLeadTags(id: $id, tags: [\"x\"]) { id } }",
        "mutation($id: ID!) { moveLeadToStage(id: $id, stageId: $id) { id } }",
        "mutation { createSource(input: {name: \"x\", channel: WEB}) { id } }",
        "mutation($id: ID!) { updateSource(id: $id, input: {name: \"x\"}) { id } }",
        "mutation($id: ID!) { deleteSource(id: $id) }",
        "mutation($id: ID!) { rotateSourceWebhookToken(id: $id) { token } }",
        "mutation($id: ID!) { revokeSourceWebhookToken(id: $id) { id } }",
        "mutation { createPipeline(input: {name: \"x\"}) { id } }",
        "mutation($id: ID!) { updatePipeline(id: $id, input: {name: \"x\"}) { id } }",
        "mutation($id: ID!) { deletePipeline(id: $id) }",
        "mutation($id: ID!) { createStage(input: {pipelineId: $id, name: \"x\"}) { id } }",
        "mutation($id: ID!) { updateStage(id: $id, input: {name: \"x\"}) { id } }",
        "mutation($id: ID!) { deleteStage(id: $id) }",
        "mutation($id: ID!) { reorderStages(pipelineId: $id, stageIds: []) { id } }",
    ];
    let before = snapshot(&app).await;
    for m in mutations {
        let r = app
            .gql(Auth::Key(&read_key), m, json!({"id": l["id"]}))
            .await;
        assert_eq!(r.code(), Some("INSUFFICIENT_SCOPE"), "{m}");
        assert_eq!(r.status.as_u16(), 403);
        for small in [&free, &starter] {
            let r = app
                .gql(Auth::Key(&small.key), m, json!({"id": l["id"]}))
                .await;
            assert_eq!(r.code(), Some("INSUFFICIENT_PLAN"), "{m}");
        }
    }
    assert_eq!(snapshot(&app).await, before, "refused writes write nothing");
    // Reads work for all of them, and sessions of small plans may write.
    for key in [&read_key, &free.key] {
        let r = app
            .gql(
                Auth::Key(key),
                "{ leads { edges { cursor } } stats { total } }",
                json!({}),
            )
            .await;
        r.data();
    }
    let r = create_lead(&app, Auth::Bearer(&free.owner.token), jane()).await;
    r.data();
}

db_tests!(graphql_guide_examples_run);

/// Runs every ```graphql block of docs/graphql.md in order, as written.
async fn graphql_guide_examples_run(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/graphql.md"))
        .expect("guide");
    let blocks: Vec<&str> = guide
        .split("```graphql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or(""))
        .collect();
    assert!(blocks.len() >= 15, "{} examples", blocks.len());
    let mut vars = json!({"email": t.owner.email, "password": "owner-password", "userId": member.id,
                          "refreshToken": t.owner.refresh_token, "after": null});
    for block in blocks {
        let r = app
            .gql(Auth::Bearer(&t.owner.token), block, vars.clone())
            .await;
        let d = r.data().clone();
        let mut set = |name: &str, v: &Value| {
            if !v.is_null() {
                vars[name] = v.clone();
            }
        };
        set("leadId", &d["createLead"]["id"]);
        set("dupId", &d["createLeads"][0]["id"]);
        set("sourceId", &d["createSource"]["id"]);
        set("pipelineId", &d["createPipeline"]["id"]);
        set("stageId", &d["createPipeline"]["stages"][1]["id"]);
        set("keyId", &d["createApiKey"]["apiKey"]["id"]);
        set("refreshToken", &d["login"]["refreshToken"]);
        set("after", &d["leads"]["pageInfo"]["endCursor"]);
    }
}

/// The newest leads of a seeded tenant, with each lead's relations by name (15: the document
/// stays under the default complexity limit).
async fn seeded_page(app: &TestApp, key: &str) -> Value {
    let q = "{ leads(first: 15, orderBy: {field: CREATED_AT, direction: DESC}) { totalCount edges { node { \
             email firstName lastName status score tags source { name } pipeline { name } stage { name } \
             assignedTo { name } } } } }";
    app.gql(Auth::Key(key), q, json!({})).await.data()["leads"].clone()
}

async fn seed_demo_fills_a_tenant_and_repeats_with_its_seed(app: TestApp) {
    // 1 250 leads: two insert batches of up to 1 000.
    let n = 1_250;
    let run = |name: &'static str, seed: u64| {
        let state = app.state.clone();
        async move {
            leadgraph::seed::seed(&state.0, name, Plan::Enterprise, n, Some(seed), false)
                .await
                .expect("seed")
        }
    };
    let a = run("Seed A", 7).await;
    assert_eq!(a.leads, n);
    let page = seeded_page(&app, &a.api_key).await;
    assert_eq!(page["totalCount"], n);
    let q = "{ sources { id } pipelines { id } users { id } }";
    let rest = app.gql(Auth::Key(&a.api_key), q, json!({})).await;
    let rest = rest.data();
    assert_eq!(rest["sources"].as_array().map(Vec::len), Some(20));
    let pipelines = rest["pipelines"].as_array().expect("pipelines");
    assert_eq!(pipelines.len(), 5);
    for p in pipelines {
        let q = "query($id: ID!) { pipeline(id: $id) { stages { id } } }";
        let r = app
            .gql(Auth::Key(&a.api_key), q, json!({"id": p["id"]}))
            .await;
        assert_eq!(
            r.data()["pipeline"]["stages"].as_array().map(Vec::len),
            Some(5)
        );
    }
    // The owner and nine more.
    assert_eq!(rest["users"].as_array().map(Vec::len), Some(10));
    let edges = page["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 15);
    for e in edges {
        let l = &e["node"];
        assert!(l["tags"].as_array().is_some_and(|t| t.len() <= 3), "{l}");
        for rel in ["source", "pipeline", "stage", "assignedTo"] {
            assert!(l[rel].is_object(), "{rel} of {l}");
        }
    }

    // The same seed gives the same leads in another tenant; another seed does not.
    let b = run("Seed B", 7).await;
    assert_eq!(seeded_page(&app, &b.api_key).await, page);
    let c = run("Seed C", 8).await;
    assert_ne!(seeded_page(&app, &c.api_key).await, page);
}
