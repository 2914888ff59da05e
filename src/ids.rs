//! Opaque IDs (docs/operations.md): Sqids over a per-deployment alphabet, encoding the row's
//! kind together with its number, so an ID of one kind is never accepted for another.

use std::sync::Arc;

use rand::seq::SliceRandom;
use sqids::Sqids;

use crate::bounded::BoundedMap;

/// The kinds of rows that have public IDs. The discriminant is encoded into every ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A tenant.
    Tenant = 1,
    /// A user.
    User = 2,
    /// An API key.
    ApiKey = 3,
    /// A lead source.
    Source = 4,
    /// A pipeline.
    Pipeline = 5,
    /// A pipeline stage.
    Stage = 6,
    /// A lead.
    Lead = 7,
    /// An audit log entry.
    AuditEntry = 8,
    /// An event of the change feed.
    Event = 9,
    /// A position in a change feed (a cursor, not a row).
    EventCursor = 10,
    /// An outbound webhook endpoint.
    WebhookEndpoint = 11,
    /// A webhook delivery.
    WebhookDelivery = 12,
    /// An import job.
    ImportJob = 13,
}

impl Kind {
    const ALL: [Kind; 13] = [
        Kind::Tenant,
        Kind::User,
        Kind::ApiKey,
        Kind::Source,
        Kind::Pipeline,
        Kind::Stage,
        Kind::Lead,
        Kind::AuditEntry,
        Kind::Event,
        Kind::EventCursor,
        Kind::WebhookEndpoint,
        Kind::WebhookDelivery,
        Kind::ImportJob,
    ];

    fn from_tag(tag: u64) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u64 == tag)
    }
}

/// Shortest ID produced; every ID of a row number below 2^63 is 16 characters long.
/// A row number no table holds: what an ID naming nothing looks up.
pub const NO_ROW: i64 = -1;
pub const MIN_LEN: usize = 16;
/// Longest ID accepted.
pub const MAX_LEN: usize = 17;

const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encoder and decoder of opaque IDs for one deployment.
#[derive(Clone)]
pub struct Ids(Arc<Sqids>, Arc<BoundedMap<(u8, i64), Box<str>>>);

/// Encoded IDs kept at most; when full the cache starts over (about 5 MiB at most).
const CACHE_CAPACITY: usize = 65_536;

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The alphabet is a deployment secret.
        f.write_str("Ids(..)")
    }
}

impl Ids {
    /// Builds the codec from an alphabet, which must be a permutation of `[0-9A-Za-z]`.
    pub fn new(alphabet: &str) -> Result<Self, String> {
        let mut sorted: Vec<char> = alphabet.chars().collect();
        sorted.sort_unstable();
        if sorted.iter().collect::<String>() != BASE62 {
            return Err("the ID alphabet must be a permutation of [0-9A-Za-z]".to_owned());
        }
        // No word blocklist: checking every encoded ID against Sqids' ~560 words dominated the
        // cost of list responses, and a shuffled per-deployment alphabet spells nothing on purpose.
        let sqids = Sqids::builder()
            .alphabet(alphabet.chars().collect())
            .min_length(MIN_LEN as u8)
            .blocklist(std::collections::HashSet::new())
            .build()
            .map_err(|e| e.to_string())?;
        // IDs already encoded are kept: a Sqids encoding shuffles the alphabet several times,
        // and list responses encode the same few hundred IDs over and over.
        Ok(Ids(
            Arc::new(sqids),
            Arc::new(BoundedMap::new(CACHE_CAPACITY)),
        ))
    }

    /// A fresh random alphabet for a new deployment.
    pub fn generate_alphabet() -> String {
        let mut chars: Vec<char> = BASE62.chars().collect();
        chars.shuffle(&mut rand::rng());
        chars.into_iter().collect()
    }

    /// Encoded IDs held in the cache.
    pub fn cached(&self) -> usize {
        self.1.len()
    }

    /// Encodes row `id` of `kind`.
    pub fn encode(&self, kind: Kind, id: i64) -> String {
        let key = (kind as u8, id);
        if let Some(s) = self.1.get_with(&key, |s| s.to_string()) {
            return s;
        }
        let s = self
            .0
            .encode(&[kind as u64, id as u64])
            .expect("two u64s always encode without a blocklist");
        self.1.insert(key, s.as_str().into());
        s
    }

