"""Canary: fake credentials planted everywhere, recorded through the real SDKs, never written or shown.

A hostile loopback stand-in (``harness.recording.fault_injector``) knows every planted credential and puts
each one in every place a recording could keep it: a JSON body raw, JSON-escaped, URL-encoded and
base64-encoded, a response header, a ``Location`` query string, a stream with the value split
across chunks or event-stream frames, a body that is not UTF-8, and an error message. Each HTTP
backend records a cassette of that traffic through its real SDK; then no planted value may be
found, in any encoding, in the cassette, the captured logs or the text of any exception.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from harness.contract.secrets import scrubbed_logs, variants
from harness.plugin.replay import provenance
from harness.recording.cassettes import SecretInCassetteError, finalize_recording, hub_clients_online, make_vcr
from harness.recording.fault_injector import FaultInjector, Reply, sse
from harness.recording.scan import scan_text
from harness.wire.eventstream import encode_event_message

PLANTED_ENV = {
    "OPENAI_API_KEY": "canary-openai-key-0001",
    "AZURE_OPENAI_API_KEY": "canary-azure-key-0002",
    "AZURE_OPENAI_AD_TOKEN": "canary-entra/token+0003=",
    "HF_TOKEN": "canary-hf-token-0004",
    "AWS_ACCESS_KEY_ID": "CANARYAWSACCESS0005",
    "AWS_SECRET_ACCESS_KEY": "canary/aws+secret=0006",
    "AWS_SESSION_TOKEN": "canary-aws-session/token+0007",
    "AWS_BEARER_TOKEN_BEDROCK": "canary-bedrock-bearer-0008",
}
PROFILE = {"aws_access_key_id": "CANARYPROFILEKEY0009", "aws_secret_access_key": "canary-profile/secret+0010"}
IN_CODE = "canary-passed-in-code-0011"  # a key handed to the model's constructor
PLANTED = [*PLANTED_ENV.values(), *PROFILE.values(), IN_CODE]
LOCATIONS = ("json body raw", "json body escaped \\/", "json body url-encoded", "json body base64",
             "response header", "Location query string", "stream split across chunks", "non-UTF-8 body",
             "error message")
BACKENDS = ("openai", "azure", "inference-client", "litellm", "litellm-router", "bedrock")


def _forms(value: str) -> dict[str, str]:
    return {"raw": value, "escaped": json.dumps(value)[1:-1].replace("/", "\\/"),
            "url": quote(value, safe=""), "base64": base64.b64encode(value.encode()).decode()}


def _text() -> str:
    return " ".join(f"{kind}:{form}" for v in PLANTED for kind, form in _forms(v).items())


def _headers() -> dict[str, str]:
    headers = {f"X-Echo-{i}": v for i, v in enumerate(PLANTED)}
    headers["Location"] = "http://127.0.0.1/next?" + "&".join(f"token={quote(v, safe='')}" for v in PLANTED)
    headers["x-request-id"] = "req-canary"
    return headers


def _split(value: str) -> tuple[str, str]:
    return value[: len(value) // 2], value[len(value) // 2:]


def _openai_replies() -> list[Reply]:
    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": _text()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    events: list[Any] = []
    for value in PLANTED:
        for piece in _split(value):  # every value split across two chunks
            events.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    events.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks = sse(events)
    stream = Reply(200, {"Content-Type": "text/event-stream", **_headers()}, chunks)
    error = {"error": {"message": "Incorrect API key provided: " + " ".join(PLANTED), "code": "invalid_api_key"}}
    return [Reply.json(body, headers=_headers()), stream,
            Reply.raw(b"\xff\xfe" + " ".join(PLANTED).encode() + b"\x80"), Reply.json(error, 401)]


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return encode_event_message({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                                json.dumps(payload).encode())


def _bedrock_replies() -> list[Reply]:
    body = {"output": {"message": {"role": "assistant", "content": [{"text": _text()}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}
    frames = [_event("messageStart", {"role": "assistant"})]
    for value in PLANTED:
        for piece in _split(value):  # every value split across two event-stream frames
            frames.append(_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
    frames += [_event("contentBlockStop", {"contentBlockIndex": 0}), _event("messageStop", {"stopReason": "end_turn"}),
               _event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                                   "metrics": {"latencyMs": 1}})]
    stream = Reply(200, {"Content-Type": "application/vnd.amazon.eventstream", **_headers()}, frames)
    error = Reply.json({"message": "The security token included in the request is invalid: " + " ".join(PLANTED)},
                       403, {"x-amzn-ErrorType": "UnrecognizedClientException:http://internal.amazon.com/"})
    return [Reply.json(body, headers=_headers()), stream,
            Reply.raw(b"\xff\xfe" + " ".join(PLANTED).encode() + b"\x80"), error]


def _model(backend: str, url: str) -> Any:
    from adapters import (
        AmazonBedrockServerModel,
        AzureOpenAIServerModel,
        InferenceClientModel,
        LiteLLMModel,
        LiteLLMRouterModel,
        OpenAIServerModel,
    )

    if backend == "openai":
        return OpenAIServerModel("m", api_base=f"{url}/v1", api_key=IN_CODE)
    if backend == "azure":
        return AzureOpenAIServerModel("dep", azure_endpoint=url, api_key=IN_CODE, api_version="2024-10-21")
    if backend == "inference-client":
        return InferenceClientModel(model_id=f"{url}/v1", token=IN_CODE)
    if backend == "litellm":
        return LiteLLMModel("openai/m", api_base=f"{url}/v1", api_key=IN_CODE)
    if backend == "litellm-router":
        params = {"model": "openai/m", "api_base": f"{url}/v1", "api_key": IN_CODE}
        return LiteLLMRouterModel("g", model_list=[{"model_name": "g", "litellm_params": params}])
    from botocore.config import Config

    # SigV4 with the planted environment keys: bearer auth (the planted AWS_BEARER_TOKEN_BEDROCK) needs HTTPS
    return AmazonBedrockServerModel("example.model-v1:0", client_kwargs={
        "endpoint_url": url, "region_name": "us-east-1", "config": Config(auth_scheme_preference="sigv4"),
        "aws_access_key_id": "CANARYCODEACCESSKEY", "aws_secret_access_key": IN_CODE})


@pytest.fixture
def planted(no_configured_secrets: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every canary credential in the environment and in an AWS profile file."""
    for name, value in PLANTED_ENV.items():
        monkeypatch.setenv(name, value)
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[canary]\n" + "".join(f"{k} = {v}\n" for k, v in PROFILE.items()), encoding="utf-8")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))


