"""Mutation testing of the contract's logic, judged by the conformance suites alone.

    python tools/mutation.py [--backends openai,bedrock] [--jobs 2] [--fail-under 95]
        [--only harness.contract.tool_calls]
    python tools/mutation.py --rerun-survivors [--only ...]   # after strengthening the suites

Runs mutmut (configured under ``[tool.mutmut]`` in pyproject.toml) on the targets below, with
``pytest suites`` replaying cassettes as the only judge, then prints killed / survived per target
and every survivor (``mutmut show NAME`` prints its diff). Work happens in ``mutants/``, a copy of
the tree, which each run starts afresh; ``--rerun-survivors`` keeps it and judges only the last run's
survivors again, with the suites as they are now (mutmut copies ``suites/`` again and collects
coverage for the new tests; killed verdicts stand). Exit status: 0, or 1 when the harness modules' score is
under ``--fail-under``, or 2 when mutmut itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What is mutated: mutmut mutant-name globs (module, then x_<function> or xǁClassǁmethod).
HARNESS_TARGETS = {
    "harness.contract.stop_sequences": ["harness.contract.stop_sequences.*"],
    "harness.contract.tool_calls": ["harness.contract.tool_calls.*"],
    "harness.contract.messages": ["harness.contract.messages.*"],
}
# The adapters' wire translation (request out, reply and stream in); not client set-up or error mapping.
ADAPTER_TARGETS = {
    "adapters._openai_wire": [
        f"adapters._openai_wire.x_{name}__mutmut_*"
        for name in ("completion_kwargs", "_get", "usage_of", "message_from_completion", "_tool_call_deltas",
                     "deltas_from_chunks")
    ],
    "adapters.bedrock": [
        f"adapters.bedrock.x_{name}__mutmut_*"
        for name in ("_image_bytes", "_image_block", "_blocks", "converse_messages", "converse_request", "_usage",
                     "message_from_converse", "deltas_from_converse_stream")
    ],
    # the Converse shapes the Bedrock adapter (and the cassette derivation) share
    "harness.wire.converse": ["harness.wire.converse.*"],
}
TARGETS = {**HARNESS_TARGETS, **ADAPTER_TARGETS}
# One backend per wire family by default, and inference-client: huggingface_hub's tool calls are
# dict subclasses without model_dump, the one SDK shape that reaches native_tool_calls' Mapping path.
DEFAULT_BACKENDS = "openai,inference-client,bedrock"

# mutmut's exit codes of a mutant's test run, as its own `stats.status_by_exit_code` reads them
KILLED = {1, 3, 37}
SURVIVED = {0}
TIMEOUT = {24, -24, 36, 152, 255}
NO_TESTS = {5, 33}


def _status(code: int | None) -> str:
    if code is None:
        return "not run"
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in TIMEOUT:
        return "timeout"
    if code in NO_TESTS:
        return "no tests"
    return "suspicious"


def _results(root: Path, globs: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """target -> {mutant name: status}, read from mutmut's meta files."""
    codes: dict[str, int | None] = {}
    for meta in (root / "mutants").rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return {
        target: {name: _status(code) for name, code in sorted(codes.items()) if any(fnmatch(name, g) for g in patterns)}
        for target, patterns in globs.items()
    }


def _score(statuses: Counter[str]) -> float:
    # a timeout counts as killed (the mutant changed behaviour); "no tests" counts as survived
    judged = sum(statuses.values()) - statuses["not run"]
    return 100.0 * (statuses["killed"] + statuses["timeout"]) / judged if judged else 0.0


