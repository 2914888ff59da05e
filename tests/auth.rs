//! Authentication and authorization: sessions, API keys, credential forms and their errors,
//! batched usage, revocation, scopes, environments, impersonation, users.

#[macro_use]
mod common;

use axum::http::StatusCode;
use base64::Engine;
use common::{Auth, Resp, TestApp, snapshot};
use entity::enums::{Plan, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use leadgraph::auth::api_key;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};

const ME: &str =
    "{ me { id role environment scope authMethod user { email } tenant { id } actor { id } } }";

db_tests!(
    login_returns_a_session,
    wrong_email_and_wrong_password_look_the_same,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes_the_family,
    deactivated_users_are_shut_out_at_once,
    api_key_lifecycle,
    key_management_requires_a_session,
    members_manage_only_their_own_keys,
    every_credential_form_works,
    credential_errors_are_401_with_their_code,
    usage_is_batched_not_written_per_request,
    revocation_bounds_across_processes,
    environments_are_disjoint,
    impersonation_rules,
    me_describes_the_caller,
    user_management_rules,
    access_tokens_end_with_their_session,
    access_tokens_end_when_the_user_is_deactivated_or_re_roled,
    tokens_not_yet_valid_are_refused,
    common_passwords_are_refused,
);

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

async fn jwt_secret(app: &TestApp) -> String {
    leadgraph::settings::get_or_init(app.db(), "jwt_secret", String::new)
        .await
        .expect("secret")
}

fn assert_401(r: &Resp, code: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{code}: {}", r.body);
    assert_eq!(r.code(), Some(code), "{}", r.body);
    assert_eq!(r.body["data"], Value::Null);
}

async fn login_returns_a_session(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .gql(
            Auth::None,
            "mutation($e: String!) { login(email: $e, password: \"owner-password\") { token refreshToken expiresAt user { id email role } } }",
            json!({"e": t.owner.email.to_uppercase()}),
        )
        .await;
    let s = &r.data()["login"];
    assert_eq!(s["user"]["id"], json!(t.owner.id));
    assert_eq!(s["user"]["role"], "OWNER");
    let token = s["token"].as_str().expect("token");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "HS256");
    let c = claims(token);
    assert_eq!(c["iss"], "leadgraph");
    assert_eq!(c["aud"], "leadgraph-api");
    assert_eq!(c["sub"], json!(t.owner.id));
    assert_eq!(c["tid"], json!(t.id));
    assert_eq!(
        c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0),
        3600
    );
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 32));
    let refresh = s["refreshToken"].as_str().expect("refresh");
    assert!(refresh.starts_with("lgr_") && refresh.len() > 40);
    // Only a hash of the refresh token is stored.
    let rows = entity::refresh_token::Entity::find()
        .all(app.db())
        .await
        .expect("rows");
    assert!(
        rows.iter()
            .all(|r| r.token_hash.len() == 64 && !r.token_hash.contains(&refresh[4..]))
    );
    // The session works.
    let r = app.gql(Auth::Bearer(token), ME, json!({})).await;
    assert_eq!(r.data()["me"]["authMethod"], "SESSION");
}

