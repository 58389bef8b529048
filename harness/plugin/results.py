"""The pytest face, its results: each check's row (mode, target, clause, outcome) and its report,
with secrets redacted before anything writes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.backends.registry import BackendSpec, Target, get_backend
from harness.contract.errors import HarnessError
from harness.plugin import reproduce
from harness.plugin.answers import answered_by, public_url
from harness.plugin.clauses import row_fields as clause_fields
from harness.plugin.fixtures import INHERITED
from harness.plugin.options import ENDPOINT, LOCAL_SERVER, _suite_of, _test_name, server_of
from harness.plugin.replay import _PHASES
from harness.plugin.run_log import RESULT_PROPERTY
from harness.recording.cassettes import CLOUD_SERVER
from harness.results.schema import REQUEST_DIFFERS, UNJUDGED


def _redact_report(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Known credentials and credential-shaped text out of a report before anything writes it: the
    terminal, the log, JUnit XML (failure message, captured output and log), the results file."""
    from harness.contract.secrets import scrub_text

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
    # read when a recording finishes: a server's expected failure (server_findings) is recorded as a pass is
    item.stash.setdefault(_PHASES, {})[report.when] = "xfailed" if hasattr(report, "wasxfail") else report.outcome
    callspec = getattr(item, "callspec", None)
    backend_name = callspec.params.get("backend_name") if callspec is not None else None
    if not backend_name or not item.config.getoption("--results"):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        message = ""
        outcome = report.outcome
        if hasattr(report, "wasxfail"):  # a server's finding: the check fails there, as expected
            outcome, message = "failed", f"expected failure of {report.wasxfail}: {_first_line(report.longreprtext)}"
        elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
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
            "outcome": outcome,
            "message": message,
            "duration_s": round(report.duration, 4),
            "observations": [v for k, v in item.user_properties if k == "observation"],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        extra: dict[str, Any] = {}
        if report.outcome == "failed" and any(k == REQUEST_DIFFERS and v for k, v in item.user_properties):
            extra[REQUEST_DIFFERS] = True  # replay answered with a recording of another request
        unjudged = [v for k, v in item.user_properties if k == UNJUDGED and v]
        if report.outcome == "failed" and unjudged:
            extra[UNJUDGED] = unjudged[0]  # failed before any clause could be judged (why)
        if report.outcome == "failed" and row["subject"] == "smolagents":
            extra["reproduction"] = _reproduction(item, backend_name)
        if extra:
            row["extra"] = extra
        # a new list: the report shares item.user_properties, which the next phase's report would inherit;
        # the row travels inside the report so that pytest-xdist brings it back to the controller
        report.user_properties = [*report.user_properties, (RESULT_PROPERTY, row)]


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
        from harness.servers.embedded import MODEL_NAME

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
