"""A leadgraph webhook receiver: verifies each delivery with the Standard Webhooks library
and handles each message once, keyed by its webhook-id (deliveries are at least once).

    LEADGRAPH_WEBHOOK_SECRET=whsec_... python webhook_receiver.py [port]

Prints one line per new message: "<type> <resource id>". Answers 2xx only after handling,
so a failure is retried by leadgraph.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["LEADGRAPH_WEBHOOK_SECRET"])
seen: set[str] = set()  # a real receiver keeps this in its database


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            message = webhook.verify(body, headers)
        except WebhookVerificationError:
            self.send_response(400)
            self.end_headers()
            return
        message_id = headers["webhook-id"]
        if message_id not in seen:
            seen.add(message_id)
            event = message["data"]
            print(message["type"], event.get("resourceId") if isinstance(event, dict) else "", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8787
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