async fn wrong_email_and_wrong_password_look_the_same(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    let q = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let wrong_password = app
        .gql(Auth::None, q, json!({"e": t.owner.email, "p": "nope-nope"}))
        .await;
    let wrong_email = app
        .gql(
            Auth::None,
            q,
            json!({"e": "nobody@example.com", "p": "owner-password"}),
        )
        .await;
    assert_401(&wrong_password, "INVALID_CREDENTIALS");
    assert_eq!(
        wrong_password.body, wrong_email.body,
        "the two failures are indistinguishable"
    );
    assert_eq!(
        snapshot(&app).await,
        before,
        "a failed login writes nothing"
    );
    // An unknown email verifies a real argon2id hash with the same parameters, so it costs the same.
    assert!(
        app.state
            .dummy_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
}

async fn refresh(app: &TestApp, token: &str) -> Resp {
    app.gql(
        Auth::None,
        "mutation($t: String!) { refreshSession(refreshToken: $t) { token refreshToken } }",
        json!({"t": token}),
    )
    .await
}

async fn logout(app: &TestApp, token: &str) -> Resp {
    app.gql(
        Auth::None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({"t": token}),
    )
    .await
}

async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let first = t.owner.refresh_token.clone();
    let r = refresh(&app, &first).await;
    let second = r.data()["refreshSession"]["refreshToken"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(second, first);
    let access = r.data()["refreshSession"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.gql(Auth::Bearer(&access), ME, json!({})).await.data();

    // Reusing the first token is theft: the whole family is revoked, the second token too.
    assert_401(&refresh(&app, &first).await, "REVOKED_TOKEN");
    assert_401(&refresh(&app, &second).await, "REVOKED_TOKEN");
    assert_401(&refresh(&app, "lgr_unknown").await, "INVALID_TOKEN");
    assert_401(&refresh(&app, "garbage").await, "INVALID_TOKEN");
    // Another session of the same user is untouched.
    let other = app.login(&t.owner.email, "owner-password").await;
    refresh(&app, &other.refresh_token).await.data();
}

async fn logout_revokes_the_family(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    assert_eq!(
        logout(&app, &t.owner.refresh_token).await.data()["logout"],
        true
    );
    assert_401(
        &refresh(&app, &t.owner.refresh_token).await,
        "REVOKED_TOKEN",
    );
}

async fn deactivated_users_are_shut_out_at_once(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let (_, key) = app.key(&member.token, "FULL", "LIVE").await;
    app.gql(Auth::Key(&key), ME, json!({})).await.data(); // cached now
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { active } }",
            json!({"id": member.id}),
        )
        .await;
    assert_eq!(r.data()["updateUser"]["active"], false);
    assert_401(
        &app.gql(Auth::Key(&key), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    assert_401(
        &app.gql(Auth::Bearer(&member.token), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    assert_401(&refresh(&app, &member.refresh_token).await, "REVOKED_TOKEN");
    let r = app
        .gql(
            Auth::None,
            "mutation($e: String!) { login(email: $e, password: \"user-password\") { token } }",
            json!({"e": member.email}),
        )
        .await;
    assert_401(&r, "INVALID_CREDENTIALS");
}

const KEY_FIELDS: &str = "id label name prefix environment scope status active expiresAt lastUsedAt usageCount createdAt creator { id }";

async fn api_key_lifecycle(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            &format!("mutation {{ createApiKey(input: {{label: \"Zapier\", scope: READ, environment: SANDBOX, expiresInDays: 90}}) {{ key apiKey {{ {KEY_FIELDS} }} }} }}"),
            json!({}),
        )
        .await;
    let created = &r.data()["createApiKey"];
    let key = created["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("lg_sandbox_sk_") && key.len() == "lg_sandbox_sk_".len() + 32);
    assert!(api_key::parse(&key).is_some(), "valid checksum");
    let meta = &created["apiKey"];
    assert_eq!(
        (meta["label"].clone(), meta["name"].clone()),
        (json!("Zapier"), json!("Zapier"))
    );
    assert_eq!(
        (
            meta["scope"].clone(),
            meta["environment"].clone(),
            meta["status"].clone()
        ),
        (json!("READ"), json!("SANDBOX"), json!("ACTIVE"))
    );
    assert!(key.starts_with(meta["prefix"].as_str().expect("prefix")));
    assert_eq!(meta["creator"]["id"], json!(t.owner.id));
    let expires =
        chrono::DateTime::parse_from_rfc3339(meta["expiresAt"].as_str().expect("expiresAt"))
            .expect("date");
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((89 * 24..=90 * 24).contains(&days), "{days} hours");

    // Stored as SHA-256 only; listings never show the key.
    let row = entity::api_key::Entity::find()
        .all(app.db())
        .await
        .expect("rows")
        .into_iter()
        .find(|k| k.label == "Zapier")
        .expect("row");
    assert_eq!(row.key_hash, api_key::hash(&key));
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            &format!("{{ apiKeys {{ {KEY_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    assert!(!r.text.contains(&key) && !r.text.contains(&row.key_hash));
    assert_eq!(
        r.data()["apiKeys"].as_array().map(Vec::len),
        Some(2),
        "bootstrap key and this one"
    );

    // Deactivate: refused on the very next request; reactivate: works again.
    app.gql(Auth::Key(&key), ME, json!({})).await.data();
    let upd = format!(
        "mutation($id: ID!, $i: UpdateApiKeyInput!) {{ updateApiKey(id: $id, input: $i) {{ {KEY_FIELDS} }} }}"
    );
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            &upd,
            json!({"id": meta["id"], "i": {"active": false, "label": "Zapier (paused)"}}),
        )
        .await;
    assert_eq!(r.data()["updateApiKey"]["status"], "INACTIVE");
    assert_eq!(r.data()["updateApiKey"]["label"], "Zapier (paused)");
    assert_401(
        &app.gql(Auth::Key(&key), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    app.gql(
        Auth::Bearer(&t.owner.token),
        &upd,
        json!({"id": meta["id"], "i": {"active": true}}),
    )
    .await
    .data();
    app.gql(Auth::Key(&key), ME, json!({})).await.data();
    // Expire it: refused at once with EXPIRED_TOKEN; clearing the expiry revives it.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            &upd,
            json!({"id": meta["id"], "i": {"expiresAt": past}}),
        )
        .await;
    assert_eq!(r.data()["updateApiKey"]["status"], "EXPIRED");
    assert_401(
        &app.gql(Auth::Key(&key), ME, json!({})).await,
        "EXPIRED_TOKEN",
    );
    app.gql(
        Auth::Bearer(&t.owner.token),
        &upd,
        json!({"id": meta["id"], "i": {"expiresAt": null}}),
    )
    .await
    .data();
    app.gql(Auth::Key(&key), ME, json!({})).await.data();

    // Delete: refused at once, and no longer listed.
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation($id: ID!) { deleteApiKey(id: $id) }",
            json!({"id": meta["id"]}),
        )
        .await;
    assert_eq!(r.data()["deleteApiKey"], meta["id"]);
    assert_401(
        &app.gql(Auth::Key(&key), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "{ apiKeys { id } }",
            json!({}),
        )
        .await;
    assert_eq!(r.data()["apiKeys"].as_array().map(Vec::len), Some(1));
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation($id: ID!) { deleteApiKey(id: $id) }",
            json!({"id": meta["id"]}),
        )
        .await;
    assert_eq!(r.code(), Some("NOT_FOUND"));

    // Invalid input: every field at once, nothing written.
    let before = snapshot(&app).await;
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            "mutation { createApiKey(input: {label: \"\", expiresInDays: 0}) { key } }",
            json!({}),
        )
        .await;
    let fields: Vec<&str> = r.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["label", "expiresInDays"]);
    let r = app
        .gql(Auth::Bearer(&t.owner.token), "mutation($at: DateTime) { createApiKey(input: {label: \"x\", expiresAt: $at}) { key } }", json!({"at": past}))
        .await;
    assert_eq!(r.code(), Some("VALIDATION_FAILED"));
    assert_eq!(snapshot(&app).await, before);
}

async fn key_management_requires_a_session(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (key_id, _) = app.key(&t.owner.token, "FULL", "LIVE").await;
    let before = snapshot(&app).await;
    for q in [
        "{ apiKeys { id } }",
        "mutation { createApiKey(input: {label: \"minted\"}) { key } }",
        "mutation($id: ID!) { updateApiKey(id: $id, input: {active: false}) { id } }",
        "mutation($id: ID!) { deleteApiKey(id: $id) }",
    ] {
        let r = app.gql(Auth::Key(&t.key), q, json!({"id": key_id})).await;
        assert_eq!(r.code(), Some("SESSION_REQUIRED"), "{q}");
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        snapshot(&app).await,
        before,
        "a leaked key cannot mint or revoke keys"
    );
}

async fn members_manage_only_their_own_keys(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let admin = app.user(&t, Role::Admin).await;
    let (own, _) = app.key(&member.token, "READ", "LIVE").await;
    let (owners, _) = app.key(&t.owner.token, "READ", "LIVE").await;
    let r = app
        .gql(Auth::Bearer(&member.token), "{ apiKeys { id } }", json!({}))
        .await;
    assert_eq!(r.data()["apiKeys"], json!([{"id": own}]));
    for q in [
        "mutation($id: ID!) { updateApiKey(id: $id, input: {label: \"mine\"}) { id } }",
        "mutation($id: ID!) { deleteApiKey(id: $id) }",
    ] {
        let r = app
            .gql(Auth::Bearer(&member.token), q, json!({"id": owners}))
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"), "{q}");
    }
    let r = app
        .gql(Auth::Bearer(&admin.token), "{ apiKeys { id } }", json!({}))
        .await;
    assert_eq!(
        r.data()["apiKeys"].as_array().map(Vec::len),
        Some(3),
        "admins see every key of the tenant"
    );
    let r = app
        .gql(
            Auth::Bearer(&admin.token),
            "mutation($id: ID!) { updateApiKey(id: $id, input: {label: \"audited\"}) { label } }",
            json!({"id": own}),
        )
        .await;
    assert_eq!(r.data()["updateApiKey"]["label"], "audited");
    // Another tenant's admin sees none of them.
    let other = app.tenant("Globex", Plan::Pro).await;
    let r = app
        .gql(
            Auth::Bearer(&other.owner.token),
            "mutation($id: ID!) { deleteApiKey(id: $id) }",
            json!({"id": own}),
        )
        .await;
    assert_eq!(r.code(), Some("NOT_FOUND"));
}

async fn every_credential_form_works(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let forms: Vec<(&str, String)> = vec![
        ("x-api-key", t.key.clone()),
        ("authorization", format!("ApiKey {}", t.key)),
        ("authorization", format!("Bearer {}", t.key)),
        ("authorization", format!("Bearer {}", t.owner.token)),
        ("authorization", format!("bearer {}", t.owner.token)),
    ];
    for (name, value) in forms {
        let r = app
            .gql_with(Auth::None, ME, json!({}), &[(name, value.as_str())])
            .await;
        assert_eq!(r.data()["me"]["id"], json!(t.owner.id), "{name}: {value}");
    }
}

async fn credential_errors_are_401_with_their_code(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let secret = jwt_secret(&app).await;
    let now = chrono::Utc::now().timestamp();
    let good = claims(&t.owner.token);
    let sign = |alg: Algorithm, key: &EncodingKey, c: &Value| {
        jsonwebtoken::encode(&Header::new(alg), c, key).expect("sign")
    };
    let hs = EncodingKey::from_secret(secret.as_bytes());
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let rsa =
        EncodingKey::from_rsa_pem(include_bytes!("fixtures/test-only-rsa.pem")).expect("rsa key");
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none_token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let tampered = {
        let parts: Vec<&str> = t.owner.token.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            b64(&with("sub", json!(t.id))),
            parts[2]
        )
    };
    let unknown_key = api_key::generate(entity::enums::Environment::Live).key;
    let mut bad_checksum = t.key.clone();
    let last = bad_checksum.pop().expect("char");
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });

    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "MISSING_TOKEN"),
        (vec![("x-api-key", unknown_key)], "INVALID_TOKEN"),
        (vec![("x-api-key", bad_checksum)], "INVALID_TOKEN"),
        (
            vec![("x-api-key", "lg_live_sk_short".into())],
            "INVALID_TOKEN",
        ),
        (vec![("x-api-key", "".into())], "INVALID_TOKEN"),
        (
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            "INVALID_TOKEN",
        ),
        (vec![("authorization", "Bearer ".into())], "INVALID_TOKEN"),
        (
            vec![("authorization", "ApiKey not-a-key".into())],
            "INVALID_TOKEN",
        ),
        (
            vec![("authorization", "Bearer not.a.jwt".into())],
            "INVALID_TOKEN",
        ),
        (
            vec![("authorization", format!("Bearer {none_token}"))],
            "INVALID_TOKEN",
        ),
        (
            vec![(
                "authorization",
                format!("Bearer {}", sign(Algorithm::HS384, &hs, &good)),
            )],
            "INVALID_TOKEN",
        ),
        (
            vec![(
                "authorization",
                format!("Bearer {}", sign(Algorithm::RS256, &rsa, &good)),
            )],
            "INVALID_TOKEN",
        ),
        (
            vec![(
                "authorization",
                format!(
                    "Bearer {}",
                    sign(
                        Algorithm::HS256,
                        &EncodingKey::from_secret(b"another-secret-of-32-bytes-or-more!!"),
                        &good
                    )
                ),
            )],
            "INVALID_TOKEN",
        ),
        (
            vec![(
                "authorization",
                format!(
                    "Bearer {}",
                    sign(Algorithm::HS256, &hs, &with("aud", json!("someone-else")))
                ),
            )],
            "INVALID_TOKEN",
        ),
        (
            vec![(
                "authorization",
                format!(
                    "Bearer {}",
                    sign(Algorithm::HS256, &hs, &with("iss", json!("evil")))
                ),
            )],
            "INVALID_TOKEN",
        ),
        (
            vec![(
                "authorization",
                format!(
                    "Bearer {}",
                    sign(Algorithm::HS256, &hs, &with("sub", json!("garbage")))
                ),
            )],
            "INVALID_TOKEN",
        ),
        (
            vec![("authorization", format!("Bearer {tampered}"))],
            "INVALID_TOKEN",
        ),
        (
            vec![(
                "authorization",
                format!(
                    "Bearer {}",
                    sign(Algorithm::HS256, &hs, &with("exp", json!(now - 60)))
                ),
            )],
            "EXPIRED_TOKEN",
        ),
    ];
    for (headers, code) in cases {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = app.gql_with(Auth::None, ME, json!({}), &hs).await;
        assert_401(&r, code);
        let message = r.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        // A field guard's refusal also says where it happened (locations, path) and has
        // `data: null`; a refusal before execution is a request error, with no `data` entry.
        let executed = r.body["errors"][0].get("path").is_some();
        let mut body = r.body.clone();
        if let Some(e) = body["errors"][0].as_object_mut() {
            e.remove("locations");
            e.remove("path");
        }
        // Cost feedback rides along on executed documents.
        if let Some(o) = body.as_object_mut() {
            o.remove("extensions");
        }
        let mut expected = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
        if executed {
            expected["data"] = Value::Null;
        }
        assert_eq!(body, expected, "{hs:?}");
    }
    // An expired key.
    let (id, key) = app.key(&t.owner.token, "FULL", "LIVE").await;
    let raw_id = app
        .state
        .ids
        .decode(leadgraph::ids::Kind::ApiKey, &id)
        .expect("id");
    app.db()
        .execute_unprepared(&format!(
            "UPDATE api_keys SET expires_at = '2000-01-01 00:00:00+00:00' WHERE id = {raw_id}"
        ))
        .await
        .expect("expire");
    assert_401(
        &app.gql(Auth::Key(&key), ME, json!({})).await,
        "EXPIRED_TOKEN",
    );
}

