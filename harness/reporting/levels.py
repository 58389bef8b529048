"""The verdict by clause and level, from result rows: a headline per subject and level, a clause x backend table.

A check row carries the clauses it names (``clauses``) and the level it is graded at (``level``: the
strictest of its clauses). At a level, a clause is judged by the checks graded at that level that name it:
failed if one of them failed, passed if one passed and none failed, skipped otherwise, per subject and
backend (with its server). This is what ``pytest suites --level=L`` certifies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.plugin.clauses import LEVELS
from harness.results.schema import REQUEST_DIFFERS, UNJUDGED

# A failure whose replayed request differed from the recording (REQUEST_DIFFERS: the recorded answer is not the
# answer to that request), or that judged no clause (UNJUDGED, with why), is no verdict: counted as unjudged,
# never as a failed clause


def unjudged(row: Mapping[str, Any]) -> str | None:
    """Why a failed row is no verdict on its clauses, or None when it is one."""
    if row.get("outcome") != "failed":
        return None
    extra = row.get("extra") or {}
    if extra.get(REQUEST_DIFFERS):
        return "replayed: the subject sent a request other than the recorded one"
    return str(extra[UNJUDGED]) if extra.get(UNJUDGED) else None


def target_of(row: Mapping[str, Any]) -> str:
    """The column a row is judged in: never shared by two modes or two targets; client-side checks apart."""
    from harness.plugin.answers import client_side

    mode = row.get("mode")
    if mode in ("live", "record"):
        where = f"{mode}: {row.get('target') or row.get('server') or '-'}"
        if client_side(row.get("answered_by")):
            where += ", client-side"
        return f"{row.get('backend')} ({where})"
    server = row.get("server")
    return f"{row.get('backend')} ({server})" if server else str(row.get("backend"))


def clause_verdicts(checks: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], str]:
    """(subject, level, target, clause) -> passed, failed or skipped (a failure in replay of a request other than
    the recorded one counts as skipped: unjudged, as in the report's list of MUST failures)."""
    verdicts: dict[tuple[str, str, str, str], str] = {}
    rank = {"skipped": 0, "passed": 1, "failed": 2}  # one failed check fails the clause; one pass beats skips
    for row in checks:
        level, outcome = row.get("level"), row.get("outcome")
        if level not in LEVELS or outcome not in rank:
            continue
        if unjudged(row):
            outcome = "skipped"  # no verdict: the request was not the recorded one, or nothing was judged
        for clause in row.get("clauses") or ():
            key = (str(row.get("subject")), str(level), target_of(row), str(clause))
            if rank[str(outcome)] >= rank[verdicts.get(key, "skipped")]:
                verdicts[key] = str(outcome)
    return verdicts


def _targets(verdicts: Mapping[tuple[str, str, str, str], str]) -> list[str]:
    return sorted({key[2] for key in verdicts})


def level_headline(checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per subject and level: for each backend, clauses passed of those judged (skipped ones left out)."""
    verdicts = clause_verdicts(checks)
    targets = _targets(verdicts)
    counts: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: {"passed": 0, "failed": 0})
    for (subject, level, target, _clause), verdict in verdicts.items():
        if verdict != "skipped":
            counts[(subject, level, target)][verdict] += 1
    table = []
    subjects = sorted({key[0] for key in verdicts}, key=lambda s: (s != "adapters", s))
    for subject in subjects:
        for level in LEVELS:
            if not any(key[0] == subject and key[1] == level for key in verdicts):
                continue
            line: dict[str, Any] = {"subject": subject, "level": level.upper()}
            for target in targets:
                c = counts.get((subject, level, target))
                judged = (c["passed"] + c["failed"]) if c else 0
                line[target] = f"{100 * c['passed'] / judged:.0f}% ({c['passed']}/{judged})" if c and judged else "-"
            table.append(line)
    return table


def clause_matrix(checks: Sequence[Mapping[str, Any]], subject: str) -> list[dict[str, Any]]:
    """One line per level and clause, one column per backend: pass, FAIL, skip or - (not run there)."""
    verdicts = clause_verdicts(checks)
    targets = _targets(verdicts)
    mark = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}
    clauses = sorted({(LEVELS.index(k[1]), k[3]) for k in verdicts if k[0] == subject})
    return [{"level": LEVELS[level].upper(), "clause": clause,
             **{t: mark[verdicts[(subject, LEVELS[level], t, clause)]]
                if (subject, LEVELS[level], t, clause) in verdicts else "-" for t in targets}}
            for level, clause in clauses]


__all__ = ["clause_matrix", "clause_verdicts", "level_headline", "target_of"]
