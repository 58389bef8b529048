"""The pytest face, its fixtures: the ``model`` the suites use (built per backend and subject), ``backend``,
``capture``, ``wire``, ``observe`` and the session's local server and embedded model."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.backends.registry import BackendSpec, Target, get_backend
from harness.contract.errors import HarnessError
from harness.contract.secrets import scrubbed_logs
from harness.plugin.answers import declare
from harness.plugin.options import CUSTOM_MODEL, LOCAL_SERVER, MESSAGE_TYPES
from harness.plugin.replay import _construct, _http_factory
from harness.recording.capture import Capture, WireCall, capture_callable, capture_chat_template, capture_http
from harness.recording.cassettes import DEFAULT_SERVER
from harness.wire.patching import patched

# What a suites run needs from the environment: litellm's bundled cost map (no fetch at import)
# and huggingface_hub offline (models load from the local cache only). Set only for the length
# of a run that uses a backend, never at import: the plugin loads in every pytest session.
RUN_ENVIRONMENT = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="session")
def run_environment() -> Iterator[None]:
    """RUN_ENVIRONMENT for the rest of the session (values the user set win), restored at its end."""
    import sys

    saved = {name: os.environ.get(name) for name in RUN_ENVIRONMENT}
    for name, value in RUN_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    with contextlib.ExitStack() as stack:
        stack.enter_context(scrubbed_logs())  # an SDK's debug log may print what it sent or received
        hub = sys.modules.get("huggingface_hub.constants")  # read at import: patch it if already imported
        if hub is not None and os.environ["HF_HUB_OFFLINE"] == "1":
            stack.enter_context(patched((hub, "HF_HUB_OFFLINE", True)))
        try:
            yield
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old


@pytest.fixture
def backend(backend_name: str, run_environment: None) -> BackendSpec:
    """The backend under test (one parametrisation per --backend name)."""
    spec = get_backend(backend_name)
    missing = spec.missing_modules()
    if missing:
        pytest.skip(f"{backend_name}: requires {', '.join(missing)}; pip install 'model-conformance[{spec.extra}]'")
    return spec


@pytest.fixture(scope="session")
def harness_mode(pytestconfig: pytest.Config) -> str:
    """replay, record or live."""
    return str(pytestconfig.getoption("--mode"))


@pytest.fixture(scope="session")
def subject(pytestconfig: pytest.Config) -> str:
    """adapters or smolagents."""
    return str(pytestconfig.getoption("--subject"))


@pytest.fixture(scope="session")
def local_server(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The local OpenAI-compatible server named by --server, started once, stopped at the end."""
    from harness.servers.catalog import make_server

    server = make_server(pytestconfig.getoption("--server") or DEFAULT_SERVER)
    server.start()
    pytestconfig.stash[LOCAL_SERVER] = (server.base_url, server.model_id)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedded_model_dir() -> str:
    """Path of the embedded model's local copy (fetched once into the cache)."""
    from harness.servers.embedded import embedded_model

    return str(embedded_model().model_dir)


_ENGINES: dict[tuple[str, str], Any] = {}


_SHARED_ENGINES: dict[str, Any] = {}


@contextlib.contextmanager
def _sharing_engine(spec: BackendSpec) -> Iterator[None]:
    """While a model is built, its engine class hands out one instance per set of arguments."""
    if not spec.shared_engine:
        yield
        return
    import importlib

    module_name, _, attribute = spec.shared_engine.partition(":")
    module = importlib.import_module(module_name)
    engine_class = getattr(module, attribute)

    def shared(*args: Any, **kwargs: Any) -> Any:
        key = f"{spec.shared_engine}{args!r}{sorted(kwargs.items())!r}"
        if key not in _SHARED_ENGINES:
            _SHARED_ENGINES[key] = engine_class(*args, **kwargs)
        return _SHARED_ENGINES[key]

    with patched((module, attribute, shared)):
        yield


