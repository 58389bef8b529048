"""Re-recording over a good cassette, against a fault-injecting stand-in server, never loses it.

The stand-in (harness.recording.fault_injector, the one fake the project allows) serves the local server's
place at the transport; the real openai SDK and the real recorder run in a throwaway project
(pytester), in a fresh interpreter or a real subprocess that is killed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.contract.errors import HarnessError, ReplayError
from harness.plugin.replay import provenance
from harness.recording.cassettes import check_cassette, content_digest, finalize_recording
from harness.recording.fault_injector import FaultInjector, Reply
from harness.recording.record import PART_SUFFIX, stamp_cassettes, validate_record_mode
from harness.recording.scan import scan_text

ROOT = Path(__file__).resolve().parent.parent
# a committed cassette with two chat completions, standing in for the good cassette of the test below
GOOD = ROOT / "cassettes" / "transformers-serve" / "openai" / "stop_sequences" / \
    "test_absent_stop_leaves_text_whole.yaml"
UNUSED_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:anyio")

STAND_IN_CONFTEST = """
import os

import pytest


class StandIn:
    \"\"\"The local server's place taken by the fault-injecting stand-in the test started.\"\"\"

    description = "fault-injecting stand-in (tests/test_recording.py)"
    model_id = "stand-in"
    base_url = os.environ.get("STAND_IN_URL", "http://127.0.0.1:9") + "/v1"


@pytest.fixture(scope="session")
def local_server():
    return StandIn()
"""

# retry=False: the failing cases fail at once instead of after the adapter's backoff
SUITE = """
def test_two_requests(model_factory):
    model = model_factory(retry=False)
    first = model([{"role": "user", "content": "Hi"}])
    second = model([{"role": "user", "content": "Again"}])
    assert first.content and second.content


def test_tolerates_errors(model_factory):
    try:
        model_factory(retry=False)([{"role": "user", "content": "Hi"}])
    except Exception:
        pass
"""


def completion(text: str) -> Reply:
    return Reply.json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "stand-in",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A throwaway project whose ``rec`` suite has a good, committed-like cassette for each test."""
    pytester.makeconftest(STAND_IN_CONFTEST)
    pytester.makepyfile(test_rec=SUITE)
    for test in ("test_two_requests", "test_tolerates_errors"):
        target = cassette(pytester, test)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(GOOD, target)
    return pytester


def cassette(pytester: pytest.Pytester, test: str = "test_two_requests") -> Path:
    return pytester.path / "cassettes" / "transformers-serve" / "openai" / "rec" / f"{test}.yaml"


def record_args(pytester: pytest.Pytester, *args: str, select: str = "dicts") -> list[str]:
    return [*UNUSED_PLUGINS, "--backend=openai", "--mode=record", f"--cassette-dir={pytester.path / 'cassettes'}",
            "-p", "no:cacheprovider", "-k", select, *args]


def record(pytester: pytest.Pytester, url: str, monkeypatch: pytest.MonkeyPatch, *args: str,
           select: str = "dicts") -> pytest.RunResult:
    monkeypatch.setenv("STAND_IN_URL", url)
    return pytester.runpytest_subprocess(*record_args(pytester, *args, select=select))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def figure(case: str, before: str, path: Path, line: str = "") -> None:
    """The acceptance figure of a case (shown with ``pytest -rP``): the cassette's digest before and after."""
    print(f"{case}: sha256 before {before[:16]}, after {sha256(path)[:16]}; {line}")


def not_kept_line(result: pytest.RunResult, path: Path) -> str:
    lines = [line for line in result.outlines if line.startswith(f"recording not kept: {path} left untouched")]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


def aside_of(line: str, pytester: pytest.Pytester) -> Path:
    aside = Path(line.rsplit(" is at ", 1)[1])
    assert aside.is_relative_to(pytester.path / "reports" / "_runs" / "recordings"), line
    assert "cassettes" not in aside.relative_to(pytester.path).parts
    return aside


# -- the five failure cases: the good cassette's digest before and after is the same ---------------


def test_http_error_replies_leave_the_good_cassette_untouched(project, monkeypatch):
    path, other = cassette(project), cassette(project, "test_tolerates_errors")
    before, before_other = sha256(path), sha256(other)
    error = Reply.json({"error": {"message": "stand-in failure", "type": "server_error"}}, status=500)
    with FaultInjector([error]) as server:
        result = record(project, server.url, monkeypatch)
    assert sha256(path) == before and sha256(other) == before_other
    line = not_kept_line(result, path)
    figure("HTTP 500 replies", before, path, line)
    assert "(the test failed)" in line
    aside = aside_of(line, project)
    assert "500" in aside.read_text(encoding="utf-8")
    # the test that passed anyway: its recording holds 500 replies the good cassette did not
    other_line = not_kept_line(result, other)
    figure("HTTP 500 replies, test passed anyway", before_other, other, other_line)
    assert "the new recording holds" in other_line
    assert "HTTP error reply (500) the old cassette does not" in other_line
    assert not list(path.parent.glob(f"*{PART_SUFFIX}"))


