"""Finalising a recording: time the work done on a large recorded reply (1 MB and 20 MB by default).

Finalising is what happens to a reply between the network and the cassette in place: the
recorder's scrubbing of the request and the response, writing the recording aside (vcrpy's YAML
serializer), the refuse-to-write scan, the provenance with its content digest, and the atomic
replace. The reply is a chat completion whose text is made here by a seeded generator (words of
an English-like vocabulary, with numbers and punctuation); it is labelled synthetic.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

_WORDS = ("the model answer stop sequence tool call weather Paris city token stream message assistant user "
          "system content function arguments result value error retry request response server engine greedy "
          "decode latency").split()


def _sizes(text: str) -> list[float]:
    try:
        sizes = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of sizes in MB, e.g. 1,20") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more sizes in MB above 0, e.g. 1,20")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1,20", type=_sizes,
                        help="reply sizes in MB, comma separated (default: %(default)s)")


def reply_body(megabytes: float, seed: int = 0) -> bytes:
    """A chat-completion JSON body of about ``megabytes`` MB (synthetic text, seeded)."""
    rnd = random.Random(seed)
    target = int(megabytes * 1_000_000)
    words: list[str] = []
    size = 0
    while size < target:
        word = rnd.choice(_WORDS) if rnd.random() > 0.05 else f"{rnd.randint(0, 99999)}."
        words.append(word)
        size += len(word) + 1
    completion = {"id": "chatcmpl-synthetic", "object": "chat.completion", "model": "synthetic",
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": " ".join(words)}}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": len(words) + 10}}
    return json.dumps(completion).encode("utf-8")


def finalise(body: bytes, folder: Path) -> dict[str, float]:
    """Seconds spent per step finalising one recorded interaction with ``body`` as its reply."""
    from vcr.request import Request
    from vcr.serializers import compat, yamlserializer

    from harness.plugin.replay import provenance
    from harness.recording.cassettes import _scrub_request, _scrub_response, finalize_recording

    hosts = {"127.0.0.1:54321": "127.0.0.1:8000"}
    destination = folder / "test_large_reply.yaml"
    part = folder / ".test_large_reply.yaml.bench.recording"
    prov = provenance("openai", "adapters", "bench::finalize", server="synthetic reply (bench finalize)")
    steps: dict[str, float] = {}
    start = time.perf_counter()
    request = _scrub_request(hosts)(Request("POST", "http://127.0.0.1:54321/v1/chat/completions",
                                            b'{"model": "synthetic", "messages": []}',
                                            {"Content-Type": "application/json"}))
    response: dict[str, Any] = {"status": {"code": 200, "message": "OK"},
                                "headers": {"Content-Type": ["application/json"]}, "body": {"string": body}}
    response = _scrub_response(hosts)(response)
    steps["scrub"] = time.perf_counter() - start
    at = time.perf_counter()
    cassette = {"interactions": [{"request": request._to_dict(), "response": response}], "version": 1}
    part.write_text(yamlserializer.serialize(compat.convert_to_unicode(cassette)), encoding="utf-8")
    steps["write aside"] = time.perf_counter() - at
    at = time.perf_counter()
    finalize_recording(part, prov, destination=destination)
    steps["scan, stamp, replace"] = time.perf_counter() - at
    steps["total"] = time.perf_counter() - start
    return steps


def run(args: argparse.Namespace) -> int:
    from harness.bench import machine_description

    sizes: list[float] = args.sizes
    print(f"finalising a recorded reply (synthetic chat-completion text) on {machine_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        finalise(reply_body(0.01), Path(tmp))  # imports and first-use costs stay out of the figures
        for megabytes in sizes:
            body = reply_body(megabytes)
            cpu = time.process_time()
            steps = finalise(body, Path(tmp))
            cpu = time.process_time() - cpu
            parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.items() if name != "total")
            print(f"{len(body) / 1e6:6.1f} MB reply: {steps['total']:.2f} s ({steps['total'] / (len(body) / 1e6):.3f} "
                  f"s per MB; {cpu:.2f} s CPU): {parts}")
    return 0


__all__ = ["add_arguments", "finalise", "reply_body", "run"]
