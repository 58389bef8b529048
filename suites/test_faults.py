"""Faults at the transport: every one ends in a typed error or a bounded retry, never a raw SDK error.

Each case runs the backend's real SDK against ``harness.recording.fault_injector.FaultInjector``, a loopback
stand-in that misbehaves as scripted (the one fake the project allows). Sleeping is patched and
the delays asserted: a retry honours Retry-After up to the per-call budget, errors that cannot
succeed on retry are tried once, and a cut or malformed answer is an error, not a shorter answer.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from wires import ANSWER, PROVIDER_MESSAGE, REQUEST_ID, STAND_IN_KEY, WIRES, WireLens, lens_of

from conftest import mark_backend_reached
from harness.backends.registry import Target
from harness.plugin.answers import declare
from harness.recording.fault_injector import FaultInjector, Reply, retry_after_date
from oracles import chain_of, names, unnamed_cause

PROMPT = [{"role": "user", "content": "Say hello."}]
TIMEOUT = 5.0  # the client's read timeout against the stand-in, seconds (generous: the machine may be busy)
SHORT_TIMEOUT = 0.1  # the timeout fault's, so that four attempts stay quick (its stall is five times this)
STAND_IN_MODEL = "m"


# -- the faults --------------------------------------------------------------------------------

@dataclass
class Fault:
    """A scripted misbehaviour and what must come of it."""

    replies: Callable[[WireLens], list[Reply]]  # in the words of the wire
    stream: bool = False
    # success: the answer after retries, with these delays; else a typed error of this kind
    delays: Callable[[list[float]], bool] | None = None
    kind: str | None = None
    status: int | None = None
    attempts: int = 1
    provider_message: bool = False  # the provider's own message must be in str(exc)
    # the request id the answer carried must be in str(exc): None, where the provider's message must be; True or
    # False, whatever that is (an error event inside a 200 stream carries no request id of its own)
    request_id: bool | None = None
    # the backends whose SDK refuses the answer itself, keeping nothing that names its request (no header, no id):
    # the request id is not asked of them
    id_lost_by: tuple[str, ...] = ()
    # the answer carries no request id at all (no header, no id of its own): the error must name none either, but
    # on the backends whose SDK makes an id up for such an answer and keeps no trace of having done so
    unnamed: bool = False
    id_made_up_by: tuple[str, ...] = ()
    # words str(exc) must hold, each as words of its own (parity.names), besides its kind (a stopReason of the
    # wire's answer, the setting to change, say)
    names: tuple[str, ...] = ()
    # the credential the answer echoes is in no error's text: the one raised, nor any it was raised from
    credential_free: bool = False
    wire: str | None = None  # the wire the fault exists on (None: every wire)
    backends: tuple[str, ...] = ()  # the backends whose provider answers so (empty: every backend of the wire)
    # options of the backend's SDK client the model is built with (in its client_kwargs; `backends` names the
    # backends that hand them to that client)
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # the wire lens's answer the fault needs (a wire without one skips)
    tools: bool = False
    timeout: float = TIMEOUT
    # other kinds a backend may honestly report on a wire, with why (the SDK cannot tell the difference)
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the status an error of a kind must carry, where the wire allows several kinds (`kinds`) of which only some
    # keep the answer's status (an SDK's own synthetic 500 for what it could not read keeps none)
    status_of_kind: dict[str, int] = field(default_factory=dict)
    # words str(exc) must hold from an Azure deployment (a backend built with an azure_endpoint)
    azure_names: tuple[str, ...] = ()
    stop_sequences: list[str] | None = None  # the call's stop sequences
    clauses: tuple[str, ...] = ()  # the clauses this fault judges besides the fault suite's own


MAX_ATTEMPTS = 4  # ApiModel: 1 call + 3 retries
RETRYABLE = ("throttled", "server", "timeout", "connection")  # what a retry can cure

# the answers of each fault, in the words of the wire the backend speaks (suites/wires.py)
FAULTS: dict[str, Fault] = {
    "429-retry-after-seconds": Fault(
        lambda w: [w.error(429, w.throttled_code, {"Retry-After": "2"}), w.ok()], delays=lambda d: d == [2.0],
        attempts=2),
    "429-retry-after-http-date": Fault(
        # 10 s ahead, to the second: a back-off (about 1 s) instead of the date would not pass
        lambda w: [w.error(429, w.throttled_code, {"Retry-After": retry_after_date(10)}), w.ok()],
        delays=lambda d: len(d) == 1 and 8.0 <= d[0] <= 10.0, attempts=2),
    "429-retry-after-garbage": Fault(
        lambda w: [w.error(429, w.throttled_code, {"Retry-After": "soon-ish"}), w.ok()],
        delays=lambda d: len(d) == 1 and 0.5 <= d[0] <= 2.0, attempts=2),
    "429-retry-after-beyond-budget": Fault(
        lambda w: [w.error(429, w.throttled_code, {"Retry-After": "3600"})], kind="throttled", status=429,
        attempts=1, provider_message=True),
    "5xx-then-success": Fault(lambda w: [w.error(503, w.server_code), w.ok()], delays=lambda d: len(d) == 1,
                              attempts=2),
    "5xx-persistent": Fault(lambda w: [w.error(500, w.server_code)], kind="server", status=500,
                            attempts=MAX_ATTEMPTS, provider_message=True),
    "timeout": Fault(lambda w: [Reply(stall_before=SHORT_TIMEOUT * 5)], kind="timeout", attempts=MAX_ATTEMPTS,
                     timeout=SHORT_TIMEOUT),
    "reset-before-response": Fault(lambda w: [Reply(reset_before=True)], kind="connection", attempts=MAX_ATTEMPTS),
    "reset-mid-body": Fault(
        lambda w: [Reply(200, {"Content-Type": "application/json"}, [b'{"id": "x", "choi'], content_length=400,
                         then="reset")], kind="connection", attempts=MAX_ATTEMPTS,
        # botocore reads a body cut short as the JSON it could parse, so Bedrock sees a 200 with no output
        kinds={"bedrock": ("connection", "malformed")}),
    # a stream cut after its 200: the error names the request id the answer's headers carried
    "reset-mid-stream": Fault(lambda w: [w.stream(complete=False, then="reset")], stream=True, kind="connection",
                              attempts=1, request_id=True, clauses=("errors.request-id",)),
    "truncated-stream": Fault(lambda w: [w.stream(complete=False)], stream=True, kind="truncated", status=200,
                              attempts=1, request_id=True, clauses=("errors.request-id",)),
    "html-502": Fault(
        lambda w: [Reply.raw(b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", 502,
                             "text/html")], kind="server", status=502, attempts=MAX_ATTEMPTS),
    "malformed-json": Fault(lambda w: [Reply.raw(b'{"choices": [ {"mess')], kind="malformed", attempts=1),
    "non-utf8-body": Fault(lambda w: [Reply.raw(b"\xff\xfe\x00garbage\x80")], kind="malformed", attempts=1),
    "empty-choices": Fault(lambda w: [w.empty_output()], kind="malformed", attempts=1),
    "content-filter-400": Fault(lambda w: [w.content_filter_error()], kind="content_filter", status=400,
                                attempts=1, provider_message=True, needs="content_filter_error"),
    "length-truncated-tool-call": Fault(lambda w: [w.truncated_tool_call()], kind="truncated", status=200,
                                        attempts=1, tools=True, request_id=True, clauses=("errors.request-id",)),
    "authentication-401": Fault(lambda w: [w.error(w.auth_status, w.auth_code)], kind="auth", attempts=1,
                                provider_message=True),
}
# a stream that stops mid-way and stays silent: the client's read timeout must end it as a timeout (not as a
# cut or a server error), whatever layer of the SDK notices it
FAULTS["stall-mid-stream"] = Fault(lambda w: [w.stream(complete=False, then="hang")], stream=True, kind="timeout",
                                   attempts=1, timeout=SHORT_TIMEOUT)
# a proxy in front of the provider refusing a request too large for it (an HTML page, no JSON): final, not retried;
# litellm raises its generic APIError for a 413 of an OpenAI-compatible server, without the body as JSON (1.110: its
# message only "Error code: 413", the page in the response beside it)
FAULTS["html-413"] = Fault(
    lambda w: [Reply.raw(b"<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>",
                         413, "text/html", {"x-request-id": REQUEST_ID})], kind="validation", status=413, attempts=1,
    request_id=True, names=("Request Entity Too Large",))
# Hugging Face's router answers from behind AWS: an error whose only request id is its X-Amzn-Trace-Id header, which
# huggingface_hub names the request by (hf_raise_for_status: X-Request-Id, else X-Amzn-Trace-Id, else X-Amz-Cf-Id)
FAULTS["400-named-by-its-trace-id"] = Fault(
    lambda w: [Reply.json({"error": {"message": PROVIDER_MESSAGE, "type": "invalid_request_error", "code": None}}, 400,
                          {"X-Amzn-Trace-Id": REQUEST_ID})],
    kind="validation", status=400, attempts=1, provider_message=True, request_id=True, wire="openai",
    backends=("inference-client",), clauses=("errors.request-id",))
# Hugging Face's own servers put an error's message in an X-Error-Message header, the body empty (huggingface_hub
# reads it there: hf_raise_for_status)
FAULTS["500-message-in-its-header"] = Fault(
    lambda w: [Reply.raw(b"", 500, "text/plain", {"X-Error-Message": PROVIDER_MESSAGE, "x-request-id": REQUEST_ID})],
    kind="server", status=500, attempts=MAX_ATTEMPTS, provider_message=True, wire="openai",
    backends=("inference-client",))
# the faults only one wire has, run on the backends that speak it
for _lens in WIRES.values():
    for _name, _fault in _lens.own_faults().items():
        _replies = _fault.pop("replies")
        FAULTS[_name] = Fault(lambda w, r=_replies: r(), wire=_lens.name, **_fault)


# -- building each backend against the stand-in --------------------------------------------------

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

    def build(url: str, timeout: float = TIMEOUT, adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
              **settings: Any) -> Any:
        # the backend's own settings for the stand-in (its registration), not a table of backends here;
        # `adjust` reshapes them where a case needs more than the registration builds
        target = Target(mode="stand-in", base_url=f"{url}/v1", served_model_id=STAND_IN_MODEL,
                        api_key=STAND_IN_KEY, timeout=timeout)
        own = backend.settings(target)
        model = cls(**(adjust(own) if adjust else own), **settings)
        if hasattr(model, "_sleep"):
            model._sleep = delays.append
        else:
            monkeypatch.setattr(time, "sleep", delays.append)  # another retry loop sleeps here
        model.delays = delays
        return model

    return build


@pytest.mark.parametrize("fault_name", [pytest.param(name, marks=pytest.mark.clause(*fault.clauses)) if fault.clauses
                                        else name for name, fault in FAULTS.items()])
@pytest.mark.clause("errors.bounded-retry", "errors.typed-with-provider-message", "errors.credential-never-shown",
                   "errors.names-its-cause")
def test_fault(request: pytest.FixtureRequest, fault_name: str, backend: Any, fault_model: Callable[..., Any],
               weather_tool: Any) -> None:
    fault = FAULTS[fault_name]
    wire = lens_of(backend)
    if fault.wire is not None and fault.wire != wire.name:
        pytest.skip(f"{fault_name} is a fault of the {fault.wire} wire only")
    if fault.backends and backend.name not in fault.backends:
        pytest.skip(f"{fault_name} is an answer of {', '.join(fault.backends)} only")
    if fault.needs and getattr(wire, fault.needs)() is None:
        pytest.skip(f"{fault_name}: the {wire.name} wire has no such answer")
    stream = fault.stream or (fault.tools and wire.truncated_tool_call_streams)
    tools = [weather_tool] if fault.tools else None
    from urllib.parse import urlsplit

    from harness.recording.network import block_network, hub_clients_online

    with FaultInjector(fault.replies(wire)) as server, hub_clients_online(), block_network(
            f"backend {backend.name}, fault {fault_name}", allow=("127.0.0.1", urlsplit(server.url).port or 80)):
        if fault.client_kwargs:
            model = fault_model(server.url, fault.timeout, adjust=lambda own: {
                **own, "client_kwargs": {**(own.get("client_kwargs") or {}), **fault.client_kwargs}})
        else:
            model = fault_model(server.url, fault.timeout)
        error: BaseException | None = None
        result = None
        try:
            if stream:
                deltas = list(model.generate_stream(PROMPT, tools_to_call_from=tools,
                                                    stop_sequences=fault.stop_sequences))
                result = "".join(d.content or "" for d in deltas)
            else:
                message = model.generate(PROMPT, tools_to_call_from=tools, stop_sequences=fault.stop_sequences)
                result = message.content
        except Exception as exc:  # noqa: BLE001 - judged below
            error = exc
        attempts = len(server.requests)
    if attempts:
        mark_backend_reached(request.node)  # the stand-in answered the backend's own SDK
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
    kinds = fault.kinds.get(wire.name, (fault.kind,))
    assert error.kind in kinds, f"{fault_name}: kind {error.kind!r}, expected {kinds}: {text}"
    assert backend.name in text
    if fault.status is not None:
        assert error.status == fault.status and f"status={fault.status}" in text, text
    if error.kind in fault.status_of_kind:
        status = fault.status_of_kind[error.kind]
        assert error.status == status and f"status={status}" in text, \
            f"{fault_name}: an error of kind {error.kind}, status {error.status!r}; the answer's was {status}: {text}"
    if fault.provider_message:
        assert PROVIDER_MESSAGE in text, text
        # its text, not the object it came in (a dict's repr, a JSON object)
        assert f"'message': '{PROVIDER_MESSAGE}'" not in text and f'"message": "{PROVIDER_MESSAGE}"' not in text, \
            f"{fault_name}: the provider's message is given as the object it came in: {text}"
    if (fault.provider_message if fault.request_id is None else fault.request_id) and \
            backend.name not in fault.id_lost_by:
        assert REQUEST_ID in text, text
        assert error.request_id == REQUEST_ID, f"{fault_name}: request_id {error.request_id!r}, the answer's was " \
                                               f"{REQUEST_ID!r}: {text}"
    if fault.unnamed and backend.name not in fault.id_made_up_by:
        assert error.request_id is None and "request_id=-" in text, \
            f"{fault_name}: the error names a request id the answer never carried: {error.request_id!r}: {text}"
    azure = "azure_endpoint" in backend.settings(Target(mode="replay"))
    for word in fault.names + (fault.azure_names if azure else ()):
        assert names(text, word), f"{fault_name}: the error does not say {word!r} (as words of their own): {text}"
    if error.status is None and not fault.provider_message:  # no answer of the provider's: the exception, then
        unnamed = unnamed_cause(error, own=(BackendError,))
        assert unnamed is None, f"{fault_name}: {unnamed}"
    if fault.credential_free:
        echoed = [f"{type(e).__name__}: {e}" for e in chain_of(error)
                  if STAND_IN_KEY in str(e) or STAND_IN_KEY in repr(e.args)]
        assert not echoed, f"{fault_name}: the credential is in the error chain: {echoed}"
    # a stream that has begun is never sent again, whatever kind its error is; else the kind decides
    expected_attempts = (fault.attempts if error.kind == fault.kind or fault.stream
                         else (MAX_ATTEMPTS if error.kind in RETRYABLE else 1))
    assert attempts == expected_attempts, f"{fault_name}: {attempts} attempts, expected {expected_attempts}"
    assert sum(model.delays) <= model.max_total_wait


# how long the stand-in waits for a client to close a connection it holds open (a close comes at once when it comes)
RELEASE_WAIT = 5.0


@pytest.mark.parametrize("ending", ["closed-by-its-reader", "failed"])
@pytest.mark.clause("stream.released-when-closed")
def test_a_stream_that_ends_early_releases_its_connection(request: pytest.FixtureRequest, backend: Any,
                                                          fault_model: Callable[..., Any], ending: str) -> None:
    """A stream whose reader takes its first delta and then closes the generator (a caller that has what it needs),
    or which fails on an event it cannot read: the model closes the HTTP response, so the connection is released at
    once, not left open (and the provider generating) until the garbage collector runs (turned off here: a release
    by the collector is not the model's). The error of the failed stream is kept, as a caller that reports it does."""
    from urllib.parse import urlsplit

    from harness.recording.network import block_network, hub_clients_online

    wire = lens_of(backend)
    reply = wire.stream(complete=False, then="hold") if ending == "closed-by-its-reader" else \
        wire.broken_stream(then="hold")
    error: BaseException | None = None
    with FaultInjector([reply]) as server, hub_clients_online(), block_network(
            f"backend {backend.name}, a stream {ending}", allow=("127.0.0.1", urlsplit(server.url).port or 80)):
        model = fault_model(server.url, TIMEOUT)
        collecting = gc.isenabled()
        gc.disable()
        try:
            deltas = model.generate_stream(PROMPT)
            if ending == "closed-by-its-reader":
                first = next(iter(deltas))
                deltas.close()
            else:
                try:
                    list(deltas)
                except Exception as exc:  # noqa: BLE001 - kept, as a caller reporting it keeps it
                    error = exc
            mark_backend_reached(request.node)
            released = server.released.wait(RELEASE_WAIT)
        finally:
            if collecting:
                gc.enable()
    if ending == "closed-by-its-reader":
        assert first.content and ANSWER.startswith(first.content), f"first delta {first!r}"
    else:
        assert error is not None, "a stream with an event no reader can read came back as an answer"
    assert released, f"the connection was still open {RELEASE_WAIT} s after the stream {ending.replace('-', ' ')}"


@pytest.mark.clause("constructor.same-effect")
def test_retry_false_sends_one_request(backend: Any, fault_model: Callable[..., Any]) -> None:
    """retry=False (ApiModel's parameter): a 429 that a retry would cure is raised after one request.

    The retry policy itself is this project's (test_fault: which errors, how long); what retry=False
    means is smolagents' documented one: no retry, so no second request by any layer.
    """
    from urllib.parse import urlsplit

    from harness.recording.network import block_network, hub_clients_online

    wire = lens_of(backend)
    fault = FAULTS["429-retry-after-seconds"]
    with FaultInjector(fault.replies(wire)) as server, hub_clients_online(), block_network(
            f"backend {backend.name}, retry=False", allow=("127.0.0.1", urlsplit(server.url).port or 80)):
        model = fault_model(server.url, fault.timeout, retry=False)
        outcome = "answered"
        try:
            model.generate(PROMPT)
        except Exception as exc:  # noqa: BLE001 - judged below
            outcome = f"raised {type(exc).__name__}: {str(exc)[:200]}"
        attempts = len(server.requests)
    assert attempts == 1, f"retry=False sent {attempts} requests for one 429, then {outcome}"
    assert outcome != "answered", "retry=False answered after a 429: something retried"


# the Retry-After of the group's 429s, seconds: the Router cools each deployment down for as long, in real time
# (the retries' own waits are not slept). Long enough that no cooldown ends inside the check on a busy machine (3 s
# did), short enough that three waits stay within the 30 s retry budget of one call.
COOLDOWN = 9


# litellm keeps every Router's callbacks (its cooldown and usage tracking among them) in module-wide lists and silently
# drops a new one past its MAX_CALLBACKS: after the Routers of earlier checks in the same process, a new Router would
# neither cool down nor count usage. The Router checks start from empty lists; monkeypatch puts the old ones back.
_LITELLM_CALLBACK_LISTS = ("input_callback", "success_callback", "failure_callback", "_async_success_callback",
                           "_async_failure_callback", "callbacks")


@pytest.fixture
def fresh_litellm_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    for name in _LITELLM_CALLBACK_LISTS:
        monkeypatch.setattr(litellm, name, [])


def _refused_call(request: pytest.FixtureRequest, backend: Any, fault_model: Callable[..., Any], replies: list[Any],
                  adjust: Callable[[dict[str, Any]], dict[str, Any]], purpose: str,
                  answered_first: bool = False) -> tuple[Any, Any, Any, int]:
    """Build the backend (its settings changed by ``adjust``) against a stand-in answering ``replies``, the
    network closed but to it; with ``answered_first`` make one call that must be answered; then one call that
    must raise a BackendError. Returns (the model, the first answer or None, the error, the requests the stand-in
    received)."""
    from urllib.parse import urlsplit

    from harness.contract.errors import BackendError
    from harness.recording.network import block_network, hub_clients_online

    first = None
    with FaultInjector(replies) as server, hub_clients_online(), block_network(
            f"backend {backend.name}, {purpose}", allow=("127.0.0.1", urlsplit(server.url).port or 80)):
        model = fault_model(server.url, TIMEOUT, adjust=adjust)
        if answered_first:
            first = model.generate(PROMPT)
        error: BaseException | None = None
        try:
            model.generate(PROMPT)
        except Exception as exc:  # noqa: BLE001 - judged below
            error = exc
        attempts = len(server.requests)
    if attempts:
        mark_backend_reached(request.node)
    assert isinstance(error, BackendError), f"raw {type(error).__module__}.{type(error).__name__}: {error}"
    return model, first, error, attempts


@pytest.mark.clause("errors.group-cooling-down", "errors.bounded-retry", "errors.names-its-cause")
def test_router_group_cooling_down(request: pytest.FixtureRequest, backend: Any,
                                   fault_model: Callable[..., Any], fresh_litellm_callbacks: None) -> None:
    """A Router group of two deployments that both answer 429 with Retry-After: the Router cools each down
    and then refuses the call itself. The caller gets a throttled error naming the backend, each retry waits
    the Retry-After, then the cooldown, and no cooled-down deployment is called again."""

    def two_deployments(settings: dict[str, Any]) -> dict[str, Any]:
        if "model_list" not in settings:
            pytest.skip(f"{backend.name} is built without a Router's model_list: no group to cool down")
        (deployment,) = settings["model_list"]
        # the same stand-in twice, told apart by their ids (the Router otherwise reads them as one)
        group = [{**deployment, "model_info": {"id": f"deployment-{n}"}} for n in (1, 2)]
        return {**settings, "model_list": group}

    wire = lens_of(backend)
    model, _, error, attempts = _refused_call(
        request, backend, fault_model, [wire.error(429, wire.throttled_code, {"Retry-After": str(COOLDOWN)})],
        two_deployments, "a group cooling down")
    text = str(error)
    assert error.kind == "throttled" and error.status == 429 and "status=429" in text, text
    assert backend.name in text and "cool" in text.lower(), f"the error does not say the group is cooling down: {text}"
    from harness.contract.errors import BackendError

    unnamed = unnamed_cause(error, own=(BackendError,))  # the Router's own words: which group, for how long
    assert unnamed is None, unnamed
    assert attempts == 2, f"{attempts} requests: each deployment once, none while it cools down"
    # two retries after each deployment's 429, then one after the Router's own refusal: all wait COOLDOWN
    assert model.delays == [float(COOLDOWN)] * (MAX_ATTEMPTS - 1), f"waited {model.delays}, expected {COOLDOWN} s each"


@pytest.mark.clause("errors.group-cooling-down", "errors.names-its-cause")
def test_router_group_limit_reached(request: pytest.FixtureRequest, backend: Any,
                                    fault_model: Callable[..., Any], fresh_litellm_callbacks: None) -> None:
    """A Router group whose one deployment may take one request a minute (rpm 1, usage-based routing): the
    first call is answered, the second is refused by the Router itself, as a throttled error naming the
    backend, and never reaches the provider."""

    def one_request_a_minute(settings: dict[str, Any]) -> dict[str, Any]:
        if "model_list" not in settings:
            pytest.skip(f"{backend.name} is built without a Router's model_list: no group limit to reach")
        (deployment,) = settings["model_list"]
        limited = {**deployment, "litellm_params": {**deployment["litellm_params"], "rpm": 1}}
        options = {**(settings.get("client_kwargs") or {}), "routing_strategy": "usage-based-routing-v2"}
        return {**settings, "model_list": [limited], "client_kwargs": options}

    model, first, error, attempts = _refused_call(
        request, backend, fault_model, [lens_of(backend).ok()], one_request_a_minute, "a group limit reached",
        answered_first=True)
    assert first.content == ANSWER
    text = str(error)
    assert error.kind == "throttled" and error.status == 429 and "status=429" in text, text
    assert backend.name in text, text
    from harness.contract.errors import BackendError

    unnamed = unnamed_cause(error, own=(BackendError,))  # the Router's own words: which group, which limit
    assert unnamed is None, unnamed
    assert attempts == 1, f"{attempts} requests: the second call went past the group's limit"
    assert sum(model.delays) <= model.max_total_wait

# where the AWS chain reads a credential from (boto3's credentials guide; AWS_BEARER_TOKEN_BEDROCK: Bedrock's API
# keys), and the parameter a model is given one in
CREDENTIAL_SOURCES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "client_kwargs")


