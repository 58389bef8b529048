"""Latency statistics per target and hardware, from the results schema's sample and summary rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.reporting.stats import QUANTILES, Estimate, percentile_cis

METRICS = ("ttft_s", "tpot_s", "itl_s", "e2e_s", "output_tokens_per_s")
METRIC_NAMES = {"ttft_s": "TTFT", "tpot_s": "TPOT", "itl_s": "ITL", "e2e_s": "E2E", "output_tokens_per_s": "tok/s"}


def target_name(row: Mapping[str, Any]) -> str:
    """How a latency target is named: the backend, and the server it went through when there was one."""
    server = row.get("server")
    return f"{row['backend']} via {server}" if server else f"{row['backend']} (in-process)"


def hardware_label(row: Mapping[str, Any]) -> str:
    hardware = row.get("hardware") or {}
    return str(hardware.get("label") or hardware.get("kind") or "unknown hardware")


def latency_stats(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (hardware, target): sample counts, each metric's percentiles with CIs, roofline share."""
    values: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    summaries: dict[tuple[str, str], Mapping[str, Any]] = {}
    rows = list(rows)
    # a target measured again (its first figures could not be trusted) is judged by its last measurement
    last = _last_attempts(rows)
    for row in rows:
        kind = row.get("kind")
        if kind not in ("sample", "summary") or row.get("suite") != "bench-latency":
            continue
        key = (hardware_label(row), target_name(row))
        if kind == "summary":
            summaries[key] = row
            continue
        if _attempt(row) != last.get((key, row.get("run")), 1):
            counts[key]["discarded"] += 1
            continue
        if row.get("warmup"):
            counts[key]["warmup"] += 1
            continue
        if row.get("outcome") != "ok":
            counts[key]["errors"] += 1
            continue
        counts[key]["samples"] += 1
        for metric in METRICS:
            v = row.get(metric)
            if metric == "itl_s":
                values[key][metric].extend(v or [])
            elif v is not None:
                values[key][metric].append(v)
    out = []
    for key in sorted(set(values) | set(summaries) | set(counts)):
        entry: dict[str, Any] = {"hardware": key[0], "target": key[1], **{k: counts[key][k] for k in
                                                                          ("samples", "warmup", "errors")}}
        summary = summaries.get(key) or {}
        entry["outcome"] = summary.get("outcome", "ok")
        entry["message"] = summary.get("message") or ""
        for metric in METRICS:
            data = values[key].get(metric)
            entry[metric] = percentile_cis(data, QUANTILES) if data else None
        roof = ((summary.get("extra") or {}).get("roofline")) if summary else None
        entry["roofline"] = roof
        stability = ((summary.get("extra") or {}).get("stability")) if summary else None
        entry["stability"] = stability
        entry["unstable"] = bool(stability and stability.get("unstable"))
        tpot = entry["tpot_s"]
        entry["roofline_percent"] = (100.0 / tpot[50].value / roof["tokens_per_s"]) if roof and tpot else None
        out.append(entry)
    return out


def _attempt(row: Mapping[str, Any]) -> int:
    return int((row.get("extra") or {}).get("attempt") or 1)


def _last_attempts(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[tuple[str, str], Any], int]:
    """(hardware and target, run) -> the last attempt its samples were measured in."""
    last: dict[tuple[tuple[str, str], Any], int] = {}
    for row in rows:
        if row.get("kind") == "sample" and row.get("suite") == "bench-latency":
            key = ((hardware_label(row), target_name(row)), row.get("run"))
            last[key] = max(last.get(key, 1), _attempt(row))
    return last


