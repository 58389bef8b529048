"""The comparison report: backend x suite, checks passed, failed and skipped, per subject."""

from __future__ import annotations

import platform
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.reporting import servers
from harness.reporting.schema import _versions, hardware_kind

CASSETTES = Path("cassettes")  # read for the servers' recorded behaviour, when run from the project root


def render_markdown(rows: Sequence[dict[str, Any]], title: str = "Conformance report") -> str:
    """The report as markdown: a table per subject, then findings and skips."""
    machine = f"{platform.platform()}, Python {platform.python_version()}"
    rows = [r for r in rows if r.get("kind", "check") == "check"]
    lines = [f"# {title}", "", f"Hardware: `{hardware_kind()}` ({machine})", ""]
    modes = sorted({r.get("mode", "?") for r in rows})
    lines.append(f"Modes: {', '.join(modes)}. Cloud backends replay recorded cassettes; local engines run live.")
    lines.append("")
    lines.append("Libraries: " + ", ".join(f"{k} {v}" for k, v in _versions().items()))
    lines.append("")
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_subject[row["subject"]].append(row)
    for subject in sorted(by_subject, key=lambda s: (s != "adapters", s)):
        subject_rows = by_subject[subject]
        suites = sorted({r["suite"] for r in subject_rows})
        backends = list(dict.fromkeys(r["backend"] for r in subject_rows))
        label = "this project's adapters" if subject == "adapters" else "smolagents' own classes"
        lines += [f"## Subject: {subject} ({label})", ""]
        lines.append("Each cell: passed / failed / skipped checks.")
        lines.append("")
        lines.append("| backend | " + " | ".join(suites) + " | total |")
        lines.append("|---" * (len(suites) + 2) + "|")
        for b in backends:
            cells = []
            total: Counter[str] = Counter()
            for s in suites:
                c = Counter(r["outcome"] for r in subject_rows if r["backend"] == b and r["suite"] == s)
                total.update(c)
                cells.append(f"{c['passed']} / {c['failed']} / {c['skipped']}" if c else "-")
            lines.append(f"| {b} | " + " | ".join(cells) + f" | {total['passed']} / {total['failed']} / "
                         f"{total['skipped']} |")
        lines.append("")
        failed = [r for r in subject_rows if r["outcome"] == "failed"]
        if failed:
            heading = "Findings about smolagents" if subject == "smolagents" else "Failures"
            lines += [f"### {heading}", "", "Each check with what it raised, and the backends where it did.", ""]
            lines += _grouped((f"{r['suite']}::{r['clause']}", r.get("message") or "failed", r["backend"])
                              for r in failed)
            lines.append("")
        observed = [(f"{r['suite']}::{r['clause']}", o, r["backend"]) for r in subject_rows
                    for o in r.get("observations") or []]
        if observed:
            lines += ["### Observations about the backends", "",
                      "What a backend returned that the contract had to correct (not failures). Derived "
                      "cassettes (azure, bedrock) carry the local server's answers, so they show its behaviour.", ""]
            lines += _grouped(observed)
            lines.append("")
        skipped = Counter((r["backend"], r.get("message") or "skipped") for r in subject_rows
                          if r["outcome"] == "skipped")
        if skipped:
            lines += ["### Skipped", ""]
            for (b, why), n in sorted(skipped.items()):
                lines.append(f"- **{b}** ({n} checks): {why}")
            lines.append("")
    lines += servers.markdown(rows, CASSETTES)
    return "\n".join(lines).rstrip() + "\n"


def _grouped(items: Iterable[tuple[str, str, str]]) -> list[str]:
    """One line per (check, message), naming every backend it was seen on."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for check, message, backend in items:
        if backend not in groups[(check, message)]:
            groups[(check, message)].append(backend)
    return [f"- `{check}` on {', '.join(backends)}: {message}" for (check, message), backends in groups.items()]


def write_report(rows: Sequence[dict[str, Any]], out: Path, title: str = "Conformance report") -> Path:
    """Write the markdown report atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(render_markdown(rows, title), encoding="utf-8")
    tmp.replace(out)
    return out
