"""Serial against ``pytest -n auto``: the replay suites give the same results rows either way.

Runs the suites twice on the given backends (replay, no network), once serially and once with
pytest-xdist, each writing a results file, and compares the rows' identities and outcomes
(backend, server, subject, suite, clause, outcome). Prints both counts and any difference.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backends", default="openai,inference-client,litellm,litellm-router,azure,bedrock",
                        help="replayed backends (default: %(default)s)")
    parser.add_argument("--workers", default="auto", help="pytest -n value (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from harness.results.schema import load_results

    outcomes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("serial", []), (f"-n {args.workers}", ["-n", args.workers])):
            path = Path(tmp) / f"{label.replace(' ', '')}.jsonl"
            cmd = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:randomly", f"--backend={args.backends}",
                   f"--results={path}", *extra]
            start = time.perf_counter()
            code = subprocess.call(cmd, stdout=subprocess.DEVNULL)
            took = time.perf_counter() - start
            if code not in (0, 1):
                print(f"{label}: pytest exited with {code}", file=sys.stderr)
                return code
            rows = load_results([path])
            outcomes[label] = Counter((r["backend"], r["server"], r["subject"], r["suite"], r["clause"], r["outcome"])
                                      for r in rows)
            print(f"{label:>10}: {len(rows)} rows, {Counter(r['outcome'] for r in rows)} in {took:.1f} s")
    serial, parallel = outcomes.values()
    if serial == parallel:
        print("identical: every row's backend, server, subject, suite, clause and outcome match")
        return 0
    for row in (serial - parallel) + (parallel - serial):
        print(f"differs: {row}")
    return 1


__all__ = ["add_arguments", "run"]
