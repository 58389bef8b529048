"""Which recorded interaction answered each request in replay, kept for the suites to judge.

Replay matches a request to its interaction by method, endpoint and order only; what was sent is
then compared with what was recorded by the suites' own oracle (``suites/oracles.py``). This
module only notes the pairs: the request as sent, and the request as recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from harness.recording.capture import decode_body


@dataclass(frozen=True)
class PlayedRequest:
    """One request of a test in replay, and the recorded request of the interaction that answered it."""

    cassette: str
    interaction: int  # 1-based, as the cassette's interactions are counted in errors
    method: str
    sent_path: str
    recorded_path: str
    sent_query: dict[str, str]
    recorded_query: dict[str, str]
    sent_body: Any  # parsed JSON where the body is JSON, else the text or bytes
    recorded_body: Any


def _split(uri: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(uri)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


@contextlib.contextmanager
def noting_played(cassette: Any, path: str, sink: list[PlayedRequest]) -> Iterator[list[PlayedRequest]]:
    """While active, append to ``sink`` each request the vcrpy ``cassette`` answers, with the recorded one."""
    original = cassette.play_response

    def play_response(request: Any) -> Any:
        before = dict(cassette.play_counts)
        response = original(request)
        for index, count in cassette.play_counts.items():
            if count != before.get(index, 0):
                recorded = cassette.requests[index]
                sent_path, sent_query = _split(request.uri)
                recorded_path, recorded_query = _split(recorded.uri)
                sink.append(PlayedRequest(
                    cassette=path, interaction=index + 1, method=request.method,
                    sent_path=sent_path, recorded_path=recorded_path,
                    sent_query=sent_query, recorded_query=recorded_query,
                    sent_body=decode_body(request.body), recorded_body=decode_body(recorded.body),
                ))
                break
        return response

    cassette.play_response = play_response
    try:
        yield sink
    finally:
        with contextlib.suppress(AttributeError):
            del cassette.play_response