def _found_in(text: str) -> list[str]:
    return [f"{value!r} as {kind}" for value in PLANTED for kind, form in _forms(value).items() if form in text]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_planted_credential_reaches_a_cassette_a_log_or_an_error(backend, planted, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / backend / "canary.yaml"
    path.parent.mkdir(parents=True)
    replies = _bedrock_replies() if backend == "bedrock" else _openai_replies()
    errors: list[str] = []
    with FaultInjector(replies) as server, hub_clients_online(), scrubbed_logs():
        model = _model(backend, server.url)
        model._sleep = lambda seconds: None
        with make_vcr("record").use_cassette(str(path)):
            model.generate([{"role": "user", "content": "hi"}])
            list(model.generate_stream([{"role": "user", "content": "hi"}]))
            for _ in range(2):  # the body that is not UTF-8, then the error echoing every credential
                with pytest.raises(Exception) as info:  # noqa: PT011 - any typed error; its text is judged
                    model.generate([{"role": "user", "content": "hi"}])
                errors.append(f"{type(info.value).__name__}: {info.value}")
        assert len(server.requests) == 4, [r.path for r in server.requests]
    try:
        finalize_recording(path, provenance(backend, "adapters", "canary", server="canary stand-in"), IN_CODE)
    except SecretInCassetteError as exc:  # refused is as good as scrubbed: nothing was written
        errors.append(str(exc))
    written = path.read_text(encoding="utf-8") if path.exists() else ""
    assert not _found_in(written), _found_in(written)
    assert not [v for value in PLANTED for v in variants(value) if v in written]
    assert scan_text(written, path.name, [IN_CODE]) == []
    assert not _found_in(caplog.text), _found_in(caplog.text)
    for text in errors:
        assert not _found_in(text), (text, _found_in(text))
    assert path.exists(), errors  # the recording itself was kept, scrubbed


JUNIT_SUITE = """
import os

from adapters import OpenAIServerModel
from harness.recording.fault_injector import FaultInjector, Reply

def test_echoed_key(backend):
    secret = os.environ["OPENAI_API_KEY"]  # a hostile provider echoes the key it was sent
    error = {"error": {"message": "Incorrect API key provided: " + secret, "code": "invalid_api_key"}}
    with FaultInjector([Reply.json(error, 401, {"x-echo": secret})]) as server:
        model = OpenAIServerModel("m", api_base=server.url + "/v1")
        model.generate([{"role": "user", "content": "hi"}])
"""


def test_no_planted_credential_reaches_junit_output_or_the_results_file(pytester, planted, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makepyfile(test_echo=JUNIT_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:anyio", "--backend=openai",
                                           "--junitxml=junit.xml", "--results=results.jsonl",
                                           "-o", "junit_logging=all", "-o", "log_level=DEBUG")
    result.assert_outcomes(failed=1)
    junit = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    results = (pytester.path / "results.jsonl").read_text(encoding="utf-8")
    assert "Incorrect API key provided: REDACTED" in junit  # the provider's message is there, redacted
    for text in (junit, results, result.stdout.str(), result.stderr.str()):
        assert not _found_in(text), _found_in(text)


# -- every artefact a run writes, in record, live and replay, for passing and failing checks -------

AZURE_KEY = "canary-azure-artefact-key-0031"  # no recognisable shape: only redaction keeps it out
SHAPED_KEY = "sk-canaryartefactshaped0032"  # shaped like an OpenAI key, configured nowhere

ARTEFACT_SUITE = """
import logging
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

KEY = os.environ["AZURE_OPENAI_API_KEY"]
# the run that records what the replay of the failing checks reads: a recording is kept only when its
# test passed, so there the failing checks pass
SEED = os.environ.get("CANARY_SEED") == "1"
log = logging.getLogger("canary")


def test_passing_check(model):
    message = model.generate([{"role": "user", "content": "hi"}])
    print("reply:", message.content, "key:", KEY)  # captured stdout
    log.warning("reply %s with key %s", message.content, KEY)  # captured log
    assert message.content.startswith("echo")


def test_failing_check(model):
    message = model.generate([{"role": "user", "content": "hi"}])
    print("reply:", message.content, "key:", KEY)
    log.warning("reply %s with key %s", message.content, KEY)
    assert SEED or message.content == "something else " + KEY  # the assertion's text shows both


def test_failing_on_an_echoed_error(model):
    try:
        model.generate([{"role": "user", "content": "hi"}])  # the provider's error quotes the key
    except Exception:
        if not SEED:
            raise


@settings(max_examples=5, derandomize=False, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([KEY, "sk-canaryartefactshaped0032"]))
def test_failing_property(backend, value):
    assert value == ""  # hypothesis stores the failing example in its database
"""

ARTEFACT_CONFTEST = """
from hypothesis import settings

from harness.recording.scan import redacting_example_database

settings.register_profile("canary", database=redacting_example_database())
settings.load_profile("canary")
"""


# what a record or live session's preflight (GET <endpoint>/openai/models) is answered before the checks
_PREFLIGHT = Reply.json({"object": "list", "data": []})


def _artefact_replies() -> list[Reply]:
    def completion() -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo {AZURE_KEY} {SHAPED_KEY}"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    error = {"error": {"message": f"Access denied for key {AZURE_KEY} ({SHAPED_KEY})", "code": "401"}}
    return [Reply.json(completion(), headers={"x-echo": AZURE_KEY}), Reply.json(completion()),
            Reply.json(error, 401)]


def _artefact_forms() -> dict[str, str]:
    return {f"{value} {kind}": form for value in (AZURE_KEY, SHAPED_KEY) for kind, form in _forms(value).items()}


def _artefacts(root: Path) -> dict[str, str]:
    """Every file a run wrote under ``root``, by kind (a .hypothesis file read as bytes)."""
    kinds = {"junit.xml": "JUnit XML", "results.jsonl": "results file", "pytest.log": "pytest log",
             "report.md": "report.md", "report.html": "report.html", "results.csv": "results.csv"}
    out: dict[str, str] = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        name = kinds.get(file.name) or ("cassette" if file.suffix == ".yaml" else
                                        "hypothesis database" if ".hypothesis" in file.parts else None)
        if name:
            out[name] = out.get(name, "") + file.read_bytes().decode("latin-1")
    return out


def test_no_known_credential_reaches_any_artefact_in_any_mode(pytester, no_configured_secrets, monkeypatch,
                                                              capsys):
    from harness.cli import main as cli_main

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "canary-deployment")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    pytester.makepyfile(test_artefacts=ARTEFACT_SUITE)
    pytester.makeconftest(ARTEFACT_CONFTEST)
    table: list[tuple[str, str, str, int]] = []
    outcomes = {"passing": ("test_passing_check",), "failing": ("test_failing_check", "test_failing_on_an_echoed_error",
                                                                "test_failing_property")}
    for mode in ("record", "live", "replay"):
        out = pytester.path / mode
        out.mkdir()
        if mode == "replay":  # the cassettes of the failing checks, recorded while they pass
            with FaultInjector([_PREFLIGHT, *_artefact_replies()[1:]]) as server, monkeypatch.context() as seed:
                seed.setenv("AZURE_OPENAI_ENDPOINT", server.url)
                seed.setenv("CANARY_SEED", "1")
                seeded = pytester.runpytest_subprocess(
                    "-p", "no:cacheprovider", "-p", "no:anyio", "--backend=azure", "--mode=record", "--server=cloud",
                    f"--cassette-dir={pytester.path / 'cassettes'}", "-k", "not smolagents_types",
                    "test_artefacts.py::test_failing_check", "test_artefacts.py::test_failing_on_an_echoed_error")
            assert seeded.parseoutcomes().get("passed") == 2, seeded.stdout.str()
        for outcome, tests in outcomes.items():
            where = out / outcome
            where.mkdir()
            with FaultInjector(_artefact_replies()) as server:
                monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
                replies = [_artefact_replies()[0]] if outcome == "passing" else _artefact_replies()[1:]
                server.replies = ([] if mode == "replay" else [_PREFLIGHT]) + replies
                result = pytester.runpytest_subprocess(
                    "-p", "no:cacheprovider", "-p", "no:anyio", "--backend=azure", f"--mode={mode}", "--server=cloud",
                    f"--cassette-dir={pytester.path / 'cassettes'}", f"--junitxml={where / 'junit.xml'}",
                    f"--results={where / 'results.jsonl'}", "-o", "junit_logging=all", "-o", "log_level=DEBUG",
                    "-rA", "-vv", "-k", "not smolagents_types", *[f"test_artefacts.py::{t}" for t in tests])
            (where / "pytest.log").write_text(result.stdout.str() + result.stderr.str(), encoding="utf-8")
            if outcome == "passing":
                assert result.parseoutcomes().get("passed") == 1, result.stdout.str()
            else:
                assert result.parseoutcomes().get("failed") == 3, result.stdout.str()
            assert cli_main(["report", "--results", str(where / "results.jsonl"), "--output-dir",
                             str(where / "report")]) == 0
    hypothesis_db = pytester.path / ".hypothesis"
    forms = _artefact_forms()
    for mode in ("record", "live", "replay"):
        for outcome in outcomes:
            for artefact, text in _artefacts(pytester.path / mode / outcome).items():
                table.append((artefact, mode, outcome, sum(text.count(f) for f in forms.values())))
    cassettes = _artefacts(pytester.path / "cassettes").get("cassette", "")  # written in record, read in replay
    table.append(("cassette", "record", "both", sum(cassettes.count(f) for f in forms.values())))
    if hypothesis_db.exists():
        db = "".join(p.read_bytes().decode("latin-1") for p in hypothesis_db.rglob("*") if p.is_file())
        table.append(("hypothesis database", "all", "failing", sum(db.count(f) for f in forms.values())))
    with capsys.disabled():
        print("\nartefact x mode x outcome: occurrences of the planted keys (all forms)")
        for row in table:
            print(f"  {row[0]:<20} {row[1]:<7} {row[2]:<8} {row[3]}")
    kinds = {row[0] for row in table}
    assert kinds >= {"JUnit XML", "results file", "pytest log", "report.md", "report.html", "results.csv", "cassette"}
    assert [row for row in table if row[3]] == []


# -- the writers redact on their own: rows from another machine's run, a raw subprocess log ------

def test_results_rows_and_the_rendered_report_are_redacted_as_written(no_configured_secrets, monkeypatch, tmp_path):
    from harness.reporting.report import write_report
    from harness.results.schema import append_rows, load_results, make_row

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    row = make_row("check", run="canary", backend="azure", subject="adapters", suite="s", clause="c",
                   outcome="failed", message=f"echoed {AZURE_KEY} and {SHAPED_KEY}", mode="live",
                   observations=[f"reply quoted {AZURE_KEY}"])
    results = append_rows(tmp_path / "results.jsonl", [row])
    rows = load_results([results])
    assert "REDACTED" in rows[0]["message"]
    rows[0]["message"] = row["message"]  # rows as another machine (or an older harness) wrote them
    write_report(rows, tmp_path / "report")
    for file in (results, *(tmp_path / "report" / n for n in ("report.md", "report.html", "results.csv"))):
        text = file.read_text(encoding="utf-8")
        assert not [f for f in _artefact_forms().values() if f in text], file.name


def test_the_beside_lane_log_is_redacted_line_by_line(no_configured_secrets, monkeypatch, tmp_path):
    import sys

    from harness.cli import SuiteRun, _run_beside

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    code = f"import os; print('key', os.environ['AZURE_OPENAI_API_KEY']); print('shaped {SHAPED_KEY}')"
    log = tmp_path / "run-beside.log"
    codes: list[int] = []
    _run_beside([SuiteRun("beside", [sys.executable, "-c", code])], dict(__import__("os").environ), log, codes)
    text = log.read_text(encoding="utf-8")
    assert codes == [0]
    assert "key REDACTED" in text and "shaped REDACTED" in text
    assert not [f for f in _artefact_forms().values() if f in text]


def test_the_example_database_stores_no_example_holding_a_secret(no_configured_secrets, monkeypatch, tmp_path):
    from harness.recording.scan import redacting_example_database

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    db = redacting_example_database(tmp_path / "examples")
    db.save(b"k", b"\x00" + AZURE_KEY.encode() + b"\x01")
    db.save(b"k", SHAPED_KEY.encode())
    db.save(b"k", b"\x00plain example\x01")
    assert list(db.fetch(b"k")) == [b"\x00plain example\x01"]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "examples").rglob("*") if p.is_file())
    assert AZURE_KEY.encode() not in stored and SHAPED_KEY.encode() not in stored


def test_a_collection_error_quoting_a_key_is_redacted(pytester, no_configured_secrets, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    pytester.makepyfile(test_broken="import os\nraise RuntimeError('bad key ' + os.environ['AZURE_OPENAI_API_KEY'])\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(errors=1)
    junit = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    for text in (junit, result.stdout.str(), result.stderr.str()):
        assert "bad key REDACTED:AZURE_OPENAI_API_KEY" in text or "bad key" not in text
        assert not [f for f in _artefact_forms().values() if f in text]
    assert "bad key REDACTED:AZURE_OPENAI_API_KEY" in junit
