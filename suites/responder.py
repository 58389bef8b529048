"""THE FAKE of the suites: a transport-level responder built from a recorded reply.

The property suites send thousands of generated requests; no server can answer them all, so
this responder answers at the transport (every httpx-family stack of harness.wire.transports for the
OpenAI-wire SDKs, botocore's HTTP session for boto3), below every SDK, with a reply built from
one *recorded* reply of the same backend (a committed cassette): the recorded body, headers and
event framing, with only the generated text or tool calls put in. Everything above the transport (the SDK's request
building, its response and stream parsers, the adapter) is the real code. It is the one place
in suites/ where a reply is not a recording, and it is named for that.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from wires import Reply, ToolCallSpec, WireLens

from harness.recording.cassettes import DEFAULT_SERVER, load_yaml
from harness.wire.patching import patched

__all__ = ["RecordedReplyResponder", "Reply", "ToolCallSpec"]

# The recorded replies the responder is built from: a generate and a streamed call with a tool call.
SOURCE = ("streaming", "test_stream_tool_call_matches_generate.yaml")


def _find_source(root: Path, backends: Sequence[str]) -> Path:
    return _source_under(root.resolve(), tuple(backends))


@functools.cache
def _source_under(root: Path, backends: tuple[str, ...]) -> Path:
    # the first local server's recording, whichever servers have recordings too (another server's may
    # hold an error reply where that server fails the check: suites/server_findings.yaml)
    for backend in backends:
        preferred = root / DEFAULT_SERVER / backend / SOURCE[0] / SOURCE[1]
        if preferred.is_file():
            return preferred
        matches = sorted(root.glob(f"**/{backend}/{SOURCE[0]}/{SOURCE[1]}"))
        if matches:
            return matches[0]
    raise FileNotFoundError(f"no recorded reply for {backends[0]!r}: expected {root}/{backends[0]}/{'/'.join(SOURCE)}")


def _chunks(data: bytes, offsets: Sequence[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(min(max(o, 0), len(data)) for o in offsets)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


class RecordedReplyResponder:
    """Answers every request at the transport with ``self.reply`` put into a recorded reply.

    ``backends``: whose recording to build from, in order of preference (the backend itself, then the
    backend whose cassettes it replays); ``lens``: the wire it speaks (suites/wires.py).
    """

    def __init__(self, backends: Sequence[str], lens: WireLens, cassette_root: Path) -> None:
        self.backend = backends[0]
        self.lens = lens
        data = load_yaml(_find_source(cassette_root, backends))  # parsed once per run, a fresh copy
        interactions = data["interactions"]
        self._plain = interactions[0]["response"]
        self._stream = interactions[1]["response"]
        self.reply = Reply(text="")
        self.requests = 0

    # -- bodies ----------------------------------------------------------------------------

    def plain_body(self) -> bytes:
        return self.lens.plain_body(self._plain, self.reply)

    def stream_body(self) -> bytes:
        return self.lens.stream_body(self._stream, self.reply)

    # -- transports ------------------------------------------------------------------------

    def _body_for(self, streaming: bool) -> tuple[list[bytes], str]:
        self.requests += 1
        if streaming:
            body = self.stream_body()
            return _chunks(body, self.reply.byte_cuts), self.lens.stream_content_type
        return [self.plain_body()], "application/json"

    @contextlib.contextmanager
    def active(self) -> Iterator[RecordedReplyResponder]:
        """Answer every request of every hooked stack (harness.wire.transports) with the current reply while active."""
        replacements: list[tuple[Any, str, Any]] = []
        from harness.wire.transports import chunked_stream_class, transport_targets

        responder = self

        def responding(stack: Any, is_async: bool) -> Any:
            client, chunks_class = stack.client, chunked_stream_class(stack.client)

            def respond(request: Any) -> Any:
                body = request.read()
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                streaming = responder.lens.is_stream(str(request.url), parsed)
                chunks, kind = responder._body_for(streaming)
                return client.Response(200, headers={"content-type": kind}, stream=chunks_class(chunks),
                                       request=request)

            def handle_request(self: Any, request: Any) -> Any:
                return respond(request)

            async def handle_async_request(self: Any, request: Any) -> Any:
                return respond(request)

            return handle_async_request if is_async else handle_request

        # every transport of every hooked stack (httpx, httpx2)
        replacements += [(owner, name, responding(stack, is_async))
                         for stack, owner, name, is_async in transport_targets()]
        with contextlib.suppress(ImportError):
            from botocore.awsrequest import AWSResponse
            from botocore.httpsession import URLLib3Session

            class Raw:
                def __init__(self, chunks: list[bytes]) -> None:
                    self._chunks = chunks

                def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
                    yield from self._chunks

                def close(self) -> None:  # as urllib3's response, which botocore's EventStream closes
                    self._chunks = []

            def send(self: Any, request: Any) -> Any:
                body = request.body
                try:
                    parsed = json.loads(body) if body else None
                except (ValueError, TypeError):
                    parsed = None
                chunks, kind = responder._body_for(responder.lens.is_stream(str(request.url), parsed))
                headers = {"content-type": kind, "x-amzn-requestid": "00000000-0000-0000-0000-000000000000"}
                return AWSResponse(request.url, 200, headers, Raw(chunks))

            replacements.append((URLLib3Session, "send", send))
        with patched(*replacements):
            yield self
