"""Durable, visible runs: each check's row is appended to ``--results`` as it finishes, and a long run
prints a progress line (done/total and an estimate) at least every ``--progress-every`` seconds.

The run id and what every row shares (versions, hardware) are fixed when the session starts, so a run
stopped half-way (a CI timeout's SIGTERM) keeps every row it measured, all under one run id.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import pytest

RESULT_PROPERTY = "model_conformance_result"  # the user property that carries a check's row to the controller

_RUN = pytest.StashKey["RunLog"]()


class RunLog:
    """Appends rows to one results file and keeps count of finished checks."""

    def __init__(self, path: str | None, run: str, context: dict[str, Any]) -> None:
        self.path, self.run, self.context = path, run, context
        self.total: int | None = None
        self.done = 0
        self.rows = 0
        self.started = time.monotonic()
        self.last_line = self.started
        self.lock = threading.Lock()

    def append(self, row: dict[str, Any]) -> None:
        from harness.results.schema import append_rows, make_row

        if self.path:
            append_rows(self.path, [make_row("check", run=self.run, context=self.context, **row)])
            self.rows += 1

    def progress(self) -> str:
        elapsed = time.monotonic() - self.started
        total = f"/{self.total}" if self.total else ""
        line = f"model-conformance progress: {self.done}{total} checks done in {_duration(elapsed)}"
        if self.total and self.done:
            left = elapsed / self.done * max(self.total - self.done, 0)
            line += f", about {_duration(left)} left"
        return line + (f"; {self.rows} rows in {self.path}" if self.path else "")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model-conformance")
    group.addoption("--progress-every", type=float, default=60.0, metavar="SECONDS",
                    help="print a progress line (checks done/total, time left) when this long has passed without "
                         "one (default: 60; 0: never)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # xdist workers hand their rows to the controller
        return
    from harness.results.schema import new_run_id, run_context

    path = config.getoption("--results", None)
    context = run_context() if path else {}
    config.stash[_RUN] = RunLog(path, os.environ.get("MODEL_CONFORMANCE_RUN") or new_run_id(), context)


def pytest_collection_finish(session: pytest.Session) -> None:
    log = session.config.stash.get(_RUN, None)
    if log is not None:
        log.total = len(session.items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    log = node.config.stash.get(_RUN, None)
    if log is not None:
        log.total = len(ids)  # every worker collects the same items


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _CONFIG.get("config")
    if config is None:
        return
    log = config.stash.get(_RUN, None)
    if log is None:
        return
    with log.lock:
        for key, value in report.user_properties:
            if key == RESULT_PROPERTY:
                log.append(dict(value))  # type: ignore[call-overload]
        if report.when == "teardown":
            log.done += 1
    _maybe_print(config, log)


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    log = config.stash.get(_RUN, None)
    if log is None:
        return
    _CONFIG["config"] = config
    log.started = log.last_line = time.monotonic()
    every = float(config.getoption("--progress-every") or 0)
    if every > 0:
        stop = threading.Event()
        config.add_cleanup(stop.set)

        def tick() -> None:  # a single check may run for minutes: the line still comes
            while not stop.wait(min(every, 5.0)):
                _maybe_print(config, log)

        threading.Thread(target=tick, name="model-conformance-progress", daemon=True).start()


def _maybe_print(config: pytest.Config, log: RunLog) -> None:
    every = float(config.getoption("--progress-every") or 0)
    now = time.monotonic()
    if every <= 0 or now - log.last_line < every:
        return
    with log.lock:
        if now - log.last_line < every:
            return
        log.last_line = now
        line = log.progress()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    # while a check runs its output is captured, the terminal's with it: the line goes past the capture
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        if reporter is not None:
            reporter.write("\n")  # after the dots of the checks so far
            reporter.write_line(line)
        else:
            print(line, flush=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CONFIG.get("config") is config:
        _CONFIG.clear()


__all__ = ["RESULT_PROPERTY", "RunLog"]
