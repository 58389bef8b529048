"""``harness drift``: what a new set of SDK releases changed, between two installed environments.

``harness drift snapshot`` runs the replayed suites in this interpreter's environment and writes one
JSON snapshot: the installed versions, the HTTP stack that carried each backend (its capture
self-check), every captured request normalised (method, path and query, header names, JSON body:
the volatile parts, header values and the host, left out) and every test's verdict.
``harness drift compare`` reads two snapshots and writes the drift report: the versions that differ,
the stacks per backend, the wire requests per backend and suite (a semantic diff of bodies and
header names) and the verdicts that changed. It fails only when a request escaped capture (or a
backend was refused for it) in the new environment, or a verdict went from pass to fail;
everything else is drift to publish. ``harness drift run`` does both for two interpreters.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SNAPSHOT_VERSION = 1
# the distributions a drift report lists first: the SDKs, their HTTP stacks and the recorder
WATCHED = ("openai", "huggingface_hub", "litellm", "boto3", "botocore", "smolagents", "vcrpy", "httpx", "httpcore",
           "httpx2", "httpcore2", "urllib3", "transformers", "pytest")
ESCAPE_MARK = "escaped capture"


def normalise_request(request: Any) -> dict[str, Any]:
    """A captured request without its volatile parts: the host, header values."""
    parts = urlsplit(str(request.url))
    return {
        "method": request.method,
        "path": parts.path,
        "query": sorted(parse_qsl(parts.query)),
        "headers": list(request.header_names),
        "body": request.body if not isinstance(request.body, (bytes, bytearray)) else f"<{len(request.body)} bytes>",
    }


class SnapshotPlugin:
    """Collects verdicts and normalised requests of a pytest run (``harness drift snapshot``)."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed"})
        if report.failed:
            entry["outcome"] = "failed"
            if ESCAPE_MARK in report.longreprtext:
                entry["escaped"] = report.longreprtext.strip().splitlines()[-1][:500]
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"

    def pytest_runtest_teardown(self, item: Any) -> None:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend_name") if callspec is not None else None
        capture = getattr(item, "funcargs", {}).get("capture")
        marker = item.get_closest_marker("clause")
        entry = self.tests.setdefault(item.nodeid, {"outcome": "passed"})
        entry.update(backend=backend, suite=Path(str(item.fspath)).stem,
                     clauses=[str(arg) for arg in marker.args] if marker is not None else [],
                     requests=[normalise_request(r) for r in capture.http] if capture is not None else [])


def _versions() -> dict[str, str]:
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("-", "_")
        if name:
            found[name] = dist.version
    return dict(sorted(found.items()))


def snapshot(output: Path, pytest_args: list[str]) -> int:
    """Run ``pytest <pytest_args>`` here and write the snapshot; the pytest exit code."""
    import pytest

    from harness.plugin.replay import CAPTURE_CHECKS

    plugin = SnapshotPlugin()
    code = int(pytest.main([*pytest_args, "-q", "-p", "no:randomly"], plugins=[plugin]))
    data = {
        "snapshot_version": SNAPSHOT_VERSION,
        "python": sys.version.split()[0],
        "pytest_args": pytest_args,
        "pytest_exit": code,
        "versions": _versions(),
        "stacks": {backend: check.stacks for (backend, _), check in sorted(CAPTURE_CHECKS.items())},
        "refused": {backend: check.refused for (backend, _), check in sorted(CAPTURE_CHECKS.items()) if check.refused},
        "tests": plugin.tests,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(output)
    return code


def load_snapshot(path: Path) -> dict[str, Any]:
    from harness.contract.errors import HarnessError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path} is not a drift snapshot: {exc}") from None
    if not isinstance(data, dict) or data.get("snapshot_version") != SNAPSHOT_VERSION:
        raise HarnessError(f"{path} is not a drift snapshot of version {SNAPSHOT_VERSION} "
                           "(write one with 'harness drift snapshot')")
    return data


def body_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, one line per differing leaf (``path: old -> new``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                lines.append(f"{where}: added {json.dumps(new[key])[:80]}")
            elif key not in new:
                lines.append(f"{where}: removed")
            else:
                lines += body_diff(old[key], new[key], where)
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new)) for line in body_diff(a, b, f"{path}[{i}]")]
    if old != new:
        return [f"{path or '<body>'}: {json.dumps(old)[:80]} -> {json.dumps(new)[:80]}"]
    return []


def request_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for part in ("method", "path", "query"):
        if old.get(part) != new.get(part):
            lines.append(f"{part}: {old.get(part)} -> {new.get(part)}")
    added = sorted(set(new["headers"]) - set(old["headers"]))
    removed = sorted(set(old["headers"]) - set(new["headers"]))
    if added:
        lines.append(f"header names added: {', '.join(added)}")
    if removed:
        lines.append(f"header names removed: {', '.join(removed)}")
    lines += [f"body {line}" for line in body_diff(old.get("body"), new.get("body"))]
    return lines


