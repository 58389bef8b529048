"""The ``harness`` command: fetch the embedded model, serve it, run the suites, write reports."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.contract.errors import HarnessError
from harness.recording.cassettes import LOCAL_SERVERS

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _fetch_model(args: argparse.Namespace) -> int:
    from harness.servers.embedded import embedded_model

    model = embedded_model(fetch=True)
    print(f"embedded model: {model.name}\n  gguf: {model.gguf}\n  safetensors copy: {model.model_dir}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from harness.servers.catalog import make_server

    server = make_server(args.server, port=args.port)
    print(f"starting {server.name} on the embedded model...", flush=True)
    server.start()
    print(f"serving {server.model_id} at {server.base_url} (Ctrl-C or SIGTERM stops it)", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # a service manager's stop also stops the server
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _backends(args: argparse.Namespace) -> int:
    from harness.backends.registry import backend_names, get_backend

    for name in backend_names():
        spec = get_backend(name)
        missing = spec.missing_modules()
        state = f"missing {', '.join(missing)} (pip install 'model-conformance[{spec.extra}]')" if missing else "ready"
        reason = None if missing else spec.unavailable_reason()
        if reason:
            state = reason
        print(f"{name:18} {spec.kind:6} {state:60} {spec.description}")
    return 0


@dataclass
class SuiteRun:
    """One pytest run behind a report: its command line, and the lane it runs in.

    Runs of the ``main`` lane go one after another; runs of the ``beside`` lane (a local engine that
    computes on one core, such as mlx-lm on a Linux CPU) go one after another on a second lane at
    the same time, so the machine's other core is not left idle for the length of that engine's runs.
    """

    lane: str
    cmd: list[str]


# Suites the HTTP backends replay from the first server's recordings only: the fault suite injects its
# faults at the transport, whatever the server; the agents suite is recorded from the first server; the
# property and BFCL checks are answered by the suites' recorded-reply responder, built from the first
# server's recording whatever the server (run again per server, they would repeat the same checks).
FIRST_SERVER_ONLY = ("suites/test_faults.py", "suites/test_agents.py", "suites/test_properties.py",
                     "suites/test_bfcl.py", "suites/test_constructor.py", "suites/test_wire_translation.py",
                     "suites/test_stream_boundaries.py")


# A suite run's exit codes a report goes on after: 1 = some checks failed, which the report shows; 5 = none ran.
SUITE_RUN_OK = (0, 1, 5)


def _vllm_apart() -> str | None:
    """The interpreter of vllm's own environment when this one lacks vllm (MODEL_CONFORMANCE_VLLM_PYTHON)."""
    import importlib.util

    vllm_python = os.environ.get("MODEL_CONFORMANCE_VLLM_PYTHON")
    return vllm_python if vllm_python and importlib.util.find_spec("vllm") is None else None


def _names(spec: str) -> list[str]:
    return [n.strip() for n in spec.split(",") if n.strip()]


def default_beside() -> str:
    """mlx beside the rest where mlx-lm computes on a CPU core (not on Apple silicon's GPU)."""
    return "" if sys.platform == "darwin" else "mlx"


def suite_runs(backend: str, servers: str, subject: str, mode: str, results: Path, beside: str = "",
               dicts_only: str = "") -> list[SuiteRun]:
    """The pytest runs behind a report: every backend once, the HTTP ones again per further server.

    vllm runs with the interpreter named by MODEL_CONFORMANCE_VLLM_PYTHON when this one lacks it
    (``make`` builds vllm an environment of its own, .venv-vllm). A backend named in ``beside`` gets a
    run of its own in the ``beside`` lane; one named in ``dicts_only`` gets the suites' conversations
    as dicts only (``-k 'not smolagents_types'``).
    """
    from harness.backends.registry import get_backend, resolve_backends

    names = resolve_backends(backend, require_installed=False)
    for option, value in (("--beside", beside), ("--dicts-only", dicts_only)):
        if value:
            try:  # a misspelt name is an error naming the valid ones
                resolve_backends(value, require_installed=False)
            except HarnessError as exc:
                raise HarnessError(f"{option}: {exc}") from None
    vllm_python = _vllm_apart()
    apart = ["vllm"] if "vllm" in names and vllm_python else []
    alone = [n for n in names if n in _names(beside) and n not in apart]
    here = [n for n in names if n not in apart and n not in alone]
    server_list = _names(servers)
    common = ["-m", "pytest", "suites", "-q", "-p", "no:randomly", f"--subject={subject}", f"--mode={mode}",
              f"--results={results}"]

    def only(backends: list[str]) -> list[str]:
        return ["-k", "not smolagents_types"] if set(backends) <= set(_names(dicts_only)) else []

    runs = []
    if here:
        runs.append(SuiteRun("main", [sys.executable, *common, f"--backend={','.join(here)}",
                                      f"--server={server_list[0]}", *only(here)]))
    http = [n for n in here if get_backend(n).kind == "http"]
    for server in server_list[1:]:
        if http:
            runs.append(SuiteRun("main", [sys.executable, *common, f"--backend={','.join(http)}",
                                          f"--server={server}", *(f"--ignore={p}" for p in FIRST_SERVER_ONLY)]))
    if apart and vllm_python:
        runs.append(SuiteRun("main", [vllm_python, *common, "--backend=vllm", *only(["vllm"])]))
    for name in alone:
        runs.append(SuiteRun("beside", [sys.executable, *common, f"--backend={name}", *only([name])]))
    return runs


