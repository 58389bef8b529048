"""The pytest plugin: ``pytest suites --backend=azure`` and the ``model`` fixture the suites use."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import reproduce
from harness.answers import answered_by, declare, public_url
from harness.capture import Capture, WireCall, capture_callable, capture_chat_template, capture_http
from harness.cassettes import (
    CLOUD_SERVER,
    DEFAULT_SERVER,
    LOCAL_SERVERS,
    MODES,
    SERVERS,
    block_network,
    cassette_path,
    check_cassette,
    hub_clients_online,
    make_vcr,
    provenance,
    record_command,
    validate_mode,
    validate_server,
)
from harness.clauses import row_fields as clause_fields
from harness.errors import HarnessError
from harness.patching import patched
from harness.played import PlayedRequest, noting_played
from harness.recording import RECORD_MODES, Recording, default_aside_root, validate_record_mode
from harness.registry import BackendSpec, Target, get_backend, load_smolagents_class, register, resolve_backends
from harness.run_log import RESULT_PROPERTY
from harness.secrets import scrubbed_logs

BACKENDS = pytest.StashKey[list[str]]()
CUSTOM_MODEL = pytest.StashKey[Any]()  # what --model-factory names
ENDPOINT = pytest.StashKey["Endpoint | None"]()
LOCAL_SERVER = pytest.StashKey[tuple[str, str]]()  # the started local server's base URL and model id
PLAYED = pytest.StashKey[list[PlayedRequest]]()  # the requests replay answered in one test
# The message-types dimension: every conversation of a suite is also given as smolagents' own
# ChatMessage/MessageRole objects. The same cassette replays for both forms (matching is by
# method, path and order); what the request must contain is asserted either way.
MESSAGE_TYPES = ("dicts", "smolagents_types")
# live engines get the dimension in these suites only (each extra check there costs generation time)
LIVE_TYPED_SUITES = frozenset({"message_format", "role_conversion"})
# suites whose conversations are already smolagents' types (built by real agents)
UNTYPED_SUITES = frozenset({"agents"})
SUBJECTS = ("adapters", "smolagents")

# What a suites run needs from the environment: litellm's bundled cost map (no fetch at import)
# and huggingface_hub offline (models load from the local cache only). Set only for the length
# of a run that uses a backend, never at import: the plugin loads in every pytest session.
RUN_ENVIRONMENT = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}

# the clause marker, --level and the verdict per level; the session's preflight in live and record
# mode; rows written as each check finishes, and the progress line
pytest_plugins = ["harness.clauses", "harness.preflight", "harness.run_log"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model-conformance", "model contract conformance")
    group.addoption(
        "--backend",
        default=None,
        help="backend(s) to test: a name, a comma list, or 'all' (default: all installed)",
    )
    group.addoption(
        "--subject",
        default="adapters",
        choices=SUBJECTS,
        help="adapters: this project's adapters (default); smolagents: the installed smolagents classes",
    )
    group.addoption(
        "--mode",
        default="replay",
        help="replay (default, no network), record (live, writes scrubbed cassettes) or live (writes nothing)",
    )
    group.addoption(
        "--server",
        default=None,
        help=f"the server the HTTP backends' cassettes come from: {', '.join(SERVERS)} (default: "
        f"{DEFAULT_SERVER}; record and live start that local server; a cloud backend records the real service)",
    )
    group.addoption(
        "--record-mode",
        default="all",
        help=f"with --mode record: all (default) re-records every cassette, once records only the missing ones "
        f"and replays the rest ({', '.join(RECORD_MODES)}); a cassette is replaced only by a passed test's "
        "clean, stamped recording",
    )
    group.addoption(
        "--cassette-dir",
        default=None,
        help="where cassettes live (default: <rootdir>/cassettes)",
    )
    group.addoption(
        "--model-factory",
        default=None,
        metavar="PKG.MODULE:ATTR",
        help="with --backend=custom: your model, as a Model subclass, an instance, a factory, or a plain "
        "callable custom_model(messages, stop_sequences=None) returning an object with .content",
    )
    group.addoption(
        "--base-url",
        default=None,
        help="--mode live: your OpenAI-compatible endpoint for the openai-wire backends instead of the local "
        "server (default: $OPENAI_BASE_URL)",
    )
    group.addoption(
        "--api-key",
        default=None,
        help="--mode live: the key for --base-url (default: $OPENAI_API_KEY; $HF_TOKEN for inference-client)",
    )
    group.addoption("--model-id", default=None, help="--mode live: the model id your endpoint serves")
    group.addoption(
        "--results",
        default=None,
        help="write one JSON line per suite check to this file (read by 'harness report')",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(capability): skip on backends without the capability")
    config.addinivalue_line("markers", "no_cassette: the test sends nothing, so replay needs no cassette")
    try:
        validate_mode(config.getoption("--mode"))
        validate_record_mode(config.getoption("--record-mode"))
        if config.getoption("--server") is not None:
            validate_server(config.getoption("--server"))
        explicit = config.getoption("--backend")
        explicit = _configure_custom(config, explicit)
        config.stash[ENDPOINT] = user_endpoint(config)
        config.stash[BACKENDS] = resolve_backends(explicit, require_installed=explicit not in (None, "all"))
        if config.getoption("--subject") == "smolagents":
            import importlib.util

            if importlib.util.find_spec("smolagents") is None:
                raise HarnessError(
                    "--subject smolagents requires smolagents. Install with: pip install 'model-conformance[test]'"
                )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None


def _configure_custom(config: pytest.Config, backends: str | None) -> str | None:
    """Register the ``custom`` backend when --model-factory names a model; return the --backend value."""
    from harness.custom import CUSTOM, FORMS, load_model_factory

    factory = config.getoption("--model-factory")
    names = [n.strip() for n in (backends or "").split(",") if n.strip()]
    if factory is None:
        if CUSTOM in names:
            raise HarnessError(f"--backend={CUSTOM} needs --model-factory=pkg.module:attr naming {FORMS}")
        return backends
    if names and CUSTOM not in names and "all" not in names:
        raise HarnessError(f"--model-factory is for --backend={CUSTOM}; --backend={backends} does not include it")
    if config.getoption("--subject") == "smolagents":
        raise HarnessError(f"--backend={CUSTOM} tests your own model; --subject smolagents does not apply to it")
    config.stash[CUSTOM_MODEL] = load_model_factory(factory)
    register(BackendSpec(
        name=CUSTOM, loader=lambda: None, extra="", modules=(), smolagents_class=None, kind=CUSTOM,  # type: ignore
        wire_format=CUSTOM, settings=lambda target: {}, description=f"your model: --model-factory={factory}",
    ))
    return backends or CUSTOM


@dataclass
class Endpoint:
    """The user's own OpenAI-compatible deployment, for --mode live instead of the local server."""

    base_url: str
    model_id: str
    api_key: str | None
    source: str  # where base_url came from