def _run_mutmut(globs: list[str], backends: str, jobs: int, log: Path) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault("HF_HUB_OFFLINE", "1")
    # the property suites' short derandomized profile (suites/conftest.py): many mutants, each run kept short
    env.setdefault("HYPOTHESIS_PROFILE", "mutation")
    # the suites' options: the backends here; the cassette directory in pyproject's [tool.mutmut]
    env["PYTEST_ADDOPTS"] = f"--backend={backends}"
    mutmut = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *globs]
    started, last = time.monotonic(), 0.0
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(mutmut, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, encoding="utf-8", errors="replace")
        assert proc.stdout is not None
        buffer = ""
        while chunk := proc.stdout.read(256):
            out.write(chunk)
            buffer = (buffer + chunk).replace("\r", "\n")
            *lines, buffer = buffer.split("\n")
            progress = [ln for ln in lines if "/" in ln and "🎉" in ln]
            now = time.monotonic()
            if progress and now - last > 10:  # a progress line every 10 s, not mutmut's spinner
                print(f"  [{now - started:5.0f}s] {progress[-1].strip()}", flush=True)
                last = now
        return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=DEFAULT_BACKENDS,
                        help=f"--backend value for the suites (default: {DEFAULT_BACKENDS})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--only", default="", help=f"comma list of targets (default: all of {', '.join(TARGETS)})")
    parser.add_argument("--fail-under", type=float, default=None,
                        help="exit 1 when the harness modules' score (percent killed) is lower")
    parser.add_argument("--report-only", action="store_true", help="print the last run's results; run nothing")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="keep mutants/ and judge the last run's survivors again with the suites as they are now")
    args = parser.parse_args(argv)

    chosen = [t.strip() for t in args.only.split(",") if t.strip()] or list(TARGETS)
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        parser.error(f"{', '.join(map(repr, unknown))}: not a target. Valid targets are: {', '.join(TARGETS)}")
    globs = {t: TARGETS[t] for t in chosen}
    log = ROOT / "mutants" / "mutmut-run.log"
    run: list[str] = []
    if args.rerun_survivors:
        if not (ROOT / "mutants").is_dir():
            print("no mutants/ directory: run without --rerun-survivors first", file=sys.stderr)
            return 2
        run = [name for statuses in _results(ROOT, globs).values() for name, s in statuses.items()
               if s in ("survived", "no tests", "suspicious")]
        print(f"judging {len(run)} survivors again; judge: pytest suites --backend={args.backends} (replay)",
              flush=True)
    elif not args.report_only:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)  # mutmut caches verdicts: start afresh
        (ROOT / "mutants").mkdir()
        print(f"mutmut on {', '.join(chosen)}; judge: pytest suites --backend={args.backends} (replay)", flush=True)
        run = [g for gs in globs.values() for g in gs]
    if run:
        code = _run_mutmut(run, args.backends, args.jobs, log)
        if code != 0:
            print(f"mutmut failed (exit {code}); its output is in {log.relative_to(ROOT)}", file=sys.stderr)
            print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
            return 2
    elif not (ROOT / "mutants").is_dir():
        print("no mutants/ directory: run without --report-only first", file=sys.stderr)
        return 2

    results = _results(ROOT, globs)
    harness_total: Counter[str] = Counter()
    print(f"\n{'target':28} {'mutants':>7} {'killed':>7} {'survived':>8} {'timeout':>7} {'no tests':>8} {'score':>7}")
    for target, statuses in results.items():
        counts = Counter(statuses.values())
        if target in HARNESS_TARGETS:
            harness_total += counts
        print(f"{target:28} {sum(counts.values()):7} {counts['killed']:7} {counts['survived']:8} "
              f"{counts['timeout']:7} {counts['no tests']:8} {_score(counts):6.1f}%")
    if harness_total:
        print(f"{'harness (the three modules)':28} {sum(harness_total.values()):7} {harness_total['killed']:7} "
              f"{harness_total['survived']:8} {harness_total['timeout']:7} {harness_total['no tests']:8} "
              f"{_score(harness_total):6.1f}%")
    survivors = [name for statuses in results.values() for name, s in statuses.items()
                 if s in ("survived", "no tests", "suspicious")]
    if survivors:
        print(f"\nsurvivors ({len(survivors)}; `.venv/bin/mutmut show NAME` prints a diff):")
        for statuses in results.values():
            for name, status in statuses.items():
                if status in ("survived", "no tests", "suspicious"):
                    print(f"  {status:9} {name}")
    if args.fail_under is not None and harness_total and _score(harness_total) < args.fail_under:
        print(f"\nharness score {_score(harness_total):.1f}% is under --fail-under {args.fail_under}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
