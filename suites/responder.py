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
import copy
import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.recording.cassettes import load_yaml
from harness.wire.eventstream import decode_event_stream, encode_event_message
from harness.wire.patching import patched

# The recorded replies the responder is built from: a generate and a streamed call with a tool call.
SOURCE = ("streaming", "test_stream_tool_call_matches_generate.yaml")


@dataclass
class ToolCallSpec:
    """One tool call the responder puts in its reply."""

    id: str
    name: str
    arguments: Any  # dict (sent as JSON) or an exact JSON string


@dataclass
class Reply:
    """What the next reply carries, and how a stream is cut into pieces."""

    text: str | None = None
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    text_pieces: Sequence[int] = ()  # character offsets where content deltas are cut
    argument_pieces: Sequence[int] = ()  # character offsets where tool-call argument deltas are cut
    byte_cuts: Sequence[int] = ()  # byte offsets where the transport delivers the body in chunks
    finish_reason: str | None = None


def _find_source(root: Path, backend: str) -> Path:
    return _source_under(root.resolve(), backend)


@functools.cache
def _source_under(root: Path, backend: str) -> Path:
    matches = sorted(root.glob(f"**/{backend}/{SOURCE[0]}/{SOURCE[1]}"))
    if not matches:
        raise FileNotFoundError(f"no recorded reply for {backend!r}: expected {root}/{backend}/{'/'.join(SOURCE)}")
    return matches[0]


def _cut(text: str, offsets: Sequence[int]) -> list[str]:
    bounds = sorted({0, len(text), *(min(max(o, 0), len(text)) for o in offsets)})
    return [text[a:b] for a, b in zip(bounds, bounds[1:])] or [""]


def _chunks(data: bytes, offsets: Sequence[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(min(max(o, 0), len(data)) for o in offsets)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


class RecordedReplyResponder:
    """Answers every request at the transport with ``self.reply`` put into a recorded reply."""

    def __init__(self, backend: str, wire_format: str, cassette_root: Path) -> None:
        self.backend = backend
        self.wire_format = wire_format
        data = load_yaml(_find_source(cassette_root, backend))  # parsed once per run, a fresh copy
        interactions = data["interactions"]
        self._plain = interactions[0]["response"]
        self._stream = interactions[1]["response"]
        self.reply = Reply(text="")
        self.requests = 0

    # -- bodies ----------------------------------------------------------------------------

    def _finish(self) -> str:
        if self.reply.finish_reason:
            return self.reply.finish_reason
        if self.wire_format == "bedrock":
            return "tool_use" if self.reply.tool_calls else "end_turn"
        return "tool_calls" if self.reply.tool_calls else "stop"

    def plain_body(self) -> bytes:
        body = json.loads(self._plain["body"]["string"])
        reply = self.reply
        if self.wire_format == "bedrock":
            content: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
            for call in reply.tool_calls:
                arguments = json.loads(call.arguments) if isinstance(call.arguments, str) else call.arguments
                content.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments}})
            body["output"]["message"]["content"] = content
            body["stopReason"] = self._finish()
        else:
            choice = body["choices"][0]
            choice["message"]["content"] = reply.text
            choice["message"]["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": _arguments_text(c.arguments)}}
                for c in reply.tool_calls
            ] or None
            choice["finish_reason"] = self._finish()
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def stream_body(self) -> bytes:
        return self._converse_stream() if self.wire_format == "bedrock" else self._sse()

    def _sse(self) -> bytes:
        raw = self._stream["body"]["string"]
        raw = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        events = [json.loads(line[len("data: "):]) for line in raw.splitlines() if line.startswith("data: {")]
        first, last = events[0], events[-1]

        def chunk(delta: dict[str, Any]) -> dict[str, Any]:
            event = copy.deepcopy(first)
            event["choices"] = [{"delta": delta, "index": 0}]
            return event

        out = [first]
        if self.reply.text:
            out += [chunk({"content": piece}) for piece in _cut(self.reply.text, self.reply.text_pieces)]
        for index, call in enumerate(self.reply.tool_calls):
            pieces = _cut(_arguments_text(call.arguments), self.reply.argument_pieces)
            head = {"index": index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": pieces[0]}}
            out.append(chunk({"tool_calls": [head]}))
            out += [chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces[1:]]
        end = copy.deepcopy(last)
        end["choices"] = [{"delta": {}, "finish_reason": self._finish(), "index": 0}]
        out.append(end)
        text = "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in out) + "data: [DONE]\n\n"
        return text.encode("utf-8")

    def _converse_stream(self) -> bytes:
        frames = decode_event_stream(self._stream["body"]["string"])
        by_type = {}
        for headers, payload in frames:
            kind = next(v for n, _, v in headers if n == ":event-type").decode()
            by_type.setdefault(kind, (headers, payload))

        def frame(kind: str, payload: dict[str, Any]) -> bytes:
            template = by_type.get(kind) or by_type["messageStart"]
            headers = [(n, k, kind.encode() if n == ":event-type" else v) for n, k, v in template[0]]
            return encode_event_message(headers, json.dumps(payload, ensure_ascii=False).encode("utf-8"))

        out = [frame("messageStart", {"role": "assistant"})]
        block = 0
        if self.reply.text:
            for piece in _cut(self.reply.text, self.reply.text_pieces):
                out.append(frame("contentBlockDelta", {"contentBlockIndex": block, "delta": {"text": piece}}))
            out.append(frame("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        for call in self.reply.tool_calls:
            start = {"toolUse": {"name": call.name, "toolUseId": call.id}}
            out.append(frame("contentBlockStart", {"contentBlockIndex": block, "start": start}))
            for piece in _cut(_arguments_text(call.arguments), self.reply.argument_pieces):
                out.append(frame("contentBlockDelta",
                                 {"contentBlockIndex": block, "delta": {"toolUse": {"input": piece}}}))
            out.append(frame("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        out.append(frame("messageStop", {"stopReason": self._finish()}))
        out.append(frame("metadata", json.loads(by_type["metadata"][1])))
        return b"".join(out)

    # -- transports ------------------------------------------------------------------------

    def _body_for(self, streaming: bool) -> tuple[list[bytes], str]:
        self.requests += 1
        if streaming:
            body = self.stream_body()
            kind = "application/vnd.amazon.eventstream" if self.wire_format == "bedrock" else "text/event-stream"
            return _chunks(body, self.reply.byte_cuts), kind
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
                    streaming = bool(json.loads(body).get("stream"))
                except (ValueError, AttributeError):
                    streaming = False
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

            def send(self: Any, request: Any) -> Any:
                chunks, kind = responder._body_for(str(request.url).endswith("/converse-stream"))
                headers = {"content-type": kind, "x-amzn-requestid": "00000000-0000-0000-0000-000000000000"}
                return AWSResponse(request.url, 200, headers, Raw(chunks))

            replacements.append((URLLib3Session, "send", send))
        with patched(*replacements):
            yield self
