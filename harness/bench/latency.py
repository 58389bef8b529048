"""Streaming latency of live targets: TTFT, TPOT, ITL, end-to-end and output tokens/s, with the decode roofline.

Targets: the local engines in-process (``transformers``, ``mlx``, ``vllm``: this project's adapter,
``generate_stream``), the local server (``transformers serve`` on the embedded model) through each
HTTP adapter (``server:openai``, ``server:inference-client``, ``server:litellm``), and any live
OpenAI-compatible endpoint the user names (``--endpoint``). Each request is one row of the results
schema (``kind=sample``); the first ``--warmup`` requests per target are written with ``warmup=true``
and left out of every statistic. Definitions follow vLLM's ``bench serve``:

- TTFT: time from sending the request to the first streamed content chunk.
- TPOT: (end-to-end - TTFT) / (output tokens - 1), per request.
- ITL: the gaps between successive content chunks (every gap of every request is one value).
- E2E: time from sending the request to the end of the stream.
- output tokens/s: output tokens / E2E, per request.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from harness.backends.registry import Target, get_backend
from harness.recording.cassettes import LOCAL_SERVERS

ENGINES = ("transformers", "mlx", "vllm")
SERVER_ADAPTERS = ("openai", "inference-client", "litellm")
DEFAULT_TARGETS = ",".join([*ENGINES, *(f"server:{b}" for b in SERVER_ADAPTERS)])
PROMPT = "Write one sentence about the sea."
DEFINITIONS = __doc__.split("Definitions follow vLLM's ``bench serve``:", 1)[1].strip()  # type: ignore[union-attr]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--targets", default=DEFAULT_TARGETS,
                        help="comma list: engines (transformers, mlx, vllm) and server:<http backend> "
                             "(default: %(default)s)")
    parser.add_argument("--requests", type=int, default=20, help="measured requests per target (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="warm-up requests per target, written but left out of statistics (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=32, help="output token budget (default: %(default)s)")
    parser.add_argument("--servers", default=",".join(LOCAL_SERVERS),
                        help="local servers the server:<backend> targets go through; one that cannot start here "
                             "is skipped with the reason (default: %(default)s)")
    parser.add_argument("--endpoint", default=None,
                        help="also measure this live OpenAI-compatible endpoint (base URL ending in /v1)")
    parser.add_argument("--endpoint-model", default=None, help="model id at --endpoint")
    parser.add_argument("--endpoint-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding --endpoint's key (default: %(default)s)")
    parser.add_argument("--endpoint-backends", default="openai",
                        help="HTTP adapters to reach --endpoint through (default: %(default)s)")
    parser.add_argument("--label", default=None, help="a note kept in every row (e.g. 'taskset -c 0')")
    parser.add_argument("--output", default=None,
                        help="results file, appended to (default: reports/bench-latency-<hardware>.jsonl)")


def _device(backend: str, model: Any) -> str:
    """Where an in-process engine runs: cuda, metal or cpu."""
    if backend == "mlx":
        import mlx.core as mx

        return "metal" if mx.default_device() == mx.gpu and sys.platform == "darwin" else "cpu"
    inner = getattr(model, "model", None)
    device = str(getattr(inner, "device", "cpu"))
    if device.startswith("cuda") or backend == "vllm":
        return "cuda" if backend != "vllm" or _cuda() else "cpu"
    return "metal" if device.startswith("mps") else "cpu"


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _with_budget(settings: dict[str, Any], tokens: int) -> dict[str, Any]:
    """The settings with the output token budget set, under whichever name the backend uses."""
    from harness.bench.engines import BUDGET_KEYS

    out = dict(settings)
    keys = [k for k in BUDGET_KEYS if k in out] or ["max_tokens"]
    for key in keys:
        out[key] = tokens
    return out


def measure_stream(model: Any, messages: list[dict[str, Any]],
                   clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """One streamed request: the schema's latency figures and token counts."""
    start = clock()
    arrivals: list[float] = []
    output_tokens = input_tokens = None
    for delta in model.generate_stream(messages):
        if delta.content:
            arrivals.append(clock())
        if delta.token_usage is not None:
            output_tokens = delta.token_usage.output_tokens
            input_tokens = delta.token_usage.input_tokens
    end = clock()
    return figures(start, arrivals, end, output_tokens, input_tokens)


