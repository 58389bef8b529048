"""Faults at the transport: every one ends in a typed error or a bounded retry, never a raw SDK error.

Each case runs the backend's real SDK against ``harness.recording.fault_injector.FaultInjector``, a loopback
stand-in that misbehaves as scripted (the one fake the project allows). Sleeping is patched and
the delays asserted: a retry honours Retry-After up to the per-call budget, errors that cannot
succeed on retry are tried once, and a cut or malformed answer is an error, not a shorter answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.plugin.answers import declare
from harness.recording.fault_injector import FaultInjector, Reply, retry_after_date, sse
from harness.wire.eventstream import encode_event_message

PROMPT = [{"role": "user", "content": "Say hello."}]
ANSWER = "Hello there."
TIMEOUT = 5.0  # the client's read timeout against the stand-in, seconds (generous: the machine may be busy)
SHORT_TIMEOUT = 0.1  # the timeout fault's, so that four attempts stay quick (its stall is five times this)
REQUEST_ID = "req-fault-0001"
PROVIDER_MESSAGE = "fault-injected provider message"
OPENAI_WIRE = ("openai", "azure", "inference-client", "litellm", "litellm-router")
BEDROCK_MODEL = "example.model-v1:0"


# -- the wire each backend speaks (expected values written here, not taken from the adapters) ---

def _completion(content: str | None = ANSWER, finish: str = "stop", tool_calls: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def _chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _sse_reply(events: list[Any], done: bool = True, then: str = "end") -> Reply:
    return Reply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID}, sse(events, done), then=then)


def _openai_error(status: int, code: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": PROVIDER_MESSAGE, "type": "invalid_request_error", "code": code}}
    return Reply.json(body, status, {"x-request-id": REQUEST_ID, "apim-request-id": REQUEST_ID, **(headers or {})})


def _converse(text: str = ANSWER) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}}


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_event_message(headers, json.dumps(payload).encode())


def _exception_event(kind: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return encode_event_message(headers, json.dumps({"message": PROVIDER_MESSAGE}).encode())


def _bedrock_stream(frames: list[bytes], then: str = "end") -> Reply:
    return Reply(200, {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": REQUEST_ID},
                 frames, then=then)


BEDROCK_START = [_event("messageStart", {"role": "assistant"}),
                 _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}})]
BEDROCK_END = [_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo there."}}),
               _event("contentBlockStop", {"contentBlockIndex": 0}),
               _event("messageStop", {"stopReason": "end_turn"}),
               _event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
                                   "metrics": {"latencyMs": 1}})]


def _bedrock_error(status: int, code: str) -> Reply:
    return Reply.json({"message": PROVIDER_MESSAGE}, status,
                      {"x-amzn-RequestId": REQUEST_ID, "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"})


OK = {"openai": Reply.json(_completion(), headers={"x-request-id": REQUEST_ID}),
      "bedrock": Reply.json(_converse(), headers={"x-amzn-RequestId": REQUEST_ID})}
STREAM_OK = {"openai": _sse_reply([_chunk("Hel"), _chunk("lo there."), _chunk(None, "stop")]),
             "bedrock": _bedrock_stream(BEDROCK_START + BEDROCK_END)}


def _wire(backend: str) -> str:
    return "bedrock" if backend == "bedrock" else "openai"


def _throttle(wire: str, headers: dict[str, str]) -> Reply:
    if wire == "bedrock":
        reply = _bedrock_error(429, "ThrottlingException")
        return Reply(reply.status, {**reply.headers, **headers}, reply.chunks, reply.content_length)
    return _openai_error(429, "rate_limit_exceeded", headers)


def _server_error(wire: str, status: int = 503) -> Reply:
    return _bedrock_error(status, "ServiceUnavailableException") if wire == "bedrock" else _openai_error(status)


def _truncated_tool_call(wire: str) -> Reply:
    if wire == "bedrock":
        frames = [_event("messageStart", {"role": "assistant"}),
                  _event("contentBlockStart", {"contentBlockIndex": 0, "start": {
                      "toolUse": {"toolUseId": "t1", "name": "get_weather"}}}),
                  _event("contentBlockDelta",
                         {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"city": "Pa'}}}),
                  _event("contentBlockStop", {"contentBlockIndex": 0}),
                  _event("messageStop", {"stopReason": "max_tokens"})]
        return _bedrock_stream(frames)
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Pa'}}
    return Reply.json(_completion(None, "length", [call]), headers={"x-request-id": REQUEST_ID})


# -- the faults --------------------------------------------------------------------------------

@dataclass
class Fault:
    """A scripted misbehaviour and what must come of it."""

    replies: Callable[[str], list[Reply]]  # by wire format
    stream: bool = False
    # success: the answer after retries, with these delays; else a typed error of this kind
    delays: Callable[[list[float]], bool] | None = None
    kind: str | None = None
    status: int | None = None
    attempts: int = 1
    provider_message: bool = False  # the provider's own message must be in str(exc)
    only: tuple[str, ...] = ()  # the backends the fault exists for (empty: every HTTP backend)
    tools: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    timeout: float = TIMEOUT
    # other kinds a backend may honestly report, with why (the SDK cannot tell the difference)
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)


MAX_ATTEMPTS = 4  # ApiModel: 1 call + 3 retries
RETRYABLE = ("throttled", "server", "timeout", "connection")  # what a retry can cure

FAULTS: dict[str, Fault] = {
    "429-retry-after-seconds": Fault(
        lambda w: [_throttle(w, {"Retry-After": "2"}), OK[w]], delays=lambda d: d == [2.0], attempts=2),
    "429-retry-after-http-date": Fault(
        # 10 s ahead, to the second: a back-off (about 1 s) instead of the date would not pass
        lambda w: [_throttle(w, {"Retry-After": retry_after_date(10)}), OK[w]],
        delays=lambda d: len(d) == 1 and 8.0 <= d[0] <= 10.0, attempts=2),
    "429-retry-after-garbage": Fault(
        lambda w: [_throttle(w, {"Retry-After": "soon-ish"}), OK[w]],
        delays=lambda d: len(d) == 1 and 0.5 <= d[0] <= 2.0, attempts=2),
    "429-retry-after-beyond-budget": Fault(
        lambda w: [_throttle(w, {"Retry-After": "3600"})], kind="throttled", status=429, attempts=1,
        provider_message=True),
    "5xx-then-success": Fault(lambda w: [_server_error(w), OK[w]], delays=lambda d: len(d) == 1, attempts=2),
    "5xx-persistent": Fault(lambda w: [_server_error(w, 500)], kind="server", status=500, attempts=MAX_ATTEMPTS,
                            provider_message=True),
    "timeout": Fault(lambda w: [Reply(stall_before=SHORT_TIMEOUT * 5)], kind="timeout", attempts=MAX_ATTEMPTS,
                     timeout=SHORT_TIMEOUT),
    "reset-before-response": Fault(lambda w: [Reply(reset_before=True)], kind="connection", attempts=MAX_ATTEMPTS),
    "reset-mid-body": Fault(
        lambda w: [Reply(200, {"Content-Type": "application/json"}, [b'{"id": "x", "choi'], content_length=400,
                         then="reset")], kind="connection", attempts=MAX_ATTEMPTS,
        # botocore reads a body cut short as the JSON it could parse, so Bedrock sees a 200 with no output
        kinds={"bedrock": ("connection", "malformed")}),
    "reset-mid-stream": Fault(
        lambda w: [_bedrock_stream(BEDROCK_START, then="reset") if w == "bedrock"
                   else _sse_reply([_chunk("Hel")], done=False, then="reset")],
        stream=True, kind="connection", attempts=1),
    "truncated-stream": Fault(
        lambda w: [_bedrock_stream(BEDROCK_START) if w == "bedrock" else _sse_reply([_chunk("Hel")], done=False)],
        stream=True, kind="truncated", attempts=1),
    "html-502": Fault(
        lambda w: [Reply.raw(b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", 502,
                             "text/html")], kind="server", status=502, attempts=MAX_ATTEMPTS),
    "malformed-json": Fault(lambda w: [Reply.raw(b'{"choices": [ {"mess')], kind="malformed", attempts=1),
    "non-utf8-body": Fault(lambda w: [Reply.raw(b"\xff\xfe\x00garbage\x80")], kind="malformed", attempts=1),
    "empty-choices": Fault(
        lambda w: [Reply.json({"output": {}, "stopReason": "end_turn"} if w == "bedrock" else
                              {**_completion(), "choices": []})], kind="malformed", attempts=1),
    "content-filter-400": Fault(lambda w: [_openai_error(400, "content_filter")], kind="content_filter", status=400,
                                attempts=1, provider_message=True, only=OPENAI_WIRE),
    "length-truncated-tool-call": Fault(lambda w: [_truncated_tool_call(w)], kind="truncated", attempts=1,
                                        tools=True, stream=False, extra={"bedrock_stream": True}),
    "authentication-401": Fault(
        lambda w: [_bedrock_error(403, "AccessDeniedException") if w == "bedrock" else _openai_error(401)],
        kind="auth", attempts=1, provider_message=True),
    "bedrock-ThrottlingException": Fault(
        lambda w: [_bedrock_error(429, "ThrottlingException"), OK[w]], delays=lambda d: len(d) == 1, attempts=2,
        only=("bedrock",)),
    "bedrock-ModelNotReadyException": Fault(
        lambda w: [_bedrock_error(429, "ModelNotReadyException"), OK[w]], delays=lambda d: len(d) == 1, attempts=2,
        only=("bedrock",)),
    "bedrock-ValidationException": Fault(
        lambda w: [_bedrock_error(400, "ValidationException")], kind="validation", status=400, attempts=1,
        provider_message=True, only=("bedrock",)),
    "bedrock-ModelTimeoutException": Fault(
        lambda w: [_bedrock_error(408, "ModelTimeoutException")], kind="timeout", status=408,
        attempts=MAX_ATTEMPTS, provider_message=True, only=("bedrock",)),
    "bedrock-stream-error-event": Fault(
        lambda w: [_bedrock_stream(BEDROCK_START + [_exception_event("modelStreamErrorException")])],
        stream=True, kind="server", attempts=1, provider_message=True, only=("bedrock",)),
}


# -- building each backend against the stand-in --------------------------------------------------

def _target(backend: str, url: str, timeout: float) -> dict[str, Any]:
    key = "fault-key-0123456789"
    if backend == "openai":
        return {"model_id": "m", "api_base": f"{url}/v1", "api_key": key, "client_kwargs": {"timeout": timeout}}
    if backend == "azure":
        return {"model_id": "dep", "azure_endpoint": url, "api_key": key, "api_version": "2024-10-21",
                "client_kwargs": {"timeout": timeout}}
    if backend == "inference-client":
        return {"model_id": f"{url}/v1", "token": key, "timeout": timeout}
    if backend == "litellm":
        return {"model_id": "openai/m", "api_base": f"{url}/v1", "api_key": key, "timeout": timeout}
    if backend == "litellm-router":
        params = {"model": "openai/m", "api_base": f"{url}/v1", "api_key": key, "timeout": timeout}
        return {"model_id": "g", "model_list": [{"model_name": "g", "litellm_params": params}]}
    if backend == "bedrock":
        from botocore.config import Config

        return {"model_id": BEDROCK_MODEL, "client_kwargs": {
            "endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "AKIDFAULTFAULTFAULT",
            "aws_secret_access_key": key, "config": Config(read_timeout=timeout, connect_timeout=timeout)}}
    raise AssertionError(backend)


@pytest.fixture
def fault_model(request: pytest.FixtureRequest, backend: Any, subject: str,
                monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Builds the model under test against a stand-in URL; its sleeps are recorded, not slept."""
    if backend.kind != "http":
        pytest.skip(f"{backend.name} is not reached over HTTP: transport faults do not apply")
    declare(request.node, "fault-injector")
    from harness.backends.registry import load_smolagents_class

    cls = backend.load() if subject == "adapters" else load_smolagents_class(backend)
    delays: list[float] = []

    def build(url: str, timeout: float = TIMEOUT) -> Any:
        model = cls(**_target(backend.name, url, timeout))
        if hasattr(model, "_sleep"):
            model._sleep = delays.append
        else:
            monkeypatch.setattr(time, "sleep", delays.append)  # another retry loop sleeps here
        model.delays = delays
        return model

    return build


