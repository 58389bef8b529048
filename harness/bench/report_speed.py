"""The report's speed: time ``harness report`` over many result rows (100,000 by default).

The rows are made here, in memory, by a seeded generator and labelled as such (hardware label
"synthetic rows for the report-speed benchmark"): checks for 8 backends x 2 subjects x 200 clauses,
the rest latency samples of 6 targets with 32 inter-token gaps each. They are written to a temporary
results file, and the time covers what the command does: reading the file, the statistics, the
plots, report.md, report.html and results.csv.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

SYNTHETIC = {"label": "synthetic rows for the report-speed benchmark", "kind": "synthetic"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=100_000, help="result rows (default: %(default)s)")
    parser.add_argument("--keep", default=None, help="write the report here instead of a temporary folder")


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    from harness.results.schema import make_row

    rnd = random.Random(seed)
    backends = ["openai", "inference-client", "litellm", "litellm-router", "azure", "bedrock", "transformers", "mlx"]
    rows: list[dict[str, Any]] = []
    checks = min(n // 2, len(backends) * 2 * 200)
    for i in range(checks):
        backend, subject, clause = backends[i % 8], ("adapters", "smolagents")[(i // 8) % 2], f"test_{i // 16 % 200}"
        rows.append(make_row("check", run="synthetic", backend=backend, subject=subject, suite=f"suite_{i % 7}",
                             clause=clause, outcome=rnd.choices(["passed", "failed", "skipped"], [90, 5, 5])[0],
                             message="", hardware=SYNTHETIC, mode="replay"))
    targets = [("transformers", None), ("mlx", None), ("vllm", None), ("openai", "transformers-serve"),
               ("inference-client", "transformers-serve"), ("litellm", "transformers-serve")]
    for i in range(n - checks):
        backend, server = targets[i % len(targets)]
        ttft = round(rnd.lognormvariate(-3, 0.3), 6)  # rounded to microseconds, as the latency benchmark writes
        itl = [round(rnd.lognormvariate(-4.5, 0.2), 6) for _ in range(32)]
        e2e = round(ttft + sum(itl), 6)
        rows.append(make_row("sample", run="synthetic", backend=backend, server=server, suite="bench-latency",
                             clause="stream 32 tokens", outcome="ok", warmup=False, hardware=SYNTHETIC,
                             ttft_s=ttft, tpot_s=round((e2e - ttft) / 32, 7), itl_s=itl, e2e_s=e2e,
                             output_tokens=33, output_tokens_per_s=round(33 / e2e, 3)))
    return rows


def run(args: argparse.Namespace) -> int:
    from harness.reporting.report import write_report
    from harness.results.schema import append_rows, load_results

    rows = synthetic_rows(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "rows.jsonl"
        append_rows(results, rows)
        size = results.stat().st_size
        out = Path(args.keep) if args.keep else Path(tmp) / "report"
        start, cpu_start = time.perf_counter(), time.process_time()
        loaded = load_results([results])
        read = time.perf_counter() - start
        write_report(loaded, out)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"harness report over {len(loaded):,} rows ({size / 2**20:.0f} MiB of JSON Lines, synthetic): "
          f"{total:.2f} s in all (reading {read:.2f} s, statistics, plots and writing {total - read:.2f} s); "
          f"{cpu:.2f} s of CPU time (wall time exceeds it when other processes share the cores)")
    return 0


__all__ = ["add_arguments", "run", "synthetic_rows"]
