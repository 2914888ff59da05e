//! Property tests (run in CI with a bounded number of cases): the parsers that read untrusted
//! input never panic and never accept garbage.

use leadgraph::auth::api_key;
use leadgraph::ids::{Ids, Kind};
use leadgraph::service::page::{self, PageArgs};
use proptest::prelude::*;

fn ids() -> Ids {
    Ids::new(&Ids::generate_alphabet()).expect("generated alphabet")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn id_decoding_never_panics_and_round_trips(s in "\\PC{0,40}", n in 1i64..i64::MAX) {
        let ids = ids();
        // Anything decodes to nothing or to an ID that encodes back to exactly the input.
        if let Some((kind, id)) = ids.decode_any(&s) {
            prop_assert_eq!(ids.encode(kind, id), s.clone());
        }
        let encoded = ids.encode(Kind::Lead, n);
        prop_assert_eq!(ids.decode(Kind::Lead, &encoded), Some(n));
        prop_assert_eq!(ids.decode(Kind::User, &encoded), None);
    }

    #[test]
    fn mutated_ids_are_refused(n in 1i64..1_000_000_000, pos in 0usize..16, c in "[0-9A-Za-z]") {
        let ids = ids();
        let good = ids.encode(Kind::Lead, n);
        let mut bytes = good.clone().into_bytes();
        let at = pos % bytes.len();
        bytes[at] = c.as_bytes()[0];
        let bad = String::from_utf8(bytes).expect("ascii");
        if bad != good {
            prop_assert_ne!(ids.decode(Kind::Lead, &bad), Some(n));
        }
    }

    #[test]
    fn key_parsing_never_accepts_garbage(s in "\\PC{0,60}", body in "[0-9A-Za-z]{32}") {
        // Random text is not a key (a random 32-character body passes the 6-character
        // checksum about once in 56 billion tries).
        prop_assert!(api_key::parse(&s).is_none() || s.starts_with("lg_"));
        let forged = format!("lg_live_sk_{body}");
        if api_key::parse(&forged).is_some() {
            // Only possible when the last six characters happen to be the checksum.
            prop_assert_eq!(forged.len(), "lg_live_sk_".len() + 32);
        }
        let real = api_key::generate(entity::enums::Environment::Live).key;
        prop_assert!(api_key::parse(&real).is_some());
    }

    #[test]
    fn cursor_and_page_parsing_never_panic(
        after in proptest::option::of("\\PC{0,80}"),
        before in proptest::option::of("[A-Za-z0-9_-]{0,80}"),
        first in proptest::option::of(-1000i64..1000),
        last in proptest::option::of(-1000i64..1000),
    ) {
        let ids = ids();
        let args = PageArgs { first, after: after.clone(), last, before };
        if let Ok(w) = page::window(&ids, Kind::Lead, "createdAt:desc", &args) {
            prop_assert!(w.limit <= 100);
            // A cursor that was accepted decodes to a real position.
            if let Some(from) = &w.from {
                prop_assert!(from.id > 0);
            }
        }
        if let Some(a) = &after {
            let _ = page::decode_cursor(&ids, Kind::Lead, "createdAt:desc", a);
        }
    }

    #[test]
    fn graphql_limit_analysis_never_panics(q in "\\PC{0,200}") {
        if let Ok(doc) = async_graphql::parser::parse_query(&q) {
            let _ = leadgraph::graphql::limits::analyze(&doc, None, &async_graphql::Variables::default());
        }
    }

    #[test]
    fn rest_body_checks_never_panic(json in "\\PC{0,200}") {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&json) {
            let mut errors = leadgraph::service::validate::Errors::new();
            let _ = leadgraph::rest::fields::check(leadgraph::rest::leads::CREATE_FIELDS, &map, &mut errors);
        }
    }
}
