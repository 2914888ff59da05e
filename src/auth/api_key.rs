//! API key format: `lg_live_sk_<32 base62>` / `lg_sandbox_sk_<32 base62>`, the last six
//! characters a checksum of the rest, so a mistyped key is refused without a database look-up.
//!
//! The checksum is the first four bytes of SHA-256 over everything before it (prefix
//! included), as a big-endian number written in base62 and left-padded with `0` to six
//! characters. Only the SHA-256 of the whole key is stored.

use entity::enums::Environment;
use rand::{Rng, TryRngCore};
use sha2::{Digest, Sha256};

/// Prefix of live keys.
pub const LIVE_PREFIX: &str = "lg_live_sk_";
/// Prefix of sandbox keys.
pub const SANDBOX_PREFIX: &str = "lg_sandbox_sk_";
/// Characters after the prefix.
pub const BODY_LEN: usize = 32;
/// Trailing checksum characters within the body.
pub const CHECKSUM_LEN: usize = 6;
/// Characters of the body shown in the display prefix.
const DISPLAY_CHARS: usize = 4;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A newly generated key. `Debug` never prints the key.
pub struct NewKey {
    /// The full key, shown to the client once.
    pub key: String,
    /// Hex SHA-256 of the key, the only thing stored.
    pub hash: String,
    /// Display prefix, safe to show: `lg_live_sk_AbCd`.
    pub prefix: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The prefix of keys of an environment.
pub fn prefix_for(env: Environment) -> &'static str {
    match env {
        Environment::Live => LIVE_PREFIX,
        Environment::Sandbox => SANDBOX_PREFIX,
    }
}

/// Whether a credential is meant as an API key (rather than a JWT).
pub fn looks_like_key(credential: &str) -> bool {
    credential.starts_with("lg_")
}

/// Generates a key for `env` from the operating system's random source.
pub fn generate(env: Environment) -> NewKey {
    let mut rng = rand::rngs::OsRng.unwrap_err();
    let prefix = prefix_for(env);
    let mut key = String::with_capacity(prefix.len() + BODY_LEN);
    key.push_str(prefix);
    for _ in 0..BODY_LEN - CHECKSUM_LEN {
        key.push(BASE62[rng.random_range(0..BASE62.len())] as char);
    }
    let sum = checksum(&key);
    key.push_str(&sum);
    NewKey {
        hash: hash(&key),
        prefix: key[..prefix.len() + DISPLAY_CHARS].to_owned(),
        key,
    }
}

/// Checks a key's shape and checksum; returns its environment.
pub fn parse(key: &str) -> Option<Environment> {
    let (env, body) = if let Some(body) = key.strip_prefix(LIVE_PREFIX) {
        (Environment::Live, body)
    } else if let Some(body) = key.strip_prefix(SANDBOX_PREFIX) {
        (Environment::Sandbox, body)
    } else {
        return None;
    };
    if body.len() != BODY_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (rest, sum) = key.split_at(key.len() - CHECKSUM_LEN);
    (checksum(rest) == sum).then_some(env)
}

/// Hex SHA-256 of a key, as stored.
pub fn hash(key: &str) -> String {
    hex::encode(digest(key))
}

/// The key's SHA-256 as bytes: the cache's key, cheaper than the hex form on the hot path.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn checksum(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    let mut n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|b| *b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = generate(Environment::Live);
        let b = generate(Environment::Sandbox);
        assert_eq!(a.key.len(), LIVE_PREFIX.len() + BODY_LEN);
        assert_eq!(parse(&a.key), Some(Environment::Live));
        assert_eq!(parse(&b.key), Some(Environment::Sandbox));
        assert_ne!(a.key[LIVE_PREFIX.len()..], b.key[SANDBOX_PREFIX.len()..]);
        assert_eq!(a.hash, hash(&a.key));
        assert!(a.key.starts_with(&a.prefix));
        assert!(!format!("{a:?}").contains(&a.key));
    }

    #[test]
    fn any_typo_fails_the_checksum() {
        let k = generate(Environment::Live).key;
        for i in LIVE_PREFIX.len()..k.len() {
            let mut bytes = k.clone().into_bytes();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let typo = String::from_utf8(bytes).expect("ascii");
            assert_eq!(parse(&typo), None, "typo at {i} accepted");
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        let k = generate(Environment::Live).key;
        for bad in [
            "",
            "lg_live_sk_",
            &k[..k.len() - 1],
            &format!("{k}0"),
            &k.replace("lg_live_sk_", "lg_sandbox_sk_"),
            &k.replace("lg_live_sk_", "lg_test_sk_"),
            "lg_live_sk_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} accepted");
        }
    }
}