def _custom_factory(
    request: pytest.FixtureRequest, capture: Capture, stack: contextlib.ExitStack
) -> Callable[..., Any]:
    """Builds the user's model (--model-factory), observed at whatever can be seen of its requests."""
    from harness.backends.custom import (
        CUSTOM,
        CallableModel,
        UnsupportedSettings,
        build_custom_model,
        custom_capabilities,
        missing_reason,
    )

    config = request.config
    origin = f"--model-factory={config.getoption('--model-factory')}"
    declare(request.node, "target")  # your model answers every call, whatever --mode says
    stack.enter_context(capture_http(capture))  # it may call an endpoint: its HTTP requests are its wire

    def build(**overrides: Any) -> Any:
        try:
            if overrides:
                model = build_custom_model(config.stash[CUSTOM_MODEL], overrides, origin)
            else:
                if (CUSTOM, "") not in _ENGINES:
                    _ENGINES[(CUSTOM, "")] = build_custom_model(config.stash[CUSTOM_MODEL], {}, origin)
                model = _ENGINES[(CUSTOM, "")]
        except UnsupportedSettings as exc:
            pytest.skip(f"{CUSTOM}: {exc}")
        except HarnessError as exc:
            pytest.fail(f"{CUSTOM}: {exc}", pytrace=False)
        _watch_inherited(model, request.node)
        if isinstance(model, CallableModel):
            stack.enter_context(capture_callable(model, capture))
        else:
            tokenizer = getattr(model, "tokenizer", None) or getattr(model, "processor", None)
            if tokenizer is not None and hasattr(tokenizer, "apply_chat_template"):
                stack.enter_context(capture_chat_template(tokenizer, capture))
        return model

    default = build()
    spec = get_backend(CUSTOM)
    spec.capabilities = custom_capabilities(default)  # what the suites read from `backend`, as for any backend
    for marker in request.node.iter_markers("requires"):
        for capability in marker.args:
            if capability not in spec.capabilities:
                pytest.skip(f"{CUSTOM}: {missing_reason(default, capability)}")
    return build


@pytest.fixture
def capture() -> Capture:
    """Requests sent during this test (HTTP bodies or chat-template inputs)."""
    return Capture()


@pytest.fixture
def message_types(request: pytest.FixtureRequest) -> str:
    """dicts, or smolagents_types: the suite's conversations given as smolagents' own objects."""
    return str(getattr(request, "param", MESSAGE_TYPES[0]))


@pytest.fixture
def model_factory(
    request: pytest.FixtureRequest, backend: BackendSpec, subject: str, harness_mode: str, capture: Capture,
    message_types: str,
) -> Iterator[Callable[..., Any]]:
    """Builds the model under test; keyword arguments override the backend's suite settings."""
    node = request.node
    if backend.kind != "custom":
        for marker in node.iter_markers("requires"):
            for capability in marker.args:
                if capability not in backend.capabilities:
                    pytest.skip(f"{backend.name} does not support {capability!r}")
    with contextlib.ExitStack() as stack:
        if backend.kind == "custom":
            build = _custom_factory(request, capture, stack)
        elif backend.kind == "local":
            build = _local_factory(request, backend, subject, capture, stack)
        else:
            build = _http_factory(request, backend, subject, harness_mode, capture, stack)
        if message_types == MESSAGE_TYPES[1]:
            yield lambda **overrides: SmolagentsTyped(build(**overrides))
        else:
            yield build


@pytest.fixture
def model(model_factory: Callable[..., Any]) -> Any:
    """The model under test, wired to cassettes (HTTP backends) or the embedded model (local engines)."""
    return model_factory()


