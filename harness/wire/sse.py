"""Server-sent events (the chat-completions stream): one encoder and one decoder for the fault injector,
the derived cassettes, the reports and the benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

CONTENT_TYPE = "text/event-stream"
DONE = "[DONE]"


def encode(payloads: Iterable[str], done: bool = True) -> list[str]:
    """One ``data:`` event per payload (text as the caller serialised it), then ``[DONE]`` when ``done``."""
    return [f"data: {payload}\n\n" for payload in payloads] + ([f"data: {DONE}\n\n"] if done else [])


def decode(text: str) -> tuple[list[Any], bool]:
    """The JSON payloads of a server-sent-events body, and whether it ended with ``[DONE]``.

    Events are separated by a blank line (LF or CRLF); an event's ``data:`` lines join with newlines;
    events without data (comments, keep-alives) are skipped.
    """
    chunks, done = [], False
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if not data:
            continue
        if data.strip() == DONE:
            done = True
        else:
            chunks.append(json.loads(data))
    return chunks, done
