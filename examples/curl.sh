#!/usr/bin/env bash
# leadgraph from the shell: create a lead over REST, tag it, then read it back over GraphQL.
#   LEADGRAPH_URL=http://127.0.0.1:8000 LEADGRAPH_API_KEY=lg_live_sk_… bash examples/curl.sh
# Needs curl and python3 (to read fields out of JSON).
set -euo pipefail
URL="${LEADGRAPH_URL:-http://127.0.0.1:8000}"
KEY="${LEADGRAPH_API_KEY:?set LEADGRAPH_API_KEY to an API key}"

field() { python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if k.isdigit() else v[k]
print(v)' "$1"; }

email="curl.example.$(date +%s%N)@example.com"
lead=$(curl -sS --fail-with-body "$URL/v1/leads" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d "{\"email\": \"$email\", \"firstName\": \"Casey\", \"lastName\": \"Curl\", \"source\": \"api\", \"score\": 70}" |
  field data.id)
echo "created $lead"

curl -sS --fail-with-body "$URL/v1/leads/$lead/tags" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"tags": ["from-curl"]}' >/dev/null

# GraphQL: variables keep the document constant; the key goes in the same header.
curl -sS --fail-with-body "$URL/graphql" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d "{\"query\": \"query One(\$id: ID!) { lead(id: \$id) { email score tags } }\", \"variables\": {\"id\": \"$lead\"}}" |
  python3 -c 'import json, sys
lead = json.load(sys.stdin)["data"]["lead"]
print("read back", lead["email"], "score", lead["score"], "tags", ",".join(lead["tags"]))'
