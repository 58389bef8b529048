"""Live means live: who answered each row, the session preflight, rows kept when a run is killed, progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.plugin.answers import declare, public_url

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
UNUSED = ("-p", "no:randomly", "-p", "no:cacheprovider")


def _pytest(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", *UNUSED, *args], cwd=ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_public_url_keeps_no_secret():
    assert public_url("https://user:sk-secret@host.example:8443/v1/?api-key=sk-x#frag") == \
        "https://host.example:8443/v1"
    assert public_url(None) is None


def test_a_stand_in_outranks_the_target():
    class Node:
        stash = pytest.Stash()

    node = Node()
    declare(node, "target")  # type: ignore[arg-type]
    declare(node, "responder")  # type: ignore[arg-type]
    declare(node, "target")  # type: ignore[arg-type]  (a model built later does not take the answer back)
    assert node.stash[__import__("harness.plugin.answers").plugin.answers.ANSWERED_BY] == "responder"
    with pytest.raises(ValueError, match="'nobody' is not an answer source. Valid sources are: target"):
        declare(node, "nobody")  # type: ignore[arg-type]


def test_replay_rows_say_who_answered(tmp_path):
    results = tmp_path / "r.jsonl"
    done = _pytest("suites/test_clauses.py", "suites/test_faults.py", "suites/test_message_format.py",
                   "--backend=openai", f"--results={results}", "-q")
    assert done.returncode == 0, done.stdout[-3000:]
    rows = _rows(results)
    by = Counter(r["answered_by"] for r in rows)
    assert set(by) == {"cassette", "responder", "fault-injector", "none"}, by
    assert {r["target"] for r in rows} == {"cassettes=transformers-serve"}
    assert {r["mode"] for r in rows} == {"replay"}
    assert all(r["answered_by"] == "fault-injector" for r in rows if r["suite"] == "faults")
    assert all(r["answered_by"] == "responder" for r in rows
               if r["suite"] == "clauses" and r["clause"].startswith("test_finish_reason_visible"))
    assert len({r["run"] for r in rows}) == 1


def test_a_plain_callable_is_not_replay(tmp_path):
    results = tmp_path / "r.jsonl"
    done = _pytest("suites/test_message_format.py", "--backend=custom",
                   "--model-factory=tests.test_live_run:echo_model", f"--results={results}", "-q", "-x",
                   "-k", "string_content or plain", timeout=120)
    rows = _rows(results)
    assert rows, done.stdout[-2000:]
    assert {(r["mode"], r["target"], r["answered_by"]) for r in rows if r["outcome"] != "skipped"} == {
        ("live", "model-factory=tests.test_live_run:echo_model", "target")}


class _Reply:
    def __init__(self, content: str) -> None:
        self.content = content


def echo_model(messages, stop_sequences=None):
    """A plain callable model for the row test: it answers the last text it was given."""
    last = messages[-1]["content"] if messages else ""
    text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last if isinstance(p, dict))
    return _Reply(text)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


def test_live_against_an_unreachable_url_stops_at_once_with_one_message(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    started = time.monotonic()
    done = _pytest("suites", "--backend=openai,litellm", "--mode=live", f"--base-url={url}", "--model-id=m",
                   f"--results={tmp_path / 'r.jsonl'}", timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-2000:] + done.stderr[-2000:]
    assert elapsed < 30, elapsed  # interpreter start and collection; no check ran, nothing retried
    lines = [line for line in done.stderr.splitlines() if "connection refused" in line]
    assert lines == [f"  openai, litellm: cannot reach {url}/models: connection refused"], done.stderr
    assert done.stderr.count("cannot start") == 1
    assert "passed" not in done.stdout and not (tmp_path / "r.jsonl").exists()


def test_live_without_credentials_names_what_is_missing(tmp_path):
    env = {k: v for k, v in ENV.items() if not k.startswith(("AZURE_", "OPENAI_", "AWS_", "BEDROCK_"))}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    done = _pytest("suites", "--backend=azure,bedrock", "--mode=live", env=env, timeout=120)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert errors[0] == "ERROR: model-conformance: --mode live cannot start, nothing was run:"
    assert errors[1].startswith("  azure: ") and "AZURE_OPENAI_ENDPOINT, OPENAI_API_VERSION, " \
        "AZURE_OPENAI_DEPLOYMENT" in errors[1]
    assert errors[2].startswith("  bedrock: ") and "BEDROCK_MODEL_ID" in errors[2]
    assert "passed" not in done.stdout


def test_an_endpoint_refusing_the_key_is_an_authentication_failure(tmp_path):
    """A fake endpoint (a loopback HTTP server answering 401, standing in for a provider that refuses a key)."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            body = b'{"error": {"message": "Incorrect API key provided"}}'
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        done = _pytest("suites", "--backend=openai", "--mode=live", f"--base-url={url}", "--model-id=m",
                       "--api-key=sk-wrong", timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert (f"  openai: authentication failed: GET {url}/models answered HTTP 401 (Incorrect API key provided)"
            in done.stderr.splitlines()), done.stderr
    assert "sk-wrong" not in done.stderr + done.stdout


SLOW_SUITE = """
import time

import pytest

@pytest.mark.parametrize("n", range(40))
def test_slow(backend_name, n):
    time.sleep(0.25)
"""


def test_a_run_killed_half_way_keeps_its_rows(pytester):
    """A real pytest process, SIGTERMed (what a CI timeout sends) while checks are still running."""
    from tests.test_plugin import FAKE_BACKENDS_CONFTEST

    pytester.makeconftest(FAKE_BACKENDS_CONFTEST)
    pytester.makepyfile(test_slow=SLOW_SUITE)
    results = pytester.path / "r.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "pytest", *UNUSED, "-p", "no:hypothesispytest",
                                "--backend=fake-a", f"--results={results}", "--progress-every=1", "-q"],
                               cwd=pytester.path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 8):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    rows = _rows(results)
    assert 8 <= len(rows) < 40, (len(rows), output[-2000:])  # killed half-way, every finished check kept
    assert len({r["run"] for r in rows}) == 1
    assert all(r["outcome"] == "passed" and r["answered_by"] is None for r in rows)
    progress = [line for line in output.splitlines() if line.startswith("model-conformance progress: ")]
    assert progress, output[-2000:]
    assert "/40 checks done in " in progress[0] and " left; " in progress[0], progress[0]