def _stack_cell(snap: dict[str, Any], backend: str) -> str:
    if backend in snap.get("refused", {}):
        return "refused"
    return "+".join(snap["stacks"].get(backend, [])) or "-"


def compare(base: dict[str, Any], new: dict[str, Any], base_name: str, new_name: str) -> tuple[str, bool]:
    """The drift report (markdown) and whether it fails: an escape in ``new`` or a verdict pass -> fail."""
    out = [f"# Drift: {base_name} -> {new_name}", ""]
    bv, nv = base["versions"], new["versions"]
    changed = sorted(name for name in set(bv) | set(nv) if bv.get(name) != nv.get(name))
    watched = [n for n in WATCHED if n in changed] + [n for n in changed if n not in WATCHED]
    out += ["## Versions that differ", "", "| distribution | " + base_name + " | " + new_name + " |", "|---|---|---|"]
    out += [f"| {n} | {bv.get(n, '-')} | {nv.get(n, '-')} |" for n in watched] or ["| (none) | | |"]
    out += ["", "## HTTP stack per backend (capture self-check)", "", f"| backend | {base_name} | {new_name} |",
            "|---|---|---|"]
    for backend in sorted(set(base["stacks"]) | set(new["stacks"])):
        out.append(f"| {backend} | {_stack_cell(base, backend)} | {_stack_cell(new, backend)} |")

    bt, nt = base["tests"], new["tests"]
    per: dict[tuple[str, str], Counter[str]] = {}
    examples: dict[tuple[str, str], list[str]] = {}
    flips: list[str] = []
    other_changes: list[str] = []
    for nodeid in sorted(set(bt) | set(nt)):
        old, cur = bt.get(nodeid), nt.get(nodeid)
        if old is None or cur is None:
            other_changes.append(f"{nodeid}: {'only in ' + new_name if old is None else 'only in ' + base_name}")
            continue
        if old["outcome"] != cur["outcome"]:
            named = ", ".join(cur.get("clauses") or [])
            line = f"{nodeid}{' (' + named + ')' if named else ''}: {old['outcome']} -> {cur['outcome']}"
            (flips if old["outcome"] == "passed" and cur["outcome"] == "failed" else other_changes).append(line)
        key = (str(cur.get("backend")), str(cur.get("suite")))
        tally = per.setdefault(key, Counter())
        olds, curs = old.get("requests", []), cur.get("requests", [])
        if len(olds) != len(curs):
            tally["tests whose request count changed"] += 1
            examples.setdefault(key, []).append(f"{nodeid}: {len(olds)} -> {len(curs)} requests")
        for a, b in zip(olds, curs):
            tally["requests compared"] += 1
            lines = request_diff(a, b)
            if lines:
                tally["requests that differ"] += 1
                examples.setdefault(key, []).append(f"{nodeid}: " + "; ".join(lines[:4]))
    out += ["", "## Wire requests per backend and suite", "",
            "Header values and the host are volatile and left out; header names, method, path, query and the "
            "JSON body are compared.", "",
            "| backend | suite | requests compared | differ | tests whose request count changed |",
            "|---|---|---|---|---|"]
    for (backend, suite), tally in sorted(per.items()):
        if backend == "None":
            continue
        out.append(f"| {backend} | {suite} | {tally['requests compared']} | {tally['requests that differ']} | "
                   f"{tally['tests whose request count changed']} |")
    for key, lines in sorted(examples.items()):
        out += ["", f"{key[0]} / {key[1]}, first differences:", ""] + [f"- {line}" for line in lines[:5]]
    escapes = [f"{nodeid}: {t['escaped']}" for nodeid, t in sorted(nt.items()) if t.get("escaped")]
    escapes += [f"{backend}: {reason}" for backend, reason in sorted(new.get("refused", {}).items())]
    counts = {name: Counter(t["outcome"] for t in snap.values()) for name, snap in ((base_name, bt), (new_name, nt))}
    out += ["", "## Verdicts", "", *(f"- {name}: " + ", ".join(f"{n} {o}" for o, n in sorted(c.items()))
                                   for name, c in counts.items()),
            "", f"Pass -> fail ({len(flips)}):", ""] + ([f"- {line}" for line in flips] or ["- none"])
    out += ["", f"Other verdict changes ({len(other_changes)}):", ""] + \
        ([f"- {line}" for line in other_changes[:50]] or ["- none"])
    out += _per_clause(bt, nt, base_name, new_name)
    out += ["", f"## Requests that escaped capture in {new_name} ({len(escapes)})", ""] + \
        ([f"- {line}" for line in escapes] or ["- none"])
    failed = bool(escapes or flips)
    out += ["", "Verdict: " + ("FAIL (" + ", ".join(filter(None, [
        f"{len(escapes)} escaped" if escapes else "", f"{len(flips)} pass -> fail" if flips else ""])) + ")"
        if failed else "drift only (no escape, no pass -> fail)"), ""]
    return "\n".join(out), failed