def user_endpoint(config: pytest.Config) -> Endpoint | None:
    """The endpoint --base-url (or $OPENAI_BASE_URL) names in --mode live, else None (the local server)."""
    options = {name: config.getoption(name) for name in ("--base-url", "--api-key", "--model-id")}
    mode = config.getoption("--mode")
    if mode != "live":
        given = [f"{k}" for k, v in options.items() if v]
        if given:
            raise HarnessError(f"{', '.join(given)} apply to --mode live only (this run is --mode {mode})")
        return None
    base_url, source = options["--base-url"], "--base-url"
    if not base_url and os.environ.get("OPENAI_BASE_URL"):
        base_url, source = os.environ["OPENAI_BASE_URL"], "$OPENAI_BASE_URL"
    if not base_url:
        if options["--api-key"] or options["--model-id"]:
            raise HarnessError("--api-key and --model-id name a model on your endpoint: give --base-url too "
                               "(or set OPENAI_BASE_URL)")
        return None
    if not base_url.startswith(("http://", "https://")):
        raise HarnessError(f"{source}={base_url!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
    if not options["--model-id"]:
        raise HarnessError(f"--mode live against {source}={base_url} needs --model-id, the model your endpoint serves")
    return Endpoint(base_url=base_url.rstrip("/"), model_id=options["--model-id"], api_key=options["--api-key"],
                    source=source)


def _endpoint_target(endpoint: Endpoint, spec: BackendSpec) -> Target:
    key = endpoint.api_key
    if key is None:
        variables = ("HF_TOKEN", "OPENAI_API_KEY") if spec.name == "inference-client" else ("OPENAI_API_KEY",)
        key = next((os.environ[v] for v in variables if os.environ.get(v)), None)
    # an endpoint without authentication still needs a non-empty key for the SDKs to send a request
    return Target(mode="live", base_url=endpoint.base_url, served_model_id=endpoint.model_id,
                  api_key=key or "no-key")


def pytest_report_header(config: pytest.Config) -> list[str]:
    backends: list[str] = config.stash.get(BACKENDS, [])
    endpoint = config.stash.get(ENDPOINT, None)
    served = f"endpoint={public_url(endpoint.base_url)}" if endpoint is not None else \
        f"server={config.getoption('--server') or DEFAULT_SERVER}"
    lines = [
        f"model-conformance: backends={','.join(backends)} "
        f"subject={config.getoption('--subject')} mode={config.getoption('--mode')} {served}"
    ]
    if endpoint is not None:
        lines.append(f"model-conformance: live target {public_url(endpoint.base_url)} (from {endpoint.source}), "
                     f"model {endpoint.model_id}, for the backends that run on the local server")
    if CUSTOM_MODEL in config.stash:
        lines.append(f"model-conformance: custom = --model-factory={config.getoption('--model-factory')} "
                     "(run live: your model answers every call)")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        names = metafunc.config.stash[BACKENDS]
        metafunc.parametrize("backend_name", names, ids=names, scope="function")
    if "message_types" in metafunc.fixturenames:
        import importlib.util

        suite = _suite_of(metafunc.definition)
        # without the second form the test keeps its plain id (the fixture's default is dicts)
        if suite not in UNTYPED_SUITES and importlib.util.find_spec("smolagents") is not None:
            metafunc.parametrize("message_types", MESSAGE_TYPES, ids=MESSAGE_TYPES, scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Live engines and custom models check smolagents-typed conversations only in the suites about messages."""
    keep = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("message_types") == MESSAGE_TYPES[1] and _suite_of(item) not in LIVE_TYPED_SUITES:
            try:
                kind = get_backend(params["backend_name"]).kind
            except (HarnessError, KeyError):
                kind = "local"
            if kind in ("local", "custom"):  # a model that generates for real: each extra check costs time
                continue
        keep.append(item)
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


def _cassette_of(item: pytest.Item, mode: str) -> Path | None:
    """The cassette a test reads or writes in ``mode`` (None: a local engine, no_cassette, or not run)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    try:
        spec = get_backend(params["backend_name"])
    except (HarnessError, KeyError):
        return None
    option = item.config.getoption("--server")
    server_name = server_of(spec, mode, option)
    if server_name is None or item.get_closest_marker("no_cassette") or (option and option != server_name):
        return None
    root = Path(item.config.getoption("--cassette-dir") or Path(str(item.config.rootpath)) / "cassettes")
    return cassette_path(root, server_name, spec.name, _suite_of(item), _cassette_name(item, spec.name))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Record mode says at the start how many existing cassettes it may replace (or keeps)."""
    config = session.config
    if config.getoption("--mode") != "record" or hasattr(config, "workerinput"):
        return
    paths = {p for p in (_cassette_of(item, "record") for item in session.items) if p is not None}
    existing = sum(1 for p in paths if p.exists())
    record_mode = config.getoption("--record-mode")
    if record_mode == "once":
        what = f"{existing} existing kept (replayed), {len(paths) - existing} to record"
    else:
        what = (f"{existing} existing will be replaced, each only by its test's passed, clean recording "
                "(--record-mode=once keeps them)")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = f"model-conformance: --mode record --record-mode={record_mode}: {len(paths)} cassettes, {what}"
    if reporter is not None:
        reporter.write_line(line)


def _suite_of(node: pytest.Item) -> str:
    stem = Path(str(node.path)).stem
    return stem[5:] if stem.startswith("test_") else stem


def _test_name(node: pytest.Item, backend: str) -> str:
    """The node's name without the backend's own parametrisation id (nor the default message types)."""
    name = _backend_test_name(node, backend)
    return name.replace(f"-{MESSAGE_TYPES[0]}", "", 1)


def _cassette_name(node: pytest.Item, backend: str) -> str:
    """The name of the node's cassette: one for both message types."""
    return _test_name(node, backend).replace(f"-{MESSAGE_TYPES[1]}", "", 1)


def _backend_test_name(node: pytest.Item, backend: str) -> str:
    name = node.name
    base = getattr(node, "originalname", name)
    if "[" not in name:
        return name
    ids = name[len(base) + 1 : -1]
    if ids == backend:
        return base
    if ids.startswith(backend + "-"):
        rest = ids[len(backend) + 1 :]
    elif ids.endswith("-" + backend):
        rest = ids[: -len(backend) - 1]
    else:
        rest = ids.replace(f"-{backend}-", "-")
    return f"{base}-{rest}"


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


def server_of(spec: BackendSpec, mode: str, option: str | None) -> str | None:
    """The server this backend's cassettes come from (None for a local engine, which has none).

    Replay reads the recordings of ``--server``; record and live start that local server, except
    for a cloud backend, which records the real service (its local-server cassettes are derived).
    """
    if spec.kind != "http":  # a local engine, or the user's own model
        return None
    if spec.live_target == "cloud" and mode != "replay":
        return CLOUD_SERVER
    return option or DEFAULT_SERVER


@pytest.fixture(scope="session")
def local_server(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The local OpenAI-compatible server named by --server, started once, stopped at the end."""
    from harness.server import make_server

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
    from harness.embedded import embedded_model

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


def _construct(spec: BackendSpec, subject: str, target: Target, overrides: dict[str, Any]) -> Any:
    if subject == "smolagents" and spec.smolagents_class is None:
        pytest.skip(f"{spec.name}: smolagents has no class for this backend (its registration names none)")
    cls = spec.load() if subject == "adapters" else load_smolagents_class(spec)
    settings = {**spec.settings(target), **overrides}
    if subject == "adapters":
        return cls(**settings)
    return reproduce.watch(cls(**settings), str(spec.smolagents_class), settings)  # for a failure's reproduction


def _custom_factory(
    request: pytest.FixtureRequest, capture: Capture, stack: contextlib.ExitStack
) -> Callable[..., Any]:
    """Builds the user's model (--model-factory), observed at whatever can be seen of its requests."""
    from harness.custom import (
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


# backend, subject -> its capture self-check (harness.capture_check), made once per session
CAPTURE_CHECKS: dict[tuple[str, str], Any] = {}


def _require_capture(spec: BackendSpec, subject: str, target: Target) -> None:
    """Refuse a backend whose requests would escape capture, checked before its first replayed test."""
    from harness.capture_check import check_capture

    key = (spec.name, subject)
    if key not in CAPTURE_CHECKS:
        CAPTURE_CHECKS[key] = check_capture(spec.name, lambda: _construct(spec, subject, target, {}))
    refused = CAPTURE_CHECKS[key].refused
    if refused:
        pytest.fail(refused, pytrace=False)


def _http_factory(
    request: pytest.FixtureRequest,
    spec: BackendSpec,
    subject: str,
    mode: str,
    capture: Capture,
    stack: contextlib.ExitStack,
) -> Callable[..., Any]:
    config = request.config
    node = request.node
    stack.enter_context(hub_clients_online())
    if node.get_closest_marker("no_cassette"):
        declare(node, "none")
        _require_capture(spec, subject, Target(mode="replay"))
        stack.enter_context(block_network(f"backend {spec.name} (a test without a cassette)"))
        stack.enter_context(capture_http(capture))
        return lambda **overrides: _construct(spec, subject, Target(mode="replay"), overrides)
    option = config.getoption("--server")
    server_name = server_of(spec, mode, option)
    assert server_name is not None
    if option and option != server_name:
        pytest.skip(f"{spec.name} records from the real service in {mode} mode; its {option} cassettes are "
                    f"derived by 'harness derive-cassettes'")
    if server_name == CLOUD_SERVER and spec.live_target != "cloud":
        pytest.skip(f"{spec.name} records from a local server ({', '.join(LOCAL_SERVERS)}), not from {CLOUD_SERVER}")
    root = Path(config.getoption("--cassette-dir") or Path(str(config.rootpath)) / "cassettes")
    path = cassette_path(root, server_name, spec.name, _suite_of(node), _cassette_name(node, spec.name))
    hosts: dict[str, str] = {}
    if mode == "record" and config.getoption("--record-mode") == "once" and path.exists():
        mode = "replay"  # --record-mode=once keeps an existing cassette: the test replays it
    if mode == "replay":
        if not path.exists():
            pytest.fail(
                f"missing cassette {path}\nrecord it with: {record_command(spec.name, node.nodeid, server_name)}",
                pytrace=False,
            )
        try:
            check_cassette(path)
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
        target = Target(mode=mode)
        _require_capture(spec, subject, target)
        stack.enter_context(block_network(f"backend {spec.name}, cassette {path}"))
    elif spec.live_target == "cloud":
        target = Target(mode=mode, api_key="")  # settings read the user's credentials from the environment
    elif mode == "live" and (endpoint := config.stash.get(ENDPOINT, None)) is not None:
        target = _endpoint_target(endpoint, spec)  # the user's deployment, not the local server
    else:
        server = request.getfixturevalue("local_server")
        target = Target(mode=mode, base_url=server.base_url, served_model_id=server.model_id)
        hosts = {server.base_url.split("//")[1].split("/")[0]: "127.0.0.1:8000"}
    recording = None
    if mode == "record":
        server_text = "the real service" if server_name == CLOUD_SERVER else request.getfixturevalue(
            "local_server").description
        recording = Recording(path, provenance(spec.name, subject, node.nodeid, server=server_text,
                                               server_name=server_name),
                              default_aside_root(Path(str(config.rootpath))), target.api_key)
        recording.start()  # written aside; the callback replaces the cassette only with a passed, clean recording
        stack.callback(_finish_recording, node, recording)
    declare(node, "cassette" if mode == "replay" else "target")
    if mode != "live":
        cassette = stack.enter_context(make_vcr(mode, hosts).use_cassette(str(recording.part if recording else path)))
        if mode == "replay":
            stack.enter_context(noting_played(cassette, str(path), node.stash.setdefault(PLAYED, [])))
    stack.enter_context(capture_http(capture))
    return lambda **overrides: _construct(spec, subject, target, overrides)


def played_requests(item: pytest.Item) -> list[PlayedRequest]:
    """The requests ``item`` sent that replay answered, each with the recorded request (empty outside replay)."""
    played: list[PlayedRequest] = item.stash.get(PLAYED, [])
    return list(played)


_PHASES = pytest.StashKey[dict[str, str]]()
_RECORDING_NOTE = "model_conformance_recording"
# lines saying which recordings were not kept (this process's own, and those xdist workers report)
_recording_notes: list[str] = []


def _finish_recording(node: pytest.Item, recording: Recording) -> None:
    phases = node.stash.get(_PHASES, {})
    outcome = phases.get("call") or ("failed in setup" if phases.get("setup") == "failed" else "was interrupted")
    line = recording.finish(outcome)
    for note in [*recording.notes, *([line] if line else [])]:
        _recording_notes.append(note)
        node.user_properties.append((_RECORDING_NOTE, note))  # the teardown report carries it to xdist's controller


def pytest_terminal_summary(terminalreporter: Any) -> None:
    _capture_check_summary(terminalreporter)
    if _recording_notes:
        terminalreporter.write_sep("-", "recordings not kept")
        for note in _recording_notes:
            terminalreporter.write_line(note)
        _recording_notes.clear()


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




def _redact_report(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Known credentials and credential-shaped text out of a report before anything writes it: the
    terminal, the log, JUnit XML (failure message, captured output and log), the results file."""
    from harness.secrets import scrub_text

    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        report.longrepr = (longrepr[0], longrepr[1], scrub_text(str(longrepr[2])))
    elif longrepr is not None:
        text = str(longrepr)
        clean = scrub_text(text)
        if clean != text:  # the formatted failure, as text: its structure held the credential
            report.longrepr = clean
    report.sections = [(title, scrub_text(content)) for title, content in report.sections]
    if isinstance(report, pytest.TestReport) and report.user_properties:  # JUnit XML writes them
        report.user_properties = [(k, scrub_text(v) if isinstance(v, str) else v) for k, v in report.user_properties]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome: Any = yield
    _redact_report(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    _redact_report(report)
    item.stash.setdefault(_PHASES, {})[report.when] = report.outcome  # read when a recording finishes
    callspec = getattr(item, "callspec", None)
    backend_name = callspec.params.get("backend_name") if callspec is not None else None
    if not backend_name or not item.config.getoption("--results"):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        message = ""
        if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2])
        elif report.outcome == "failed":
            message = _first_line(report.longreprtext)
            inherited = _smolagents_blame(item, call) if backend_name == "custom" else None
            if inherited:
                message = f"{inherited}: {message}"
                report.sections.append(("model-conformance", inherited))
        row = {
            "backend": backend_name,
            "server": _row_server(item, backend_name),
            "subject": item.config.getoption("--subject"),
            **row_target(item.config, backend_name),
            "answered_by": answered_by(item),
            "suite": _suite_of(item),
            "clause": _test_name(item, backend_name),
            **clause_fields(item),
            "outcome": report.outcome,
            "message": message,
            "duration_s": round(report.duration, 4),
            "observations": [v for k, v in item.user_properties if k == "observation"],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        extra: dict[str, Any] = {}
        if report.outcome == "failed" and any(k == "request_differs" and v for k, v in item.user_properties):
            extra["request_differs"] = True  # replay answered with a recording of another request
        if report.outcome == "failed" and row["subject"] == "smolagents":
            extra["reproduction"] = _reproduction(item, backend_name)
        if extra:
            row["extra"] = extra
        # a new list: the report shares item.user_properties, which the next phase's report would inherit;
        # the row travels inside the report so that pytest-xdist brings it back to the controller
        report.user_properties = [*report.user_properties, (RESULT_PROPERTY, row)]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == _RECORDING_NOTE and report.when == "teardown" and getattr(report, "node", None) is not None:
            _recording_notes.append(str(value))  # from an xdist worker (a local one is noted already)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    reproduce.start_check()  # a failure's reproduction names the models of its own check only


def _reproduction(item: pytest.Item, backend_name: str) -> list[str]:
    """How to run a failed case of smolagents' class again: a python -c line where it can be, the pytest line."""
    config = item.config
    options = [f"--backend={backend_name}", "--subject=smolagents"]
    server = _row_server(item, backend_name)
    if server:
        options.append(f"--server={server}")
    if config.getoption("--mode") != "replay":
        options.append(f"--mode={config.getoption('--mode')}")
    python = reproduce.python_line()
    return [*([python] if python else []), reproduce.pytest_line(item.nodeid, options)]


def row_target(config: pytest.Config, backend_name: str) -> dict[str, Any]:
    """The mode a check really ran in and what it pointed at: target label, endpoint (no secrets), model id.

    The user's own model always runs live (it answers every call itself), so does an in-process engine.
    """
    mode = str(config.getoption("--mode"))
    try:
        spec = get_backend(backend_name)
    except HarnessError:
        return {"mode": mode, "target": None, "endpoint": None, "model": None}
    if spec.kind == "custom":
        return {"mode": "live", "target": f"model-factory={config.getoption('--model-factory')}",
                "endpoint": None, "model": None}
    if spec.kind != "http":
        from harness.embedded import MODEL_NAME

        return {"mode": "live", "target": f"engine={backend_name}", "endpoint": None, "model": MODEL_NAME}
    server = server_of(spec, mode, config.getoption("--server"))
    if mode == "replay":
        return {"mode": mode, "target": f"cassettes={server}", "endpoint": None, "model": None}
    if server == CLOUD_SERVER:
        endpoint, model = cloud_target(spec, mode)
        return {"mode": mode, "target": f"cloud={endpoint or backend_name}", "endpoint": endpoint, "model": model}
    user = config.stash.get(ENDPOINT, None)
    if mode == "live" and user is not None:
        url = public_url(user.base_url)
        return {"mode": mode, "target": f"endpoint={url}", "endpoint": url, "model": user.model_id}
    base_url, model = config.stash.get(LOCAL_SERVER, (None, None))
    return {"mode": mode, "target": f"server={server}", "endpoint": public_url(base_url), "model": model}


def cloud_target(spec: BackendSpec, mode: str) -> tuple[str | None, str | None]:
    """The cloud service's endpoint (no secrets) and model id as the backend's settings read them, or Nones."""
    try:
        settings = spec.settings(Target(mode=mode, api_key=""))
    except Exception:  # settings that are missing are the preflight's to report
        return None, None
    endpoint = settings.get("azure_endpoint") or settings.get("api_base")
    region = (settings.get("client_kwargs") or {}).get("region_name")
    if not endpoint and region:
        endpoint = f"https://bedrock-runtime.{region}.amazonaws.com"
    return public_url(endpoint), settings.get("model_id")


def _row_server(item: pytest.Item, backend_name: str) -> str | None:
    """The server a result came from: None for a local engine, the user's own endpoint (its URL is the row's
    target) or a backend that is not registered."""
    try:
        spec = get_backend(backend_name)
    except HarnessError:
        return None
    mode = str(item.config.getoption("--mode"))
    server = server_of(spec, mode, item.config.getoption("--server"))
    if mode == "live" and server != CLOUD_SERVER and item.config.stash.get(ENDPOINT, None) is not None:
        return None
    return server


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


def _smolagents_blame(item: pytest.Item, call: pytest.CallInfo[None]) -> str | None:
    """Why a custom model's failure is smolagents' base class's, when it is; None otherwise."""
    origin = _smolagents_origin(call)
    called = [n for n in item.stash.get(INHERITED, []) if not n.startswith("_")]
    names = ", ".join(f"Model.{n}" for n in called)
    inherits = f"{names}, which your model inherits unchanged from smolagents' base class"
    if origin:
        return f"raised in smolagents' own code ({origin})" + (f", under {inherits}" if called else "")
    if not called:
        return None
    return f"this check ran {inherits}: the failure may come from there (override it to change this)"


def _smolagents_origin(call: pytest.CallInfo[None]) -> str | None:
    """``file:line, function`` of the innermost smolagents frame a failure was raised through, if any."""
    import sys

    module = sys.modules.get("smolagents")
    if call.excinfo is None or module is None or not getattr(module, "__file__", None):
        return None
    root = Path(str(module.__file__)).parent
    frames = [entry for entry in call.excinfo.traceback if Path(str(entry.path)).is_relative_to(root)]
    if not frames:
        return None
    entry = frames[-1]
    code = entry.frame.code.raw
    qualified = getattr(code, "co_qualname", code.co_name)
    relative = Path(str(entry.path)).relative_to(root.parent)
    return f"{relative}:{entry.lineno + 1}, {qualified}"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("E "):
            return line[2:].strip()[:300]
    return (text.strip().splitlines() or [""])[-1][:300]


def pytest_unconfigure(config: pytest.Config) -> None:
    # engines (vllm's runs in a child process) shut down here, while logging still works
    import gc

    _ENGINES.clear()
    _SHARED_ENGINES.clear()
    gc.collect()


def _capture_check_summary(terminalreporter: Any) -> None:
    """The capture self-check of each replayed backend: the HTTP stack that carried its probe."""
    if CAPTURE_CHECKS:
        stacks = ", ".join(f"{backend} {'+'.join(check.stacks) or 'refused'}"
                           for (backend, _), check in sorted(CAPTURE_CHECKS.items()))
        terminalreporter.write_line(f"model-conformance HTTP stack per backend: {stacks}")


__all__ = ["MODES"]
