"""Mutation testing of the contract's logic, judged by the conformance suites alone.

    python tools/mutation.py [--jobs 2] [--fail-under 95] [--only harness.contract.tool_calls]
        [--backends openai,bedrock]   # one judge for every target (default: each target's own, below)
    python tools/mutation.py --rerun-survivors [--only ...]   # after strengthening the suites

Runs mutmut (configured under ``[tool.mutmut]`` in pyproject.toml) on the targets below, with ``pytest suites``
replaying cassettes as the only judge, then prints killed / survived per target and every survivor (``mutmut show
NAME`` prints its diff). The score is the share killed of the mutants with a verdict: a mutant whose run timed out
is listed apart, with no verdict, and never counted as killed. Beside it, the score without the survivors
docs/mutation.md gives as equivalent (kind E: no test can tell them from the code), the usual definition of a
mutation score, which ``--fail-under`` reads; every other survivor (unreachable, wording, outside the contract,
gap) counts against it. Work happens in ``mutants/<judge>/``, a copy of the tree per group of targets judged by the
same backends, which a run of that group starts afresh; ``--rerun-survivors`` keeps it and judges only the last
run's survivors (and timed-out mutants) again, with the suites as they are now (the group's copy takes the
project's ``suites/`` and unmutated modules again, mutmut copies them on and collects coverage for the new tests;
killed verdicts stand; a mutated file changed since the copy was made means its target must be run afresh, and the
rerun refuses). The table gives each target's killed / survived / timeout / no-tests counts and score; timeouts are
listed apart, and every survivor with the reason ``docs/mutation.md`` gives for it (or NO REASON GIVEN).

``--also-on PYTHON`` judges the survivors once more with another environment's interpreter (the newest SDK
releases the ranges allow: ``.venv-newest/bin/python``), where code written for a newer SDK release runs: each
mutant in a process of its own (``PYTHON -m pytest`` on the suite tests that reached any function of its module,
with mutmut's ``MUTANT_UNDER_TEST``; a branch reached only on the newer release is reached by no test on the pinned
one), since newer SDK stacks refuse to run in a process forked after they started, as mutmut's children are.
The suites must pass there unmutated first. A mutant counts as killed when the suites kill it in either
environment; the verdicts are kept in ``mutants/<judge>/also-<environment>.json`` until the group runs
afresh. Exit status: 0, or 1 when the score over all the targets run (equivalent survivors left out) is under
``--fail-under``, or 2 when mutmut itself failed (or the other environment's suites fail unmutated).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
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
    # the Model pipeline every adapter runs through: validation, kwargs merge, REMOVE_PARAMETER, the stop
    # rule, the tool schemas, client-side trimming and stream agglomeration (not retries, throttling, to_dict)
    "harness.contract.model": [
        *(f"harness.contract.model.x_{name}__mutmut_*" for name in (
            "is_remove_parameter", "supports_stop_parameter", "tool_json_schema", "validate_call",
            "agglomerate_stream_deltas")),
        *(f"harness.contract.model.xǁModelǁ{name}__mutmut_*" for name in (
            "__init__", "supports_stop_parameter", "_stop_rule", "prepare_request", "generate", "generate_stream",
            "parse_tool_calls", "_finish")),
    ],
}
# The adapters of the HTTP backends, whole modules: request out, reply and stream in, client set-up and
# error mapping. The local engines' adapters (transformers, mlx, vllm, _local) are judged live only
# (minutes per mutant on 2 cores), and adapters/__init__.py holds the registrations the suites build
# their models from: neither is judged by a replay.
ADAPTER_TARGETS = {
    "adapters._openai_wire": ["adapters._openai_wire.*"],
    "adapters.openai": ["adapters.openai.*"],
    "adapters.azure": ["adapters.azure.*"],
    "adapters.hf": ["adapters.hf.*"],
    "adapters.litellm": ["adapters.litellm.*"],
    "adapters.bedrock": ["adapters.bedrock.*"],
    # the Converse shapes the Bedrock adapter (and the cassette derivation) share
    "harness.wire.converse": ["harness.wire.converse.*"],
}
TARGETS = {**HARNESS_TARGETS, **ADAPTER_TARGETS}
# Every HTTP backend: each adapter module is judged through the backend that runs it.
DEFAULT_BACKENDS = "openai,inference-client,litellm,litellm-router,azure,bedrock"
# The judge of each target by default: the backends whose requests and replies run through its code (mutmut
# runs a mutant only against the tests that reached it, so another backend's suites would only lengthen the
# stats run). The contract's modules and the shared wire helpers are judged on every HTTP backend.
TARGET_BACKENDS = {
    "adapters.openai": "openai,azure,litellm,litellm-router",  # azure subclasses it; litellm maps errors with it
    "adapters.azure": "azure",
    "adapters.hf": "inference-client",
    "adapters.litellm": "litellm,litellm-router",
    "adapters.bedrock": "bedrock",
    "harness.wire.converse": "bedrock",
}
# Where each survivor's reason is written down (a table row starting with the mutant's name in backticks)
REASONS = ROOT / "docs" / "mutation.md"

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
    """target -> {mutant name: status}, read from mutmut's meta files (of every group's work directory: a mutant
    not run in one group keeps the verdict another group gave it)."""
    statuses = _mutmut_statuses(root)
    for name in _killed_elsewhere(root, statuses):  # killed in another environment (--also-on)
        statuses[name] = "killed"
    return {
        target: {name: s for name, s in sorted(statuses.items()) if any(fnmatch(name, g) for g in patterns)}
        for target, patterns in globs.items()
    }


def _mutmut_statuses(root: Path) -> dict[str, str]:
    """mutant name -> the status mutmut's meta files give it, in a group's work directory."""
    codes: dict[str, int | None] = {}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"].items():
            if code is not None or name not in codes:
                codes[name] = code
    return {name: _status(code) for name, code in codes.items()}


def _killed_elsewhere(root: Path, statuses: dict[str, str] | None = None) -> dict[str, str]:
    """mutant name -> the other environment (``--also-on``) whose suites killed it, for the mutants of a group's
    work directory that mutmut's own run did not kill."""
    statuses = _mutmut_statuses(root) if statuses is None else statuses  # mutmut's own, as _mutmut_statuses
    unfinished = {name for name, status in statuses.items() if status in UNFINISHED}
    killed: dict[str, str] = {}
    for path in sorted(root.glob("also-*.json")):
        for name, status in json.loads(path.read_text(encoding="utf-8")).items():
            if status == "killed" and name in unfinished:
                killed.setdefault(name, path.stem.removeprefix("also-"))
    return killed


