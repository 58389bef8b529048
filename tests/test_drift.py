"""``harness drift compare``: drift is reported, and only an escape or a verdict pass -> fail fails it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from harness.cli import main
from harness.recording.capture import CapturedRequest
from harness.reporting.drift import SNAPSHOT_VERSION, compare, normalise_request

NODE = "suites/test_stop_sequences.py::test_stop[openai]"


def _snapshot(openai: str = "2.54.0", stack: str = "httpx") -> dict[str, Any]:
    request = normalise_request(CapturedRequest(
        "POST", "http://127.0.0.1:8000/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": ["x"]}, stack,
        ("content-type", "user-agent", "x-stainless-package-version")))
    return {
        "snapshot_version": SNAPSHOT_VERSION,
        "versions": {"openai": openai, "pytest": "9.0.0"},
        "stacks": {"openai": [stack]},
        "refused": {},
        "tests": {NODE: {"outcome": "passed", "backend": "openai", "suite": "test_stop_sequences",
                         "clauses": ["stop.before-stop-sequence"], "requests": [request]}},
    }


def test_the_volatile_parts_of_a_request_are_left_out():
    a = normalise_request(CapturedRequest("POST", "http://127.0.0.1:8000/v1/x?b=2&a=1", {"k": 1}, "httpx",
                                          ("user-agent",)))
    b = normalise_request(CapturedRequest("POST", "http://127.0.0.1:9999/v1/x?a=1&b=2", {"k": 1}, "httpx2",
                                          ("user-agent",)))
    assert a == b == {"method": "POST", "path": "/v1/x", "query": [("a", "1"), ("b", "2")],
                      "headers": ["user-agent"], "body": {"k": 1}}


def test_new_versions_and_a_new_stack_are_drift_not_failure():
    text, failed = compare(_snapshot(), _snapshot("3.60.0", "httpx2"), "pinned", "newest")
    assert not failed
    assert "| openai | 2.54.0 | 3.60.0 |" in text
    assert "| openai | httpx | httpx2 |" in text
    assert "| openai | test_stop_sequences | 1 | 0 | 0 |" in text
    assert text.rstrip().endswith("Verdict: drift only (no escape, no pass -> fail)")


def test_a_changed_body_and_header_names_are_listed_without_failing():
    new = _snapshot("3.60.0")
    request = new["tests"][NODE]["requests"][0]
    request["body"]["stop"] = ["y"]
    request["body"]["seed"] = 1
    request["headers"] = ["content-type", "user-agent", "x-new"]
    text, failed = compare(_snapshot(), new, "pinned", "newest")
    assert not failed
    assert "| openai | test_stop_sequences | 1 | 1 | 0 |" in text
    assert 'body seed: added 1' in text and 'body stop[0]: "x" -> "y"' in text
    assert "header names added: x-new" in text and "header names removed: x-stainless-package-version" in text


def test_a_verdict_from_pass_to_fail_fails_the_report():
    new = _snapshot("3.60.0")
    new["tests"][NODE]["outcome"] = "failed"
    text, failed = compare(_snapshot(), new, "pinned", "newest")
    assert failed
    assert f"- {NODE} (stop.before-stop-sequence): passed -> failed" in text
    assert "| stop.before-stop-sequence | 1 passed | 1 failed |" in text
    assert "Verdict: FAIL (1 pass -> fail)" in text
    # fail -> pass is drift, not a failure
    _, failed_back = compare(new, _snapshot(), "newest", "pinned")
    assert not failed_back


def test_an_escaped_request_or_a_refused_backend_fails_the_report():
    escaped = _snapshot("3.60.0")
    escaped["tests"][NODE]["escaped"] = "backend openai, cassette c.yaml: a request escaped capture through 'httpcore2'"
    text, failed = compare(_snapshot(), escaped, "pinned", "newest")
    assert failed and "escaped capture through 'httpcore2'" in text
    refused = _snapshot("3.60.0")
    refused["refused"] = {"openai": "backend openai (capture self-check): ...; refusing to run backend openai"}
    text, failed = compare(_snapshot(), refused, "pinned", "newest")
    assert failed and "| openai | httpx | refused |" in text


def test_the_command_exits_1_only_on_failure_and_refuses_a_file_that_is_no_snapshot(tmp_path: Path, capsys):
    base, same, worse = tmp_path / "base.json", tmp_path / "same.json", tmp_path / "worse.json"
    base.write_text(json.dumps(_snapshot()))
    same.write_text(json.dumps(_snapshot("3.60.0")))
    bad = copy.deepcopy(_snapshot())
    bad["tests"][NODE]["outcome"] = "failed"
    worse.write_text(json.dumps(bad))
    assert main(["drift", "compare", str(base), str(same), "--output", str(tmp_path / "d.md")]) == 0
    assert (tmp_path / "d.md").read_text().startswith("# Drift: base -> same")
    assert main(["drift", "compare", str(base), str(worse)]) == 1
    (tmp_path / "junk.json").write_text("[]")
    assert main(["drift", "compare", str(base), str(tmp_path / "junk.json")]) == 2
    assert "junk.json is not a drift snapshot" in capsys.readouterr().err