def unstable_targets(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per target whose figures cannot be trusted: each attempt's warnings and the machine's load."""
    out = []
    for s in latency_stats(rows):
        stability = s.get("stability") or {}
        attempts = [a for a in stability.get("attempts") or [] if a.get("warnings")]
        if not attempts:
            continue
        verdict = ("not to be trusted" if stability.get("unstable")
                   else "unstable at first, trusted when measured again")
        tried = "; ".join(f"attempt {a['attempt']}: {', '.join(a['warnings'])} ({_conditions(a)})" for a in attempts)
        out.append(f"{s['target']} on {s['hardware']}: {verdict}. {tried}")
    return out


def _conditions(attempt: Mapping[str, Any]) -> str:
    return describe_conditions(attempt.get("conditions") or {})


def describe_conditions(c: Mapping[str, Any]) -> str:
    """The machine while a latency target ran, in words: load average, busy CPU, this process's CPU per wall s."""
    loads = [v for v in (c.get("load_before"), c.get("load_after")) if v is not None]
    parts = [f"load average {max(loads):.2f} on {c.get('cores')} cores" if loads else f"{c.get('cores')} cores"]
    if c.get("machine_busy") is not None:
        parts.append(f"machine CPU {100 * c['machine_busy']:.0f}% busy")
    if c.get("wall_s"):
        parts.append(f"this process {(c.get('process_cpu_s') or 0) / c['wall_s']:.2f} CPU s per wall s")
    return ", ".join(parts)


def _cell(est: dict[float, Estimate] | None, q: float, scale: float = 1000.0) -> str:
    return est[q].format(scale) if est else "-"


def latency_table(rows: Iterable[Mapping[str, Any]], markdown: bool = True) -> str:
    """The latency table (milliseconds, 95% CIs) as markdown or plain text.

    tabulate (the report extra) lays it out where it is installed; elsewhere (a benchmark run in an
    environment without the report extra, such as vllm's own) the table is laid out here.
    """
    stats = latency_stats(rows)
    table = latency_rows(stats)
    if not table:
        return "no latency samples"
    try:
        from tabulate import tabulate
    except ImportError:
        return _columns(table, markdown)
    return tabulate(table, headers="keys", tablefmt="github" if markdown else "simple")


def _columns(table: Sequence[Mapping[str, Any]], markdown: bool) -> str:
    """Rows of dicts as aligned columns (markdown pipes or plain), for want of tabulate."""
    headers = list(dict.fromkeys(k for row in table for k in row))
    cells = [headers, *[["" if row.get(h) is None else str(row.get(h)) for h in headers] for row in table]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = [[cell.ljust(width) for cell, width in zip(line, widths)] for line in cells]
    rule = ["-" * width for width in widths]
    if markdown:
        return "\n".join("| " + " | ".join(line) + " |" for line in [lines[0], rule, *lines[1:]])
    return "\n".join("  ".join(line).rstrip() for line in [lines[0], rule, *lines[1:]])


def latency_rows(stats: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The latency table's rows: one per hardware and target."""
    table = []
    for s in stats:
        if s["outcome"] != "ok" and not s["samples"]:
            table.append({"hardware": s["hardware"], "target": s["target"], "n": 0,
                          "note": f"{s['outcome']}: {s['message']}"})
            continue
        row = {"hardware": s["hardware"], "target": s["target"], "n": s["samples"]}
        if s.get("unstable"):
            row["target"] = f"{s['target']} (UNSTABLE)"
        for q in QUANTILES:
            row[f"TTFT p{q} ms"] = _cell(s["ttft_s"], q)
        for q in QUANTILES:
            row[f"TPOT p{q} ms"] = _cell(s["tpot_s"], q)
        row["ITL p50 ms"] = _cell(s["itl_s"], 50)
        row["E2E p50 ms"] = _cell(s["e2e_s"], 50)
        row["tok/s p50"] = _cell(s["output_tokens_per_s"], 50, scale=1.0)
        roof = s["roofline"]
        row["% of roofline"] = (f"{s['roofline_percent']:.1f}% of {roof['tokens_per_s']:.0f} tok/s"
                                if s["roofline_percent"] is not None else "-")
        table.append(row)
    return table


__all__ = ["METRICS", "METRIC_NAMES", "describe_conditions", "hardware_label", "latency_rows", "latency_stats",
           "latency_table", "target_name", "unstable_targets"]