def test_report_without_results_files_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness.cli", "report", "--results"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--results needs at least one results file" in done.stderr
    assert not (tmp_path / "reports").exists()


def _check_row(outcome: str, run: str) -> dict:
    from harness.results.schema import make_row

    return make_row("check", run=run, backend="openai", server="transformers-serve", subject="adapters",
                    mode="replay", target="cassettes=transformers-serve", suite="stop_sequences",
                    clause="test_stop", outcome=outcome, hardware={"label": "ci"})


def test_report_fails_on_a_regression_against_the_previous_night(tmp_path):
    from harness.results.schema import append_rows

    before, now = tmp_path / "before.jsonl", tmp_path / "now.jsonl"
    append_rows(before, [_check_row("passed", "n1")])
    append_rows(now, [_check_row("failed", "n2")])
    args = [sys.executable, "-m", "harness.cli", "report", "--results", str(now), "--previous", str(before),
            "--output-dir", str(tmp_path / "out")]
    done = subprocess.run([*args, "--fail-on-regression"], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "REGRESSION: passed -> failed: openai (transformers-serve)" in done.stderr
    assert (tmp_path / "out" / "report.md").is_file()  # written before failing
    same = subprocess.run([*args[:5], str(before), *args[6:], "--fail-on-regression"], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stderr


def test_junit_errors_fails_on_an_error_only(tmp_path):
    failed = tmp_path / "failed.xml"
    failed.write_text('<testsuites><testsuite><testcase classname="s" name="a"><failure message="no"/></testcase>'
                      '</testsuite></testsuites>')
    errored = tmp_path / "errored.xml"
    errored.write_text('<testsuites><testsuite><testcase classname="s" name="b"><error message="fixture broke"/>'
                       '</testcase></testsuite></testsuites>')
    tool = [sys.executable, str(ROOT / "tools" / "junit_errors.py")]
    assert subprocess.run([*tool, str(failed)], capture_output=True, timeout=30).returncode == 0
    done = subprocess.run([*tool, str(failed), str(errored)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and f"{errored}: s::b: fixture broke" in done.stdout


def smolagents_echo():
    """A smolagents ``Model`` subclass that overrides only ``generate`` (echoing the last text)."""
    import smolagents.models as sm

    class Echo(sm.Model):
        def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):
            last = messages[-1]
            content = last["content"] if isinstance(last, dict) else last.content
            text = content if isinstance(content, str) else " ".join(
                p.get("text", "") for p in content or [] if isinstance(p, dict))
            return sm.ChatMessage(role=sm.MessageRole.ASSISTANT, content=text)

    return Echo(model_id="echo")


def test_a_failure_from_smolagents_base_class_says_so(tmp_path):
    results = tmp_path / "r.jsonl"
    _pytest("suites/test_tool_calls.py", "--backend=custom", "--model-factory=tests.test_live_run:smolagents_echo",
            f"--results={results}", "-q", "-k", "unique or python_dict", timeout=300)
    failed = {r["clause"]: r["message"] for r in _rows(results) if r["outcome"] == "failed"}
    assert failed["test_tool_call_ids_unique"].startswith(
        "this check ran Model.parse_tool_calls, which your model inherits unchanged from smolagents' base class: "
        "the failure may come from there"), failed
    assert failed["test_text_tool_call_forms-python_dict"].startswith(
        "raised in smolagents' own code (smolagents/utils.py:"), failed
    assert "under Model.parse_tool_calls" in failed["test_text_tool_call_forms-python_dict"]
    # the user's own model, not smolagents', gets no such note
    mine = tmp_path / "mine.jsonl"
    _pytest("suites/test_tool_calls.py", "--backend=custom", "--model-factory=tests.test_live_run:echo_model",
            f"--results={mine}", "-q", "-k", "unique or python_dict", timeout=300)
    assert not any("smolagents" in r["message"] for r in _rows(mine))


def test_the_report_never_sums_two_modes_or_targets(tmp_path):
    from harness.reporting.levels import level_headline
    from harness.reporting.report import who_answered, write_report
    from harness.results.schema import make_row

    def row(mode: str, target: str, answered: str, outcome: str) -> dict:
        return make_row("check", run="r", backend="openai", server="transformers-serve", subject="adapters",
                        mode=mode, target=target, answered_by=answered, suite="clauses", clause="c",
                        clauses=["stop.before-first"], level="must", outcome=outcome, hardware={"label": "ci"},
                        endpoint="http://127.0.0.1:1/v1" if mode == "live" else None,
                        model="m" if mode == "live" else None)

    rows = [row("replay", "cassettes=transformers-serve", "cassette", "passed"),
            row("live", "endpoint=http://127.0.0.1:1/v1", "target", "failed"),
            row("live", "endpoint=http://127.0.0.1:1/v1", "responder", "passed")]
    report = write_report(rows, tmp_path).read_text()
    lines = [line for line in report.splitlines() if line.startswith("| openai ")]
    cells = [[c.strip() for c in line.strip("|").split("|")][2:] for line in lines]  # mode, target, checks, suite...
    assert sorted(cells) == [["live", "endpoint=http://127.0.0.1:1/v1", "client-side", "1 / 0 / 0", "1 / 0 / 0"],
                             ["live", "endpoint=http://127.0.0.1:1/v1", "target", "0 / 1 / 0", "0 / 1 / 0"],
                             ["replay", "cassettes=transformers-serve", "target", "1 / 0 / 0", "1 / 0 / 0"]], lines
    headline = level_headline(rows)[0]
    assert headline["openai (transformers-serve)"] == "100% (1/1)"
    assert headline["openai (live: endpoint=http://127.0.0.1:1/v1)"] == "0% (0/1)"
    assert headline["openai (live: endpoint=http://127.0.0.1:1/v1, client-side)"] == "100% (1/1)"
    counts = {(r["mode"], r["target"]): r for r in who_answered(rows)}
    live = counts[("live", "endpoint=http://127.0.0.1:1/v1")]
    assert (live["by target"], live["by responder"], live["by cassette"], live["model"]) == (1, 1, 0, "m")