async fn stored_key(app: &TestApp, id: &str) -> entity::api_key::Model {
    let raw = app
        .state
        .ids
        .decode(leadgraph::ids::Kind::ApiKey, id)
        .expect("id");
    entity::api_key::Entity::find_by_id(raw)
        .one(app.db())
        .await
        .expect("query")
        .expect("row")
}

async fn listed_key(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .gql(
            Auth::Bearer(token),
            "{ apiKeys { id usageCount lastUsedAt } }",
            json!({}),
        )
        .await;
    r.data()["apiKeys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == json!(id))
        .cloned()
        .expect("key")
}

async fn usage_is_batched_not_written_per_request(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (id, key) = app.key(&t.owner.token, "READ", "LIVE").await;
    app.gql(Auth::Key(&key), "{ __typename }", json!({}))
        .await
        .data();
    // Once the look-up is cached, an authenticated request runs no SQL at all.
    let n = app.statement_count();
    for _ in 0..2 {
        app.gql(Auth::Key(&key), "{ __typename }", json!({}))
            .await
            .data();
    }
    assert_eq!(
        app.statement_count(),
        n,
        "no database read or write per request"
    );
    let stored = stored_key(&app, &id).await;
    assert_eq!(
        (stored.usage_count, stored.last_used_at),
        (0, None),
        "nothing written yet"
    );
    // Listings add what is pending, so they are current.
    let l = listed_key(&app, &t.owner.token, &id).await;
    assert_eq!(l["usageCount"], 3);
    assert!(l["lastUsedAt"].is_string());
    let written = app.state.usage.flush(app.db()).await.expect("flush");
    assert!(written >= 1);
    let stored = stored_key(&app, &id).await;
    assert_eq!(stored.usage_count, 3);
    assert!(stored.last_used_at.is_some());
    assert_eq!(
        listed_key(&app, &t.owner.token, &id).await["usageCount"],
        3,
        "not counted twice after the flush"
    );
}

async fn revocation_bounds_across_processes(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (id, key) = app.key(&t.owner.token, "FULL", "LIVE").await;
    // A second process on the same database, caching look-ups for 1 second.
    let mut config = app.state.config.clone();
    config.key_cache_ttl_secs = 1;
    let other = leadgraph::web::AppState::build(config, app.db().clone())
        .await
        .expect("second process");
    let other_router = leadgraph::router::build_router(other.clone());
    let me_via = |router: axum::Router| {
        let key = key.clone();
        async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post("/graphql")
                .header("content-type", "application/json")
                .header("x-api-key", key)
                .body(axum::body::Body::from(
                    json!({"query": "{ me { id } }"}).to_string(),
                ))
                .expect("request");
            router.oneshot(req).await.expect("response").status()
        }
    };
    assert_eq!(me_via(other_router.clone()).await, StatusCode::OK);
    app.gql(
        Auth::Bearer(&t.owner.token),
        "mutation($id: ID!) { deleteApiKey(id: $id) }",
        json!({"id": id}),
    )
    .await
    .data();
    // This process refuses at once; the other within its cache lifetime.
    assert_401(
        &app.gql(Auth::Key(&key), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(me_via(other_router).await, StatusCode::UNAUTHORIZED);
}

async fn environments_are_disjoint(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (_, sandbox) = app.key(&t.owner.token, "FULL", "SANDBOX").await;
    let create = "mutation { createLead(input: {email: \"s@example.com\", firstName: \"S\", lastName: \"B\"}) { id } }";
    app.gql(Auth::Key(&sandbox), create, json!({})).await.data();
    let count = "{ leads { totalCount } }";
    let r = app.gql(Auth::Key(&t.key), count, json!({})).await;
    assert_eq!(
        r.data()["leads"]["totalCount"],
        0,
        "live sees no sandbox lead"
    );
    let r = app.gql(Auth::Key(&sandbox), count, json!({})).await;
    assert_eq!(r.data()["leads"]["totalCount"], 1);
    // A session acts on live unless it asks for sandbox.
    let r = app
        .gql(Auth::Bearer(&t.owner.token), count, json!({}))
        .await;
    assert_eq!(r.data()["leads"]["totalCount"], 0);
    let r = app
        .gql_with(
            Auth::Bearer(&t.owner.token),
            count,
            json!({}),
            &[("x-environment", "sandbox")],
        )
        .await;
    assert_eq!(r.data()["leads"]["totalCount"], 1);
    let r = app
        .gql_with(
            Auth::Bearer(&t.owner.token),
            count,
            json!({}),
            &[("x-environment", "staging")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), Some("BAD_REQUEST"));
    // A key cannot be pointed at the other environment.
    let r = app
        .gql_with(
            Auth::Key(&sandbox),
            count,
            json!({}),
            &[("x-environment", "live")],
        )
        .await;
    assert_eq!(r.code(), Some("FORBIDDEN"));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn impersonation_rules(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let other_member = app.user(&t, Role::Member).await;
    let other = app.tenant("Globex", Plan::Pro).await;
    let (_, member_key) = app.key(&member.token, "FULL", "LIVE").await;

    let r = app
        .gql_with(
            Auth::Key(&t.key),
            ME,
            json!({}),
            &[("x-on-behalf-of", &member.id)],
        )
        .await;
    let me = &r.data()["me"];
    assert_eq!(me["id"], json!(member.id));
    assert_eq!(me["role"], "MEMBER");
    assert_eq!(me["actor"]["id"], json!(t.owner.id));

    let r = app
        .gql_with(Auth::Key(&t.key), "mutation { createLead(input: {email: \"a@b.co\", firstName: \"A\", lastName: \"B\"}) { id } }", json!({}), &[("x-on-behalf-of", &member.id)])
        .await;
    r.data();
    let r = app.gql(Auth::Bearer(&t.owner.token), "{ auditLog(first: 1) { edges { node { action actor { id } onBehalfOf { id } apiKey { id } } } } }", json!({})).await;
    let e = &r.data()["auditLog"]["edges"][0]["node"];
    assert_eq!(e["action"], "lead.create");
    assert_eq!(e["actor"]["id"], json!(t.owner.id), "the key's creator");
    assert_eq!(e["onBehalfOf"]["id"], json!(member.id), "the acting user");
    assert!(e["apiKey"]["id"].is_string());

    // Deactivate one member for the inactive case.
    app.gql(
        Auth::Bearer(&t.owner.token),
        "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
        json!({"id": other_member.id}),
    )
    .await
    .data();
    let before = snapshot(&app).await;
    let refused: Vec<(Auth, &str)> = vec![
        (Auth::Key(&member_key), t.owner.id.as_str()),
        (Auth::Key(&t.key), other.owner.id.as_str()),
        (Auth::Key(&t.key), other_member.id.as_str()),
        (Auth::Key(&t.key), "garbage"),
        (Auth::Key(&t.key), t.id.as_str()),
        (Auth::Bearer(&t.owner.token), member.id.as_str()),
    ];
    for (auth, target) in refused {
        let r = app
            .gql_with(auth, "mutation { createLead(input: {email: \"x@b.co\", firstName: \"A\", lastName: \"B\"}) { id } }", json!({}), &[("x-on-behalf-of", target)])
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"), "{target}");
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(snapshot(&app).await, before);
}

async fn me_describes_the_caller(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let (_, read_key) = app.key(&t.owner.token, "READ", "SANDBOX").await;
    let r = app.gql(Auth::Key(&read_key), ME, json!({})).await;
    assert_eq!(
        r.data()["me"],
        json!({"id": t.owner.id, "role": "OWNER", "environment": "SANDBOX", "scope": "READ", "authMethod": "API_KEY",
               "user": {"email": t.owner.email}, "tenant": {"id": t.id}, "actor": null})
    );
    // Lone fields, directives, aliases and a cached document (sent twice) resolve alike.
    for _ in 0..2 {
        let r = app
            .gql(Auth::Key(&read_key), "{ me { id } }", json!({}))
            .await;
        assert_eq!(r.data()["me"], json!({"id": t.owner.id}));
    }
    let lone = [
        ("{ me { __typename } }", json!({"__typename": "Viewer"})),
        ("{ me { tenant { id } } }", json!({"tenant": {"id": t.id}})),
        ("{ me { who: id } }", json!({"who": t.owner.id})),
        (
            "{ me { role @include(if: true) } }",
            json!({"role": "OWNER"}),
        ),
        (
            "{ me { id role @skip(if: true) } }",
            json!({"id": t.owner.id}),
        ),
        ("{ me { actor { id } } }", json!({"actor": null})),
        (
            "{ me { ...F } } fragment F on Viewer { id role }",
            json!({"id": t.owner.id, "role": "OWNER"}),
        ),
    ];
    for (query, expected) in lone {
        let r = app.gql(Auth::Key(&read_key), query, json!({})).await;
        assert_eq!(r.data()["me"], expected, "{query}");
    }
    let r = app.gql(Auth::Bearer(&t.owner.token), ME, json!({})).await;
    assert_eq!(r.data()["me"]["scope"], json!(null));
    assert_eq!(r.data()["me"]["environment"], "LIVE");
    let r = app.gql(Auth::None, ME, json!({})).await;
    assert_401(&r, "MISSING_TOKEN");
}

async fn user_management_rules(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let admin = app.user(&t, Role::Admin).await;
    let member = app.user(&t, Role::Member).await;
    let create = "mutation($e: String!, $r: Role!) { createUser(input: {email: $e, name: \"New\", role: $r, password: \"long-enough\"}) { id email role } }";
    let update = "mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { role active } }";
    let before = snapshot(&app).await;
    let refusals: Vec<(Auth, &str, Value, &str)> = vec![
        (
            Auth::Bearer(&member.token),
            create,
            json!({"e": "n1@example.com", "r": "MEMBER"}),
            "FORBIDDEN",
        ),
        (
            Auth::Key(&t.key),
            create,
            json!({"e": "n1@example.com", "r": "MEMBER"}),
            "SESSION_REQUIRED",
        ),
        (
            Auth::Bearer(&admin.token),
            create,
            json!({"e": "n1@example.com", "r": "OWNER"}),
            "FORBIDDEN",
        ),
        (
            Auth::Bearer(&admin.token),
            create,
            json!({"e": t.owner.email.to_uppercase(), "r": "MEMBER"}),
            "VALIDATION_FAILED",
        ),
        (
            Auth::Bearer(&member.token),
            update,
            json!({"id": member.id, "i": {"role": "ADMIN"}}),
            "FORBIDDEN",
        ),
        (
            Auth::Bearer(&admin.token),
            update,
            json!({"id": t.owner.id, "i": {"role": "MEMBER"}}),
            "FORBIDDEN",
        ),
        (
            Auth::Bearer(&admin.token),
            update,
            json!({"id": t.owner.id, "i": {"active": false}}),
            "FORBIDDEN",
        ),
        (
            Auth::Bearer(&admin.token),
            update,
            json!({"id": admin.id, "i": {"role": "OWNER"}}),
            "FORBIDDEN",
        ),
        (
            Auth::Bearer(&t.owner.token),
            update,
            json!({"id": t.owner.id, "i": {"role": "ADMIN"}}),
            "CONFLICT",
        ),
    ];
    for (auth, q, vars, code) in refusals {
        let r = app.gql(auth, q, vars.clone()).await;
        assert_eq!(r.code(), Some(code), "{vars}");
    }
    assert_eq!(snapshot(&app).await, before, "refusals write nothing");
    let r = app
        .gql(
            Auth::Bearer(&admin.token),
            create,
            json!({"e": "New.Person@Example.com", "r": "MEMBER"}),
        )
        .await;
    assert_eq!(r.data()["createUser"]["email"], "new.person@example.com");
    let r = app
        .gql(
            Auth::Bearer(&admin.token),
            update,
            json!({"id": member.id, "i": {"role": "ADMIN"}}),
        )
        .await;
    assert_eq!(r.data()["updateUser"]["role"], "ADMIN");
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            create,
            json!({"e": "second-owner@example.com", "r": "OWNER"}),
        )
        .await;
    r.data();
    // With a second owner, the first may step down.
    let r = app
        .gql(
            Auth::Bearer(&t.owner.token),
            update,
            json!({"id": t.owner.id, "i": {"role": "ADMIN"}}),
        )
        .await;
    assert_eq!(r.data()["updateUser"]["role"], "ADMIN");
    let r = app
        .gql(Auth::Key(&t.key), "{ users { email } }", json!({}))
        .await;
    assert_eq!(r.data()["users"].as_array().map(Vec::len), Some(5));
}

async fn access_tokens_end_with_their_session(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let other = app.login(&t.owner.email, "owner-password").await;
    // Logging out ends the access token of that login at once, not after its hour.
    app.gql(Auth::Bearer(&t.owner.token), ME, json!({}))
        .await
        .data();
    assert_eq!(
        logout(&app, &t.owner.refresh_token).await.data()["logout"],
        true
    );
    assert_401(
        &app.gql(Auth::Bearer(&t.owner.token), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    // The other login of the same user goes on.
    app.gql(Auth::Bearer(&other.token), ME, json!({}))
        .await
        .data();
    // Reusing a refresh token ends every access token of that login, old and new.
    let r = refresh(&app, &other.refresh_token).await;
    let newer = r.data()["refreshSession"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.gql(Auth::Bearer(&newer), ME, json!({})).await.data();
    assert_401(&refresh(&app, &other.refresh_token).await, "REVOKED_TOKEN");
    for token in [&other.token, &newer] {
        assert_401(
            &app.gql(Auth::Bearer(token), ME, json!({})).await,
            "REVOKED_TOKEN",
        );
    }
}

async fn access_tokens_end_when_the_user_is_deactivated_or_re_roled(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let member = app.user(&t, Role::Member).await;
    let set = |input: &'static str| {
        let (app, owner, id) = (&app, t.owner.token.clone(), member.id.clone());
        async move {
            app.gql(
                Auth::Bearer(&owner),
                &format!("mutation($id: ID!) {{ updateUser(id: $id, input: {input}) {{ id }} }}"),
                json!({"id": id}),
            )
            .await
            .data()
            .clone()
        }
    };
    set("{active: false}").await;
    set("{active: true}").await;
    // Reactivation revives neither the access token nor the refresh token issued before.
    assert_401(
        &app.gql(Auth::Bearer(&member.token), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    assert_401(&refresh(&app, &member.refresh_token).await, "REVOKED_TOKEN");
    // A new login works, until the user's role changes.
    let again = app.login(&member.email, "user-password").await;
    app.gql(Auth::Bearer(&again.token), ME, json!({}))
        .await
        .data();
    set("{role: ADMIN}").await;
    assert_401(
        &app.gql(Auth::Bearer(&again.token), ME, json!({})).await,
        "REVOKED_TOKEN",
    );
    assert_401(&refresh(&app, &again.refresh_token).await, "REVOKED_TOKEN");
    // A rename is no reason to end sessions.
    let admin = app.login(&member.email, "user-password").await;
    set("{name: \"Renamed\"}").await;
    app.gql(Auth::Bearer(&admin.token), ME, json!({}))
        .await
        .data();
}

async fn tokens_not_yet_valid_are_refused(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let secret = jwt_secret(&app).await;
    let mut c = claims(&t.owner.token);
    assert!(c["nbf"].is_i64(), "tokens say when they start: {c}");
    c["nbf"] = json!(chrono::Utc::now().timestamp() + 3600);
    let early = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign");
    assert_401(
        &app.gql(Auth::Bearer(&early), ME, json!({})).await,
        "INVALID_TOKEN",
    );
}

async fn common_passwords_are_refused(app: TestApp) {
    let t = app.tenant("Acme", Plan::Pro).await;
    let before = snapshot(&app).await;
    for password in ["12345678", "Password1", "qwertyuiop"] {
        let r = app
            .gql(
                Auth::Bearer(&t.owner.token),
                "mutation($p: String!) { createUser(input: {email: \"new@example.com\", name: \"New\", role: MEMBER, password: $p}) { id } }",
                json!({"p": password}),
            )
            .await;
        assert_eq!(
            r.code(),
            Some("VALIDATION_FAILED"),
            "{password}: {}",
            r.body
        );
        assert_eq!(
            r.body["errors"][0]["extensions"]["fields"][0]["field"],
            "password"
        );
    }
    assert_eq!(snapshot(&app).await, before, "nothing written");
}
