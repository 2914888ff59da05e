//! Password hashing with argon2id at OWASP's parameters (19 MiB, 2 iterations, 1 lane).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::AppError;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string. CPU-heavy: call from a blocking thread.
pub fn hash(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(AppError::internal)
}

/// Verifies a password against a PHC string; a malformed hash verifies nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// [`hash`] on a blocking thread.
pub async fn hash_async(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(AppError::internal)?
}

/// [`verify`] on a blocking thread.
pub async fn verify_async(password: String, phc: String) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .map_err(AppError::internal)
}

/// The most common passwords of 8 or more characters, lower-cased (see the file's header).
static COMMON: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| {
        include_str!("common_passwords.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    });

/// Whether `password` is one of the most common ones, ignoring case.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

/// A random password for generated accounts: 20 base62 characters.
pub fn generate() -> String {
    use rand::{Rng, TryRngCore};
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng.unwrap_err();
    (0..20)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_owasp_params_and_verifies() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn the_most_common_passwords_are_known() {
        for common in [
            "12345678",
            "password1",
            "Sunshine",
            "QWERTYUIOP",
            "iloveyou",
        ] {
            assert!(is_common(common) || common.len() < 8, "{common}");
        }
        assert!(is_common("12345678"));
        assert!(!is_common("correct horse battery staple"));
        assert!(!is_common(&generate()));
        assert!(COMMON.len() > 10_000);
    }
}
