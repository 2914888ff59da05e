//! Who is calling: credentials, hashing, tokens, and the resulting [`principal::Principal`].

pub mod api_key;
pub mod jwt;
pub mod key_cache;
pub mod password;
pub mod principal;
pub mod usage;
