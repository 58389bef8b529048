"""HTTP backends: the adapter's overhead over the raw SDK call, beside smolagents' class.

A wall-clock difference of a tenth of a millisecond drowns in a server that takes hundreds, so
the overhead is measured directly: per call, the full ``model.generate(...)`` time minus the time
spent inside the SDK's entry point (``client.chat.completions.create``,
``InferenceClient.chat_completion``, ``litellm.completion``, ``Router.completion``), which is
wrapped with a timer. Our adapter and smolagents' class are built from the same settings and
called in alternation, in one run, against the same target: the live local server
(``transformers serve`` on the embedded model, ``max_tokens=1``) or a committed cassette
replayed in-process (no server; the steadier of the two).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends.registry import Target, get_backend, load_smolagents_class
from harness.bench import percentile

BACKENDS = ("openai", "inference-client", "litellm", "litellm-router")
SUBJECTS = ("adapters", "smolagents")
MESSAGES = [{"role": "user", "content": "Say hello."}]
LIMIT_MS = 0.1  # DESIGN.md: adapter overhead at most 0.1 ms median per call
# the cassette replayed by --target replay: one plain chat completion per backend
REPLAY_CASSETTE = Path("message_format") / "test_string_content.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma list (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=200,
                        help="timed calls per backend and subject (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first (default: %(default)s)")
    parser.add_argument("--target", choices=("live", "replay"), default="live",
                        help="live: the local server, max_tokens=1; replay: a committed cassette, no server "
                             "(default: %(default)s)")
    parser.add_argument("--cassette-dir", default="cassettes", help="for --target replay (default: %(default)s)")
    parser.add_argument("--no-smolagents", action="store_true", help="leave smolagents' classes out")
    parser.add_argument("--output", default=None,
                        help="results file, appended to (default: reports/bench-overhead-<hardware>.jsonl)")


class _Timed:
    """Wraps an SDK entry point and adds up the time spent inside it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.inside = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.inside += time.perf_counter() - start


@contextlib.contextmanager
def _timed_entry_point(backend: str, model: Any) -> Iterator[_Timed]:
    """Time the SDK call ``model`` makes, where both implementations make it."""
    if backend == "litellm":
        owner, name = model.client, "completion"  # the litellm module itself
    elif backend == "inference-client":
        owner, name = model.client, "chat_completion"
    elif backend == "litellm-router":
        owner, name = model.client, "completion"  # the Router instance
    else:
        owner, name = model.client.chat.completions, "create"
    had_own = name in vars(owner)
    original = getattr(owner, name)
    timed = _Timed(original)
    setattr(owner, name, timed)
    try:
        yield timed
    finally:
        if had_own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


@dataclass
class Series:
    """Per-call figures for one backend and subject, in milliseconds."""

    backend: str
    subject: str
    total_ms: list[float] = field(default_factory=list)
    sdk_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        if not self.overhead_ms:
            return {"backend": self.backend, "subject": self.subject, "calls": 0, "error": self.error}
        return {
            "backend": self.backend,
            "subject": self.subject,
            "calls": len(self.overhead_ms),
            "total_p50_ms": percentile(self.total_ms, 50),
            "sdk_p50_ms": percentile(self.sdk_ms, 50),
            "overhead_p50_ms": percentile(self.overhead_ms, 50),
            "overhead_p90_ms": percentile(self.overhead_ms, 90),
            "overhead_p99_ms": percentile(self.overhead_ms, 99),
            "error": self.error,
        }


def _one_call(backend: str, model: Any, series: Series) -> None:
    with _timed_entry_point(backend, model) as timed:
        start = time.perf_counter()
        message = model.generate(MESSAGES)
        total = time.perf_counter() - start
    if timed.inside <= 0:
        raise RuntimeError(f"{series.subject} {backend}: the SDK entry point was not called")
    if not isinstance(message.content, str):
        raise RuntimeError(f"{series.subject} {backend}: no text returned ({message!r})")
    series.total_ms.append(total * 1000)
    series.sdk_ms.append(timed.inside * 1000)
    series.overhead_ms.append((total - timed.inside) * 1000)


@contextlib.contextmanager
def _target(kind: str, backend: str, cassette_dir: Path) -> Iterator[Target]:
    """The local server, or a cassette replayed as often as asked with the network blocked."""
    from harness.recording.cassettes import DEFAULT_SERVER, block_network, hub_clients_online

    with hub_clients_online():
        if kind == "live":
            from harness.servers.local import LocalOpenAIServer

            with LocalOpenAIServer() as server:
                yield Target(mode="live", base_url=server.base_url, served_model_id=server.model_id)
            return
        import vcr

        path = cassette_dir / DEFAULT_SERVER / backend / REPLAY_CASSETTE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing; record it with: pytest suites --backend={backend} --mode record"
            )
        recorder = vcr.VCR(record_mode="none", match_on=("method", "path"))
        with recorder.use_cassette(str(path), allow_playback_repeats=True), block_network():
            yield Target(mode="replay")