@pytest.mark.parametrize("fault_name", list(FAULTS))
@pytest.mark.clause("errors.bounded-retry", "errors.typed-with-provider-message")
def test_fault(fault_name: str, backend: Any, fault_model: Callable[..., Any], weather_tool: Any) -> None:
    fault = FAULTS[fault_name]
    if fault.only and backend.name not in fault.only:
        pytest.skip(f"{fault_name} is a fault of {', '.join(fault.only)} only")
    wire = _wire(backend.name)
    stream = fault.stream or (wire == "bedrock" and fault.extra.get("bedrock_stream", False))
    tools = [weather_tool] if fault.tools else None
    from urllib.parse import urlsplit

    from harness.recording.cassettes import block_network, hub_clients_online

    with FaultInjector(fault.replies(wire)) as server, hub_clients_online(), block_network(
            f"backend {backend.name}, fault {fault_name}", allow=("127.0.0.1", urlsplit(server.url).port or 80)):
        model = fault_model(server.url, fault.timeout)
        error: BaseException | None = None
        result = None
        try:
            if stream:
                deltas = list(model.generate_stream(PROMPT, tools_to_call_from=tools))
                result = "".join(d.content or "" for d in deltas)
            else:
                message = model.generate(PROMPT, tools_to_call_from=tools)
                result = message.content
        except Exception as exc:  # noqa: BLE001 - judged below
            error = exc
        attempts = len(server.requests)
    from harness.contract.errors import BackendError

    if fault.delays is not None:
        assert error is None, f"{fault_name}: expected success after a retry, got {type(error).__name__}: {error}"
        assert result == ANSWER
        assert fault.delays(model.delays), f"{fault_name}: delays {model.delays}"
        assert attempts == fault.attempts
        return
    assert error is not None, f"{fault_name}: returned {result!r} as a complete answer"
    raw = f"{type(error).__module__}.{type(error).__name__}"
    assert isinstance(error, BackendError), f"{fault_name}: raw {raw}: {error}"
    text = str(error)
    kinds = fault.kinds.get(backend.name, (fault.kind,))
    assert error.kind in kinds, f"{fault_name}: kind {error.kind!r}, expected {kinds}: {text}"
    assert backend.name in text
    if fault.status is not None:
        assert error.status == fault.status and f"status={fault.status}" in text, text
    if fault.provider_message:
        assert PROVIDER_MESSAGE in text, text
        assert REQUEST_ID in text, text
    expected_attempts = fault.attempts if error.kind == fault.kind else (MAX_ATTEMPTS if error.kind in RETRYABLE else 1)
    assert attempts == expected_attempts, f"{fault_name}: {attempts} attempts, expected {expected_attempts}"
    assert sum(model.delays) <= model.max_total_wait

