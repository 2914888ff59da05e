//! The REST layer: every route under /v1 and /api, the envelope, status codes, webhooks, OpenAPI.

#[macro_use]
mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{Auth, Resp, TestApp, TestTenant, snapshot};
use entity::enums::{Plan, Role};
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    method: Method,
    uri: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> Resp {
    let mut headers: Vec<(&str, String)> = Vec::new();
    match auth {
        Auth::None => {}
        Auth::Key(k) => headers.push(("x-api-key", k.to_owned())),
        Auth::Bearer(t) => headers.push(("authorization", format!("Bearer {t}"))),
    }
    let body = match body {
        Some(b) => {
            headers.push(("content-type", "application/json".into()));
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.request(method, uri, &refs, body).await
}

fn assert_envelope(r: &Resp, status: u16, message: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.body["success"], json!(true));
    assert_eq!(r.body["status"], json!(status));
    assert_eq!(r.body["message"], json!(message));
    assert_eq!(r.body["meta"]["version"], "v1");
    assert!(
        r.body["meta"]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.body["success"], json!(false), "{}", r.body);
    assert_eq!(r.body["status"], json!(status));
    assert_eq!(r.body["error"], json!(code), "{}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn error_fields(r: &Resp) -> Vec<String> {
    let mut f: Vec<String> = r.body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    f.sort();
    f
}

fn jane() -> Value {
    json!({"email": "jane.doe@example.com", "firstName": "Jane", "lastName": "Doe", "phone": "+1-555-0199",
           "source": "web", "customFields": {"company": "Acme Inc", "role": "VP Sales"}})
}

db_tests!(
    lead_crud_with_the_envelope,
    both_prefixes_serve_the_same_routes,
    validation_is_422_with_every_field,
    malformed_requests_are_400_and_413,
    ids_in_paths_are_404_when_malformed_or_foreign,
    auth_errors_are_401_and_403,
    lead_lists_filter_sort_and_page,
    tags_sources_pipelines_and_stats,
    api_keys_as_leadhql_documents,
    auth_routes_and_me,
    inbound_webhooks,
    openapi_document_lists_every_route,
    scope_and_plan_are_checked_before_the_body,
    bad_cursors_and_filter_ids_are_refused_by_name,
    nulls_mean_not_given_on_create_and_clear_on_update,
    a_second_credential_fails_the_request,
    webhooks_take_extra_fields_and_count_against_their_tenant,
    the_openapi_document_holds_at_its_edges,
);

async fn lead_crud_with_the_envelope(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(jane()),
    )
    .await;
    assert_envelope(&r, 201, "Resource created successfully");
    let lead = r.body["data"].clone();
    let keys: Vec<&str> = lead
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "id",
        "tenantId",
        "email",
        "firstName",
        "lastName",
        "phone",
        "source",
        "sourceId",
        "pipelineId",
        "stageId",
        "status",
        "score",
        "assignedTo",
        "customFields",
        "tags",
        "duplicateOf",
        "importId",
        "createdAt",
        "updatedAt",
    ];
    let mut got = keys.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        (
            lead["source"].clone(),
            lead["status"].clone(),
            lead["score"].clone()
        ),
        (json!("web"), json!("new"), json!(0))
    );
    assert_eq!(lead["tenantId"], json!(t.id));
    assert!(
        lead["createdAt"]
            .as_str()
            .is_some_and(|s| s.len() == 24 && s.ends_with('Z')),
        "{}",
        lead["createdAt"]
    );
    let id = lead["id"].as_str().expect("id").to_owned();

    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_envelope(&r, 200, "Success");
    assert_eq!(r.body["data"], lead);

    let r = call(
        &app,
        Method::PATCH,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        Some(json!({"status": "qualified", "score": 90, "phone": null})),
    )
    .await;
    assert_envelope(&r, 200, "Success");
    assert_eq!(
        (
            r.body["data"]["status"].clone(),
            r.body["data"]["score"].clone(),
            r.body["data"]["phone"].clone()
        ),
        (json!("qualified"), json!(90), json!(null))
    );

    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_envelope(&r, 200, "Success");
    assert_eq!(r.body["data"], json!({"id": id, "deleted": true}));
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_error(&r, 404, "NOT_FOUND");
}

async fn both_prefixes_serve_the_same_routes(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = call(
        &app,
        Method::POST,
        "/api/leads",
        Auth::Key(&t.key),
        Some(jane()),
    )
    .await;
    assert_envelope(&r, 201, "Resource created successfully");
    let id = r.body["data"]["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_eq!(r.body["data"]["id"], json!(id));
    let r = call(&app, Method::GET, "/api/leads", Auth::Key(&t.key), None).await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1));
    let r = call(
        &app,
        Method::PUT,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(jane()),
    )
    .await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
}

