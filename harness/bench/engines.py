"""Local engines: adapter tokens/s against the raw engine call, and tokens generated past a completed stop.

Per engine, in one run and on the embedded model: the raw engine call (``model.generate`` for
transformers, ``mlx_lm.stream_generate`` for mlx, ``LLM.generate`` for vllm), this project's
adapter and smolagents' class decode the same prompt greedily with the same token budget, in rotating order; then both
classes are given stop sequences derived from the greedy reference (one ending inside a token,
one ending in a space, two listed in the opposite order to their appearance, two overlapping
inside one token) and the tokens each generated are compared with the tokens needed for the
first stop to complete. Engines are imported only when benchmarked.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.backends.registry import BackendSpec, Target, get_backend, load_smolagents_class
from harness.contract.stop_sequences import find_stop, trim_at_stop

ENGINES = ("transformers", "mlx", "vllm")
PROMPT = "Name the days of the week, from Monday to Sunday, separated by commas."
NOTES = [
    "tokens/s: generated tokens over wall time of the whole call (ours and smolagents include the chat template); "
    "'vs raw' is the median over rounds of the ratio to the raw call of the same round",
    "overhead: wall time per call outside the engine's own generate/stream_generate call",
    "needed: tokens of the greedy reference until the first stop is complete in the decoded text; "
    "past = tokens the subject generated (its token_usage.output_tokens) minus needed",
    "tok/cpu-s counts this process's CPU time only: vllm decodes in its engine-core child process, so for vllm "
    "that column is not a decode rate; read its wall-clock tokens/s",
    "mlx-lm's generate_step queues the next forward pass before yielding a token, so when a loop stops on a "
    "token one more step has been dispatched inside the engine; it is never returned, for any subject",
    "smolagents' VLLMModel (1.26) reads max_tokens and temperature from each call's kwargs only and hands the "
    "model's kwargs to LLM.generate() as keyword arguments, so it is built without them (greedy by its default); "
    "with vllm 0.32 it cannot be built at all: it imports vllm.transformers_utils.tokenizer, which vllm removed",
]
# what smolagents' class is built with, where it cannot take the suites' settings
SMOLAGENTS_DROPS = {"vllm": ("max_tokens", "temperature")}
# settings keys that hold the token budget, in each engine's own names
BUDGET_KEYS = ("max_new_tokens", "max_tokens")

Decode = Callable[[Sequence[int]], str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma list of local engines (default: %(default)s)")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per call (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up (default: %(default)s)")
    parser.add_argument("--no-smolagents", action="store_true", help="leave smolagents' classes out")
    parser.add_argument("--output", default=None,
                        help="results file, appended to (default: reports/bench-engines-<hardware>.jsonl)")


# -- raw engine calls ---------------------------------------------------------------------------


@dataclass
class RawEngine:
    """The engine called directly, on the adapter's own weights and tokenizer."""

    call: Callable[[], list[int]]  # generated token ids (end-of-sequence included)
    decode: Decode


