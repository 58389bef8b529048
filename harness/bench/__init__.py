"""``harness bench ...``: benchmarks that print figures measured side by side in one run."""

from __future__ import annotations

import importlib
import os
import platform
from pathlib import Path
from typing import Any

# name -> module exposing add_arguments(parser) and run(args) -> int
BENCHMARKS = {
    "engines": "harness.bench.engines",
    "overhead": "harness.bench.overhead",
    "latency": "harness.bench.latency",
    "report-speed": "harness.bench.report_speed",
    "xdist-parity": "harness.bench.xdist_parity",
    "long-stream": "harness.bench.long_stream",
    "finalize": "harness.bench.finalize",
}


def add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmarks (engines, overhead, latency, report-speed, xdist-parity, "
                                         "long-stream, finalize: 'harness bench -h' says what each measures)")
    kinds = bench.add_subparsers(dest="benchmark", required=True)
    for name, module_name in BENCHMARKS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        parser = kinds.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(parser)
        parser.set_defaults(fn=module.run)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def machine_description() -> str:
    """This machine in one line, for tables and results files."""
    return (f"{platform.platform()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}")


def results_path(benchmark: str, output: str | None) -> Path:
    """Where a benchmark writes its rows: ``output``, or reports/bench-<name>-<hardware kind>.jsonl."""
    from harness.results.schema import hardware_kind

    return Path(output or Path("reports") / f"bench-{benchmark}-{hardware_kind()}.jsonl")


def write_results(benchmark: str, output: str | None, fields: dict[str, Any]) -> Path:
    """Append a benchmark's figures as summary rows of the results schema, one per entry of ``fields["results"]``.

    Each row names its backend (the entry's ``engine`` or ``backend``) and subject; the entry itself and
    the run's settings (``fields`` less ``results``) are kept under ``extra``.
    """
    from harness.results.schema import append_rows, make_row, new_run_id, run_context

    path = results_path(benchmark, output)
    context = run_context()
    run = os.environ.get("MODEL_CONFORMANCE_RUN") or new_run_id()
    settings = {k: v for k, v in fields.items() if k != "results"}
    rows = []
    for entry in fields.get("results", []):
        failure = entry.get("skipped") or entry.get("error")
        rows.append(make_row(
            "summary", run=run, context=context, suite=f"bench-{benchmark}", clause=benchmark,
            backend=entry.get("engine") or entry.get("backend"), subject=entry.get("subject", "adapters"),
            outcome="skipped" if entry.get("skipped") else "error" if entry.get("error") else "ok",
            message=str(failure or ""), extra={"settings": settings, "result": entry},
        ))
    return append_rows(path, rows)


__all__ = ["BENCHMARKS", "add_bench_parser", "machine_description", "percentile", "results_path", "write_results"]
