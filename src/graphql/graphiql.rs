//! The GraphiQL page. Its files (pinned versions of react, react-dom and graphiql, vendored
//! in `assets/graphiql/` with their licences) are embedded in the binary and served by this
//! server, so the playground works where browsers cannot reach the internet; `--graphiql-cdn`
//! loads them from unpkg.com instead.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// One of GraphiQL's files.
struct File {
    /// Its name under `/graphiql/`.
    name: &'static str,
    /// Its content.
    bytes: &'static [u8],
    /// The same file on the CDN.
    cdn: &'static str,
    /// Its media type.
    media_type: &'static str,
    /// Its subresource-integrity hash (SHA-384), the same for both origins.
    integrity: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// The files, in the order the page loads them; `clients/graphiql/vendor.sh` refreshes them
/// and prints their hashes.
const FILES: [File; 4] = [
    File {
        name: "react.js",
        bytes: include_bytes!("../../assets/graphiql/react.production.min.js"),
        cdn: "https://unpkg.com/react@18.3.1/umd/react.production.min.js",
        media_type: JS,
        integrity: "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
    },
    File {
        name: "react-dom.js",
        bytes: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
        cdn: "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
        media_type: JS,
        integrity: "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
    },
    File {
        name: "graphiql.js",
        bytes: include_bytes!("../../assets/graphiql/graphiql.min.js"),
        cdn: "https://unpkg.com/graphiql@4.1.2/graphiql.min.js",
        media_type: JS,
        integrity: "sha384-9XdHu7ajgGJziD4J1zNBKQ842Q/+zZfDv+ib1eMhZWBH6hPAs806x+Jbcf0yNO6B",
    },
    File {
        name: "graphiql.css",
        bytes: include_bytes!("../../assets/graphiql/graphiql.min.css"),
        cdn: "https://unpkg.com/graphiql@4.1.2/graphiql.min.css",
        media_type: "text/css; charset=utf-8",
        integrity: "sha384-1el1QShFBnnXTx9x/Cprg82hZWKt0ry29OAYIXt05swbi0KcZDFoj0CWguMpopJr",
    },
];

/// The page's own script, allowed by its hash in the content-security policy.
const INLINE_SCRIPT: &str = "
      // API keys go in the Headers pane: {\"X-API-Key\": \"lg_live_sk_…\"}
      // Subscriptions go over WebSocket; GraphiQL sends the Headers pane as connection_init's payload.
      const url = new URL('/graphql', location.origin);
      const ws = new URL(url); ws.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      const fetcher = GraphiQL.createFetcher({ url: url.toString(), subscriptionUrl: ws.toString() });
      ReactDOM.createRoot(document.getElementById('graphiql')).render(
        React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: 'headers' }),
      );
    ";

/// The page's content-security policy: scripts and styles only from where the page loads
/// them (this server or the CDN), requests only to this server, no framing.
pub fn content_security_policy(cdn: bool) -> String {
    use base64::Engine;
    use sha2::Digest;
    let inline = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(INLINE_SCRIPT.as_bytes()));
    let origin = if cdn { "https://unpkg.com" } else { "'self'" };
    // GraphiQL's editor sets element styles, which needs 'unsafe-inline' for styles only.
    format!(
        "default-src 'none'; script-src {origin} 'sha256-{inline}'; \
         style-src {origin} 'unsafe-inline'; font-src {origin} data:; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The page with its content-security policy.
pub fn response(cdn: bool) -> Response {
    let mut resp = axum::response::Html(page(cdn)).into_response();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(cdn)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

/// The page, pointing at this server's files or at the CDN's.
pub fn page(cdn: bool) -> String {
    let url = |i: usize| {
        if cdn {
            FILES[i].cdn.to_owned()
        } else {
            format!("/graphiql/{}", FILES[i].name)
        }
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="robots" content="noindex">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>leadgraph GraphiQL</title>
    <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{css}" integrity="{css_sri}" crossorigin="anonymous">
    <script src="{react}" integrity="{react_sri}" crossorigin="anonymous"></script>
    <script src="{react_dom}" integrity="{react_dom_sri}" crossorigin="anonymous"></script>
    <script src="{graphiql}" integrity="{graphiql_sri}" crossorigin="anonymous"></script>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script>{INLINE_SCRIPT}</script>
  </body>
</html>
"#,
        css = url(3),
        react = url(0),
        react_dom = url(1),
        graphiql = url(2),
        css_sri = FILES[3].integrity,
        react_sri = FILES[0].integrity,
        react_dom_sri = FILES[1].integrity,
        graphiql_sri = FILES[2].integrity,
    )
}

/// File `name` with its media type, when it is one of GraphiQL's.
pub fn file(name: &str) -> Option<(&'static str, Bytes)> {
    let f = FILES.iter().find(|f| f.name == name)?;
    Some((f.media_type, Bytes::from_static(f.bytes)))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use sha2::Digest;

    /// The hashes the page declares are those of the embedded files, so browsers accept them
    /// (and the CDN's, which are the same npm files).
    #[test]
    fn integrity_hashes_match_the_embedded_files() {
        for f in &super::FILES {
            let hash =
                base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(f.bytes));
            assert_eq!(f.integrity, format!("sha384-{hash}"), "{}", f.name);
        }
    }
}
