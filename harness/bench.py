"""``harness bench ...``: benchmarks that print figures measured side by side in one run."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# name -> module exposing add_arguments(parser) and run(args) -> int
BENCHMARKS = {
    "engines": "harness.bench_engines",
    "overhead": "harness.bench_overhead",
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


__all__ = ["BENCHMARKS", "add_bench_parser", "percentile", "argparse"]