def _environment(python: str) -> str:
    """A short name for an interpreter's environment: its virtual environment's directory (``.venv-newest``)."""
    path = Path(python).absolute()
    return path.parent.parent.name if path.parent.name == "bin" else path.name


def _judge_elsewhere(python: str, backends: str, names: list[str], jobs: int) -> dict[str, str] | None:
    """Each mutant of ``names`` judged with ``python`` in a process of its own, on the suite tests mutmut's stats
    run found reaching any function of its module (fastest first, stopping at the first failure): name -> killed,
    survived, timeout or no tests. None when the suites fail there with no mutant applied (every verdict would be
    a kill)."""
    from concurrent.futures import ThreadPoolExecutor

    work = _workpath(backends)
    stats = json.loads((work / "mutants" / "mutmut-stats.json").read_text(encoding="utf-8"))
    tests, durations = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
    env = _judge_environment(work, backends)
    options = ["--cassette-dir=../cassettes", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-x"]

    def run(name: str, selected: list[str], timeout: float) -> str:
        try:
            done = subprocess.run([python, "-m", "pytest", *options, *selected], cwd=work / "mutants",
                                  env={**env, "MUTANT_UNDER_TEST": name}, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout"
        return {0: "survived", 1: "killed"}.get(done.returncode, "no tests")

    everything = sorted({t for by_function in tests.values() for t in by_function})
    if run("", everything, 1800) != "survived":
        return None

    def judge(name: str) -> str:
        # the tests that reached any function of the mutant's module: code reached only on the other environment's
        # SDK releases (a branch for an answer only they give) is reached by none on the pinned ones
        module = name.split(".x", 1)[0] + ".x"
        selected = sorted({t for function, reached in tests.items() if function.startswith(module) for t in reached},
                          key=lambda t: durations.get(t, 0.0))
        if not selected:
            return "no tests"
        return run(name, selected, 60 + 10 * sum(durations.get(t, 0.0) for t in selected))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(names, pool.map(judge, names)))


UNDECIDED = ("timeout", "not run")  # no verdict: a timed-out run proves nothing either way (a busy machine)
UNFINISHED = ("survived", "no tests", "suspicious", "timeout")  # judged again by --rerun-survivors


def _reasons(path: Path | None = None) -> dict[str, str]:
    """mutant name -> the reason docs/mutation.md gives for its survival (its table's second column)."""
    path = path or REASONS
    reasons = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 2 and cells[0].startswith("`") and cells[0].endswith("`"):
                reasons[cells[0].strip("`")] = cells[1]
    return reasons


def _reason_for(name: str, reasons: dict[str, str]) -> str:
    """The reason given for ``name``: its own row, else a row whose name is a glob matching it (``..._mutmut_*``)."""
    if name in reasons:
        return reasons[name]
    return next((why for pattern, why in reasons.items() if "*" in pattern and fnmatch(name, pattern)),
                "NO REASON GIVEN")


KINDS = ("E", "U", "W", "O", "G")  # docs/mutation.md: equivalent, unreachable, wording, outside the contract, gap


def _kind(reason: str) -> str:
    """The kind a survivor's reason starts with (``E: ...``, ``G, judged since ...``); ``?`` for no reason, ``mixed``
    for a glob row giving several kinds (``Mutants 1-27: O, ... 39, 40: W``)."""
    if reason == "NO REASON GIVEN":
        return "?"
    match = re.match(r"\s*\**([EUWOG])\**\s*[:,]", reason)
    return match.group(1) if match else "mixed"


def _score(statuses: Counter[str], equivalent: int = 0) -> float:
    """Percent killed of the mutants with a verdict: only a failing suite kills; a timeout is reported apart,
    never counted as a kill; "no tests" counts as survived. ``equivalent`` survivors (those whose reason in
    docs/mutation.md is of kind E: no test of any judge can tell them from the code) leave the denominator, as in
    the usual definition of a mutation score; every other survivor counts against it, whatever its reason."""
    judged = sum(statuses.values()) - sum(statuses[s] for s in UNDECIDED) - equivalent
    return 100.0 * statuses["killed"] / judged if judged > 0 else 0.0


def _groups(chosen: list[str], backends: str | None) -> dict[str, list[str]]:
    """backends -> the targets they judge: one group when --backends is given, else by each target's own judge."""
    groups: dict[str, list[str]] = {}
    for target in chosen:
        groups.setdefault(backends or TARGET_BACKENDS.get(target, DEFAULT_BACKENDS), []).append(target)
    return groups


def _draw(statuses: dict[str, dict[str, str]], per_target: int, seed: int) -> list[str]:
    """``per_target`` mutant names of each target, drawn at random with ``seed`` (all of a smaller target)."""
    rng = random.Random(seed)
    drawn: list[str] = []
    for by_name in statuses.values():
        names = sorted(by_name)
        drawn += sorted(rng.sample(names, min(per_target, len(names))))
    return drawn


def _interval(killed: int, judged: int) -> tuple[float, float]:
    """The 95% Wilson interval of the killed share, in percent, of a sample of ``judged`` mutants."""
    if not judged:
        return 0.0, 100.0
    z, p = 1.96, killed / judged
    centre = (p + z * z / (2 * judged)) / (1 + z * z / judged)
    half = z * math.sqrt(p * (1 - p) / judged + z * z / (4 * judged * judged)) / (1 + z * z / judged)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def _workpath(backends: str) -> Path:
    return ROOT / "mutants" / backends.replace(",", "+")


def _workdir(backends: str) -> Path:
    """The copy of the project mutmut works in for one group (its own mutants/ inside): the sources it mutates
    and copies, the suites' configuration, and the cassettes (linked: only read)."""
    work = _workpath(backends)
    if not work.is_dir():
        work.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in ("harness", "adapters", "suites"):
            shutil.copytree(ROOT / name, work / name, ignore=ignore)
        shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
        (work / "cassettes").symlink_to(ROOT / "cassettes", target_is_directory=True)
    return work


def _mutated_files() -> list[str]:
    """The files mutmut mutates (``only_mutate`` in pyproject.toml's ``[tool.mutmut]``)."""
    import tomllib

    return list(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]["only_mutate"])


