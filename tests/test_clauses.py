"""The contract as clauses: the registry's rules, the guard over the suites, --level and the verdict per level."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_plugin import FAKE_BACKENDS_CONFTEST, run

from harness.contract.errors import HarnessError
from harness.plugin.clauses import LEVELS, Clause, audit, level_of, load_registry, parse_levels

ROOT = Path(__file__).resolve().parent.parent

REGISTRY = """
clauses:
  - id: demo.documented
    level: must
    sentence: The documented thing.
    source: the docs
    quote: it does the documented thing
  - id: demo.wire
    level: should
    sentence: The wire thing.
    source: the wire reference
  - id: demo.ours
    level: strict
    sentence: Our thing.
    reason: we chose it
"""

SUITE = """
import pytest

@pytest.mark.clause("demo.documented")
def test_documented(backend_name):
    pass

@pytest.mark.clause("demo.documented", "demo.wire")
def test_wire_fails(backend_name):
    assert False, "the wire is wrong"

@pytest.mark.clause("demo.ours")
def test_ours_skips(backend_name):
    pytest.skip("not here")

@pytest.mark.clause("demo.ours")
@pytest.mark.skip(reason="skipped at setup, as a missing capability is")
def test_ours_skips_at_setup(backend_name):
    pass

def test_no_backend():
    pass
"""

USE_REGISTRY = """
from pathlib import Path
from harness.plugin.clauses import use_registry

def pytest_configure(config):
    use_registry(config, Path(__file__).with_name("clauses.yaml"))
"""


@pytest.fixture
def graded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A throwaway suite with a registry of three clauses (one per level) and three checks."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    pytester.makeconftest(FAKE_BACKENDS_CONFTEST + USE_REGISTRY)
    pytester.makefile(".yaml", clauses=REGISTRY)
    pytester.makepyfile(test_demo=SUITE)
    return pytester


def _registry(tmp_path: Path, text: str) -> dict[str, Clause]:
    path = tmp_path / "clauses.yaml"
    path.write_text(text, encoding="utf-8")
    return load_registry(path)


def test_the_suites_registry_has_clauses_of_every_level():
    registry = load_registry(ROOT / "suites" / "clauses.yaml")
    counts = {level: sum(1 for c in registry.values() if c.level == level) for level in LEVELS}
    assert all(counts[level] > 0 for level in LEVELS), counts
    assert all(c.quote for c in registry.values() if c.level == "must")
    assert all(c.reason for c in registry.values() if c.level == "strict")


@pytest.mark.parametrize("entry, says", [
    ("{id: a.b, level: may, sentence: s, source: x}", "'may' is not a level. Valid levels are: must, should, strict"),
    ("{id: a.b, level: must, sentence: s, source: x}", "a must clause quotes the documented contract"),
    ("{id: a.b, level: strict, sentence: s}", "a strict clause gives its reason"),
    ("{id: A B, level: should, sentence: s, source: x}", "'A B' is not a clause id"),
    ("{id: a.b, level: should, source: x}", "'sentence' must be a non-empty string"),
    ("{id: a.b, level: should, sentence: s, source: x, note: y}", "unknown keys ['note']"),
])
def test_a_bad_registry_entry_is_refused_naming_what_is_wrong(tmp_path, entry, says):
    with pytest.raises(HarnessError, match="clauses.yaml") as info:
        _registry(tmp_path, f"clauses:\n  - {entry}\n")
    assert says in str(info.value)


def test_a_clause_listed_twice_is_refused(tmp_path):
    entry = "{id: a.b, level: should, sentence: s, source: x}"
    with pytest.raises(HarnessError, match="'a.b' is listed twice"):
        _registry(tmp_path, f"clauses:\n  - {entry}\n  - {entry}\n")


def test_levels_parse_from_a_comma_list_and_a_bad_one_lists_the_valid():
    assert parse_levels("must") == {"must"}
    assert parse_levels("Must, strict") == {"must", "strict"}
    assert parse_levels(None) == set(LEVELS)
    with pytest.raises(HarnessError, match=r"'sometimes' is not a level. Valid levels are: must, should, strict"):
        parse_levels("must,sometimes")


def test_a_check_is_graded_at_its_strictest_clause(tmp_path):
    registry = _registry(tmp_path, REGISTRY)
    assert level_of(["demo.documented"], registry) == "must"
    assert level_of(["demo.documented", "demo.wire"], registry) == "should"
    assert level_of(["demo.ours", "demo.documented"], registry) == "strict"


def test_audit_names_a_check_without_a_clause_an_unknown_id_and_a_clause_without_a_check(tmp_path):
    registry = _registry(tmp_path, REGISTRY)
    checks = {"test_a.py::test_none": [], "test_a.py::test_typo": ["demo.documneted"],
              "test_a.py::test_ok": ["demo.documented", "demo.wire"]}
    assert audit(checks, registry) == [
        "test_a.py::test_none names no clause: add @pytest.mark.clause(<id>, ...) with an id of the registry",
        "test_a.py::test_typo names 'demo.documneted', which is not in the clause registry",
        "demo.ours: no check names it and no 'unchecked' reason says why",
    ]
    unchecked = _registry(tmp_path, REGISTRY + "    unchecked: needs a real cloud account\n")
    assert audit(checks, unchecked)[2:] == []  # a written reason is enough


def test_every_suite_check_names_known_clauses_and_docs_contract_is_current():
    """The guard over the real suites: tools/contract.py --check audits them and compares docs/contract.md."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "contract.py"), "--check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_run_ends_with_a_verdict_per_level(graded):
    result = run(graded, "--backend=fake-a")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "*model-conformance verdict per level*",
        "MUST   1 passed, 0 failed, 0 skipped",
        "SHOULD 0 passed, 1 failed, 0 skipped; failing clauses: demo.documented, demo.wire",
        "STRICT 0 passed, 0 failed, 2 skipped",
    ])