def _local_factory(
    request: pytest.FixtureRequest, spec: BackendSpec, subject: str, capture: Capture, stack: contextlib.ExitStack
) -> Callable[..., Any]:
    reason = spec.unavailable_reason()
    if reason:
        pytest.skip(f"{spec.name}: {reason}")
    model_dir = request.getfixturevalue("embedded_model_dir")
    target = Target(mode="live", model_dir=model_dir)
    declare(request.node, "target")  # the in-process engine generates for real in every mode

    def build(**overrides: Any) -> Any:
        key = (spec.name, subject)
        with _sharing_engine(spec):
            if overrides:
                engine = _construct(spec, subject, target, overrides)
            else:
                if key not in _ENGINES:
                    _ENGINES[key] = _construct(spec, subject, target, {})
                engine = _ENGINES[key]
        tokenizer = getattr(engine, "tokenizer", None) or getattr(engine, "processor", None)
        if tokenizer is not None:
            stack.enter_context(capture_chat_template(tokenizer, capture))
        return engine

    return build


def _to_smolagents(messages: Any) -> Any:
    """The same conversation as smolagents' ChatMessage/MessageRole/ChatMessageToolCall objects."""
    import smolagents.models as sm

    if not isinstance(messages, list):
        return messages
    out: list[Any] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in sm.MessageRole.roles():
            out.append(message)  # what smolagents' types cannot express (an unknown role) stays as it is
            continue
        calls = [sm.ChatMessageToolCall(id=c["id"], type=c.get("type", "function"),
                                        function=sm.ChatMessageToolCallFunction(**c["function"]))
                 for c in message.get("tool_calls") or []]
        out.append(sm.ChatMessage(role=sm.MessageRole(message["role"]), content=message.get("content"),
                                  tool_calls=calls or None))
    return out


class SmolagentsTyped:
    """The model under test, handed every conversation in smolagents' own types."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        return self._model(_to_smolagents(messages), *args, **kwargs)

    def generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        return self._model.generate(_to_smolagents(messages), *args, **kwargs)

    def generate_stream(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        return self._model.generate_stream(_to_smolagents(messages), *args, **kwargs)


@pytest.fixture
def wire(backend: BackendSpec, capture: Capture) -> Any:
    """The outgoing requests of this test, read in the backend's wire format (or by its own reader)."""

    class Wire:
        def calls(self) -> list[WireCall]:
            return capture.calls(backend.wire_format, backend.request_reader)

        def last(self) -> WireCall:
            calls = self.calls()
            if not calls and backend.kind == "custom":
                pytest.skip("custom: the request this model sends cannot be observed (no chat template on its "
                            "`tokenizer`, no HTTP through httpx or botocore, not a plain callable); the checks "
                            "of its reply before this point passed")
            return capture.last(backend.wire_format, backend.request_reader)

    return Wire()


@pytest.fixture
def observe(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Note something the backend did that the contract had to correct (shown in the report)."""

    def note(text: str) -> None:
        request.node.user_properties.append(("observation", text))

    return note


INHERITED = pytest.StashKey[list[str]]()  # smolagents' Model methods a custom model inherited and a check called


def _watch_inherited(model: Any, node: pytest.Item) -> None:
    """Note on the node each method of smolagents' ``Model`` that the user's model inherits unchanged and runs."""
    import sys

    models = sys.modules.get("smolagents.models")
    base = getattr(models, "Model", None)
    if base is None or not isinstance(model, base):
        return
    called = node.stash.setdefault(INHERITED, [])
    for name, function in vars(base).items():
        if name.startswith("__") or not callable(function) or getattr(type(model), name, None) is not function:
            continue

        with contextlib.suppress(AttributeError, TypeError):
            setattr(model, name, _watched(name, getattr(model, name), called))


def _watched(name: str, bound: Callable[..., Any], called: list[str]) -> Callable[..., Any]:
    def watched(*args: Any, **kwargs: Any) -> Any:
        if name not in called:
            called.append(name)
        return bound(*args, **kwargs)

    return watched


def pytest_unconfigure(config: pytest.Config) -> None:
    # engines (vllm's runs in a child process) shut down here, while logging still works
    import gc

    _ENGINES.clear()
    _SHARED_ENGINES.clear()
    gc.collect()