def bench_backend(backend: str, subjects: list[str], target: Target, calls: int, warmup: int,
                  log: Callable[[str], None]) -> list[Series]:
    """Time ``calls`` alternating calls per subject after ``warmup`` untimed ones."""
    spec = get_backend(backend)
    settings = {**spec.settings(target), "max_tokens": 1}
    models, series = {}, {}
    for subject in subjects:
        series[subject] = Series(backend, subject)
        try:
            cls = spec.load() if subject == "adapters" else load_smolagents_class(spec)
            models[subject] = cls(**settings)
            for _ in range(warmup):
                _one_call(backend, models[subject], Series(backend, subject))
        except Exception as exc:  # noqa: BLE001 - reported beside the other subject's figures
            series[subject].error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            models.pop(subject, None)
            log(f"  {backend} / {subject}: {series[subject].error}")
    gc.collect()
    for i in range(calls):
        for subject, model in list(models.items()):
            try:
                _one_call(backend, model, series[subject])
            except Exception as exc:  # noqa: BLE001
                series[subject].error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                models.pop(subject)
        if (i + 1) % 50 == 0:
            log(f"  {backend}: {i + 1}/{calls} calls")
    return [series[s] for s in subjects]


def render(rows: list[dict[str, Any]], target: str, hardware: str, machine: str) -> str:
    """One line per backend: our overhead beside smolagents', and the SDK call it sits on."""
    by_key = {(r["backend"], r["subject"]): r for r in rows}
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    lines = [
        f"Adapter overhead over the raw SDK call ({target}; {hardware}; {machine})",
        "overhead = full generate() - time inside the SDK entry point; milliseconds per call",
        "",
        f"{'backend':<18}{'calls':>6}{'ours p50':>10}{'ours p90':>10}{'smol p50':>10}{'smol p90':>10}"
        f"{'SDK p50':>10}  verdict",
    ]

    def cell(row: dict[str, Any] | None, key: str) -> str:
        if row is None:
            return f"{'-':>10}"
        if row.get(key) is None:
            return f"{'error':>10}"
        return f"{row[key]:>10.4f}"

    for backend in backends:
        ours, theirs = by_key.get((backend, "adapters")), by_key.get((backend, "smolagents"))
        calls = (ours or theirs or {}).get("calls", 0)
        verdict = "-"
        if ours and ours.get("overhead_p50_ms") is not None:
            verdict = "ok" if ours["overhead_p50_ms"] <= LIMIT_MS else f"OVER {LIMIT_MS} ms"
        lines.append(f"{backend:<18}{calls:>6}{cell(ours, 'overhead_p50_ms')}{cell(ours, 'overhead_p90_ms')}"
                     f"{cell(theirs, 'overhead_p50_ms')}{cell(theirs, 'overhead_p90_ms')}"
                     f"{cell(ours or theirs, 'sdk_p50_ms')}  {verdict}")
    errors = [r for r in rows if r.get("error")]
    for row in errors:
        lines.append(f"  {row['backend']} / {row['subject']}: {row['error']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Benchmark each backend against one target, print the table, write the JSON results file."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from harness.bench import machine_description, write_results
    from harness.results.schema import hardware_kind

    subjects = ["adapters"]
    if not args.no_smolagents and importlib.util.find_spec("smolagents") is not None:
        subjects.append("smolagents")
    hardware = hardware_kind()
    machine = machine_description()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for name in backends:
        get_backend(name).require()

    def log(message: str) -> None:
        print(message, flush=True)

    rows: list[dict[str, Any]] = []
    if args.target == "live":
        with _target("live", "", Path(args.cassette_dir)) as target:  # one server for every backend
            for name in backends:
                log(f"{name}: {args.warmup} warm-up + {args.calls} timed calls per subject (live)")
                rows += [s.summary() for s in bench_backend(name, subjects, target, args.calls, args.warmup, log)]
    else:
        for name in backends:
            log(f"{name}: {args.warmup} warm-up + {args.calls} timed calls per subject (replay)")
            with _target("replay", name, Path(args.cassette_dir)) as target:
                rows += [s.summary() for s in bench_backend(name, subjects, target, args.calls, args.warmup, log)]
    print()
    print(render(rows, args.target, hardware, machine))
    path = write_results("overhead", args.output, {
        "target": args.target,
        "method": "overhead = full model.generate() time - time inside the SDK entry point, per call",
        "messages": MESSAGES,
        "max_tokens": 1,
        "calls": args.calls,
        "warmup": args.warmup,
        "limit_ms": LIMIT_MS,
        "results": rows,
    })
    print(f"wrote {path}")
    return 0


__all__ = ["BACKENDS", "Series", "add_arguments", "bench_backend", "render", "run"]
