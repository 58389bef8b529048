"""``harness bench ...``: benchmarks that print figures measured side by side in one run."""

from __future__ import annotations

import importlib
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# name -> module exposing add_arguments(parser) and run(args) -> int
BENCHMARKS = {
    "engines": "harness.bench.engines",
    "overhead": "harness.bench.overhead",
}


def add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmarks (engines: local engine throughput and stop overshoot; "
                                         "overhead: adapter overhead over the raw SDK)")
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


def write_results(benchmark: str, output: str | None, fields: dict[str, Any]) -> Path:
    """Write a benchmark's JSON results file (default reports/bench-<name>-<hardware>.json), naming the hardware."""
    from harness.reporting.report import _versions, hardware_kind

    hardware = hardware_kind()
    path = Path(output or Path("reports") / f"bench-{benchmark}-{hardware}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": benchmark,
        "hardware": hardware,
        "machine": machine_description(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        **fields,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["BENCHMARKS", "add_bench_parser", "machine_description", "percentile", "write_results"]