def test_an_unreachable_server_leaves_the_good_cassette_untouched(project, monkeypatch):
    path = cassette(project)
    before = sha256(path)
    result = record(project, closed_port_url(), monkeypatch, select="two_requests and dicts")
    assert sha256(path) == before
    figure("unreachable server", before, path, not_kept_line(result, path))
    assert "(the test failed; nothing was recorded)" in not_kept_line(result, path)


def test_under_xdist_the_line_reaches_the_controller(project, monkeypatch):
    path = cassette(project)
    before = sha256(path)
    result = record(project, closed_port_url(), monkeypatch, "-n", "2")
    assert sha256(path) == before
    assert "(the test failed; nothing was recorded)" in not_kept_line(result, path)


def test_a_refused_recording_leaves_the_good_cassette_untouched(project, monkeypatch):
    path = cassette(project)
    before = sha256(path)
    # a key the scrubbers do not recognise as such, base64-encoded in the reply: the refuse-to-write scan finds it
    leaked = base64.b64encode(b"key sk-abcdefghijklmnopqrstuvwx1234").decode()
    with FaultInjector([completion(f"here: {leaked}")]) as server:
        result = record(project, server.url, monkeypatch, select="two_requests and dicts")
    assert sha256(path) == before
    line = not_kept_line(result, path)
    figure("refused (secret)", before, path, line)
    assert "(refused: line" in line
    assert leaked not in result.stdout.str()
    kept = aside_of(line, project).read_text(encoding="utf-8")
    assert leaked not in kept and "REDACTED (held base64 text that decodes to text matching" in kept
    assert not scan_text(kept, "kept.yaml")


def test_a_server_dying_half_way_leaves_the_good_cassette_untouched(project, monkeypatch):
    path = cassette(project)
    before = sha256(path)
    with FaultInjector([completion("first"), Reply(reset_before=True)]) as server:
        result = record(project, server.url, monkeypatch, select="two_requests and dicts")
    assert sha256(path) == before
    line = not_kept_line(result, path)
    figure("server dying half-way", before, path, line)
    assert "(the test failed)" in line
    recorded = yaml.safe_load(aside_of(line, project).read_text(encoding="utf-8"))
    assert len(recorded["interactions"]) == 1  # the half-recording, kept aside for inspection


def test_a_passed_clean_recording_replaces_the_cassette_stamped(project, monkeypatch):
    path = cassette(project)
    before = sha256(path)
    with FaultInjector([completion("fresh answer")]) as server:
        result = record(project, server.url, monkeypatch, select="two_requests and dicts")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*--record-mode=all: 1 cassettes, 1 existing will be replaced*"])
    assert sha256(path) != before
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert "fresh answer" in path.read_text(encoding="utf-8")
    assert data["provenance"]["content_digest"] == content_digest(data["interactions"])
    check_cassette(path)
    assert not list(path.parent.glob(f".*{PART_SUFFIX}"))
    replay = project.runpytest_subprocess(*UNUSED_PLUGINS, "--backend=openai", "-p", "no:cacheprovider",
                                          f"--cassette-dir={project.path / 'cassettes'}", "-k", "two and dicts")
    replay.assert_outcomes(passed=1)


def test_record_mode_once_keeps_existing_cassettes(project, monkeypatch):
    path = cassette(project)
    before = sha256(path)
    missing = cassette(project, "test_tolerates_errors")
    missing.unlink()
    with FaultInjector([completion("fresh answer")]) as server:
        result = record(project, server.url, monkeypatch, "--record-mode=once")
        assert len(server.requests) == 1  # only the missing cassette was recorded
    result.stdout.fnmatch_lines(["*--record-mode=once: 2 cassettes, 1 existing kept (replayed), 1 to record*"])
    result.assert_outcomes(passed=2)
    assert sha256(path) == before
    check_cassette(missing)


def test_a_bad_record_mode_lists_the_valid_ones(pytester):
    result = pytester.runpytest_subprocess(*UNUSED_PLUGINS, "--record-mode=new")
    result.stderr.fnmatch_lines(["ERROR: 'new' is not a valid record mode. Valid record modes are: all, once"])
    with pytest.raises(HarnessError, match="Valid record modes are: all, once"):
        validate_record_mode("none")


# -- interrupted runs: a real subprocess, killed -------------------------------------------------


