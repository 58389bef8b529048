"""Counts that mean what they say: per backend only what reached its wire or engine; a timeout is no kill."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from harness.reporting.report import BACKEND_INDEPENDENT, counted_once_when_independent

ROOT = Path(__file__).resolve().parent.parent
UNUSED_PLUGINS = ("-p", "no:anyio", "-p", "no:cacheprovider")
# a parsing helper no adapter overrides (nothing sent), and a check whose request is judged on the wire
PARSE_ONLY = "test_generated_text_tool_calls_surface_exactly"
ON_THE_WIRE = "test_tool_choice_on_the_wire and required"


def _figures(stdout: str) -> tuple[dict[str, int], int]:
    line = re.search(r"checked cases per backend: (.*); backend-independent \(.*\): (\d+)", stdout)
    assert line is not None, stdout[-3000:]
    per_backend = {} if line.group(1) == "none" else {
        name: int(n) for name, n in (item.rsplit(" ", 1) for item in line.group(1).split(", "))}
    return per_backend, int(line.group(2))


def test_a_check_that_reaches_no_backend_is_counted_once(pytester: pytest.Pytester) -> None:
    results = pytester.path / "results.jsonl"
    result = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS, str(ROOT / "suites" / "test_properties.py"), str(ROOT / "suites" / "test_clauses.py"),
        "--backend=openai,bedrock", "-k", f"{PARSE_ONLY} or ({ON_THE_WIRE})", f"--results={results}")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] >= 6, outcomes
    per_backend, independent = _figures(result.stdout.str())
    # the wire check: once per backend and message form, each on that backend's own request
    assert per_backend == {"bedrock": 2, "openai": 2}
    # the parsing property ran on 2 backends x 2 message forms; its generated examples count once
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    parse_rows = [r for r in rows if r["clause"].startswith(PARSE_ONLY)]
    assert len(parse_rows) == 4 and {r["extra"]["backend_reached"] for r in parse_rows} == {False}
    assert {r["extra"]["backend_reached"] for r in rows if "tool_choice" in r["clause"]} == {True}
    assert 0 < independent <= 100  # one run's examples, not four
    counted = Counter(str(r["backend"]) for r in counted_once_when_independent(rows))
    assert counted == {"openai": 2, "bedrock": 2, BACKEND_INDEPENDENT: 1}


def test_a_failure_that_reached_no_backend_stays_with_its_backend() -> None:
    rows = [{"backend": b, "subject": "adapters", "mode": "replay", "suite": "s", "clause": "c", "outcome": outcome,
             "extra": {"backend_reached": False}} for b, outcome in (("openai", "passed"), ("bedrock", "failed"))]
    assert [(r["backend"], r["outcome"]) for r in counted_once_when_independent(rows)] == [
        (BACKEND_INDEPENDENT, "passed"), ("bedrock", "failed")]


def _mutation_tool():
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_mutant_that_timed_out_is_not_counted_as_killed() -> None:
    tool = _mutation_tool()
    assert tool._status(24) == "timeout" and tool._status(1) == "killed"
    # 8 killed, 1 survived, 1 timed out: 8 of the 9 with a verdict, not 9 of 10
    assert tool._score(Counter({"killed": 8, "survived": 1, "timeout": 1})) == pytest.approx(800 / 9)
    assert tool._score(Counter({"timeout": 3})) == 0.0
    assert "timeout" in tool.UNFINISHED  # judged again by --rerun-survivors