def figures(start: float, arrivals: list[float], end: float, output_tokens: int | None,
            input_tokens: int | None) -> dict[str, Any]:
    """TTFT, TPOT, ITL, E2E and tokens/s from the send time, the content chunks' arrival times and the end."""
    if not arrivals:
        raise RuntimeError("the stream returned no content")
    tokens = output_tokens if output_tokens else len(arrivals)  # usage when reported, else one token per chunk
    e2e = end - start
    ttft = arrivals[0] - start
    return {  # microseconds are the clock's useful resolution here; more digits only lengthen the file
        "ttft_s": round(ttft, 6),
        "tpot_s": round((e2e - ttft) / (tokens - 1), 7) if tokens > 1 else None,
        "itl_s": [round(b - a, 6) for a, b in zip(arrivals, arrivals[1:])],
        "e2e_s": round(e2e, 6),
        "duration_s": round(e2e, 6),
        "output_tokens_per_s": round(tokens / e2e, 3) if e2e > 0 else None,
        "output_tokens": tokens,
        "input_tokens": input_tokens,
    }


class _Progress:
    """One line per target, rewritten in place on a terminal, one line per tenth otherwise."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.tty = name, total, sys.stderr.isatty()
        self.started = time.monotonic()

    def update(self, done: int, note: str = "") -> None:
        if not self.tty and done not in (1, self.total) and done % max(1, self.total // 10):
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (self.total - done) if done else 0
        text = f"  {self.name}: {done}/{self.total} requests, {elapsed:.0f} s elapsed, ~{eta:.0f} s left {note}"
        if self.tty:
            print("\r" + text.ljust(100), end="" if done < self.total else "\n", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)


@contextmanager
def _local_server(name: str) -> Iterator[Target]:
    from harness.recording.network import hub_clients_online
    from harness.servers.catalog import make_server

    with hub_clients_online(), make_server(name) as server:
        yield Target(mode="live", base_url=server.base_url, served_model_id=server.model_id)


def _targets(spec: str) -> list[str]:
    names = [t.strip() for t in spec.split(",") if t.strip()]
    for name in names:
        backend = name.split(":", 1)[1] if name.startswith("server:") else name
        try:
            get_backend(backend)
        except Exception as exc:
            raise SystemExit(f"harness bench latency: {name!r}: {exc}") from None
        if name.startswith("server:") and get_backend(backend).kind != "http":
            raise SystemExit(f"harness bench latency: {name!r}: {backend} is not an HTTP backend")
        if not name.startswith("server:") and get_backend(backend).kind != "local":
            raise SystemExit(f"harness bench latency: {name!r} is not a local engine; use server:{backend} "
                             f"or --endpoint")
    return names


def _factory(spec: Any, settings: dict[str, Any]) -> Callable[[], Any]:
    return lambda: spec.load()(**settings)


def run(args: argparse.Namespace) -> int:
    """Measure every target, append sample rows to the results file, print the latency table."""
    from harness.bench import results_path
    from harness.bench.roofline import bandwidth_for, roofline, weight_bytes
    from harness.bench.stability import judge, measuring
    from harness.reporting.latency import latency_table, unstable_targets
    from harness.results.schema import append_rows, make_row, new_run_id, run_context
    from harness.servers.embedded import embedded_model

    if args.requests < 1 or args.warmup < 0 or args.max_tokens < 2:
        raise SystemExit("harness bench latency: --requests >= 1, --warmup >= 0 and --max-tokens >= 2 are required")
    targets = _targets(args.targets)
    if args.endpoint and not args.endpoint_model:
        raise SystemExit("harness bench latency: --endpoint needs --endpoint-model")
    embedded = embedded_model()
    context = run_context(embedded.name)
    run_id = os.environ.get("MODEL_CONFORMANCE_RUN") or new_run_id()
    path = results_path("latency", args.output)
    messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    weights = weight_bytes(embedded.model_dir)
    bandwidths: dict[str, Any] = {}
    written: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        row = make_row(kind, run=run_id, context=context, suite="bench-latency", subject="adapters", mode="live",
                       extra={**fields.pop("extra", {}), **({"label": args.label} if args.label else {})}, **fields)
        append_rows(path, [row])
        written.append(row)

    def bench(name: str, backend: str, server: str | None, model_factory: Callable[[], Any], model_id: str) -> None:
        base = {"backend": backend, "server": server, "clause": f"stream {args.max_tokens} tokens", "model": model_id}
        try:
            model = model_factory()
        except Exception as exc:  # noqa: BLE001 - a target that cannot start is reported, the others go on
            emit("summary", outcome="error", message=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                 **base)
            print(f"  {name}: could not start: {exc}", file=sys.stderr)
            return
        device = _device(backend, model) if server is None else "server"
        decode_rates: list[float] = []
        attempts: list[dict[str, Any]] = []
        for attempt in (1, 2):  # a target whose figures cannot be trusted is measured once more
            warmup = args.warmup if attempt == 1 else 0
            progress = _Progress(name if attempt == 1 else f"{name} (measured again)", warmup + args.requests)
            decode_rates, values, e2e = [], [], []
            with measuring() as conditions:
                for i in range(warmup + args.requests):
                    warm = i < warmup
                    try:
                        fig = measure_stream(model, messages)
                        emit("sample", outcome="ok", warmup=warm, extra={"attempt": attempt}, **base, **fig)
                        if not warm:
                            e2e.append(fig["e2e_s"])
                            if fig["tpot_s"]:
                                decode_rates.append(1 / fig["tpot_s"])
                                values.append(fig["tpot_s"])
                    except Exception as exc:  # noqa: BLE001
                        emit("sample", outcome="error", warmup=warm, message=f"{type(exc).__name__}: {exc}"[:300],
                             extra={"attempt": attempt}, **base)
                    progress.update(i + 1, "(warm-up)" if warm else "")
            spread, warnings = judge(values, "TPOT") if len(values) >= len(e2e) > 0 else judge(e2e, "E2E")
            attempts.append({"attempt": attempt, **spread, "conditions": conditions.as_dict(),
                             "warnings": warnings})
            if not warnings:
                break
            print(f"  WARNING {name}: not to be trusted ({'; '.join(warnings)}; {conditions.describe()})"
                  + ("; measuring it once more" if attempt == 1 else ""), file=sys.stderr, flush=True)
        extra: dict[str, Any] = {"device": device, "requests": args.requests, "warmup": args.warmup,
                                 "max_tokens": args.max_tokens, "prompt": PROMPT,
                                 "stability": {"attempts": attempts, "unstable": bool(attempts[-1]["warnings"])}}
        if server is None and decode_rates:
            if device not in bandwidths:
                bandwidths[device] = bandwidth_for(context["hardware"], device)
            line = roofline(weights, bandwidths[device])
            extra["roofline"] = line.as_dict()
        emit("summary", outcome="ok", **base, extra=extra)

    for name in targets:
        if name.startswith("server:"):
            continue
        spec = get_backend(name)
        reason = spec.unavailable_reason()
        missing = spec.missing_modules()
        if missing or reason:
            why = reason or f"requires {', '.join(missing)} (pip install 'model-conformance[{spec.extra}]')"
            print(f"  {name}: skipped: {why}", file=sys.stderr)
            emit("summary", outcome="skipped", message=why, backend=name, clause=f"stream {args.max_tokens} tokens")
            continue
        settings = _with_budget(spec.settings(Target(mode="live", model_dir=str(embedded.model_dir))),
                                args.max_tokens)
        bench(name, name, None, _factory(spec, settings), embedded.name)
    via = [t.split(":", 1)[1] for t in targets if t.startswith("server:")]
    for server_name in [s.strip() for s in args.servers.split(",") if s.strip()] if via else []:
        print(f"starting the local server {server_name} for {', '.join(via)}", file=sys.stderr)
        try:
            with ExitStack() as server_stack:
                target = server_stack.enter_context(_local_server(server_name))
                for backend in via:
                    spec = get_backend(backend)
                    settings = _with_budget(spec.settings(target), args.max_tokens)
                    bench(f"{server_name}:{backend}", backend, server_name, _factory(spec, settings),
                          target.served_model_id)
        except Exception as exc:  # noqa: BLE001 - a server that cannot start here is reported, not fatal
            why = f"{server_name} could not start: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            print(f"  {why}", file=sys.stderr)
            for backend in via:
                emit("summary", outcome="skipped", message=why, backend=backend, server=server_name,
                     clause=f"stream {args.max_tokens} tokens")
    if args.endpoint:
        key = os.environ.get(args.endpoint_key_env)
        if not key:
            raise SystemExit(f"harness bench latency: --endpoint needs its key in ${args.endpoint_key_env}")
        target = Target(mode="live", base_url=args.endpoint, served_model_id=args.endpoint_model, api_key=key)
        for backend in [b.strip() for b in args.endpoint_backends.split(",") if b.strip()]:
            spec = get_backend(backend)
            settings = _with_budget(spec.settings(target), args.max_tokens)
            bench(f"endpoint:{backend}", backend, args.endpoint, _factory(spec, settings), args.endpoint_model)
    print()
    print(latency_table(written, markdown=False))
    untrusted = unstable_targets(written)
    for line in untrusted:
        print(f"WARNING: {line}")
    print(f"\n{len(written)} rows appended to {path}")
    return 0


__all__ = ["DEFINITIONS", "add_arguments", "figures", "measure_stream", "run"]
