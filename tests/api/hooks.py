"""Schemathesis hooks: what the OpenAPI document cannot say about valid requests.

- An Idempotency-Key names one logical request: reusing one for another request is refused
  (422 IDEMPOTENCY_KEY_REUSED) by design, so each generated request gets a fresh key.
- Cursors (`cursor`, `after`) are values the server issued; a client cannot make one up.
  Generated ones are dropped: paging is followed through the responses' nextCursor.
- IDs in bodies and the import's `sourceId` refer to rows that must exist (a schema cannot
  say which): a well-formed generated ID of a source, pipeline, stage or user is swapped for
  one of the test tenant's (tests/api/schemathesis.sh creates them, passes them in LG_*_ID).
- The leads a merge takes must exist too: a merge's well-formed duplicateIds become fixture
  leads (LG_LEAD_IDS), merged as a dry run so that they stay for the next case (merges that
  write are tested by tests/bulk.rs).
- Those rows must stay: a generated change or delete of one of them is skipped (other
  sources and pipelines, created during the run, are changed and deleted instead).
- A key's `expiresAt` must lie in the future, which depends on the clock: a well-formed past
  one is moved a year ahead.
- An import file starts with a header row of known columns (docs/rest.md; JSON Schema cannot
  say it of a CSV body): a generated file gets one, and its generated lines become rows,
  which the import may refuse one by one.
"""
import datetime
import os
import re
import uuid

import schemathesis

ID = re.compile(r"^[0-9A-Za-z]{16,17}$")
REAL = {
    "sourceId": os.environ.get("LG_SOURCE_ID"),
    "pipelineId": os.environ.get("LG_PIPELINE_ID"),
    "stageId": os.environ.get("LG_STAGE_ID"),
    "assignedTo": os.environ.get("LG_USER_ID"),
}
LEADS = [i for i in os.environ.get("LG_LEAD_IDS", "").split(",") if i]


KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


def _fresh_key(headers):
    for name in list(headers or {}):
        value = headers[name]
        # Only a well-formed key: a malformed one is what a negative case tests.
        if name.lower() == "idempotency-key" and isinstance(value, str) and KEY.match(value):
            headers[name] = uuid.uuid4().hex
    return headers


def _real_ids(value):
    if isinstance(value, dict):
        for key, real in REAL.items():
            sent = value.get(key)
            if real and isinstance(sent, str) and ID.match(sent):
                value[key] = real
        # A stage belongs to a pipeline: a lead given one is given the other too.
        if REAL["stageId"] and value.get("stageId") == REAL["stageId"]:
            sent = value.get("pipelineId")
            if sent is None or (isinstance(sent, str) and ID.match(sent)):
                value["pipelineId"] = REAL["pipelineId"]
        for item in value.values():
            if isinstance(item, (dict, list)):
                _real_ids(item)
    elif isinstance(value, list):
        for item in value:
            _real_ids(item)
    return value


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """After the stateful phase has filled in linked values: a lead's stage and pipeline agree."""
    body = case.body
    if isinstance(body, dict) and case.operation.path.endswith("/merge"):
        ids = body.get("duplicateIds")
        primary = (case.path_parameters or {}).get("id")
        if isinstance(ids, list) and all(isinstance(i, str) and ID.match(i) for i in ids):
            spare = [lead for lead in LEADS if lead != primary]
            if len(spare) >= len(ids):
                body["duplicateIds"] = spare[: len(ids)]
                body["dryRun"] = True
    if isinstance(body, dict):
        items = body.get("leads") if isinstance(body.get("leads"), list) else [body]
        for item in items:
            if isinstance(item, dict) and REAL["stageId"]:
                stage = item.get("stageId")
                if isinstance(stage, str) and ID.match(stage):
                    item["stageId"] = REAL["stageId"]
                    item["pipelineId"] = REAL["pipelineId"]


@schemathesis.hook
def filter_case(ctx, case):
    if case.method.upper() == "GET":
        return True
    fixtures = {v for v in REAL.values() if v} | set(LEADS)
    return not any(v in fixtures for v in (case.path_parameters or {}).values())


@schemathesis.hook
def map_case(ctx, case):
    """Every phase (coverage included) builds its requests through this hook."""
    _fresh_key(case.headers)
    if isinstance(case.query, dict):
        for name in ("cursor", "after"):
            case.query.pop(name, None)
    if isinstance(case.body, (dict, list)):
        _real_ids(case.body)
    if isinstance(case.query, dict):
        _real_ids(case.query)
    if isinstance(case.body, dict):
        _future(case.body)
    path = case.operation.path
    if path.endswith("/imports") and isinstance(case.body, (str, bytes)):
        header = "email,firstName,lastName\n"
        case.body = (header.encode() + case.body) if isinstance(case.body, bytes) else header + case.body
    return case


def _future(body):
    at = body.get("expiresAt")
    if not isinstance(at, str):
        return
    try:
        parsed = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    if parsed.tzinfo is not None and parsed <= now:
        body["expiresAt"] = (now + datetime.timedelta(days=365)).isoformat()