    /// Decodes an ID of `kind`; `None` for garbage, non-canonical spellings and other kinds.
    pub fn decode(&self, kind: Kind, s: &str) -> Option<i64> {
        match self.decode_any(s) {
            Some((k, id)) if k == kind => Some(id),
            _ => None,
        }
    }

    /// Whether `s` is spelled as an ID is (the length and alphabet of every ID), whether or
    /// not it names a row: what the OpenAPI document's ID pattern states.
    pub fn is_shaped(s: &str) -> bool {
        (MIN_LEN..=MAX_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// An ID of `kind` to look up: its row, or [`NO_ROW`] for one spelled as an ID that names
    /// no row of `kind` (looked up, it is not found, as another tenant's); `None` for one
    /// misspelled.
    pub fn lookup(&self, kind: Kind, s: &str) -> Option<i64> {
        match self.decode(kind, s) {
            Some(id) => Some(id),
            None => Self::is_shaped(s).then_some(NO_ROW),
        }
    }

    /// Decodes an ID of any kind (for `node(id)`).
    pub fn decode_any(&self, s: &str) -> Option<(Kind, i64)> {
        if !Self::is_shaped(s) {
            return None;
        }
        let numbers = self.0.decode(s);
        let [tag, id] = numbers[..] else { return None };
        let kind = Kind::from_tag(tag)?;
        let id = i64::try_from(id).ok().filter(|id| *id > 0)?;
        // Sqids can decode several spellings to the same numbers: accept only the canonical one.
        (self.encode(kind, id) == s).then_some((kind, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids::new(&Ids::generate_alphabet()).expect("generated alphabet is valid")
    }

    #[test]
    fn round_trips_every_kind() {
        let ids = ids();
        for kind in Kind::ALL {
            for id in [1, 2, 42, 1_000_000, i64::from(u32::MAX), i64::MAX] {
                let s = ids.encode(kind, id);
                assert_eq!(ids.decode(kind, &s), Some(id), "{kind:?} {id} -> {s}");
                assert_eq!(ids.decode_any(&s), Some((kind, id)));
            }
        }
    }

    #[test]
    fn cached_encodings_equal_fresh_ones() {
        let alphabet = Ids::generate_alphabet();
        let warm = Ids::new(&alphabet).expect("valid");
        for id in 1..2000 {
            warm.encode(Kind::Lead, id);
        }
        let fresh = Ids::new(&alphabet).expect("valid");
        for id in 1..2000 {
            assert_eq!(warm.encode(Kind::Lead, id), fresh.encode(Kind::Lead, id));
            assert_ne!(warm.encode(Kind::Lead, id), warm.encode(Kind::User, id));
        }
        assert!(warm.1.len() <= CACHE_CAPACITY);
    }

    #[test]
    fn length_is_16_to_17() {
        let ids = ids();
        for id in [1, 9, 10_000, 1 << 40, i64::MAX] {
            let s = ids.encode(Kind::Lead, id);
            assert!((MIN_LEN..=MAX_LEN).contains(&s.len()), "{s}");
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn wrong_kind_is_refused() {
        let ids = ids();
        let lead = ids.encode(Kind::Lead, 7);
        assert_eq!(ids.decode(Kind::User, &lead), None);
        assert_eq!(ids.decode(Kind::Lead, &lead), Some(7));
    }

    #[test]
    fn garbage_is_refused() {
        let ids = ids();
        let good = ids.encode(Kind::Lead, 7);
        let mut flipped = good.clone().into_bytes();
        flipped[5] = if flipped[5] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        for bad in [
            "",
            "1",
            "abc",
            "0000000000000000",
            "!!!!!!!!!!!!!!!!",
            "ééééééééééééééé",
            &good[1..],
            &format!("{good}xx"),
            &flipped,
        ] {
            assert_eq!(ids.decode(Kind::Lead, bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn other_deployments_ids_are_refused() {
        let (a, b) = (ids(), ids());
        let s = a.encode(Kind::Lead, 12345);
        assert_ne!(b.decode(Kind::Lead, &s), Some(12345));
    }

    #[test]
    fn alphabet_must_be_a_permutation() {
        assert!(Ids::new("abc").is_err());
        assert!(Ids::new(&BASE62.replace('a', "b")).is_err());
        assert!(Ids::new(BASE62).is_ok());
    }
}
