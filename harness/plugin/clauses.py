"""Clauses of the contract and their levels: the ``clause`` marker, ``--level`` and the per-level summary.

The registry itself is data in the suites (``suites/clauses.yaml``); the suites' conftest hands it to
this module with :func:`use_registry`. Every suite check names its clauses
(``@pytest.mark.clause("stop.before-stop-sequence", ...)``); a check is graded at the strictest level of
the clauses it names, since its failure may come from the strictest one. Registered by the plugin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.contract.errors import HarnessError

LEVELS = ("must", "should", "strict")  # weakest first: a check's level is the strictest of its clauses'
_ID = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$")
REGISTRY = pytest.StashKey[dict[str, "Clause"]]()
SELECTED = pytest.StashKey[frozenset[str]]()
_PROPERTY = "model_conformance_clauses"


@dataclass(frozen=True)
class Clause:
    """One clause of the contract: a stable id, one sentence, where it comes from and its level."""

    id: str
    level: str
    sentence: str
    source: str
    quote: str | None = None  # must: the documented text
    reason: str | None = None  # strict: why this project asks more
    unchecked: str | None = None  # why no suite check can enforce it here


def load_registry(path: str | Path) -> dict[str, Clause]:
    """The clauses of a registry file, by id; a clause that lacks what its level needs is a HarnessError."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise HarnessError(f"clause registry {path}: cannot be read: {exc}") from None
    entries = data.get("clauses") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise HarnessError(f"clause registry {path}: expected a mapping with a 'clauses' list")
    registry: dict[str, Clause] = {}
    fields = {"id", "level", "sentence", "source", "quote", "reason", "unchecked"}
    for number, entry in enumerate(entries, 1):
        where = f"clause registry {path}, entry {number}"
        if not isinstance(entry, dict):
            raise HarnessError(f"{where}: expected a mapping, got {type(entry).__name__}")
        unknown = sorted(set(entry) - fields)
        if unknown:
            raise HarnessError(f"{where}: unknown keys {unknown}. Valid keys are: {', '.join(sorted(fields))}")
        if entry.get("level") == "strict":
            entry = {"source": "this project's stricter choice", **entry}
        for key in ("id", "level", "sentence", "source"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise HarnessError(f"{where}: '{key}' must be a non-empty string, got {entry.get(key)!r}")
        text: dict[str, Any] = {k: (str(v).strip() if v is not None else None) for k, v in entry.items()}
        clause = Clause(**text)
        where = f"clause registry {path}: {clause.id!r}"
        if not _ID.match(clause.id):
            raise HarnessError(f"{where} is not a clause id (lower-case words joined by '.', "
                               "e.g. 'stop.earliest-completing')")
        if clause.id in registry:
            raise HarnessError(f"{where} is listed twice")
        if clause.level not in LEVELS:
            raise HarnessError(f"{where}: {clause.level!r} is not a level. Valid levels are: {', '.join(LEVELS)}")
        if clause.level == "must" and not clause.quote:
            raise HarnessError(f"{where}: a must clause quotes the documented contract ('quote')")
        if clause.level == "strict" and not clause.reason:
            raise HarnessError(f"{where}: a strict clause gives its reason ('reason')")
        registry[clause.id] = clause
    return registry


def parse_levels(value: str | None) -> frozenset[str]:
    """The levels a ``--level`` value names (a comma list); all of them for None."""
    if value is None:
        return frozenset(LEVELS)
    names = [v.strip().lower() for v in value.split(",")]
    bad = [n for n in names if n not in LEVELS]
    if bad or not names:
        raise HarnessError(f"--level={value}: {', '.join(repr(b) for b in bad) or 'nothing'} is not a level. "
                           f"Valid levels are: {', '.join(LEVELS)} (a comma list selects several)")
    return frozenset(names)


def level_of(clause_ids: Iterable[str], registry: Mapping[str, Clause]) -> str:
    """The level a check naming these (known) clauses is graded at: the strictest of theirs."""
    return max((registry[c].level for c in clause_ids), key=LEVELS.index)


def clauses_of(item: pytest.Item) -> list[str]:
    """The clause ids an item names with ``@pytest.mark.clause(...)``, in order, once each."""
    ids: list[str] = []
    for mark in item.iter_markers("clause"):
        ids.extend(str(a) for a in mark.args)
    return list(dict.fromkeys(ids))


def audit(checks: Mapping[str, list[str]], registry: Mapping[str, Clause]) -> list[str]:
    """What breaks the rule that every check names known clauses and every clause has a check or a reason.

    ``checks`` maps a check (``module::test``) to the clause ids it names.
    """
    problems = []
    for check, ids in sorted(checks.items()):
        if not ids:
            problems.append(f"{check} names no clause: add @pytest.mark.clause(<id>, ...) with an id of the registry")
        for unknown in (c for c in ids if c not in registry):
            problems.append(f"{check} names {unknown!r}, which is not in the clause registry")
    enforced = {c for ids in checks.values() for c in ids}
    for clause in registry.values():
        if clause.id in enforced and clause.unchecked:
            problems.append(f"{clause.id}: says it is unchecked ({clause.unchecked[:60]}...) but checks name it")
        elif clause.id not in enforced and not clause.unchecked:
            problems.append(f"{clause.id}: no check names it and no 'unchecked' reason says why")
    return problems


def use_registry(config: pytest.Config, path: str | Path) -> None:
    """Grade the suite checks of this run by the clauses of the registry at ``path`` (called by a conftest)."""
    try:
        config.stash[REGISTRY] = load_registry(path)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None


def _is_check(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "backend_name" in callspec.params


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model-conformance")
    group.addoption(
        "--level",
        default=None,
        help=f"run only the checks graded at these levels: {', '.join(LEVELS)} or a comma list (default: all). "
        "must: the documented smolagents contract; should: the backend's wire spec and real agents; "
        "strict: this project's stricter choices",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(*ids): the contract clauses this check enforces (suites/clauses.yaml)")
    try:
        config.stash[SELECTED] = parse_levels(config.getoption("--level"))
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    _tally.clear()
    _tally.update({level: {"passed": 0, "failed": 0, "skipped": 0, "failing": set()} for level in LEVELS})


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    registry = config.stash.get(REGISTRY, None)
    if registry is None:
        if config.getoption("--level") is not None:
            raise pytest.UsageError("--level grades the suites' checks by their clauses: run it on the suites "
                                    "(pytest suites --level=...)")
        return
    selected = config.stash[SELECTED]
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    problems: list[str] = []
    for item in items:
        if not _is_check(item):
            keep.append(item)
            continue
        ids = clauses_of(item)
        unknown = [c for c in ids if c not in registry]
        if not ids or unknown:
            problems.append(f"{item.nodeid}: " + (f"unknown clause {unknown}" if ids else "names no clause"))
            continue
        (keep if level_of(ids, registry) in selected else drop).append(item)
    if problems:
        _tally.clear()  # the run stops here: no verdict
        shown = "\n  ".join(sorted(set(problems))[:10])
        raise pytest.UsageError(
            f"every suite check names its clauses of the registry with @pytest.mark.clause:\n  {shown}")
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome: Any = yield
    registry = item.config.stash.get(REGISTRY, None)
    if registry is None or not _is_check(item):
        return
    report = outcome.get_result()
    ids = clauses_of(item)
    # carried by the report so that a pytest-xdist controller tallies its workers' checks (a new list)
    report.user_properties = [*report.user_properties, (_PROPERTY, {"clauses": ids, "level": level_of(ids, registry)})]


def row_fields(item: pytest.Item) -> dict[str, Any]:
    """The clause ids and level of a check, for its result row (empty lists and None outside the suites)."""
    registry = item.config.stash.get(REGISTRY, None)
    ids = clauses_of(item)
    known = registry is not None and bool(ids) and all(c in registry for c in ids)
    return {"clauses": ids, "level": level_of(ids, registry) if known and registry else None}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    graded: Any = next((v for k, v in report.user_properties if k == _PROPERTY), None)
    if graded is None:
        return
    phase_counts = report.when == "call" or (report.when == "setup" and not report.passed) or (
        report.when == "teardown" and report.failed)
    if not phase_counts:
        return
    counts = _tally.setdefault(graded["level"], {"passed": 0, "failed": 0, "skipped": 0, "failing": set()})
    counts[report.outcome] += 1
    if report.failed:
        counts["failing"].update(graded["clauses"])


# checks tallied by this process per level (the controller under pytest-xdist, the only process otherwise)
_tally: dict[str, dict[str, Any]] = {}


def summary_lines(tally: Mapping[str, Mapping[str, Any]], selected: frozenset[str]) -> list[str]:
    """One line per selected level: checks passed, failed, skipped, and the failing clause ids."""
    lines = []
    for level in (lvl for lvl in LEVELS if lvl in selected):
        counts = tally[level]
        line = f"{level.upper():<6} {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        if counts["failing"]:
            line += f"; failing clauses: {', '.join(sorted(counts['failing']))}"
        lines.append(line)
    return lines


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.stash.get(REGISTRY, None) is None or hasattr(config, "workerinput") or config.option.collectonly:
        return
    if not _tally:
        return
    terminalreporter.write_sep("=", "model-conformance verdict per level")
    for line in summary_lines(_tally, config.stash[SELECTED]):
        terminalreporter.write_line(line)
