//! `/auth` and `/me`: log in, rotate and revoke sessions, and tell the caller who it is.

use axum::http::Method;
use axum::response::Response;
use serde_json::json;

use super::envelope;
use super::fields::{Field, Ty, req};
use super::route::{Access, Call, Op, Reply, Route};
use crate::error::AppError;

macro_rules! session {
    () => {
        "token refreshToken expiresAt user { id name email role }"
    };
}

static LOGIN: Op = Op::new(concat!(
    "mutation($email: String!, $password: String!) { r: login(email: $email, password: $password) { ",
    session!(),
    " } }"
));
static REFRESH: Op = Op::new(concat!(
    "mutation($refreshToken: String!) { r: refreshSession(refreshToken: $refreshToken) { ",
    session!(),
    " } }"
));
static LOGOUT: Op =
    Op::new("mutation($refreshToken: String!) { r: logout(refreshToken: $refreshToken) }");
static ME: Op = Op::new(
    "query { r: me { id role environment scope authMethod user { email name } \
     tenant { id name slug plan } } }",
);

/// `POST /auth/login`.
const LOGIN_FIELDS: &[Field] = &[req("email", Ty::Str), req("password", Ty::Str)];
/// `POST /auth/refresh` and `/auth/logout`.
const REFRESH_FIELDS: &[Field] = &[req("refreshToken", Ty::Str)];

/// The routes.
pub fn routes() -> Vec<Route> {
    let route =
        |method, path, id, summary, handler| Route::new("auth", method, path, id, summary, handler);
    vec![
        route(
            Method::POST,
            "/auth/login",
            "login",
            "Log in with email and password",
            |c| Box::pin(session(c, &LOGIN)),
        )
        .access(Access::Public)
        .body(LOGIN_FIELDS)
        .reply(Reply::Ok, "Session"),
        route(
            Method::POST,
            "/auth/refresh",
            "refresh",
            "Rotate a refresh token",
            |c| Box::pin(session(c, &REFRESH)),
        )
        .access(Access::Public)
        .body(REFRESH_FIELDS)
        .reply(Reply::Ok, "Session"),
        route(
            Method::POST,
            "/auth/logout",
            "logout",
            "Revoke a session",
            |c| Box::pin(logout(c)),
        )
        .access(Access::Public)
        .body(REFRESH_FIELDS)
        .reply(Reply::Ok, "LoggedOut"),
        route(Method::GET, "/me", "me", "The caller", |c| Box::pin(me(c))).reply(Reply::Ok, "Me"),
    ]
}

/// Login and refresh: the body's fields are the operation's variables.
async fn session(mut c: Call, op: &'static Op) -> Result<Response, AppError> {
    let input = c.input().await?;
    Ok(envelope::object(c.run(op, input).await?))
}

async fn logout(mut c: Call) -> Result<Response, AppError> {
    let input = c.input().await?;
    let done = c.run(&LOGOUT, input).await?;
    Ok(envelope::object(json!({"loggedOut": done})))
}

async fn me(c: Call) -> Result<Response, AppError> {
    Ok(envelope::object(c.run(&ME, Default::default()).await?))
}