def _show(cmd: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in cmd[2:])


def _run_beside(runs: list[SuiteRun], env: dict[str, str], log: Path, codes: list[int]) -> None:
    """The beside lane: its runs one after another, their output into ``log``; exit codes into ``codes``."""
    from harness.contract.secrets import scrub_text

    with log.open("w", encoding="utf-8") as out:
        for run in runs:
            out.write(scrub_text(f"$ {_show(run.cmd)}\n"))
            out.flush()
            # line by line through the redaction: the log is published with the report
            with subprocess.Popen(run.cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, encoding="utf-8", errors="replace") as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    out.write(scrub_text(line))
                    out.flush()
            code = proc.returncode
            codes.append(code)
            if code not in SUITE_RUN_OK:
                return


def _latency_runs(results: Path, requests: int, servers: str = ",".join(LOCAL_SERVERS)) -> list[list[str]]:
    """``harness bench latency`` for the report, through ``servers``: here, and vllm in-process apart."""
    from harness.bench.latency import DEFAULT_TARGETS

    base = ["-m", "harness.cli", "bench", "latency", f"--output={results}", f"--requests={requests}",
            f"--servers={servers}"]
    vllm_python = _vllm_apart()
    if vllm_python:
        targets = ",".join(t for t in _names(DEFAULT_TARGETS) if t != "vllm")
        return [[sys.executable, *base, f"--targets={targets}"],
                [vllm_python, *base, "--targets=vllm"]]
    return [[sys.executable, *base]]


