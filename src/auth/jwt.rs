//! Access tokens: HS256 JWTs (algorithm pinned) with `iss`, `aud`, `sub`, `tid`, `iat`, `nbf`,
//! `exp`, `jti`, and the session they belong to (`sid`, `epoch`), checked per request.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// `iss` and `aud` of every token this server issues.
pub const ISSUER: &str = "leadgraph";
/// Expected audience.
pub const AUDIENCE: &str = "leadgraph-api";
/// Access token lifetime.
pub const TTL_SECS: i64 = 3600;

/// The claims of an access token. `sub` and `tid` are opaque IDs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user's opaque ID.
    pub sub: String,
    /// The tenant's opaque ID.
    pub tid: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Token ID.
    pub jti: String,
    /// The refresh-token family (login) the token was issued for: logging out or reusing a
    /// refresh token revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user's session epoch when issued: deactivation or a role change moves it on.
    #[serde(default)]
    pub epoch: i64,
}

/// What an access token is issued for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The user's opaque ID.
    pub user: &'a str,
    /// The tenant's opaque ID.
    pub tenant: &'a str,
    /// The refresh-token family.
    pub family: &'a str,
    /// The user's session epoch.
    pub epoch: i64,
}

/// Signing and verification keys.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// Keys from a shared secret.
    pub fn new(secret: &[u8]) -> Self {
        // Only HS256 is accepted: `none`, other HMACs and RS/ES tokens are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        validation.validate_nbf = true;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Issues an access token; returns it with its expiry (seconds since the epoch).
    pub fn issue(&self, subject: Subject<'_>) -> Result<(String, i64), AppError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: subject.user.to_owned(),
            tid: subject.tenant.to_owned(),
            iat: now,
            nbf: Some(now),
            exp: now + TTL_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: Some(subject.family.to_owned()),
            epoch: subject.epoch,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)?;
        Ok((token, claims.exp))
    }

    /// Verifies a token: `EXPIRED_TOKEN` when only its expiry fails, `INVALID_TOKEN` otherwise.
    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AppError::ExpiredToken,
                _ => AppError::InvalidToken,
            })
    }
}