def _per_clause(bt: dict[str, Any], nt: dict[str, Any], base_name: str, new_name: str) -> list[str]:
    """Passed/failed per clause in both environments, for the clauses whose counts differ."""
    def tally(tests: dict[str, Any]) -> dict[str, Counter[str]]:
        per: dict[str, Counter[str]] = {}
        for test in tests.values():
            for clause in test.get("clauses") or []:
                per.setdefault(clause, Counter())[test["outcome"]] += 1
        return per

    old, new = tally(bt), tally(nt)
    if not old and not new:
        return []
    changed = [c for c in sorted(set(old) | set(new)) if old.get(c) != new.get(c)]
    lines = ["", f"Verdicts per clause: {len(set(old) | set(new))} clauses, {len(changed)} with changed counts", ""]
    if changed:
        lines += [f"| clause | {base_name} | {new_name} |", "|---|---|---|"]
        for clause in changed:
            cells = [", ".join(f"{n} {o}" for o, n in sorted((t.get(clause) or Counter()).items())) or "-"
                     for t in (old, new)]
            lines.append(f"| {clause} | {cells[0]} | {cells[1]} |")
    return lines


def _snapshot_cmd(args: argparse.Namespace) -> int:
    code = snapshot(Path(args.output), args.pytest_args or ["suites"])
    print(f"harness drift snapshot: {args.output} (pytest exit {code})")
    return 0 if code in (0, 1) else code  # failed tests are part of the snapshot, not an error of it


def _compare_cmd(args: argparse.Namespace) -> int:
    base, new = load_snapshot(Path(args.base)), load_snapshot(Path(args.new))
    text, failed = compare(base, new, args.base_name or Path(args.base).stem, args.new_name or Path(args.new).stem)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"harness drift: report written to {args.output}")
    else:
        print(text)
    return 1 if failed else 0


def _run_cmd(args: argparse.Namespace) -> int:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, python in (("base", args.base_python), ("new", args.new_python)):
        cmd = [python, "-m", "harness.cli", "drift", "snapshot", f"--output={out / (name + '.json')}", "--",
               *(args.pytest_args or ["suites"])]
        print("harness drift:", " ".join(cmd), flush=True)
        code = subprocess.call(cmd)
        if code != 0:
            print(f"harness drift: the {name} snapshot failed (exit {code})", file=sys.stderr)
            return 2
    ns = argparse.Namespace(base=str(out / "base.json"), new=str(out / "new.json"), base_name=args.base_name,
                            new_name=args.new_name, output=str(out / "drift.md"))
    return _compare_cmd(ns)


def add_drift_parser(sub: Any) -> None:
    drift = sub.add_parser("drift", help="compare two environments: versions, HTTP stacks, wire requests, verdicts "
                                         "(exit 1 only on an escaped request or a pass -> fail)")
    dsub = drift.add_subparsers(dest="drift_command", required=True)
    snap = dsub.add_parser("snapshot", help="run the suites here (replay) and write a snapshot JSON")
    snap.add_argument("--output", required=True, help="the snapshot file to write")
    snap.add_argument("pytest_args", nargs="*", help="after --: pytest arguments (default: suites)")
    snap.set_defaults(fn=_snapshot_cmd)
    comp = dsub.add_parser("compare", help="write the drift report between two snapshots")
    comp.add_argument("base", help="the snapshot of the reference environment (e.g. pinned)")
    comp.add_argument("new", help="the snapshot of the environment under test (e.g. newest)")
    comp.add_argument("--base-name", help="its name in the report (default: the file's stem)")
    comp.add_argument("--new-name", help="its name in the report (default: the file's stem)")
    comp.add_argument("--output", help="write the markdown report here (default: print it)")
    comp.set_defaults(fn=_compare_cmd)
    run = dsub.add_parser("run", help="snapshot two interpreters' environments, then compare them")
    run.add_argument("--base-python", required=True, help="the reference environment's python (e.g. .venv/bin/python)")
    run.add_argument("--new-python", required=True, help="the other environment's python")
    run.add_argument("--base-name", default="base", help="its name in the report (default: %(default)s)")
    run.add_argument("--new-name", default="new", help="its name in the report (default: %(default)s)")
    run.add_argument("--output-dir", required=True, help="where base.json, new.json and drift.md go")
    run.add_argument("pytest_args", nargs="*", help="after --: pytest arguments for both (default: suites)")
    run.set_defaults(fn=_run_cmd)
