//! The GraphiQL page. Its scripts come from a CDN at pinned versions or, when
//! `--graphiql-assets` names a directory (see `clients/graphiql/`), from this server, so the
//! playground also works where browsers cannot reach the internet.

use std::path::Path;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Where each file is served, where it lies under the assets directory, its CDN address, its
/// media type and its subresource-integrity hash (SHA-384 of the npm package's file, which is
/// what the CDN serves). The versions match `clients/graphiql/package.json`.
const FILES: [(&str, &str, &str, &str, &str); 4] = [
    (
        "react.js",
        "react/umd/react.production.min.js",
        "https://unpkg.com/react@18.3.1/umd/react.production.min.js",
        "text/javascript; charset=utf-8",
        "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
    ),
    (
        "react-dom.js",
        "react-dom/umd/react-dom.production.min.js",
        "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
    ),
    (
        "graphiql.js",
        "graphiql/graphiql.min.js",
        "https://unpkg.com/graphiql@4.1.2/graphiql.min.js",
        "text/javascript; charset=utf-8",
        "sha384-9XdHu7ajgGJziD4J1zNBKQ842Q/+zZfDv+ib1eMhZWBH6hPAs806x+Jbcf0yNO6B",
    ),
    (
        "graphiql.css",
        "graphiql/graphiql.min.css",
        "https://unpkg.com/graphiql@4.1.2/graphiql.min.css",
        "text/css; charset=utf-8",
        "sha384-1el1QShFBnnXTx9x/Cprg82hZWKt0ry29OAYIXt05swbi0KcZDFoj0CWguMpopJr",
    ),
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
pub fn content_security_policy(local: bool) -> String {
    use base64::Engine;
    use sha2::Digest;
    let inline = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(INLINE_SCRIPT.as_bytes()));
    let origin = if local { "'self'" } else { "https://unpkg.com" };
    // GraphiQL's editor sets element styles, which needs 'unsafe-inline' for styles only.
    format!(
        "default-src 'none'; script-src {origin} 'sha256-{inline}'; \
         style-src {origin} 'unsafe-inline'; font-src {origin} data:; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The page with its content-security policy.
pub fn response(local: bool) -> Response {
    let mut resp = axum::response::Html(page(local)).into_response();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(local)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

/// GraphiQL's files, read once at start.
pub struct Assets(Vec<Bytes>);

impl Assets {
    /// Reads the four files from `dir` (a `node_modules` directory holding `react`,
    /// `react-dom` and `graphiql`); a missing file is an error at start, not a broken page.
    pub fn load(dir: &Path) -> Result<Self, String> {
        FILES
            .iter()
            .map(|(_, rel, ..)| {
                let path = dir.join(rel);
                std::fs::read(&path)
                    .map(Bytes::from)
                    .map_err(|e| format!("GraphiQL asset {}: {e}", path.display()))
            })
            .collect::<Result<_, _>>()
            .map(Assets)
    }
}

/// The page, pointing at local files when they are served and at the CDN otherwise.
pub fn page(local: bool) -> String {
    let url = |i: usize| {
        if local {
            format!("/graphiql/{}", FILES[i].0)
        } else {
            FILES[i].2.to_owned()
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
        css_sri = FILES[3].4,
        react_sri = FILES[0].4,
        react_dom_sri = FILES[1].4,
        graphiql_sri = FILES[2].4,
    )
}

impl Assets {
    /// File `name` with its media type, when it is one of GraphiQL's.
    pub fn get(&self, name: &str) -> Option<(&'static str, Bytes)> {
        let i = FILES.iter().position(|(file, ..)| *file == name)?;
        Some((FILES[i].3, self.0.get(i)?.clone()))
    }
}
