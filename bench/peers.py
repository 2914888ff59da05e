"""The nested lead list on leadgraph and on PostGraphile 4 and 5, one PostgreSQL database.

Run by bench/peers.sh, which installs the tools, builds leadgraph and seeds the database. Each
server reads the same 50 leads with source, pipeline, stage, assigned user and tags (checked
equal to leadgraph's answer before any load), then every round drives each server in turn with
oha for a fixed time, in an order that alternates between rounds. Reported per server: the
median over rounds of requests/s, p50 and p99, the server's CPU time per request (every process
of the server) and PostgreSQL's (every postgres process), and the server's peak RSS.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

OHA = os.environ["OHA"]
BIN = os.environ["BIN"]
NODE = os.environ["NODE"]
URL = os.environ["DATABASE_URL"]
KEY = os.environ["KEY"]
TENANT = int(os.environ["TENANT"])
ROUNDS = int(os.environ.get("PEERS_ROUNDS", "4"))
SECS = int(os.environ.get("PEERS_SECONDS", "10"))
CONC = int(os.environ.get("PEERS_CONCURRENCY", "32"))
WORK = os.environ["WORK"]
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")
TICK = os.sysconf("SC_CLK_TCK")

OURS = ("{ leads(first: 50) { edges { node { id email firstName lastName status score tags "
        "source { name } pipeline { name } stage { name } assignedTo { name email } } } } }")
# PostGraphile's generated names for the same page: the tenant's live leads, newest first. The
# integer key is `id` in version 4 and `rowId` in version 5 (whose `id` is the global node ID).
THEIRS = ("{ allLeads(first: 50, orderBy: [CREATED_AT_DESC, %(key)s_DESC], condition: {tenantId: \"%(tenant)d\", "
          "environment: \"live\"}) { nodes { %(id)s email firstName lastName status score "
          "sourceBySourceId { name } pipelineByPipelineId { name } stageByStageId { name } "
          "userByAssignedTo { name email } leadTagsByLeadId { nodes { tag } } } } }")
THEIRS_5 = THEIRS % {"key": "ROW_ID", "id": "rowId", "tenant": TENANT}
THEIRS_4 = THEIRS % {"key": "ID", "id": "id", "tenant": TENANT}


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    """One server under test: how to start it and what to ask it."""

    def __init__(self, name, argv, env, path, body, headers):
        self.name, self.argv, self.env = name, argv, env
        self.port = free_port()
        self.env = dict(os.environ, PORT=str(self.port), DATABASE_URL=URL, **env)
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.url = "http://127.0.0.1:%d%s" % (self.port, path)
        self.body, self.headers = body, headers
        self.proc = None
        self.samples = []

    def start(self):
        log = open(os.path.join(WORK, self.name.replace(" ", "_") + ".log"), "w")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                     cwd=PEERS, start_new_session=True)
        last = None
        for _ in range(600):
            try:
                return self.fetch()
            except OSError as e:  # not listening yet
                last = e
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        log.close()
        raise SystemExit("%s did not answer (%s):\n%s" % (self.name, last, open(log.name).read()[-3000:]))

    def fetch(self):
        data = self.body.encode() if self.body else None
        req = urllib.request.Request(self.url, data=data, headers=self.headers,
                                     method="POST" if data else "GET")
        with urllib.request.urlopen(req, timeout=5) as r:
            doc = json.load(r)
        if doc.get("errors"):
            raise RuntimeError("%s answered %s" % (self.name, doc["errors"]))
        return doc

    def pids(self):
        """The server's process and its descendants."""
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                with open("/proc/%d/task/%d/children" % (p, p)) as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total


def postgres_ticks():
    """CPU ticks PostgreSQL has used: every live postgres process, plus what the postmaster has
    reaped of its exited children (backends of a pool that closed connections meanwhile)."""
    total = 0
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() != "postgres":
                        continue
                with open("/proc/%s/stat" % d) as f:
                    stats[int(d)] = f.read().rsplit(")", 1)[1].split()
            except OSError:
                pass
    for pid, fields in stats.items():
        total += int(fields[11]) + int(fields[12])
        if int(fields[1]) not in stats:  # the postmaster
            total += int(fields[13]) + int(fields[14])
    return total


