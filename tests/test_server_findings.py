"""A server's finding (suites/server_findings.yaml): the check fails there as a strict expected failure.

Recorded against the fault-injecting stand-in in the local server's place (as in test_recording.py),
with the real openai SDK and recorder in a throwaway project (pytester).
"""

from __future__ import annotations

import json

import pytest
from test_recording import STAND_IN_CONFTEST, UNUSED_PLUGINS, cassette, completion, record

from harness.contract.errors import HarnessError
from harness.plugin.server_findings import load_findings
from harness.recording.cassettes import check_cassette
from harness.recording.fault_injector import FaultInjector, Reply

SUITE = """
def test_says_yes(model_factory):
    assert model_factory(retry=False)([{"role": "user", "content": "Hi"}]).content == "yes"
"""

FINDING = """
transformers-serve:
  - check: test_rec.py::test_says_yes
    reason: the stand-in says no
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A throwaway project whose suite reads its server findings from server_findings.yaml."""
    pytester.makeconftest(STAND_IN_CONFTEST + (
        "\nfrom pathlib import Path\nfrom harness.plugin.server_findings import use_server_findings\n\n\n"
        "def pytest_configure(config):\n"
        "    use_server_findings(config, Path(__file__).with_name('server_findings.yaml'))\n"))
    pytester.makepyfile(test_rec=SUITE)
    (pytester.path / "server_findings.yaml").write_text(FINDING)
    return pytester


def _replay(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess(*UNUSED_PLUGINS, "--backend=openai", "-p", "no:cacheprovider",
                                        f"--cassette-dir={project.path / 'cassettes'}", "-k", "dicts", *args)


def test_a_listed_check_failing_on_its_server_is_recorded_and_replays_as_that_expected_failure(project,
                                                                                               monkeypatch):
    path = cassette(project, "test_says_yes")
    with FaultInjector([completion("no")]) as server:
        result = record(project, server.url, monkeypatch)
    result.assert_outcomes(xfailed=1)
    check_cassette(path)  # kept, stamped: it holds the answer the check fails on
    assert '"content":"no"' in path.read_text(encoding="utf-8").replace(" ", "")
    results = project.path / "rows.jsonl"
    _replay(project, f"--results={results}").assert_outcomes(xfailed=1)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    check = next(r for r in rows if r.get("clause") == "test_says_yes")
    assert check["outcome"] == "failed" and check["server"] == "transformers-serve"
    assert check["message"].startswith("expected failure of transformers-serve: the stand-in says no: ")
    (project.path / "server_findings.yaml").write_text("transformers-serve: []\n")
    _replay(project).assert_outcomes(failed=1)  # unlisted, the same recording is a plain failure


def test_an_http_error_finding_keeps_the_error_reply_and_replays_as_that_expected_failure(project, monkeypatch):
    (project.path / "server_findings.yaml").write_text(FINDING + "    expect: http-error\n")
    path = cassette(project, "test_says_yes")
    error = Reply.json({"error": {"message": "tool_choice must be auto", "type": "server_error"}}, status=500)
    with FaultInjector([error]) as server:
        record(project, server.url, monkeypatch).assert_outcomes(xfailed=1)
    check_cassette(path)
    assert "tool_choice must be auto" in path.read_text(encoding="utf-8")
    _replay(project).assert_outcomes(xfailed=1)
    (project.path / "server_findings.yaml").write_text(FINDING)  # expecting an assertion: the error is a failure
    _replay(project).assert_outcomes(failed=1)


def test_a_listed_check_that_passes_fails_the_run_and_is_not_recorded(project, monkeypatch):
    with FaultInjector([completion("yes")]) as server:
        result = record(project, server.url, monkeypatch)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*transformers-serve: the stand-in says no*"])
    assert not cassette(project, "test_says_yes").exists()


def test_the_findings_file_names_local_servers_and_gives_each_check_a_reason(tmp_path):
    path = tmp_path / "findings.yaml"
    path.write_text("llama-serve:\n  - {check: test_a.py::test_b, reason: r}\n")
    with pytest.raises(HarnessError, match=r"'llama-serve' is not a local server\. Valid servers are: "
                                           r"transformers-serve, vllm-serve, llama-cpp-serve, mlx-lm-serve"):
        load_findings(path)
    path.write_text("mlx-lm-serve:\n  - {check: test_a.py::test_b}\n")
    with pytest.raises(HarnessError, match=r"mlx-lm-serve: each finding needs 'check: <file>::<test>' and a "
                                           r"'reason', got \{'check': 'test_a.py::test_b'\}"):
        load_findings(path)
    path.write_text("mlx-lm-serve:\n  - {check: test_a.py::test_b, reason: ' why ', backends: [openai]}\n")
    assert load_findings(path) == {"mlx-lm-serve": {"test_a.py::test_b": ("why", frozenset({"openai"}), "assertion")}}
    path.write_text("mlx-lm-serve:\n  - {check: test_a.py::test_b, reason: r, expect: crash}\n")
    with pytest.raises(HarnessError, match=r"test_a.py::test_b: 'crash' is not a valid expect\. Valid values are: "
                                           r"assertion, http-error"):
        load_findings(path)
