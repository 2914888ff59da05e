//! Bracket nesting of untrusted text, measured without recursion before any parser sees it.
//!
//! async-graphql's parser and serde_json's value types recurse once per level of nesting: a
//! few kilobytes of `[[[[…` overflow a worker's stack and abort the process. Counting brackets
//! outside strings and comments is linear, allocates nothing, and bounds every later walk.

/// The most brackets (`{`, `[`, `(`) a document or a JSON request body may nest. Far above any
/// real document (the depth limit allows 10 selection levels, each with its arguments), far
/// below what the parsers' recursion can survive.
pub const MAX_NESTING: usize = 64;

/// The deepest bracket nesting of a GraphQL document, counting `{`, `[` and `(` outside
/// strings, block strings and comments; stops counting past `limit` (returns `limit + 1`).
pub fn graphql(text: &str, limit: usize) -> usize {
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut deepest) = (0, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                // A block string ends at the first `"""` not escaped as `\"""`.
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => i = skip_string(bytes, i + 1),
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    if deepest > limit {
                        return deepest;
                    }
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// The deepest nesting of `{` and `[` in JSON text outside strings; stops past `limit`.
pub fn json(bytes: &[u8], limit: usize) -> usize {
    let (mut i, mut depth, mut deepest) = (0, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i + 1),
            b'{' | b'[' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    if deepest > limit {
                        return deepest;
                    }
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// The index of the quote that closes a string whose body starts at `i` (or the end); a
/// string never spans a line in GraphQL, but counting it to the quote is the safe reading.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_brackets_outside_strings_and_comments() {
        assert_eq!(graphql("{ me { id } }", 64), 2);
        assert_eq!(graphql("{ a(x: [[1]]) { b } }", 64), 4);
        assert_eq!(graphql(r#"{ a(x: "[[[[\"[[") }"#, 64), 2);
        assert_eq!(graphql("{ a(x: \"\"\"[[[ \\\"\"\" [[\"\"\") }", 64), 2);
        assert_eq!(graphql("# [[[[\n{ a }", 64), 1);
        assert_eq!(graphql(&"[".repeat(10_000), 64), 65, "stops past the limit");
        assert_eq!(json(br#"{"a": [[{"b": "[[[["}]]]}"#, 64), 4);
        assert_eq!(json(br#"{"a": "\"[[["}"#, 64), 1);
        assert_eq!(json("[".repeat(200).as_bytes(), 64), 65);
    }
}
