"""The ``harness`` command: fetch the embedded model, serve it, run the suites, write reports."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.errors import HarnessError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _fetch_model(args: argparse.Namespace) -> int:
    from harness.embedded import embedded_model

    model = embedded_model(fetch=True)
    print(f"embedded model: {model.name}\n  gguf: {model.gguf}\n  safetensors copy: {model.model_dir}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from harness.server import make_server

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
    from harness.registry import backend_names, get_backend

    for name in backend_names():
        spec = get_backend(name)
        missing = spec.missing_modules()
        state = f"missing {', '.join(missing)} (pip install 'model-conformance[{spec.extra}]')" if missing else "ready"
        reason = None if missing else spec.unavailable_reason()
        if reason:
            state = reason
        print(f"{name:18} {spec.kind:6} {state:60} {spec.description}")
    return 0


def suite_runs(backend: str, servers: str, subject: str, mode: str, results: Path) -> list[list[str]]:
    """The pytest runs behind a report: every backend once, the HTTP ones again per further server.

    vllm runs with the interpreter named by MODEL_CONFORMANCE_VLLM_PYTHON when this one lacks it
    (``make`` builds vllm an environment of its own, .venv-vllm).
    """
    import importlib.util

    from harness.registry import get_backend, resolve_backends

    names = resolve_backends(backend, require_installed=False)
    vllm_python = os.environ.get("MODEL_CONFORMANCE_VLLM_PYTHON")
    apart = ["vllm"] if "vllm" in names and vllm_python and importlib.util.find_spec("vllm") is None else []
    here = [n for n in names if n not in apart]
    server_list = [s.strip() for s in servers.split(",") if s.strip()]
    common = ["-m", "pytest", "suites", "-q", "-p", "no:randomly", f"--subject={subject}", f"--mode={mode}",
              f"--results={results}"]
    runs = []
    if here:
        runs.append([sys.executable, *common, f"--backend={','.join(here)}", f"--server={server_list[0]}"])
    http = [n for n in here if get_backend(n).kind == "http"]
    for server in server_list[1:]:
        if http:
            runs.append([sys.executable, *common, f"--backend={','.join(http)}", f"--server={server}"])
    if apart and vllm_python:
        runs.append([vllm_python, *common, "--backend=vllm"])
    return runs


def _report(args: argparse.Namespace) -> int:
    from harness.reporting.report import write_report
    from harness.reporting.schema import load_results, new_run_id

    run = args.run or new_run_id()
    out_dir = Path(args.output_dir or Path("reports") / run)
    if args.results:
        paths = [Path(p) for p in args.results]
    else:
        run_dir = Path("reports/_runs")
        run_dir.mkdir(parents=True, exist_ok=True)
        results = run_dir / f"{run}.jsonl"
        env = {**os.environ, "MODEL_CONFORMANCE_RUN": run}
        for subject in args.subjects.split(","):
            for cmd in suite_runs(args.backend, args.servers, subject, args.mode, results):
                print(f"$ {' '.join(cmd[2:])}", flush=True)
                code = subprocess.call(cmd, env=env)
                if code not in (0, 1, 5):  # 1 = some checks failed, which the report shows; 5 = none ran
                    print(f"suite run for subject {subject} exited with {code}", file=sys.stderr)
                    return code
        if args.latency:
            cmd = [sys.executable, "-m", "harness.cli", "bench", "latency", f"--output={results}",
                   f"--requests={args.latency_requests}"]
            print(f"$ harness {' '.join(cmd[3:])}", flush=True)
            code = subprocess.call(cmd, env=env)
            if code != 0:
                print(f"the latency benchmark exited with {code}; reporting the suites without it", file=sys.stderr)
        paths = [results]
    rows = load_results(paths)
    if not rows:
        print("no results to report", file=sys.stderr)
        return 1
    previous = load_results(Path(p) for p in args.previous) if args.previous else []
    started = time.perf_counter()
    path = write_report(rows, out_dir, previous)
    print(f"report written to {path} (and report.html, results.csv, plots/) from {len(rows)} rows "
          f"in {time.perf_counter() - started:.2f} s")
    return 0


def _scan(args: argparse.Namespace) -> int:
    from harness.secrets import scan_paths

    problems = scan_paths(args.paths)
    for problem in problems:
        print(problem)
    if problems:
        print(f"harness scan: {len(problems)} secret(s) found; remove them (a cassette: re-record it)", file=sys.stderr)
        return 1
    print(f"harness scan: no secret in {', '.join(args.paths)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch-model", help="fetch the embedded model into the cache (once)").set_defaults(fn=_fetch_model)
    serve = sub.add_parser("serve", help="run the local OpenAI-compatible server on 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    serve.add_argument("--server", default="transformers-serve", choices=("transformers-serve", "vllm-serve"),
                       help="which server (default: %(default)s; vllm-serve uses MODEL_CONFORMANCE_VLLM_PYTHON "
                       "or this interpreter's vllm)")
    serve.set_defaults(fn=_serve)
    sub.add_parser("backends", help="list backends and whether they can run here").set_defaults(fn=_backends)
    report = sub.add_parser("report", help="run the suites (and the latency benchmark) and write the comparison "
                                           "report: report.md, report.html, results.csv, plots/")
    report.add_argument("--backend", default="all", help="backends to run (default: all)")
    report.add_argument("--subjects", default="adapters,smolagents", help="comma list of subjects")
    report.add_argument("--mode", default="replay", help="replay (default), record or live")
    report.add_argument("--servers", default="transformers-serve,vllm-serve",
                        help="the servers whose recordings the HTTP backends replay (default: %(default)s)")
    report.add_argument("--latency", action="store_true",
                        help="also run 'harness bench latency' on the embedded model (local engines and server)")
    report.add_argument("--latency-requests", type=int, default=20, help="measured requests per latency target")
    report.add_argument("--results", nargs="*",
                        help="render these results files (one or many machines' runs) instead of running anything")
    report.add_argument("--previous", nargs="*", help="results files of a previous run: list regressions against it")
    report.add_argument("--run", help="the run's name (default: UTC time and host hash); the report goes to "
                                      "reports/<run>/")
    report.add_argument("--output-dir", help="where to write the report (default: reports/<run>/)")
    report.set_defaults(fn=_report)
    scan = sub.add_parser("scan", help="exit 1 naming file and line of every secret in the files (or directories)")
    scan.add_argument("paths", nargs="+", help="files or directories (cassettes/, logs, JUnit XML, reports)")
    scan.set_defaults(fn=_scan)
    from harness.bench import add_bench_parser

    add_bench_parser(sub)
    from harness.derive import add_derive_parser

    add_derive_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