def test_level_runs_only_the_checks_of_that_level(graded):
    result = run(graded, "--backend=fake-a,fake-b", "--level=must")
    result.assert_outcomes(passed=3, deselected=6)  # test_documented on two backends, and test_no_backend
    result.stdout.fnmatch_lines(["MUST   2 passed, 0 failed, 0 skipped"])
    result.stdout.no_fnmatch_line("SHOULD*")
    result = run(graded, "--backend=fake-a", "--level=should,strict")
    result.assert_outcomes(passed=1, failed=1, skipped=2, deselected=1)


def test_a_bad_level_is_a_usage_error_listing_the_levels(graded):
    result = run(graded, "--backend=fake-a", "--level=mustt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'mustt' is not a level. Valid levels are: must, should, strict*"])


@pytest.mark.parametrize("marker, says", [("", "test_bare.py::test_bare[[]fake-a[]]: names no clause"),
                                          ('@pytest.mark.clause("demo.nope")', "unknown clause [[]'demo.nope'[]]")],
                         ids=["no_clause", "unknown_clause"])
def test_a_check_without_a_known_clause_stops_the_run(graded, marker, says):
    graded.makepyfile(test_bare=f"import pytest\n\n{marker}\ndef test_bare(backend_name):\n    pass\n")
    result = run(graded, "--backend=fake-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{says}*"])
    result.stdout.no_fnmatch_line("*verdict per level*")  # nothing ran: no verdict


def test_result_rows_carry_the_clauses_and_the_level(graded, tmp_path):
    results = tmp_path / "results.jsonl"
    run(graded, "--backend=fake-a", f"--results={results}")
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["clause"], r["clauses"], r["level"], r["outcome"]) for r in rows) == [
        ("test_documented", ["demo.documented"], "must", "passed"),
        ("test_ours_skips", ["demo.ours"], "strict", "skipped"),
        ("test_ours_skips_at_setup", ["demo.ours"], "strict", "skipped"),
        ("test_wire_fails", ["demo.documented", "demo.wire"], "should", "failed"),
    ]
