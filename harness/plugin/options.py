"""The pytest face, its options: --backend, --mode, --server and the rest, validated once at configure;
how a run is parametrised and how a check is named."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.backends.registry import (
    BackendSpec,
    Target,
    get_backend,
    register,
    resolve_backends,
)
from harness.contract.errors import HarnessError
from harness.plugin.answers import public_url
from harness.recording.cassettes import (
    CLOUD_SERVER,
    DEFAULT_SERVER,
    SERVERS,
    validate_mode,
    validate_server,
)
from harness.recording.record import RECORD_MODES, validate_record_mode

BACKENDS = pytest.StashKey[list[str]]()


CUSTOM_MODEL = pytest.StashKey[Any]()  # what --model-factory names


ENDPOINT = pytest.StashKey["Endpoint | None"]()


LOCAL_SERVER = pytest.StashKey[tuple[str, str]]()  # the started local server's base URL and model id


# The message-types dimension: every conversation of a suite is also given as smolagents' own
# ChatMessage/MessageRole objects. The same cassette replays for both forms (matching is by
# method, path and order); what the request must contain is asserted either way.
MESSAGE_TYPES = ("dicts", "smolagents_types")


# live engines get the dimension in these suites only (each extra check there costs generation time)
LIVE_TYPED_SUITES = frozenset({"message_format", "role_conversion"})


# suites whose conversations are already smolagents' types (built by real agents)
UNTYPED_SUITES = frozenset({"agents"})


SUBJECTS = ("adapters", "smolagents")


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
    from harness.backends.custom import CUSTOM, FORMS, load_model_factory

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