def _report(args: argparse.Namespace) -> int:
    from harness.reporting.report import write_report
    from harness.results.schema import load_results, new_run_id

    run = args.run or new_run_id()
    failed_steps: list[str] = []  # a step that failed is named again at the end, and the exit status says so
    out_dir = Path(args.output_dir or Path("reports") / run)
    if args.results:
        paths = [Path(p) for p in args.results]
    else:
        run_dir = Path("reports/_runs")
        run_dir.mkdir(parents=True, exist_ok=True)
        results = run_dir / f"{run}.jsonl"
        env = {**os.environ, "MODEL_CONFORMANCE_RUN": run}
        runs = [r for subject in _names(args.subjects)
                for r in suite_runs(args.backend, args.servers, subject, args.mode, results, args.beside,
                                    args.dicts_only)]
        beside = [r for r in runs if r.lane == "beside"]
        main_env = env
        thread = None
        beside_codes: list[int] = []
        started = time.monotonic()
        if beside:
            log = run_dir / f"{run}-beside.log"
            # the beside lane computes on one core: the rest (transformers included) gets the other one
            main_env = {**env, "OMP_NUM_THREADS": "1"}
            print(f"{len(beside)} run(s) beside the rest, output in {log}:", flush=True)
            for r in beside:
                print(f"  $ {_show(r.cmd)}", flush=True)
            thread = threading.Thread(target=_run_beside, args=(beside, {**env, "OMP_NUM_THREADS": "1"}, log,
                                                                  beside_codes), daemon=True)
            thread.start()
        for r in runs:
            if r.lane != "main":
                continue
            print(f"$ {_show(r.cmd)}", flush=True)
            code = subprocess.call(r.cmd, env=main_env)
            if code not in SUITE_RUN_OK:
                print(f"suite run {_show(r.cmd)} exited with {code}", file=sys.stderr)
                return code
        if thread is not None:
            while thread.is_alive():
                thread.join(timeout=60)
                if thread.is_alive():
                    print(f"waiting for the run(s) beside the rest: {len(beside_codes)} of {len(beside)} done, "
                          f"{time.monotonic() - started:.0f} s since the start (output in {log})", flush=True)
            print(f"---- the run(s) beside the rest ({log}) ----", flush=True)
            print(log.read_text(encoding="utf-8", errors="replace").rstrip(), flush=True)
            bad = [c for c in beside_codes if c not in SUITE_RUN_OK]
            if bad or len(beside_codes) < len(beside):
                print(f"a suite run beside the rest exited with {bad[0] if bad else 'no code'}", file=sys.stderr)
                return bad[0] if bad else 1
        if args.latency:
            for cmd in _latency_runs(results, args.latency_requests, args.servers):
                where = "" if cmd[0] == sys.executable else f" (with {cmd[0]})"
                print(f"$ harness {_show(cmd)[len('harness.cli '):]}{where}", flush=True)
                code = subprocess.call(cmd, env=env)
                if code != 0:
                    failed_steps.append(f"harness {_show(cmd)[len('harness.cli '):]}{where} exited with {code}")
                    print(f"the latency benchmark exited with {code} (its output above says why); the report holds "
                          "the rows it wrote before that", file=sys.stderr)
        print(f"suites{' and latency' if args.latency else ''} took {time.monotonic() - started:.0f} s", flush=True)
        paths = [results]
    rows = load_results(paths)
    if not rows:
        print("no results to report", file=sys.stderr)
        return 1
    previous = load_results(Path(p) for p in args.previous) if args.previous else []
    started = time.perf_counter()
    path = write_report(rows, out_dir, previous, failed_steps=failed_steps)
    print(f"report written to {path} (and report.html, results.csv, plots/) from {len(rows)} rows "
          f"in {time.perf_counter() - started:.2f} s")
    from harness.reporting.latency import unstable_targets

    for line in unstable_targets(rows):
        print(f"WARNING: latency of {line}", file=sys.stderr)
    if failed_steps:
        for step in failed_steps:
            print(f"harness report: a step failed: {step}", file=sys.stderr)
        return 1
    if args.fail_on_regression and previous:
        from harness.reporting.report import regressions

        regressed = [c for c in regressions(rows, previous) if c["change"].startswith("REGRESSION")]
        for change in regressed:
            print(f"{change['change']}: {change['what']} on {change['hardware']}: {change['detail']}", file=sys.stderr)
        if regressed:
            print(f"harness report: {len(regressed)} regression(s) against --previous", file=sys.stderr)
            return 1
    return 0


def _scan(args: argparse.Namespace) -> int:
    from harness.recording.scan import scan_paths

    problems = scan_paths(args.paths)
    for problem in problems:
        print(problem)
    if problems:
        print(f"harness scan: {len(problems)} secret(s) found; remove them (a cassette: re-record it)", file=sys.stderr)
        return 1
    print(f"harness scan: no secret in {', '.join(args.paths)}")
    return 0


