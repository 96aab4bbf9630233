"""Check Responses API bodies and event streams against the repo's schema of the API
(tests/fixtures/responses_schema/: `responses.schema.json`, written from the reference and
recorded traffic, see NOTES.md there). The checks are those of that folder's `check.py`
(loaded from it, so the command-line tool and the tests agree); here they return the
violations instead of printing them.
"""

import importlib.util
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "responses_schema"

_spec = importlib.util.spec_from_file_location("responses_schema_check", FIXTURES / "check.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


class _Collecting(check.Checker):
    def __init__(self):
        super().__init__(str(FIXTURES / "responses.schema.json"))
        self.found = []

    def report(self, where, path, message):
        self.problems += 1
        self.found.append(f"{where}  {path}  {message}")


_checker = None


def _fresh():
    """One schema load per test session; a clean list of violations per call."""
    global _checker
    if _checker is None:
        _checker = _Collecting()
    _checker.found = []
    _checker.problems = 0
    return _checker


def body_violations(doc, defname=None):
    """Violations of one JSON document (a Response unless `defname` or its shape says
    otherwise: a compaction, an error body, ...)."""
    chk = _fresh()
    name = defname or check.guess_def(doc)
    chk.validate(name, doc, name)
    if isinstance(doc, dict) and name == "Response" and "output_text" in doc:
        chk.report(name, "$.output_text", "output_text is SDK-only and never on the wire")
    return list(chk.found)


def sse_violations(text):
    """Violations of a whole SSE stream: every event against its schema, then the stream's
    order rules (sequence numbers, one terminal event, items added/done in order, ...).

    One rule is relaxed: ringway's `response.failed` lists only the items that were finished
    before the stream broke (the reference does not say what a failed response lists, and no
    recorded failure shows it), so the terminal output need not list every streamed item
    there."""
    chk = _fresh()
    events = []
    for name, data, line in check.parse_sse(text):
        where = f"line {line}"
        if data.strip() == "[DONE]":
            events.append((where, name, None))
            continue
        try:
            events.append((where, name, json.loads(data)))
        except json.JSONDecodeError as e:
            chk.report(where, "$", f"data is not JSON: {e}")
    check.check_stream(chk, events)
    failed = any(isinstance(ev, dict) and ev.get("type") == "response.failed" for _, _, ev in events)
    found = [f for f in chk.found if not (failed and "terminal response.output ids" in f)]
    return found, [ev for _, _, ev in events]