@pytest.mark.clause("errors.no-credentials")
def test_no_credentials_anywhere(request: pytest.FixtureRequest, backend: Any, fault_model: Callable[..., Any],
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """A Bedrock model built without credentials, where the AWS chain finds none either (no variables, empty
    config and credentials files, no instance metadata): the call fails as an error of kind auth naming the
    backend and where a credential is read from (the AWS variables of a key, a profile and a Bedrock API key, and
    the model's client_kwargs), before any request is sent, and is not retried."""


    def without_keys(settings: dict[str, Any]) -> dict[str, Any]:
        options = settings.get("client_kwargs") or {}
        if "aws_secret_access_key" not in options:
            pytest.skip(f"{backend.name} is not built with AWS credentials: none to leave out")
        kept = {k: v for k, v in options.items() if k not in ("aws_access_key_id", "aws_secret_access_key")}
        return {**settings, "client_kwargs": kept}

    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    (tmp_path / "config").write_text("")
    (tmp_path / "credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask for

    model, _, error, attempts = _refused_call(request, backend, fault_model, [lens_of(backend).ok()], without_keys,
                                              "no credentials")
    text = str(error)
    assert error.kind == "auth" and "kind=auth" in text, text
    assert backend.name in text, text
    unnamed = [name for name in CREDENTIAL_SOURCES if not names(text, name)]
    assert not unnamed, f"the error does not say where a credential is read from: {unnamed} unnamed: {text}"
    assert attempts == 0, f"{attempts} requests sent without credentials"
    assert model.delays == [], f"retried without credentials, waiting {model.delays}"