async fn validation_is_422_with_every_field(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(json!({"email": "nope", "lastName": "", "phone": "12", "score": "high", "source": "fax", "status": "won",
                    "tags": "a", "customFields": {"x": [1]}, "tenantId": "x", "id": "y", "createdAt": "z"})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
    assert_eq!(r.body["message"], "Validation failed");
    assert_eq!(
        error_fields(&r),
        [
            "createdAt",
            "customFields.x",
            "email",
            "firstName",
            "id",
            "lastName",
            "phone",
            "score",
            "source",
            "status",
            "tags",
            "tenantId"
        ]
    );
    assert!(
        r.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|e| e == &json!({"field": "email", "message": "Invalid email format"}))
    );
    // Service-level checks surface with 422 too.
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(json!({"email": "a@b.co", "firstName": "A", "lastName": "B", "score": 101})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
    assert_eq!(error_fields(&r), ["score"]);
    assert_eq!(snapshot(&app).await, before, "nothing written");
}

async fn malformed_requests_are_400_and_413(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let key = [("x-api-key", t.key.as_str())];
    let with = |ct: &'static str| [("x-api-key", t.key.as_str()), ("content-type", ct)];
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &with("application/json"),
            Body::from("{\"email\": "),
        )
        .await;
    assert_error(&r, 400, "BAD_REQUEST");
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &with("application/json"),
            Body::from("[1,2]"),
        )
        .await;
    assert_error(&r, 400, "BAD_REQUEST");
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &with("text/plain"),
            Body::from(jane().to_string()),
        )
        .await;
    assert_error(&r, 400, "BAD_REQUEST");
    let r = app
        .request(
            Method::GET,
            "/v1/leads?colour=red&limit=500",
            &key,
            Body::empty(),
        )
        .await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(error_fields(&r), ["colour", "limit"]);
    let r = app
        .request(
            Method::GET,
            "/v1/leads?limit=abc&status=won",
            &key,
            Body::empty(),
        )
        .await;
    assert_eq!(error_fields(&r), ["limit", "status"]);
    let r = app
        .request(Method::GET, "/v1/leads?limit=500", &key, Body::empty())
        .await;
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(error_fields(&r), ["limit"]);
    // The largest page works.
    let r = app
        .request(Method::GET, "/v1/leads?limit=100", &key, Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let big = json!({"email": "a@b.co", "firstName": "A", "lastName": "B", "customFields": {"x": "y".repeat(1_100_000)}});
    let r = app
        .request(
            Method::POST,
            "/v1/leads",
            &with("application/json"),
            Body::from(big.to_string()),
        )
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
}

async fn ids_in_paths_are_404_when_malformed_or_foreign(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.tenant("Globex", Plan::Pro).await;
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&other.key),
        Some(jane()),
    )
    .await;
    let foreign = r.body["data"]["id"].as_str().expect("id").to_owned();
    let before = snapshot(&app).await;
    for id in ["garbage", "1", &foreign, &t.owner.id] {
        for (m, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"score": 1}))),
            (Method::DELETE, None),
        ] {
            let r = call(
                &app,
                m.clone(),
                &format!("/v1/leads/{id}"),
                Auth::Key(&t.key),
                body,
            )
            .await;
            assert_error(&r, 404, "NOT_FOUND");
        }
    }
    assert_eq!(snapshot(&app).await, before);
}

async fn auth_errors_are_401_and_403(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (_, read_key) = app.key(&t.owner.token, "READ", "LIVE").await;
    let free = app.tenant("Tiny", Plan::Free).await;
    let r = call(&app, Method::GET, "/v1/leads", Auth::None, None).await;
    assert_error(&r, 401, "MISSING_TOKEN");
    let r = call(
        &app,
        Method::GET,
        "/v1/leads",
        Auth::Key("lg_live_sk_nope"),
        None,
    )
    .await;
    assert_error(&r, 401, "INVALID_TOKEN");
    let before = snapshot(&app).await;
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&read_key),
        Some(jane()),
    )
    .await;
    assert_error(&r, 403, "INSUFFICIENT_SCOPE");
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&free.key),
        Some(jane()),
    )
    .await;
    assert_error(&r, 403, "INSUFFICIENT_PLAN");
    let r = call(
        &app,
        Method::POST,
        "/v1/api-keys",
        Auth::Key(&t.key),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_error(&r, 403, "SESSION_REQUIRED");
    assert_eq!(snapshot(&app).await, before);
}

