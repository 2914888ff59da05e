//! Keyset pagination shared by the connections: page arguments, opaque cursors, windows.
//!
//! A cursor is base64url of `sort|value|opaque id`: it names the ordering it belongs to, so a
//! cursor of one ordering is refused by another, and it never carries an integer key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;
use crate::ids::{Ids, Kind};
use crate::service::validate::Errors;

/// Largest page.
pub const MAX_PAGE: i64 = 100;
/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE: i64 = 20;

/// Relay connection arguments.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    /// Items after `after`, from the start.
    pub first: Option<i64>,
    /// Cursor to start after.
    pub after: Option<String>,
    /// Items before `before`, from the end.
    pub last: Option<i64>,
    /// Cursor to end before.
    pub before: Option<String>,
}

/// A position in an ordering: the sort key's value (as text) and the row's ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The sort key's value.
    pub value: String,
    /// The row's ID (tie-breaker).
    pub id: i64,
}

/// What to fetch: `limit` rows walking `forward` (in the requested order) or backward,
/// strictly beyond `from`.
#[derive(Debug, Clone)]
pub struct Window {
    /// Rows wanted (one more is fetched to learn whether there are more).
    pub limit: u64,
    /// Walking in the requested order (`first`/`after`) or against it (`last`/`before`).
    pub forward: bool,
    /// Exclusive start.
    pub from: Option<Position>,
}

/// Encodes a cursor.
pub fn encode_cursor(ids: &Ids, kind: Kind, sort: &str, value: &str, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{sort}|{value}|{}", ids.encode(kind, id)))
}

/// Decodes a cursor of ordering `sort`; anything else is `None`.
pub fn decode_cursor(ids: &Ids, kind: Kind, sort: &str, cursor: &str) -> Option<Position> {
    if cursor.len() > 1024 {
        return None;
    }
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (s, rest) = raw.split_once('|')?;
    let (value, id) = rest.rsplit_once('|')?;
    if s != sort {
        return None;
    }
    let id = ids.decode(kind, id)?;
    Some(Position {
        value: value.to_owned(),
        id,
    })
}

/// The page size `first` asks for ([`DEFAULT_PAGE`] when absent), for lists paged forward
/// only; outside 1 to [`MAX_PAGE`] it is a field error on `first`.
pub fn size(first: Option<i64>, errors: &mut Errors) -> u64 {
    let n = first.unwrap_or(DEFAULT_PAGE);
    errors.check(
        (1..=MAX_PAGE).contains(&n),
        "first",
        &format!("must be between 1 and {MAX_PAGE}"),
    );
    n.clamp(1, MAX_PAGE) as u64
}

/// Validates page arguments into a window.
pub fn window(ids: &Ids, kind: Kind, sort: &str, args: &PageArgs) -> Result<Window, AppError> {
    let mut errors = Errors::new();
    if args.first.is_some() && args.last.is_some() {
        errors.add("last", "give first or last, not both");
    }
    if args.after.is_some() && args.before.is_some() {
        errors.add("before", "give after or before, not both");
    }
    for (name, n) in [("first", args.first), ("last", args.last)] {
        if let Some(n) = n {
            errors.check((0..=MAX_PAGE).contains(&n), name, "must be 0 to 100");
        }
    }
    let mut decode = |name: &str, c: &Option<String>| {
        c.as_ref().and_then(|c| {
            let pos = decode_cursor(ids, kind, sort, c);
            if pos.is_none() {
                errors.add(name, "is not a cursor of this list and ordering");
            }
            pos
        })
    };
    let after = decode("after", &args.after);
    let before = decode("before", &args.before);
    errors.finish()?;
    let forward = args.last.is_none() && args.before.is_none();
    let limit = if forward {
        args.first.unwrap_or(DEFAULT_PAGE)
    } else {
        args.last.unwrap_or(DEFAULT_PAGE)
    };
    Ok(Window {
        limit: limit.clamp(0, MAX_PAGE) as u64,
        forward,
        from: if forward { after } else { before },
    })
}

/// One page of rows in the requested order.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// More rows follow the last one.
    pub has_next: bool,
    /// More rows precede the first one.
    pub has_previous: bool,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows walking in `window`'s direction.
    pub fn from_fetched(mut rows: Vec<T>, window: &Window) -> Self {
        let more = rows.len() as u64 > window.limit;
        rows.truncate(window.limit as usize);
        if window.forward {
            Page {
                items: rows,
                has_next: more,
                has_previous: window.from.is_some(),
            }
        } else {
            rows.reverse();
            Page {
                items: rows,
                has_next: window.from.is_some(),
                has_previous: more,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_ordering() {
        let ids = Ids::new(&Ids::generate_alphabet()).expect("ids");
        let c = encode_cursor(&ids, Kind::Lead, "score", "42", 7);
        assert_eq!(
            decode_cursor(&ids, Kind::Lead, "score", &c),
            Some(Position {
                value: "42".into(),
                id: 7
            })
        );
        assert_eq!(decode_cursor(&ids, Kind::Lead, "createdAt", &c), None);
        assert_eq!(decode_cursor(&ids, Kind::AuditEntry, "score", &c), None);
        for junk in ["", "abc", "!!!", &c[1..], "c2NvcmV8NDJ8"] {
            assert_eq!(
                decode_cursor(&ids, Kind::Lead, "score", junk),
                None,
                "{junk}"
            );
        }
        // Values may contain the separator.
        let c = encode_cursor(&ids, Kind::Lead, "lastName", "a|b", 3);
        assert_eq!(
            decode_cursor(&ids, Kind::Lead, "lastName", &c).map(|p| p.value),
            Some("a|b".into())
        );
    }

    #[test]
    fn windows_validate_arguments() {
        let ids = Ids::new(&Ids::generate_alphabet()).expect("ids");
        let w = window(&ids, Kind::Lead, "s", &PageArgs::default()).expect("default");
        assert_eq!((w.limit, w.forward), (20, true));
        let w = window(
            &ids,
            Kind::Lead,
            "s",
            &PageArgs {
                last: Some(5),
                ..Default::default()
            },
        )
        .expect("last");
        assert_eq!((w.limit, w.forward), (5, false));
        for bad in [
            PageArgs {
                first: Some(101),
                ..Default::default()
            },
            PageArgs {
                first: Some(-1),
                ..Default::default()
            },
            PageArgs {
                first: Some(1),
                last: Some(1),
                ..Default::default()
            },
            PageArgs {
                after: Some("nope".into()),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(
                    window(&ids, Kind::Lead, "s", &bad),
                    Err(AppError::Validation(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pages_know_their_neighbours() {
        let w = Window {
            limit: 2,
            forward: true,
            from: None,
        };
        let p = Page::from_fetched(vec![1, 2, 3], &w);
        assert_eq!(
            (p.items, p.has_next, p.has_previous),
            (vec![1, 2], true, false)
        );
        let w = Window {
            limit: 2,
            forward: false,
            from: Some(Position {
                value: String::new(),
                id: 9,
            }),
        };
        let p = Page::from_fetched(vec![5, 4, 3], &w);
        assert_eq!(
            (p.items, p.has_next, p.has_previous),
            (vec![4, 5], true, true)
        );
    }
}