def hwm_mib(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmHWM"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def normalized(doc):
    """The page as plain rows, whichever server answered."""
    d = doc["data"]
    if "leads" in d:
        rows = []
        for e in d["leads"]["edges"]:
            n = e["node"]
            rows.append((n["email"], n["firstName"], n["lastName"], n["status"].lower(), n["score"],
                         (n["source"] or {}).get("name"), (n["pipeline"] or {}).get("name"),
                         (n["stage"] or {}).get("name"), n["assignedTo"] and (n["assignedTo"]["name"], n["assignedTo"]["email"]),
                         tuple(sorted(n["tags"]))))
        return rows
    rows = []
    for n in d["allLeads"]["nodes"]:
        u = n["userByAssignedTo"]
        rows.append((n["email"], n["firstName"], n["lastName"], n["status"].lower(), n["score"],
                     (n["sourceBySourceId"] or {}).get("name"), (n["pipelineByPipelineId"] or {}).get("name"),
                     (n["stageByStageId"] or {}).get("name"), u and (u["name"], u["email"]),
                     tuple(sorted(t["tag"] for t in n["leadTagsByLeadId"]["nodes"]))))
    return rows


def load(s):
    """One round on server s: oha for SECS seconds, with the CPU both sides spent."""
    args = [OHA, "--no-tui", "--output-format", "json", "-z", "%ds" % SECS, "-c", str(CONC)]
    for k, v in s.headers.items():
        args += ["-H", "%s: %s" % (k, v)]
    if s.body:
        args += ["-m", "POST", "-d", s.body]
    pg0, me0 = postgres_ticks(), cpu_ticks(s.pids())
    out = subprocess.run(args + [s.url], capture_output=True, check=True, text=True).stdout
    pg1, me1 = postgres_ticks(), cpu_ticks(s.pids())
    d = json.loads(out)
    codes = d.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    bad = sum(v for k, v in codes.items() if not k.startswith("2"))
    ms = lambda ticks: 1000.0 * ticks / TICK / max(ok, 1)
    s.samples.append({
        "rps": d["summary"]["requestsPerSec"], "p50": d["latencyPercentiles"]["p50"] * 1000,
        "p99": d["latencyPercentiles"]["p99"] * 1000, "cpu": ms(me1 - me0), "pg": ms(pg1 - pg0),
        "bad": bad,
    })


def main():
    graphql = {"Content-Type": "application/json"}
    ours = json.dumps({"query": OURS})
    v5, v4 = json.dumps({"query": THEIRS_5}), json.dumps({"query": THEIRS_4})
    lg = ["serve", "--database-url", URL, "--bind", "127.0.0.1:{port}", "--no-bootstrap", "--log",
          "warn", "--rate-limit-per-ip", "0", "--tenant-rate-limits=false",
          "--max-concurrent-requests", "100000"]
    production = {"NODE_ENV": "production"}
    servers = [
        Server("leadgraph", [BIN] + lg, {}, "/graphql", ours, dict(graphql, **{"X-API-Key": KEY})),
        Server("leadgraph REST", [BIN] + lg, {}, "/v1/leads?limit=50", None, {"X-API-Key": KEY}),
        Server("PostGraphile 5, two workers", [NODE, "postgraphile5.mjs"], dict(production, WORKERS="2"),
               "/graphql", v5, graphql),
        Server("PostGraphile 5, one process", [NODE, "postgraphile5.mjs"], dict(production, WORKERS="1"),
               "/graphql", v5, graphql),
        Server("PostGraphile 4, two workers", [NODE, "v4/server.js"], dict(production, WORKERS="2"),
               "/graphql", v4, graphql),
    ]
    want = None
    try:
        for s in servers:
            print("[peers] starting %s" % s.name, file=sys.stderr)
            doc = s.start()
            if s.body is None:
                continue
            got = normalized(doc)
            if want is None:
                want = got
            if len(got) != 50 or got != want:
                raise SystemExit("%s's page differs from leadgraph's:\n%s\n%s" % (s.name, got[:3], want[:3]))
            # Servers idle between their turns; only one is driven at a time.
        print("[peers] every server returns the same 50 leads", file=sys.stderr)
        for s in servers:  # warm-up: JIT, pools, caches
            saved = SECS
            globals()["SECS"] = 3
            load(s)
            s.samples.clear()
            globals()["SECS"] = saved
        for r in range(ROUNDS):
            order = servers if r % 2 == 0 else servers[::-1]
            for s in order:
                print("[peers] round %d: %s" % (r + 1, s.name), file=sys.stderr)
                load(s)
        rows = []
        for s in servers:
            med = lambda k: statistics.median(x[k] for x in s.samples)
            rows.append({"server": s.name, "rps": med("rps"), "p50": med("p50"), "p99": med("p99"),
                         "cpu": med("cpu"), "pg": med("pg"), "rss": hwm_mib(s.pids()),
                         "bad": sum(x["bad"] for x in s.samples),
                         "range": (min(x["rps"] for x in s.samples), max(x["rps"] for x in s.samples))})
        print(json.dumps(rows))
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
