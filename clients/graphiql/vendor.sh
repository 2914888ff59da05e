#!/usr/bin/env bash
# Refreshes the GraphiQL files that leadgraph embeds (assets/graphiql/) from the npm packages
# pinned in package.json, with their licences. After a version change, update the CDN
# addresses and the SHA-384 hashes in src/graphql/graphiql.rs (this script prints them);
# `cargo test` checks the hashes against the files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../../assets/graphiql"
npm ci --prefix "$here" --no-audit --no-fund
m="$here/node_modules"
mkdir -p "$out"
cp "$m/react/umd/react.production.min.js" "$out/react.production.min.js"
cp "$m/react-dom/umd/react-dom.production.min.js" "$out/react-dom.production.min.js"
cp "$m/graphiql/graphiql.min.js" "$out/graphiql.min.js"
cp "$m/graphiql/graphiql.min.css" "$out/graphiql.min.css"
for p in react react-dom graphiql graphql; do
  cp "$m/$p/LICENSE" "$out/LICENSE.$p"
done
{
  echo "# GraphiQL, vendored"
  echo
  echo "The playground's files, embedded in the leadgraph binary so GraphiQL works without"
  echo "internet access. Made by \`clients/graphiql/vendor.sh\` from these npm packages"
  echo "(MIT-licensed; their licences are the \`LICENSE.*\` files here):"
  echo
  for p in react react-dom graphiql graphql; do
    echo "- $p $(node -p "require('$m/$p/package.json').version")"
  done
  echo
  echo "\`graphiql.min.js\` bundles \`graphql\`. Do not edit these files by hand."
} > "$out/README.md"
for f in react.production.min.js react-dom.production.min.js graphiql.min.js graphiql.min.css; do
  echo "$f sha384-$(openssl dgst -sha384 -binary "$out/$f" | openssl base64 -A)"
done