def start(project: pytest.Pytester, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "STAND_IN_URL": url}
    args = record_args(project, select="two_requests and dicts")
    # SIGINT as a terminal delivers it: a run started in the background (nohup, `&` without job control) has it
    # ignored, the child inherits that, and Python then installs no KeyboardInterrupt for it
    return subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=project.path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_run_killed_while_waiting_on_the_server_leaves_the_good_cassette_untouched(project, sig):
    path = cassette(project)
    before = sha256(path)
    with FaultInjector([Reply(stall_before=60)]) as server:
        process = start(project, server.url)
        wait_for(lambda: len(server.requests) >= 1)
        process.send_signal(sig)
        output, _ = process.communicate(timeout=60)
    assert sha256(path) == before
    figure(f"{sig.name} while waiting on the server", before, path,
           next((line for line in output.splitlines() if line.startswith("recording not kept")), "(no line: killed)"))
    if sig == signal.SIGINT:  # pytest tears down: the one line is printed
        assert f"recording not kept: {path} left untouched (the test was interrupted; nothing was recorded)" \
            in output, output
    check_cassette(path)


def test_a_run_killed_before_finalising_leaves_the_cassette_and_the_next_run_sets_the_part_aside(project,
                                                                                                 monkeypatch):
    path = cassette(project)
    before = sha256(path)
    # a reply large enough that finalising it takes a moment: the kill lands after the part file is written
    big = completion("word " * 1_500_000 + " sk-abcdefghijklmnopqrstuvwx")
    with FaultInjector([big]) as server:
        process = start(project, server.url)
        wait_for(lambda: any(path.parent.glob(f".{path.name}.*{PART_SUFFIX}")), timeout=120)
        process.kill()
        process.communicate(timeout=60)
    parts = list(path.parent.glob(f".{path.name}.*{PART_SUFFIX}"))
    assert parts, "the kill came too late to leave a part file"
    assert sha256(path) == before
    figure("SIGKILL after the part file was written", before, path, f"left beside it: {parts[0].name}")
    # replay reads the good cassette, never the part file
    replay = project.runpytest_subprocess(*UNUSED_PLUGINS, "--backend=openai", "-p", "no:cacheprovider",
                                          f"--cassette-dir={project.path / 'cassettes'}", "-k", "two and dicts")
    replay.assert_outcomes(passed=1)
    # the next recording of that cassette sets the left-over part aside and says so
    with FaultInjector([completion("fresh answer")]) as server:
        result = record(project, server.url, monkeypatch, select="two_requests and dicts")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if "an interrupted run's unfinished recording" in line]
    assert len(lines) == 1 and str(path) in lines[0] and parts[0].name in lines[0], result.stdout.str()
    print(f"the next recording's line: {lines[0]}")
    assert not list(path.parent.glob(f".*{PART_SUFFIX}"))
    check_cassette(path)


# -- replay trusts only finished cassettes -------------------------------------------------------


def test_replay_refuses_a_cassette_without_provenance_naming_it(project):
    path = cassette(project)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["provenance"]  # what the recorder writes before the provenance step (simulated)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ReplayError, match="it has no provenance") as info:
        check_cassette(path)
    assert str(path) in str(info.value)
    replay = project.runpytest_subprocess(*UNUSED_PLUGINS, "--backend=openai", "-p", "no:cacheprovider",
                                          f"--cassette-dir={project.path / 'cassettes'}", "-k", "two and dicts")
    replay.assert_outcomes(errors=1)  # the model fixture refuses it, before the test runs
    replay.stdout.fnmatch_lines([f"*refused cassette {path}: it has no provenance*"])
    print(next(line for line in replay.outlines if "refused cassette" in line))


def test_replay_refuses_a_cassette_whose_content_does_not_match_its_digest(tmp_path):
    path = tmp_path / "edited.yaml"
    data = yaml.safe_load(GOOD.read_text(encoding="utf-8"))
    data["interactions"][0]["response"]["status"]["code"] = 201
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ReplayError, match="do not match the content digest its provenance states") as info:
        check_cassette(path)
    assert str(path) in str(info.value)
    del data["provenance"]["content_digest"]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ReplayError, match="states no content digest"):
        check_cassette(path)


def test_stamp_writes_only_the_digest_and_refuses_unfinished_cassettes(tmp_path):
    good = tmp_path / "good.yaml"
    data = yaml.safe_load(GOOD.read_text(encoding="utf-8"))
    del data["provenance"]["content_digest"]
    good.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    unfinished = tmp_path / "unfinished.yaml"
    unfinished.write_text(yaml.safe_dump({"interactions": data["interactions"], "version": 1}), encoding="utf-8")
    empty = tmp_path / "empty_provenance.yaml"
    empty.write_text(yaml.safe_dump({"interactions": data["interactions"], "provenance": {}}), encoding="utf-8")
    refused = "refused (no provenance: a recording that did not finish; re-record it)"
    assert dict(stamp_cassettes([tmp_path], check=True)) == {good: "unstamped", unfinished: refused, empty: refused}
    outcomes = dict(stamp_cassettes([tmp_path]))
    assert outcomes[good] == "stamped" and outcomes[unfinished].startswith("refused")
    assert good.read_text(encoding="utf-8") == GOOD.read_text(encoding="utf-8")  # the committed text, digest included
    check_cassette(good)
    with pytest.raises(ReplayError, match="no provenance"):
        check_cassette(unfinished)