async fn lead_lists_filter_sort_and_page(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let s = call(
        &app,
        Method::POST,
        "/v1/sources",
        Auth::Key(&t.key),
        Some(json!({"name": "Site", "channel": "web"})),
    )
    .await;
    let sid = s.body["data"]["id"].as_str().expect("id").to_owned();
    for i in 0..5 {
        let mut body = json!({"email": format!("l{i}@example.com"), "firstName": "F", "lastName": format!("N{i}"), "score": i * 10,
                              "status": if i % 2 == 0 { "new" } else { "contacted" }, "source": if i < 3 { "web" } else { "api" }});
        if i == 0 {
            body["sourceId"] = json!(sid);
            body["tags"] = json!(["vip"]);
            body["assignedTo"] = json!(member.id);
        }
        let r = call(
            &app,
            Method::POST,
            "/v1/leads",
            Auth::Key(&t.key),
            Some(body),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let emails = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .expect("array")
            .iter()
            .map(|l| l["email"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let r = call(
        &app,
        Method::GET,
        "/v1/leads?limit=2",
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_envelope(&r, 200, "Success");
    assert_eq!(emails(&r), ["l4@example.com", "l3@example.com"]);
    assert_eq!(r.body["meta"]["limit"], 2);
    let mut all = emails(&r);
    let mut next = r.body["meta"]["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = next {
        let r = call(
            &app,
            Method::GET,
            &format!("/v1/leads?limit=2&cursor={c}"),
            Auth::Key(&t.key),
            None,
        )
        .await;
        all.extend(emails(&r));
        next = r.body["meta"]["nextCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(all.len(), 5);
    let cases = [
        ("status=contacted", vec!["l3@example.com", "l1@example.com"]),
        (
            "status=new,contacted&source=api",
            vec!["l4@example.com", "l3@example.com"],
        ),
        (&format!("sourceId={sid}") as &str, vec!["l0@example.com"]),
        ("tag=vip", vec!["l0@example.com"]),
        (&format!("assignedTo={}", member.id), vec!["l0@example.com"]),
        ("q=l2%40example", vec!["l2@example.com"]),
        (
            "sort=score&scoreMin=20",
            vec!["l2@example.com", "l3@example.com", "l4@example.com"],
        ),
        ("sort=-lastName&limit=1", vec!["l4@example.com"]),
    ];
    for (q, want) in cases {
        let r = call(
            &app,
            Method::GET,
            &format!("/v1/leads?{q}"),
            Auth::Key(&t.key),
            None,
        )
        .await;
        assert_eq!(emails(&r), want, "{q}");
    }
}

async fn id_of(r: &Resp) -> String {
    r.body["data"]["id"].as_str().expect("id").to_owned()
}

async fn tags_sources_pipelines_and_stats(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let k = Auth::Key(&t.key);
    let lead = id_of(&call(&app, Method::POST, "/v1/leads", k, Some(jane())).await).await;
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/leads/{lead}/tags"),
        k,
        Some(json!({"tags": ["hot", "b2b"]})),
    )
    .await;
    assert_eq!(r.body["data"]["tags"], json!(["b2b", "hot"]));
    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/leads/{lead}/tags"),
        k,
        Some(json!({"tags": ["hot"]})),
    )
    .await;
    assert_eq!(r.body["data"]["tags"], json!(["b2b"]));

    let r = call(
        &app,
        Method::POST,
        "/v1/sources",
        k,
        Some(json!({"name": "Partners", "channel": "referral"})),
    )
    .await;
    assert_envelope(&r, 201, "Resource created successfully");
    assert_eq!(r.body["data"]["channel"], "referral");
    let src = id_of(&r).await;
    let r = call(
        &app,
        Method::PATCH,
        &format!("/v1/sources/{src}"),
        k,
        Some(json!({"description": "Resellers"})),
    )
    .await;
    assert_eq!(r.body["data"]["description"], "Resellers");
    call(
        &app,
        Method::PATCH,
        &format!("/v1/leads/{lead}"),
        k,
        Some(json!({"sourceId": src})),
    )
    .await;
    let r = call(&app, Method::GET, &format!("/v1/sources/{src}"), k, None).await;
    assert_eq!(r.body["data"]["leadCount"], 1);
    let r = call(&app, Method::GET, "/v1/sources", k, None).await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["meta"]["nextCursor"], json!(null));
    let r = call(&app, Method::DELETE, &format!("/v1/sources/{src}"), k, None).await;
    assert_error(&r, 409, "CONFLICT");

    let r = call(
        &app,
        Method::POST,
        "/v1/pipelines",
        k,
        Some(json!({"name": "Sales", "stages": ["New", "Won"]})),
    )
    .await;
    assert_envelope(&r, 201, "Resource created successfully");
    assert_eq!(r.body["data"]["stages"].as_array().map(Vec::len), Some(2));
    let pl = id_of(&r).await;
    let r = call(
        &app,
        Method::PATCH,
        &format!("/v1/pipelines/{pl}"),
        k,
        Some(json!({"name": "Deals"})),
    )
    .await;
    assert_eq!(r.body["data"]["name"], "Deals");
    let r = call(&app, Method::GET, "/v1/pipelines", k, None).await;
    assert_eq!(r.body["data"][0]["name"], "Deals");
    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/pipelines/{pl}"),
        k,
        None,
    )
    .await;
    assert_eq!(r.body["data"], json!({"id": pl, "deleted": true}));

    for path in [
        "/v1/stats",
        "/v1/stats/counts",
        "/api/stats?createdAfter=2000-01-01T00:00:00Z",
    ] {
        let r = call(&app, Method::GET, path, k, None).await;
        assert_envelope(&r, 200, "Success");
        assert_eq!(r.body["data"]["total"], 1, "{path}");
        assert_eq!(
            r.body["data"]["byStatus"],
            json!([{"status": "new", "count": 1}])
        );
    }
}

async fn api_keys_as_leadhql_documents(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let s = Auth::Bearer(&t.owner.token);
    let r = call(
        &app,
        Method::POST,
        "/v1/api-keys",
        s,
        Some(json!({"name": "My Integration", "expiresInDays": 90, "scope": "read"})),
    )
    .await;
    assert_envelope(&r, 201, "Resource created successfully");
    let d = r.body["data"].clone();
    assert_eq!(
        (
            d["name"].clone(),
            d["label"].clone(),
            d["status"].clone(),
            d["scope"].clone()
        ),
        (
            json!("My Integration"),
            json!("My Integration"),
            json!("active"),
            json!("read")
        )
    );
    let key = d["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("lg_live_sk_"));
    let id = d["id"].as_str().expect("id").to_owned();
    call(&app, Method::GET, "/v1/leads", Auth::Key(&key), None).await;
    let r = call(&app, Method::GET, "/v1/api-keys", s, None).await;
    assert!(!r.text.contains(&key), "listings never show the key");
    let listed = r.body["data"]
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["id"] == json!(id))
        .cloned()
        .expect("listed");
    assert_eq!(listed["usageCount"], 1);
    assert!(listed["lastUsedAt"].is_string());
    assert!(listed.get("key").is_none());
    let r = call(
        &app,
        Method::PATCH,
        &format!("/v1/api-keys/{id}"),
        s,
        Some(json!({"label": "Renamed", "active": false})),
    )
    .await;
    assert_eq!(
        (
            r.body["data"]["label"].clone(),
            r.body["data"]["status"].clone()
        ),
        (json!("Renamed"), json!("inactive"))
    );
    let r = call(&app, Method::GET, "/v1/leads", Auth::Key(&key), None).await;
    assert_error(&r, 401, "REVOKED_TOKEN");
    let r = call(&app, Method::DELETE, &format!("/v1/api-keys/{id}"), s, None).await;
    assert_eq!(r.body["data"], json!({"id": id, "deleted": true}));
    let r = call(
        &app,
        Method::POST,
        "/v1/api-keys",
        s,
        Some(json!({"label": "a", "name": "b"})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
    let r = call(
        &app,
        Method::POST,
        "/v1/api-keys",
        s,
        Some(json!({"scope": "admin"})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
}

async fn auth_routes_and_me(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = call(
        &app,
        Method::POST,
        "/v1/auth/login",
        Auth::None,
        Some(json!({"email": t.owner.email, "password": "owner-password"})),
    )
    .await;
    assert_envelope(&r, 200, "Success");
    let d = r.body["data"].clone();
    assert_eq!(d["user"]["id"], json!(t.owner.id));
    assert_eq!(d["user"]["role"], "owner");
    let token = d["token"].as_str().expect("token").to_owned();
    let refresh = d["refreshToken"].as_str().expect("refresh").to_owned();
    let r = call(&app, Method::GET, "/v1/me", Auth::Bearer(&token), None).await;
    assert_eq!(
        (
            r.body["data"]["id"].clone(),
            r.body["data"]["authMethod"].clone()
        ),
        (json!(t.owner.id), json!("session"))
    );
    let r = call(
        &app,
        Method::POST,
        "/v1/auth/refresh",
        Auth::None,
        Some(json!({"refreshToken": refresh})),
    )
    .await;
    let rotated = r.body["data"]["refreshToken"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let r = call(
        &app,
        Method::POST,
        "/v1/auth/refresh",
        Auth::None,
        Some(json!({"refreshToken": refresh})),
    )
    .await;
    assert_error(&r, 401, "REVOKED_TOKEN");
    let r = call(
        &app,
        Method::POST,
        "/v1/auth/logout",
        Auth::None,
        Some(json!({"refreshToken": t.owner.refresh_token})),
    )
    .await;
    assert_eq!(r.body["data"], json!({"loggedOut": true}));
    let _ = rotated;
    let r = call(
        &app,
        Method::POST,
        "/v1/auth/login",
        Auth::None,
        Some(json!({"email": t.owner.email, "password": "wrong"})),
    )
    .await;
    assert_error(&r, 401, "INVALID_CREDENTIALS");
    let r = call(
        &app,
        Method::POST,
        "/v1/auth/login",
        Auth::None,
        Some(json!({"email": t.owner.email})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
    assert_eq!(error_fields(&r), ["password"]);
}

async fn webhook_token(app: &TestApp, t: &TestTenant) -> (String, String) {
    let r = call(
        app,
        Method::POST,
        "/v1/sources",
        Auth::Key(&t.key),
        Some(json!({"name": "Landing page", "channel": "web"})),
    )
    .await;
    let src = r.body["data"]["id"].as_str().expect("id").to_owned();
    let r = app.gql(Auth::Key(&t.key), "mutation($id: ID!) { rotateSourceWebhookToken(id: $id) { token source { hasWebhook } } }", json!({"id": src})).await;
    (
        src,
        r.data()["rotateSourceWebhookToken"]["token"]
            .as_str()
            .expect("token")
            .to_owned(),
    )
}

async fn inbound_webhooks(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (src, token) = webhook_token(&app, &t).await;
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/webhooks/{token}"),
        Auth::None,
        Some(json!({"email": "w@example.com", "firstName": "W", "lastName": "H"})),
    )
    .await;
    assert_envelope(&r, 201, "Resource created successfully");
    assert_eq!(
        (
            r.body["data"]["sourceId"].clone(),
            r.body["data"]["source"].clone()
        ),
        (json!(src), json!("web"))
    );
    let form = "email=form%40example.com&firstName=Fo&lastName=Rm&message=Call+me&tags=a,b&score=5";
    let r = app
        .request(
            Method::POST,
            &format!("/api/webhooks/{token}"),
            &[("content-type", "application/x-www-form-urlencoded")],
            Body::from(form),
        )
        .await;
    assert_envelope(&r, 201, "Resource created successfully");
    assert_eq!(
        r.body["data"]["customFields"],
        json!({"message": "Call me"})
    );
    assert_eq!(
        (
            r.body["data"]["tags"].clone(),
            r.body["data"]["score"].clone()
        ),
        (json!(["a", "b"]), json!(5))
    );
    let before = snapshot(&app).await;
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/webhooks/{token}"),
        Auth::None,
        Some(json!({"email": "bad", "sourceId": "x"})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
    assert_eq!(
        error_fields(&r),
        ["email", "firstName", "lastName", "sourceId"]
    );
    for bad in ["lgw_unknown", "nope"] {
        let r = call(
            &app,
            Method::POST,
            &format!("/v1/webhooks/{bad}"),
            Auth::None,
            Some(json!({"email": "w@example.com", "firstName": "W", "lastName": "H"})),
        )
        .await;
        assert_error(&r, 404, "NOT_FOUND");
    }
    assert_eq!(snapshot(&app).await, before);
    // The audit entry names no user and no key.
    let r = app.gql(Auth::Bearer(&t.owner.token), "{ auditLog(first: 1, filter: {action: \"lead.create\"}) { edges { node { actor { id } apiKey { id } } } } }", json!({})).await;
    assert_eq!(
        r.data()["auditLog"]["edges"][0]["node"],
        json!({"actor": null, "apiKey": null})
    );
    // Rotating replaces the token at once.
    let r = app
        .gql(
            Auth::Key(&t.key),
            "mutation($id: ID!) { rotateSourceWebhookToken(id: $id) { token } }",
            json!({"id": src}),
        )
        .await;
    r.data();
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/webhooks/{token}"),
        Auth::None,
        Some(json!({"email": "w@example.com", "firstName": "W", "lastName": "H"})),
    )
    .await;
    assert_error(&r, 404, "NOT_FOUND");
}

async fn openapi_document_lists_every_route(app: TestApp) {
    let r = call(&app, Method::GET, "/v1/openapi.json", Auth::None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.1.0");
    let paths = r.body["paths"].as_object().expect("paths");
    for route in leadgraph::rest::ROUTES.iter() {
        for prefix in ["/v1", "/api"] {
            let item = &paths[&format!("{prefix}{}", route.path)];
            assert!(
                item[route.method.as_str().to_lowercase()].is_object(),
                "{prefix}{} {}",
                route.path,
                route.method
            );
        }
    }
    assert!(paths.contains_key("/v1/webhooks/{token}"));
}

#[test]
fn openapi_snapshot_is_current() {
    let doc =
        serde_json::to_string_pretty(&leadgraph::rest::openapi::document()).expect("json") + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let file = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        file == doc,
        "docs/openapi.json is stale: run `cargo run -q -- openapi > docs/openapi.json`"
    );
}

/// Runs the ```sh blocks of docs/rest.md, in order, with curl against a live server.
#[test]
fn rest_walkthrough_runs_against_a_live_server() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!(
        "leadgraph-walkthrough-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_leadgraph"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env(
            "LEADGRAPH_DATABASE_URL",
            format!("sqlite://{}", dir.join("walk.db").display()),
        )
        .env("LEADGRAPH_ADMIN_EMAIL", "walker@example.com")
        .env("LEADGRAPH_ADMIN_PASSWORD", "walkthrough-password")
        .env("LEADGRAPH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let stdout = server.stdout.take().expect("stdout");
    let mut key = String::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(k) = line.trim().strip_prefix("API key:") {
            key = k.trim().to_owned();
            break;
        }
    }
    // Keep draining the server's output so its writes never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        key.starts_with("lg_live_sk_"),
        "the first start prints a key"
    );
    let base = format!("http://127.0.0.1:{port}");
    // The key is printed once the server listens; wait until it answers all the same.
    for _ in 0..600 {
        let up = Command::new("curl")
            .args(["-sf", &format!("{base}/healthz")])
            .stdout(Stdio::null())
            .status();
        if up.is_ok_and(|s| s.success()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rest.md"))
        .expect("docs/rest.md");
    let blocks: Vec<&str> = doc
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or(""))
        .collect();
    assert!(blocks.len() >= 8);
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("BASE", &base)
        .env("KEY", &key)
        .env("EMAIL", "walker@example.com")
        .env("PASSWORD", "walkthrough-password")
        .output()
        .expect("run bash");
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "jane.doe@example.com",
        "qualified",
        "['b2b', 'hot']",
        "Won",
        "owner",
        "Please call me",
        "True",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
}

db_tests!(internal_errors_are_500_without_internals);

async fn internal_errors_are_500_without_internals(app: TestApp) {
    use sea_orm::ConnectionTrait;
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(jane()),
    )
    .await;
    let id = r.body["data"]["id"].as_str().expect("id").to_owned();
    // Break the database under the server: reading a lead's tags now fails.
    app.db()
        .execute_unprepared("DROP TABLE lead_tags")
        .await
        .expect("drop");
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_error(&r, 500, "INTERNAL_ERROR");
    assert_eq!(r.body["message"], "Internal server error");
    assert!(
        !r.text.to_lowercase().contains("lead_tags") && !r.text.to_lowercase().contains("sql"),
        "{}",
        r.text
    );
    let g = app
        .gql(
            Auth::Key(&t.key),
            "query($id: ID!) { lead(id: $id) { tags } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(g.code(), Some("INTERNAL_ERROR"));
    assert!(!g.text.to_lowercase().contains("lead_tags"), "{}", g.text);
}

async fn scope_and_plan_are_checked_before_the_body(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (_, read) = app.key(&t.owner.token, "READ", "LIVE").await;
    let free = app.tenant("Free", Plan::Free).await;
    let before = snapshot(&app).await;
    let invalid = json!({"email": "not-an-email", "unknown": 1});
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&read),
        Some(invalid.clone()),
    )
    .await;
    assert_error(&r, 403, "INSUFFICIENT_SCOPE");
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&free.key),
        Some(invalid.clone()),
    )
    .await;
    assert_error(&r, 403, "INSUFFICIENT_PLAN");
    // Key management needs a session before its body is looked at.
    let r = call(
        &app,
        Method::POST,
        "/v1/api-keys",
        Auth::Key(&t.key),
        Some(invalid),
    )
    .await;
    assert_error(&r, 403, "SESSION_REQUIRED");
    assert_eq!(snapshot(&app).await, before, "nothing written");
}

async fn bad_cursors_and_filter_ids_are_refused_by_name(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    for (query, field) in [
        ("cursor=garbage", "cursor"),
        ("sourceId=garbage", "sourceId"),
        ("assignedTo=zzz", "assignedTo"),
        ("pipelineId=", "pipelineId"),
    ] {
        let r = call(
            &app,
            Method::GET,
            &format!("/v1/leads?{query}"),
            Auth::Key(&t.key),
            None,
        )
        .await;
        assert_error(&r, 400, "BAD_REQUEST");
        assert_eq!(r.body["errors"][0]["field"], field, "{query}: {}", r.body);
    }
    // An ID of another type names no source: an empty list, as an unknown one (the OpenAPI
    // document's ID pattern cannot tell types apart, so neither may the answer).
    let r = app.gql(Auth::Key(&t.key), "{ me { id } }", json!({})).await;
    let user_id = r.data()["me"]["id"].as_str().expect("id").to_owned();
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads?sourceId={user_id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["data"], json!([]));
    // GraphQL names the filter's field.
    let r = app
        .gql(
            Auth::Key(&t.key),
            "{ leads(filter: {assignedTo: \"zzz\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), Some("VALIDATION_FAILED"), "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["extensions"]["fields"][0]["field"],
        "filter.assignedTo"
    );
    // Well-formed IDs that match nothing are an empty page, not an error.
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads?assignedTo={user_id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
}

async fn nulls_mean_not_given_on_create_and_clear_on_update(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = call(
        &app,
        Method::POST,
        "/v1/pipelines",
        Auth::Key(&t.key),
        Some(json!({"name": "Sales", "stages": ["New", "Won"]})),
    )
    .await;
    let pipeline = r.body["data"]["id"].as_str().expect("pipeline").to_owned();
    // A lead object as read back, nulls included, creates a lead.
    let mut body = json!({"email": "round@example.com", "firstName": "Round", "lastName": "Trip",
        "phone": null, "source": null, "sourceId": null, "stageId": null, "status": null,
        "score": null, "assignedTo": null, "customFields": null, "tags": null});
    body["pipelineId"] = json!(pipeline);
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(body),
    )
    .await;
    assert_envelope(&r, 201, "Resource created successfully");
    assert_eq!(r.body["data"]["pipelineId"], json!(pipeline));
    assert_eq!(r.body["data"]["score"], 0);
    let id = r.body["data"]["id"].as_str().expect("id").to_owned();
    // `null` on update clears the pipeline (and its stage).
    let r = call(
        &app,
        Method::PATCH,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        Some(json!({"pipelineId": null})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["data"]["pipelineId"], Value::Null, "{}", r.body);
    assert_eq!(r.body["data"]["stageId"], Value::Null, "{}", r.body);
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads/{id}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_eq!(
        r.body["data"]["pipelineId"],
        Value::Null,
        "stored: {}",
        r.body
    );
    // Required fields may still not be null.
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(json!({"email": null, "firstName": "A", "lastName": "B"})),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
}

async fn a_second_credential_fails_the_request(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    for second in [
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        &format!("Bearer {}", t.owner.token),
    ] {
        let r = app
            .request(
                Method::GET,
                "/v1/leads",
                &[("x-api-key", &t.key), ("authorization", second)],
                Body::empty(),
            )
            .await;
        assert_error(&r, 401, "INVALID_TOKEN");
    }
    let r = app
        .request(
            Method::GET,
            "/v1/leads",
            &[("x-api-key", &t.key), ("x-api-key", &t.key)],
            Body::empty(),
        )
        .await;
    assert_error(&r, 401, "INVALID_TOKEN");
}

async fn webhooks_take_extra_fields_and_count_against_their_tenant(app: TestApp) {
    let app = app
        .sibling(|c| {
            c.tenant_rate_limits = true;
            c.rate_limit_per_ip = 1000;
        })
        .await;
    app.state.limits.clock.freeze();
    let t = app.tenant("Acme", Plan::Free).await;
    let other = app.tenant("Other", Plan::Pro).await;
    let (_, token) = webhook_token(&app, &other).await;
    let url = format!("/v1/webhooks/{token}");
    let lead =
        |n: usize| json!({"email": format!("w{n}@example.com"), "firstName": "W", "lastName": "H"});
    // Fields that are not lead fields join customFields, in JSON as in forms.
    let mut body = lead(0);
    body["company"] = json!("Acme Inc");
    body["customFields"] = json!({"plan": "gold"});
    let r = call(&app, Method::POST, &url, Auth::None, Some(body)).await;
    assert_envelope(&r, 201, "Resource created successfully");
    assert_eq!(
        r.body["data"]["customFields"],
        json!({"company": "Acme Inc", "plan": "gold"})
    );
    // A key sent along is refused, and charged to nobody.
    let before = snapshot(&app).await;
    let r = app
        .request(
            Method::POST,
            &url,
            &[("content-type", "application/json"), ("x-api-key", &t.key)],
            Body::from(lead(1).to_string()),
        )
        .await;
    assert_error(&r, 401, "INVALID_TOKEN");
    assert_eq!(snapshot(&app).await, before, "nothing written");
    let r = app.list_leads(&t.key).await;
    assert_eq!(
        r.header("x-ratelimit-remaining"),
        Some("9"),
        "the key's tenant was not charged"
    );
    // Each webhook request counts against its source's tenant: the free plan's burst of 10,
    // of which the three requests above (list, createSource, rotate) took three, then 429.
    let (_, free_token) = {
        // A source of the free tenant, made by its owner's session (keys of free tenants may
        // not write).
        let r = app
            .gql(
                Auth::Bearer(&t.owner.token),
                "mutation { createSource(input: {name: \"Form\", channel: WEB}) { id } }",
                json!({}),
            )
            .await;
        let src = r.data()["createSource"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let r = app
            .gql(
                Auth::Bearer(&t.owner.token),
                "mutation($id: ID!) { rotateSourceWebhookToken(id: $id) { token } }",
                json!({"id": src}),
            )
            .await;
        (
            src,
            r.data()["rotateSourceWebhookToken"]["token"]
                .as_str()
                .expect("token")
                .to_owned(),
        )
    };
    let free_url = format!("/v1/webhooks/{free_token}");
    let mut statuses = Vec::new();
    for n in 0..12 {
        let r = call(
            &app,
            Method::POST,
            &free_url,
            Auth::None,
            Some(lead(100 + n)),
        )
        .await;
        statuses.push((
            r.status.as_u16(),
            r.header("x-ratelimit-remaining").map(str::to_owned),
        ));
    }
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    assert!(
        statuses[created..].iter().all(|(s, _)| *s == 429),
        "{statuses:?}"
    );
    assert!(
        (5..10).contains(&created),
        "charged to the tenant: {statuses:?}"
    );
    assert_eq!(
        statuses[created - 1].1.as_deref(),
        Some("0"),
        "{statuses:?}"
    );
}

/// What the OpenAPI document states is what the server decides, at the edges schemathesis
/// probes (`tests/api/schemathesis.sh` runs every check): nothing it allows is refused for a
/// reason it does not state.
async fn the_openapi_document_holds_at_its_edges(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let key = Auth::Key(&t.key);
    // An ID spelled right that names nothing: an empty list in a filter, not found in a body;
    // a misspelled one is refused.
    let nothing = "0000000000000000";
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/leads?sourceId={nothing}"),
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["data"], json!([]));
    let r = call(
        &app,
        Method::GET,
        "/v1/leads?sourceId=000",
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_error(&r, 400, "BAD_REQUEST");
    let before = snapshot(&app).await;
    let mut lead = jane();
    lead["sourceId"] = json!(nothing);
    let r = call(
        &app,
        Method::POST,
        "/v1/leads",
        Auth::Key(&t.key),
        Some(lead),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_FAILED");
    assert_eq!(
        r.body["errors"][0],
        json!({"field": "sourceId", "message": "not found"})
    );
    assert_eq!(snapshot(&app).await, before);
    // JSON Schema's integers include 77.0.
    let mut lead = jane();
    lead["score"] = json!(77.0);
    let r = call(&app, Method::POST, "/v1/leads", key, Some(lead)).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(r.body["data"]["score"], 77);
    let id = r.body["data"]["id"].as_str().expect("id").to_owned();
    // A window that ends before it starts is empty, not an error.
    let r = call(
        &app,
        Method::GET,
        "/v1/stats?createdAfter=2026-02-01T00:00:00Z&createdBefore=2026-01-01T00:00:00Z",
        Auth::Key(&t.key),
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["data"]["total"], 0, "{}", r.body);
    // Fields sent one or the other: refused together, and nothing is written.
    let before = snapshot(&app).await;
    let session = Auth::Bearer(&t.owner.token);
    for body in [
        json!({"label": "a", "name": "a"}),
        json!({"label": "a", "expiresAt": "2030-01-01T00:00:00Z", "expiresInDays": 5}),
        json!({"scope": "read"}),
        json!({"label": "a", "expiresInDays": 0}),
    ] {
        let r = call(&app, Method::POST, "/v1/api-keys", session, Some(body)).await;
        assert_error(&r, 422, "VALIDATION_FAILED");
    }
    assert_eq!(snapshot(&app).await, before);
    let r = call(
        &app,
        Method::POST,
        "/v1/api-keys",
        session,
        Some(json!({"name": "by name"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(r.body["data"]["label"], "by name");
    // Tags past a lead's 20: the lead's state refuses it (409), and nothing is written.
    let tags: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/leads/{id}/tags"),
        key,
        Some(json!({"tags": tags})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let before = snapshot(&app).await;
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/leads/{id}/tags"),
        key,
        Some(json!({"tags": ["one-more"]})),
    )
    .await;
    assert_error(&r, 409, "CONFLICT");
    assert_eq!(snapshot(&app).await, before);
    // Webhook URLs: the documented pattern.
    for url in [
        "ftp://example.com/",
        "https://exa mple.com/",
        "https://example.com:70000/",
    ] {
        let r = call(
            &app,
            Method::POST,
            "/v1/webhook-endpoints",
            Auth::Key(&t.key),
            Some(json!({"url": url, "events": ["lead.created"]})),
        )
        .await;
        assert_error(&r, 422, "VALIDATION_FAILED");
    }
    assert_eq!(snapshot(&app).await, before);
}