def _refresh(backends: str) -> list[str]:
    """Before judging a group's survivors again: its copy of the project made the project's own again (``suites/``,
    pyproject.toml, and the modules nobody mutates), so that the code and suites as they are now are the judge.
    Returns the mutated files that changed since the copy was made: their mutants are not this code's, and such a
    target must be run afresh (nothing is refreshed then)."""
    work = _workpath(backends)
    mutated = set(_mutated_files())
    changed = [name for name in sorted(mutated) if not (work / name).is_file()
               or (work / name).read_bytes() != (ROOT / name).read_bytes()]
    if changed:
        return changed
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.rmtree(work / "suites")
    shutil.copytree(ROOT / "suites", work / "suites", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    for name in ("harness", "adapters"):
        for path in sorted((ROOT / name).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "__pycache__" in relative.parts or str(relative) in mutated:
                continue
            copy = work / relative
            if not copy.is_file() or copy.read_bytes() != path.read_bytes():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)  # newer than mutmut's copy under mutants/: mutmut copies it again
    return []


def _judge_environment(work: Path, backends: str) -> dict[str, str]:
    """The environment the suites judge a group's mutants in: its work directory first on the path, offline."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(work), env.get("PYTHONPATH", "")) if p)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault("HF_HUB_OFFLINE", "1")
    # the property suites' short derandomized profile (suites/conftest.py): many mutants, each run kept short
    env.setdefault("HYPOTHESIS_PROFILE", "mutation")
    # the suites' options: the backends here; the cassette directory in pyproject's [tool.mutmut]
    env["PYTEST_ADDOPTS"] = f"--backend={backends}"
    return env


def _run_mutmut(globs: list[str], backends: str, jobs: int, log: Path) -> int:
    work = log.parent
    env = _judge_environment(work, backends)
    mutmut = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *globs]
    started, last = time.monotonic(), 0.0
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(mutmut, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
    parser.add_argument("--backends", default=None,
                        help="--backend value for the suites, the judge of every target (default: each target's "
                             f"own: {', '.join(f'{t} by {b}' for t, b in TARGET_BACKENDS.items())}; the others by "
                             f"{DEFAULT_BACKENDS})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--only", default="", help=f"comma list of targets (default: all of {', '.join(TARGETS)})")
    parser.add_argument("--fail-under", type=float, default=None,
                        help="exit 1 when the score over all targets run (percent killed of the mutants with a "
                             "verdict, timeouts having none, less the survivors docs/mutation.md gives as "
                             "equivalent, kind E) is lower")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="judge N mutants per target drawn at random (seeded) instead of all of them: the score "
                             "is then an estimate, printed with its 95%% interval")
    parser.add_argument("--seed", type=int, default=21, help="the draw of --sample (default: 21)")
    parser.add_argument("--report-only", action="store_true", help="print the last run's results; run nothing")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="keep mutants/ and judge the last run's survivors and timed-out mutants again with the "
                             "suites as they are now")
    parser.add_argument("--also-on", default=None, metavar="PYTHON",
                        help="then judge the survivors once more with this interpreter (another environment: the "
                             "newest SDK releases, .venv-newest/bin/python), each mutant in a process of its own; a "
                             "mutant counts as killed when the suites kill it in either environment")
    args = parser.parse_args(argv)
    if args.also_on is not None:
        if os.sep in args.also_on:  # a path, read from here: the judge runs in each group's work directory
            args.also_on = os.path.abspath(args.also_on)
        if shutil.which(args.also_on) is None:
            parser.error(f"--also-on {args.also_on}: no such interpreter (`make install VENV=.venv-newest "
                         "CONSTRAINTS=` builds the environment of the newest SDK releases)")

    chosen = [t.strip() for t in args.only.split(",") if t.strip()] or list(TARGETS)
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        parser.error(f"{', '.join(map(repr, unknown))}: not a target. Valid targets are: {', '.join(TARGETS)}")
    groups = _groups(chosen, args.backends)
    if not args.report_only and not args.rerun_survivors:
        for backends in groups:  # mutmut caches verdicts: the groups run now start afresh, the others are kept
            shutil.rmtree(_workpath(backends), ignore_errors=True)
    else:
        missing = [b for b in groups if not (_workpath(b) / "mutants").is_dir()]
        if missing:
            print(f"no {', '.join(str(_workpath(b).relative_to(ROOT)) for b in missing)} directory: run "
                  f"{', '.join(t for b in missing for t in groups[b])} without "
                  f"{'--report-only' if args.report_only else '--rerun-survivors'} first", file=sys.stderr)
            return 2
    for backends, targets in ([] if args.report_only else groups.items()):
        log = _workdir(backends) / "mutmut-run.log"
        if args.rerun_survivors:
            changed = _refresh(backends)
            if changed:
                print(f"{', '.join(changed)} changed since {_workpath(backends).relative_to(ROOT)} was made: the "
                      f"mutants judged there are not this code's; run {', '.join(targets)} without "
                      "--rerun-survivors", file=sys.stderr)
                return 2
            statuses = _results(log.parent, {t: TARGETS[t] for t in targets})
            run = [name for by_name in statuses.values() for name, s in by_name.items() if s in UNFINISHED]
            print(f"{', '.join(targets)}: judging {len(run)} survivors and timed-out mutants again; judge: "
                  f"pytest suites --backend={backends} (replay)", flush=True)
        elif args.sample is not None:
            # mutmut generates every mutant first; a name that matches none then stops it (an assertion) before any
            # test runs: the names are drawn from what it generated, and the drawn ones judged
            print(f"mutmut on {', '.join(targets)}: generating the mutants; judge: pytest suites "
                  f"--backend={backends} (replay)", flush=True)
            _run_mutmut(["no-such-mutant"], backends, args.jobs, log.with_name("mutmut-generate.log"))
            generated = _results(log.parent, {t: TARGETS[t] for t in targets})
            if not any(generated.values()):
                print(f"mutmut generated no mutant of {', '.join(targets)}; see "
                      f"{log.with_name('mutmut-generate.log').relative_to(ROOT)}", file=sys.stderr)
                return 2
            run = _draw(generated, args.sample, args.seed)
            print(f"judging {len(run)} mutants drawn at random ({args.sample} per target, seed {args.seed})",
                  flush=True)
        else:
            run = [g for t in targets for g in TARGETS[t]]
            print(f"mutmut on {', '.join(targets)}; judge: pytest suites --backend={backends} (replay)", flush=True)
        if not run:
            continue
        code = _run_mutmut(run, backends, args.jobs, log)
        if code != 0:
            print(f"mutmut failed (exit {code}); its output is in {log.relative_to(ROOT)}", file=sys.stderr)
            print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
            return 2

    if args.also_on and not args.report_only:
        where = _environment(args.also_on)
        for backends, targets in groups.items():
            statuses = _results(_workpath(backends), {t: TARGETS[t] for t in targets})
            names = [name for by_name in statuses.values() for name, s in by_name.items() if s in UNFINISHED]
            if not names:
                continue
            print(f"{', '.join(targets)}: judging {len(names)} survivors again on {where} ({args.also_on}), each "
                  f"mutant in a process of its own; judge: pytest suites --backend={backends} (replay)", flush=True)
            verdicts = _judge_elsewhere(args.also_on, backends, names, args.jobs)
            if verdicts is None:
                print(f"the suites fail on {where} with no mutant applied (--backend={backends}): its verdicts "
                      "would all be kills; nothing judged there", file=sys.stderr)
                return 2
            path = _workpath(backends) / f"also-{where}.json"
            kept = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            path.write_text(json.dumps({**kept, **verdicts}, indent=1, sort_keys=True), encoding="utf-8")
            print(f"  killed there: {sum(1 for v in verdicts.values() if v == 'killed')} of {len(names)}", flush=True)

    # each target's verdicts from its own group's directory (a run with another judge is kept apart)
    results = {t: {} for t in chosen}
    for backends, targets in groups.items():
        results.update(_results(_workpath(backends), {t: TARGETS[t] for t in targets}))
    reasons = _reasons()
    total: Counter[str] = Counter()
    total_equivalent = 0
    print(f"\n{'target':28} {'mutants':>7} {'killed':>7} {'survived':>8} {'timeout':>7} {'no tests':>8} "
          f"{'not run':>7} {'score':>7} {'E':>4} {'E out':>7}")

    def row(name: str, counts: Counter[str], equivalent: int) -> None:
        print(f"{name:28} {sum(counts.values()):7} {counts['killed']:7} {counts['survived']:8} "
              f"{counts['timeout']:7} {counts['no tests']:8} {counts['not run']:7} {_score(counts):6.1f}% "
              f"{equivalent:4} {_score(counts, equivalent):6.1f}%")

    for target, statuses in results.items():
        counts = Counter(statuses.values())
        equivalent = sum(1 for name, s in statuses.items()
                         if s in ("survived", "no tests") and _kind(_reason_for(name, reasons)) == "E")
        total += counts
        total_equivalent += equivalent
        row(target, counts, equivalent)
    if len(results) > 1:
        row("all targets", total, total_equivalent)
    print("(score: killed of the mutants with a verdict; E: survivors whose reason is of kind E, equivalent; "
          "E out: the score without them, which --fail-under reads)")
    elsewhere = {name: where for backends in groups for name, where in _killed_elsewhere(_workpath(backends)).items()
                 if any(name in statuses for statuses in results.values())}
    if elsewhere:
        print(f"\nkilled only in another environment (--also-on; counted as killed above): {len(elsewhere)}: "
              + ", ".join(f"{where} {n}" for where, n in sorted(Counter(elsewhere.values()).items())))
        for name, where in sorted(elsewhere.items()):
            reason = _reason_for(name, reasons)
            flag = "  <- its row says equivalent: the row or that judge is wrong" if _kind(reason) == "E" else ""
            print(f"  {where}: {name}{flag}")
    timeouts = [name for statuses in results.values() for name, s in statuses.items() if s == "timeout"]
    if timeouts:
        # no verdict: on a machine busier than during mutmut's stats run a slow survivor can time out too
        print(f"\ntimed out ({len(timeouts)}; no verdict, left out of the score; judge them again with "
              "--rerun-survivors on a quieter machine):")
        for name in timeouts:
            print(f"  {name}")
    survivors = [(name, s) for statuses in results.values() for name, s in statuses.items()
                 if s in ("survived", "no tests", "suspicious")]
    if survivors:
        unexplained = [name for name, _ in survivors if _reason_for(name, reasons) == "NO REASON GIVEN"]
        print(f"\nsurvivors ({len(survivors)}, {len(unexplained)} without a reason in "
              f"docs/{REASONS.name}; `cd mutants/<judge> && ../../.venv/bin/mutmut show NAME` prints a diff, "
              f"<judge> being {' or '.join(sorted(_workpath(b).name for b in groups))}):")
        for name, status in survivors:
            print(f"  {status:9} {name}: {_reason_for(name, reasons)}")
        print("\nsurvivors by kind (E equivalent, U unreachable, W wording, O outside the contract, G gap, "
              "? no reason):")
        for target, statuses in results.items():
            kinds = Counter(_kind(_reason_for(name, reasons)) for name, s in statuses.items()
                            if s in ("survived", "no tests", "suspicious"))
            if kinds:
                print(f"  {target:28} " + "  ".join(f"{k} {kinds[k]}" for k in (*KINDS, "mixed", "?") if kinds[k]))
    if total["not run"]:
        print(f"\n{total['not run']} mutants were not run (drawn out by --sample, or the run was cut short): the "
              "scores count the judged ones; as estimates of the whole target's score, their 95% intervals:")
        for target, statuses in results.items():
            counts = Counter(statuses.values())
            judged = sum(counts.values()) - sum(counts[s] for s in UNDECIDED)
            if counts["not run"] and judged:
                low, high = _interval(counts["killed"], judged)
                print(f"  {target:28} {_score(counts):5.1f}% of {judged} judged: [{low:.1f}, {high:.1f}]%")
    if args.fail_under is not None and _score(total, total_equivalent) < args.fail_under:
        print(f"\nscore {_score(total, total_equivalent):.1f}% (equivalent survivors left out; "
              f"{_score(total):.1f}% with them) is under --fail-under {args.fail_under}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