def test_every_committed_cassette_is_stamped():
    outcomes = stamp_cassettes([ROOT / "cassettes"], check=True)
    assert outcomes and {what for _, what in outcomes} == {"up to date"}


def test_finalize_into_a_destination_replaces_it_only_when_clean(tmp_path):
    destination = tmp_path / "test_x.yaml"
    shutil.copyfile(GOOD, destination)
    before = sha256(destination)
    part = tmp_path / f".test_x.yaml.1{PART_SUFFIX}"
    data = yaml.safe_load(GOOD.read_text(encoding="utf-8"))
    data["interactions"][0]["response"]["body"]["string"] = json.dumps({"leak": "hf_abcdefghijklmnopqrstuvwxyz"})
    del data["provenance"]
    part.write_text(yaml.safe_dump(data), encoding="utf-8")
    prov = provenance("openai", "adapters", "t", server="stand-in")
    with pytest.raises(Exception, match=f"refused to write {destination}"):
        finalize_recording(part, prov, destination=destination)
    assert sha256(destination) == before and not part.exists()


# -- one writer per cassette ---------------------------------------------------------------------


def test_two_recordings_of_one_cassette_take_turns(tmp_path):
    """Two workers (here two threads, each with its own lock handle, as two processes have) never overlap."""
    import threading

    from harness.recording.record import Recording

    path = tmp_path / "cassettes" / "transformers-serve" / "openai" / "rec" / "test_x.yaml"
    prov = provenance("openai", "adapters", "t", server="stand-in")
    first = Recording(path, prov, tmp_path / "aside")
    second = Recording(path, prov, tmp_path / "aside")
    events: list[str] = []
    first.start()
    events.append("first started")

    def other_worker() -> None:
        second.start()
        events.append("second started")
        second.finish("passed")

    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join(timeout=0.5)
    assert thread.is_alive() and events == ["first started"]  # waiting for the first to finish
    events.append("first finished")
    first.finish("passed")
    thread.join(timeout=10)
    assert events == ["first started", "first finished", "second started"]


@pytest.mark.parametrize("target", ["azure", "bedrock"])
def test_a_derived_cassette_is_stamped_when_derived(tmp_path, target):
    from harness.recording.derive import derive_cassette, render

    source = yaml.safe_load(GOOD.read_text(encoding="utf-8"))
    derived = derive_cassette(source, target, "cassettes/x.yaml")
    path = tmp_path / f"{target}.yaml"
    path.write_text(render(derived), encoding="utf-8")
    assert derived["provenance"]["content_digest"].startswith("sha256:")
    check_cassette(path)  # replay trusts it: the digest holds for the interactions as written


# -- the scan's fast path: a pattern's regex runs only where text every match contains occurs -----


def test_every_required_text_belongs_to_a_secret_pattern():
    from harness.contract.secrets import _REQUIRED_TEXT, SECRET_PATTERNS

    assert set(_REQUIRED_TEXT) <= {p.pattern for p in SECRET_PATTERNS}
    assert len(_REQUIRED_TEXT) == len(SECRET_PATTERNS)  # a new pattern is searched anyway; list it to be fast


@pytest.mark.parametrize("index", range(8))
def test_every_match_of_a_pattern_contains_its_required_text(index):
    from hypothesis import given
    from hypothesis import strategies as st

    from harness.contract.secrets import _REQUIRED_TEXT, SECRET_PATTERNS

    pattern = SECRET_PATTERNS[index]
    required = _REQUIRED_TEXT[pattern.pattern]

    @given(st.from_regex(pattern))
    def check(text: str) -> None:
        match = pattern.search(text)
        assert match is not None and any(part in match.group(0) for part in required), (text, required)

    check()


def test_a_held_reply_says_when_the_client_closes_the_connection_and_not_before():
    """The fault stand-in's ``then="hold"``: the first chunks are sent, the connection is kept open, and
    ``released`` is set only once the client closes it (the judge of clause stream.released-when-closed)."""
    with FaultInjector([Reply(200, {"Content-Type": "text/event-stream"}, [b"data: 1\n\n"], then="hold")]) as server:
        port = int(server.url.rsplit(":", 1)[1])
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
        received = b""
        while b"data: 1" not in received:
            received += client.recv(4096)
        assert not server.released.wait(0.5), "released while the client still held the connection open"
        client.close()
        assert server.released.wait(5), "not released after the client closed the connection"