def _raw_transformers(adapter: Any, prompt: str, tokens: int) -> RawEngine:
    tokenizer, model = adapter.tokenizer, adapter.model
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    inputs = {k: v.to(model.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
    length = int(inputs["input_ids"].shape[1])
    generate = model.generate  # bound now: the adapter's engine clock wraps the attribute later

    def call() -> list[int]:
        output = generate(**inputs, max_new_tokens=tokens, do_sample=False)
        return [int(t) for t in output[0, length:].tolist()]

    return RawEngine(call, _decoder(tokenizer))


def _raw_mlx(adapter: Any, prompt: str, tokens: int) -> RawEngine:
    import mlx_lm

    tokenizer, model = adapter.tokenizer, adapter.model
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
    stream_generate = mlx_lm.stream_generate  # bound now: the adapter's engine clock wraps the attribute later

    def call() -> list[int]:
        return [r.token for r in stream_generate(model, tokenizer, ids, max_tokens=tokens)]

    return RawEngine(call, _decoder(tokenizer))


def _raw_vllm(adapter: Any, prompt: str, tokens: int) -> RawEngine:
    from vllm import SamplingParams

    tokenizer, llm = adapter.tokenizer, adapter.model
    encoded = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
    ids = list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
    params = SamplingParams(temperature=0.0, max_tokens=tokens)
    generate = llm.generate  # bound now: the adapter's engine clock wraps the attribute later

    def call() -> list[int]:
        output = generate({"prompt_token_ids": ids}, params, use_tqdm=False)
        return [int(t) for t in output[0].outputs[0].token_ids]

    return RawEngine(call, _decoder(tokenizer))


RAW = {"transformers": _raw_transformers, "mlx": _raw_mlx, "vllm": _raw_vllm}


class EngineClock:
    """Time spent inside the engine's own call: what is left of a subject's time is its overhead, free of noise."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def call(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed

    def generator(self, fn: Callable[..., Generator[Any, None, None]]) -> Callable[..., Iterator[Any]]:
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            inner = fn(*args, **kwargs)
            try:
                while True:
                    started = time.perf_counter()
                    try:
                        item = next(inner)
                    except StopIteration:
                        return
                    finally:
                        self.seconds += time.perf_counter() - started
                    yield item
            finally:
                inner.close()

        return timed


def _clock_transformers(ours: Any, smol: Any) -> dict[str, EngineClock]:
    clocks = {}
    for subject, obj in (("ours", ours), ("smolagents", smol)):
        if obj is not None:
            clocks[subject] = EngineClock()
            obj.model.generate = clocks[subject].call(obj.model.generate)
    return clocks


def _clock_mlx(ours: Any, smol: Any) -> dict[str, EngineClock]:
    import mlx_lm

    clocks = {"ours": EngineClock()}
    # our adapter looks mlx_lm.stream_generate up at each call; smolagents bound it at construction
    module: Any = mlx_lm
    module.stream_generate = clocks["ours"].generator(mlx_lm.stream_generate)
    if smol is not None:
        clocks["smolagents"] = EngineClock()
        smol.stream_generate = clocks["smolagents"].generator(smol.stream_generate)
    return clocks


# vllm: both classes keep the engine as ``.model`` and call its ``generate`` like transformers' classes
CLOCKS = {"transformers": _clock_transformers, "mlx": _clock_mlx, "vllm": _clock_transformers}


def _decoder(tokenizer: Any) -> Decode:
    def decode(ids: Sequence[int]) -> str:
        return str(tokenizer.decode(list(ids), skip_special_tokens=True))

    return decode


# -- measurements -------------------------------------------------------------------------------


@dataclass
class Throughput:
    """Tokens and seconds per timed call: wall clock, and this process's CPU time (steadier on a shared machine)."""

    subject: str
    tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    engine_seconds: list[float] = field(default_factory=list)  # inside the engine call (raw: all of it)

    @property
    def rates(self) -> list[float]:
        return [n / s for n, s in zip(self.tokens, self.seconds)]

    @property
    def cpu_rates(self) -> list[float]:
        return [n / s for n, s in zip(self.tokens, self.cpu_seconds)]

    def median_rate(self) -> float:
        return statistics.median(self.rates)

    def overhead_ms(self) -> float:
        """Median time per call spent outside the engine call, in milliseconds."""
        return statistics.median(s - e for s, e in zip(self.seconds, self.engine_seconds)) * 1e3


def measure_throughput(subjects: dict[str, Callable[[], int]], rounds: int,
                       clocks: dict[str, EngineClock]) -> dict[str, Throughput]:
    """Tokens/s per subject: one warm-up call each, then ``rounds`` rounds in rotating order."""
    results = {name: Throughput(name) for name in subjects}
    names = list(subjects)
    for name in names:
        subjects[name]()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # no subject always runs first
        for name in order:
            clock = clocks.get(name)
            inside = clock.seconds if clock else 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            n = subjects[name]()
            seconds = time.perf_counter() - wall
            results[name].seconds.append(seconds)
            results[name].cpu_seconds.append(time.process_time() - cpu)
            results[name].engine_seconds.append(clock.seconds - inside if clock else seconds)
            results[name].tokens.append(n)
    return results


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a/b: each round's two calls ran back to back, under the same machine load."""
    return statistics.median(x / y for x, y in zip(a, b))


@dataclass
class StopCase:
    name: str
    stops: list[str]
    needed: int  # tokens of the greedy reference until the first stop completes
    boundary: str  # the token(s) where the stop completes, for the reader


def _words(text: str, min_len: int) -> list[tuple[str, int]]:
    """Distinct words (none inside another) with their first position, skipping the very start."""
    out: list[tuple[str, int]] = []
    for m in re.finditer(rf"[A-Za-z]{{{min_len},}}", text):
        word = m.group(0)
        if m.start() == 0 or text.find(word) != m.start() or any(word in w or w in word for w, _ in out):
            continue
        out.append((word, m.start()))
    return out


def _token_ends(ids: Sequence[int], decode: Decode) -> list[int]:
    return [len(decode(ids[: k + 1])) for k in range(len(ids))]


def _needed(ids: Sequence[int], decode: Decode, stops: list[str]) -> int | None:
    for k in range(1, len(ids) + 1):
        if find_stop(decode(ids[:k]), stops) is not None:
            return k
    return None


def stop_cases(reference_ids: Sequence[int], decode: Decode) -> list[StopCase]:
    """Stop sequences derived from the greedy reference, each with the tokens needed to complete it."""
    text = decode(reference_ids)
    ends = _token_ends(reference_ids, decode)
    cases: list[StopCase] = []

    def add(name: str, stops: list[str]) -> None:
        needed = _needed(reference_ids, decode, stops)
        if needed is not None:
            piece = decode(reference_ids[needed - 1 : needed])
            cases.append(StopCase(name, stops, needed, f"completes in token {needed} {piece!r}"))

    for word, at in _words(text, 6):  # a stop whose end falls strictly inside a token, like "Tues" of "Tuesday"
        if at + 4 not in ends:
            add("ends inside a token", [word[:4]])
            break
    for m in re.finditer(r"[A-Za-z]{3,}[,.:;]? ", text):  # ends in the space that starts the next word's token
        if m.start() > 0 and text.find(m.group(0)) == m.start():
            add("ends in a space", [m.group(0)])
            break
    words = [w for w, _ in _words(text, 5)]
    if len(words) >= 3:
        add("two stops, reverse order", [words[2], words[1]])  # listed in the opposite order to their appearance
    long = [w for w, _ in _words(text, 7)]
    if long:
        add("overlapping in one token", [long[0][3:], long[0][:4]])  # like ["esday", "Tues"]
    return cases


@dataclass
class StopResult:
    subject: str
    case: str
    stops: list[str]
    needed: int
    generated: int | None
    past: int | None
    cut_ok: bool | None
    content: str | None
    error: str | None = None


def measure_stops(subject: str, model: Any, cases: list[StopCase], reference: str) -> list[StopResult]:
    """Per case: tokens the subject generated, how many past the completed stop, and whether it cut right."""
    out = []
    for case in cases:
        expected = trim_at_stop(reference, case.stops)
        try:
            message = model(_user(PROMPT), stop_sequences=case.stops)
        except Exception as exc:  # noqa: BLE001 - a subject's failure is a finding, not a crash of the benchmark
            out.append(StopResult(subject, case.name, case.stops, case.needed, None, None, None, None,
                                  f"{type(exc).__name__}: {exc}"[:200]))
            continue
        generated = message.token_usage.output_tokens if message.token_usage else None
        content = message.content if isinstance(message.content, str) else str(message.content)
        out.append(StopResult(subject, case.name, case.stops, case.needed, generated,
                              None if generated is None else generated - case.needed, content == expected, content))
    return out


# -- the run ------------------------------------------------------------------------------------


def _settings(spec: BackendSpec, model_dir: str, tokens: int) -> dict[str, Any]:
    settings = spec.settings(Target(mode="live", model_dir=model_dir))
    for key in BUDGET_KEYS:
        if key in settings:
            settings[key] = tokens
    return settings


def _user(prompt: str) -> list[dict[str, Any]]:
    """One user turn with list-of-parts content, the form every subject accepts (smolagents' flattening needs it)."""
    return [{"role": "user", "content": [{"type": "text", "text": prompt}]}]


def _usage_tokens(model: Any, prompt: str) -> Callable[[], int]:
    def call() -> int:
        message = model(_user(prompt))
        return int(message.token_usage.output_tokens)

    return call


def bench_engine(name: str, tokens: int, rounds: int, with_smolagents: bool, log: Callable[[str], None]) -> dict:
    """Every figure for one engine, as a JSON-ready dict (with ``skipped`` and the reason where it cannot run)."""
    spec = get_backend(name)
    missing = spec.missing_modules()
    reason = f"requires {', '.join(missing)}" if missing else spec.unavailable_reason()
    if reason or name not in RAW:
        return {"engine": name, "skipped": reason or "no raw engine call defined"}
    from harness.servers.embedded import embedded_model

    model_dir = str(embedded_model().model_dir)
    settings = _settings(spec, model_dir, tokens)
    log(f"[{name}] loading the adapter and {f'smolagents.{spec.smolagents_class}' if with_smolagents else ''}")
    ours = spec.load()(**settings)
    smol_settings = {k: v for k, v in settings.items() if k not in SMOLAGENTS_DROPS.get(name, ())}
    smol, smol_error = None, None
    if with_smolagents:
        try:
            smol = load_smolagents_class(spec)(**smol_settings)
        except Exception as exc:  # noqa: BLE001 - a class that cannot be built is a finding, not a crash
            smol_error = f"smolagents.{spec.smolagents_class} could not be built: {type(exc).__name__}: {exc}"[:300]
            log(f"[{name}] {smol_error}")
    raw = RAW[name](ours, PROMPT, tokens)
    clocks = CLOCKS[name](ours, smol)

    log(f"[{name}] throughput: {tokens} tokens, 1 warm-up + {rounds} rounds")
    subjects: dict[str, Callable[[], int]] = {"raw": lambda: len(raw.call()), "ours": _usage_tokens(ours, PROMPT)}
    if smol is not None:
        subjects["smolagents"] = _usage_tokens(smol, PROMPT)
    throughput = measure_throughput(subjects, rounds, clocks)

    log(f"[{name}] stops")
    reference_ids = raw.call()
    reference = raw.decode(reference_ids)
    cases = stop_cases(reference_ids, raw.decode)
    stops = measure_stops("ours", ours, cases, reference)
    if smol is not None:
        stops += measure_stops("smolagents", smol, cases, reference)
    return {
        "engine": name,
        "smolagents_class": spec.smolagents_class,
        "smolagents_error": smol_error,
        "settings": {k: v for k, v in settings.items() if k != "model_id"},
        "throughput": {
            s: {**asdict(t), "median_tokens_per_s": t.median_rate(),
                "median_tokens_per_cpu_s": statistics.median(t.cpu_rates), "overhead_ms": t.overhead_ms()}
            for s, t in throughput.items()
        },
        "ratio_to_raw": {
            s: {"wall": paired_ratio(t.rates, throughput["raw"].rates),
                "cpu": paired_ratio(t.cpu_rates, throughput["raw"].cpu_rates)}
            for s, t in throughput.items() if s != "raw"
        },
        "stop_cases": [asdict(c) for c in cases],
        "stops": [asdict(s) for s in stops],
        "reference": reference,
    }


def render(results: list[dict], hardware: str, machine: str) -> str:
    """The figures as plain-text tables."""
    lines = [f"Local engines on the embedded model; hardware {hardware} ({machine})", ""]
    for r in results:
        if r.get("skipped"):
            lines += [f"== {r['engine']}: skipped ({r['skipped']})", ""]
            continue
        t = r["throughput"]
        lines.append(f"== {r['engine']}  (settings {r['settings']})")
        if r.get("smolagents_error"):
            lines.append(f"   {r['smolagents_error']}")
        lines.append(f"{'subject':<12}{'tokens':>7}{'tok/s':>8}{'vs raw':>8}{'tok/cpu-s':>11}{'vs raw':>8}"
                     f"{'overhead':>11}   tok/s per round")
        for s in t:
            ratio = r["ratio_to_raw"].get(s, {"wall": 1.0, "cpu": 1.0})
            rates = ", ".join(f"{n / sec:.2f}" for n, sec in zip(t[s]["tokens"], t[s]["seconds"]))
            overhead = f"{t[s]['overhead_ms']:.1f} ms" if s != "raw" else "-"
            lines.append(f"{s:<12}{t[s]['tokens'][0]:>7}{t[s]['median_tokens_per_s']:>8.2f}{ratio['wall']:>8.3f}"
                         f"{t[s]['median_tokens_per_cpu_s']:>11.2f}{ratio['cpu']:>8.3f}{overhead:>11}   {rates}")
        lines.append("(medians over rounds; 'vs raw': median of per-round ratios to the raw engine call; "
                     "overhead: time per call outside the engine's generate call)")
        lines.append("")
        lines.append("tokens generated past a completed stop (needed: reference tokens until the stop completes)")
        header = f"{'case':<26}{'stops':<28}{'needed':>7}"
        subjects = list(dict.fromkeys(s["subject"] for s in r["stops"]))
        for s in subjects:
            header += f"{s + ' gen':>17}{'past':>6}{'cut ok':>8}"
        lines.append(header + "   where the stop completes")
        for case in r["stop_cases"]:
            row = f"{case['name']:<26}{json.dumps(case['stops']):<28}{case['needed']:>7}"
            for s in subjects:
                m = next(x for x in r["stops"] if x["subject"] == s and x["case"] == case["name"])
                if m["error"]:
                    row += f"{'error':>17}{'-':>6}{'-':>8}"
                else:
                    row += f"{m['generated']:>17}{m['past']:>6}{'yes' if m['cut_ok'] else 'NO':>8}"
            lines.append(row + f"   {case['boundary']}")
        for m in r["stops"]:
            if m["error"]:
                lines.append(f"  {m['subject']} / {m['case']}: {m['error']}")
            elif not m["cut_ok"]:
                lines.append(f"  {m['subject']} / {m['case']}: cut as {m['content']!r}")
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Benchmark each engine, print the tables, write the JSON results file."""
    import importlib.util

    from harness.bench import machine_description, write_results
    from harness.results.schema import hardware_kind

    with_smolagents = not args.no_smolagents and importlib.util.find_spec("smolagents") is not None
    hardware = hardware_kind()
    machine = machine_description()
    results = []
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        results.append(bench_engine(name, args.tokens, args.rounds, with_smolagents,
                                    lambda msg: print(msg, flush=True)))
    print()
    print(render(results, hardware, machine))
    path = write_results("engines", args.output, {
        "prompt": PROMPT,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "notes": NOTES,
        "results": results,
    })
    print(f"wrote {path}")
    return 0