def _stamp(args: argparse.Namespace) -> int:
    from harness.recording.record import stamp_cassettes

    outcomes = stamp_cassettes([Path(p) for p in args.paths], check=args.check)
    counts: dict[str, int] = {}
    for path, what in outcomes:
        if what != "up to date":
            print(f"{what}: {path}")
        counts[what.split(" (")[0]] = counts.get(what.split(" (")[0], 0) + 1
    print("harness cassettes stamp: " + (", ".join(f"{n} {w}" for w, n in sorted(counts.items())) or "no cassettes"))
    bad = [w for _, w in outcomes if w.startswith("refused") or (args.check and w == "unstamped")]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch-model", help="fetch the embedded model into the cache (once)").set_defaults(fn=_fetch_model)
    serve = sub.add_parser("serve", help="run the local OpenAI-compatible server on 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    serve.add_argument("--server", default=LOCAL_SERVERS[0], choices=LOCAL_SERVERS,
                       help="which server (default: %(default)s; vllm-serve uses MODEL_CONFORMANCE_VLLM_PYTHON "
                       "or this interpreter's vllm, llama-cpp-serve MODEL_CONFORMANCE_LLAMACPP_PYTHON or this "
                       "interpreter's llama-cpp-python)")
    serve.set_defaults(fn=_serve)
    sub.add_parser("backends", help="list backends and whether they can run here").set_defaults(fn=_backends)
    report = sub.add_parser("report", help="run the suites (and the latency benchmark) and write the comparison "
                                           "report: report.md, report.html, results.csv, plots/")
    report.add_argument("--backend", default="all", help="backends to run (default: all)")
    report.add_argument("--subjects", default="adapters,smolagents", help="comma list of subjects")
    report.add_argument("--mode", default="replay", help="replay (default), record or live")
    report.add_argument("--servers", default=",".join(LOCAL_SERVERS),
                        help="the servers whose recordings the HTTP backends replay, and that the latency benchmark "
                             "starts (default: %(default)s)")
    report.add_argument("--beside", default=default_beside(),
                        help="backends whose suites run on a second lane beside the rest, each computing on one "
                             "core (default here: %(default)r; empty: everything in one lane)")
    report.add_argument("--dicts-only", default=default_beside(),
                        help="backends given the suites' conversations as dicts only, not also as smolagents' "
                             "objects (default here: %(default)r; empty: both forms everywhere)")
    report.add_argument("--latency", action="store_true",
                        help="also run 'harness bench latency' on the embedded model (local engines and server)")
    report.add_argument("--latency-requests", type=int, default=20, help="measured requests per latency target")
    report.add_argument("--results", nargs="*",
                        help="render these results files (one or many machines' runs) instead of running anything; "
                             "at least one file")
    report.add_argument("--previous", nargs="*", help="results files of a previous run: list regressions against it")
    report.add_argument("--fail-on-regression", action="store_true",
                        help="with --previous: exit 1 when a check went from pass to fail or a latency percentile "
                             "got slower, after writing the report (what the nightly fails on)")
    report.add_argument("--run", help="the run's name (default: UTC time and host hash); the report goes to "
                                      "reports/<run>/")
    report.add_argument("--output-dir", help="where to write the report (default: reports/<run>/)")
    report.set_defaults(fn=_report)
    scan = sub.add_parser(
        "scan", help="exit 1 naming file and line of every secret in the files (or directories)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Exit 1 naming file and line of every secret in the files (or directories). Files are read as\n"
                    "an SDK reads a body: gzip and deflate bodies (also stacked, and compressed without saying so),\n"
                    "YAML !!binary bodies, folded and wrapped YAML scalars, AWS event streams, and .gz files.\n\n"
                    "Found with no key in the environment (by their shape): OpenAI keys (sk-...), Hugging Face\n"
                    "tokens (hf_...), AWS access key ids (AKIA/ASIA...) and SigV4 credentials and signatures,\n"
                    "Bedrock API keys (ABSK..., bedrock-api-key-...), JWTs such as Entra ID tokens, bearer tokens;\n"
                    "also inside base64 text.\n"
                    "Found only while the key is configured here (environment, AWS and Hugging Face credential\n"
                    "files): keys with no recognisable shape, such as Azure OpenAI keys, AWS secret access keys,\n"
                    "LiteLLM or custom keys. So a run redacts what it knows before writing anything, rather than\n"
                    "relying on a later scan of downloaded artefacts.")
    scan.add_argument("paths", nargs="+", help="files or directories (cassettes/, logs, JUnit XML, reports)")
    scan.set_defaults(fn=_scan)
    cassettes = sub.add_parser("cassettes", help="maintain recorded cassettes (stamp: write their content digests)")
    cassette_commands = cassettes.add_subparsers(dest="cassettes_command", required=True)
    stamp = cassette_commands.add_parser(
        "stamp", help="write into each cassette's provenance the digest of its interactions, which replay checks "
                      "(refuses a file without provenance or holding a secret)")
    stamp.add_argument("paths", nargs="*", default=["cassettes"], help="cassette files or folders (default: cassettes)")
    stamp.add_argument("--check", action="store_true", help="write nothing; exit 1 if a cassette is not stamped")
    stamp.set_defaults(fn=_stamp)
    from harness.bench import add_bench_parser

    add_bench_parser(sub)
    from harness.recording.derive import add_derive_parser

    add_derive_parser(sub)
    from harness.reporting.drift import add_drift_parser

    add_drift_parser(sub)
    args = parser.parse_args(argv)
    for option in ("results", "previous"):  # an empty list would silently mean "run everything"
        if getattr(args, "fn", None) is _report and getattr(args, option) == []:
            report.error(f"--{option} needs at least one results file, e.g. --{option} results/linux.jsonl")
    try:
        return int(args.fn(args))
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
