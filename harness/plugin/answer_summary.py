"""Who answered, in the terminal: a live or record run's summary keeps the target's verdict apart from the
client-side checks a stand-in answered (the recorded-reply responder, the fault injector, a fake) or
that sent nothing, so that a passed stand-in check is never read as the endpoint's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from harness.plugin.answers import SOURCES, TARGET_SOURCES, answered_by

ANSWERED_PROPERTY = "model_conformance_answered_by"  # carried by the report, so xdist's controller counts it
_COUNTS: Counter[tuple[str, str]] = Counter()  # (answered_by, outcome) -> checks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        source = answered_by(item)
        if source is not None:  # a new list: the report may share item.user_properties
            report.user_properties = [*report.user_properties, (ANSWERED_PROPERTY, source)]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == ANSWERED_PROPERTY:
            _COUNTS[(str(value), report.outcome)] += 1


def summary_lines(counts: Counter[tuple[str, str]]) -> list[str]:
    """The target's verdict on one line, the client-side checks per stand-in on the next."""

    def outcomes(source: str) -> str:
        found = {o: n for (s, o), n in counts.items() if s == source and n}
        return ", ".join(f"{found[o]} {o}" for o in ("passed", "failed", "skipped") if o in found)

    sources = [s for s in SOURCES if any(n for (src, _), n in counts.items() if src == s)]
    target = [f"{s}: {outcomes(s)}" for s in sources if s in TARGET_SOURCES]
    client = [f"{s}: {outcomes(s)}" for s in sources if s not in TARGET_SOURCES]
    return [f"the target's verdict (it answered): {'; '.join(target) or 'no check'}",
            f"client-side checks (not the target's verdict): {'; '.join(client) or 'none'}"]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _COUNTS:
        return
    mode = config.getoption("--mode", "replay")
    if mode in ("live", "record"):
        terminalreporter.write_sep("-", f"who answered (--mode {mode})")
        for line in summary_lines(_COUNTS):
            terminalreporter.write_line(line)
    _COUNTS.clear()


__all__ = ["ANSWERED_PROPERTY", "summary_lines"]
