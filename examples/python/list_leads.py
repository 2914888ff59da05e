"""leadgraph from Python with httpx: the hottest leads over GraphQL, page by page, and a lead
created over REST with its validation errors shown when the input is bad.

    pip install -r examples/python/requirements.txt
    LEADGRAPH_URL=http://127.0.0.1:8000 LEADGRAPH_API_KEY=lg_live_sk_... python examples/python/list_leads.py
"""

import os
import sys

import httpx

LEADS = """
query HotLeads($after: String) {
  leads(first: 10, after: $after, orderBy: { field: SCORE, direction: DESC }) {
    totalCount
    edges { node { email score status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def graphql(client: httpx.Client, query: str, **variables):
    """Runs one operation; raises with the error codes when the server reports errors."""
    body = client.post("/graphql", json={"query": query, "variables": variables}).json()
    if body.get("errors"):
        codes = ", ".join(e.get("extensions", {}).get("code", "?") for e in body["errors"])
        raise RuntimeError(f"GraphQL errors: {codes}")
    return body["data"]


def main() -> int:
    url = os.environ.get("LEADGRAPH_URL", "http://127.0.0.1:8000")
    key = os.environ["LEADGRAPH_API_KEY"]
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as client:
        seen, after, pages = 0, None, 0
        while pages < 3:
            page = graphql(client, LEADS, after=after)["leads"]
            pages += 1
            for edge in page["edges"]:
                seen += 1
                lead = edge["node"]
                print(f"{lead['score']:>3}  {lead['status']:<11} {lead['email']}")
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        print(f"listed {seen} of {page['totalCount']} leads in {pages} pages")

        # REST refuses bad input with every failing field at once, and writes nothing.
        bad = client.post("/v1/leads", json={"email": "not-an-email", "firstName": ""})
        fields = sorted(e["field"] for e in bad.json()["errors"])
        print(f"refused with {bad.status_code} {bad.json()['error']}: {', '.join(fields)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
