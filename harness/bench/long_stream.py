"""Long streams: time per chunk of stop detection at 1,000, 10,000 and 100,000 chunks.

Two measurements per length: ``StopScanner`` alone (fed one short chunk at a time, with stops that
never occur, so every chunk is scanned and nothing stops early), and the OpenAI adapter's
``generate_stream`` reading a server-sent-event body of that many chunks. The adapter is fed by a
transport-level stand-in (``httpx.MockTransport`` handing the SDK a prepared SSE body; named as
such in the output), not the network, so the figure is the SDK's parsing plus the adapter's own
work. A linear stop scan keeps the time per chunk flat as the stream grows.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

LENGTHS = (1_000, 10_000, 100_000)
STOPS = ["Observation:", "<end_code>", "\n\nQuestion"]  # smolagents' usual stops, absent from the text
WORDS = ("the", " model", " streams", " a", " long", " answer", ",", " token", " by", " token", ".")
FLAT_WITHIN = 2.0  # the per-chunk time at the longest stream, at most this many times the shortest's


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)),
                        help="comma list of stream lengths in chunks (default: %(default)s)")
    parser.add_argument("--no-adapter", action="store_true",
                        help="measure StopScanner alone (the adapter needs the openai extra)")
    parser.add_argument("--output", default=None,
                        help="results file, appended to (default: reports/bench-long-stream-<hardware>.jsonl)")


def _pieces(n: int) -> Iterator[str]:
    for i in range(n):
        yield WORDS[i % len(WORDS)]


def time_scanner(n: int) -> float:
    """Seconds per chunk for a StopScanner fed ``n`` chunks."""
    from harness.contract.stop_sequences import StopScanner

    pieces = list(_pieces(n))
    scanner = StopScanner(STOPS)
    start = time.perf_counter()
    for piece in pieces:
        scanner.feed(piece)
    scanner.flush()
    return (time.perf_counter() - start) / n


def sse_body(n: int) -> bytes:
    """An OpenAI chat-completion stream of ``n`` content chunks, then a finish and usage."""
    head = {"id": "bench", "object": "chat.completion.chunk", "created": 0, "model": "bench"}
    lines = []
    for piece in _pieces(n):
        chunk = {**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        lines.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    done = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}}
    lines.append(b"data: " + json.dumps(done).encode() + b"\n\n")
    lines.append(b"data: [DONE]\n\n")
    return b"".join(lines)


def time_adapter(n: int) -> float:
    """Seconds per chunk for the OpenAI adapter's stream of ``n`` chunks from the transport-level stand-in."""
    import openai._base_client as base_client

    from harness.backends.registry import get_backend

    httpx: Any = base_client.httpx  # the HTTP package this openai release sends through
    body = sse_body(n)

    def stand_in(request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = httpx.Client(transport=httpx.MockTransport(stand_in))
    model = get_backend("openai").load()(model_id="bench", api_base="http://stand-in.invalid/v1",
                                         api_key="bench-key", client_kwargs={"http_client": client})
    start = time.perf_counter()
    text = "".join(d.content or "" for d in model.generate_stream([{"role": "user", "content": "go"}],
                                                                  stop_sequences=STOPS))
    elapsed = time.perf_counter() - start
    expected = "".join(_pieces(n))
    if text != expected:
        raise RuntimeError(f"the adapter streamed {len(text)} characters, expected {len(expected)}")
    return elapsed / n


def run(args: argparse.Namespace) -> int:
    try:
        lengths = [int(v) for v in args.lengths.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--lengths must be a comma list of whole numbers, got {args.lengths!r}") from None
    if not lengths or min(lengths) < 1:
        raise SystemExit(f"--lengths needs at least one length of 1 or more, got {args.lengths!r}")
    from harness.bench import machine_description, write_results

    kinds = {"StopScanner alone": ("stop-scanner", time_scanner)}
    if not args.no_adapter:
        kinds["OpenAI adapter stream (transport-level stand-in, httpx.MockTransport)"] = ("openai", time_adapter)
    results: list[dict[str, Any]] = []
    print(f"stops {STOPS!r}, never completed; one word per chunk")
    for label, (backend, measure) in kinds.items():
        measure(100)  # warm-up, untimed: imports, the client's first request
        per_chunk = {n: measure(n) for n in lengths}
        for n, seconds in per_chunk.items():
            print(f"{label}: {n:>7,} chunks  {seconds * 1e6:9.2f} µs per chunk  {seconds * n:8.3f} s in all")
            results.append({"backend": backend, "measured": label, "chunks": n, "us_per_chunk": seconds * 1e6})
        ratio = per_chunk[lengths[-1]] / per_chunk[lengths[0]]
        verdict = "flat" if ratio <= FLAT_WITHIN else "NOT flat"
        print(f"{label}: per-chunk time at {lengths[-1]:,} / at {lengths[0]:,} chunks = {ratio:.2f} "
              f"({verdict}: target within {FLAT_WITHIN:g}x)")
    path = write_results("long-stream", args.output, {"machine": machine_description(), "stops": STOPS,
                                                      "results": results})
    print(f"rows appended to {path}")
    return 0


__all__ = ["add_arguments", "run", "sse_body", "time_adapter", "time_scanner"]
