"""Server-sent events in a cassette: a stream is recorded with the chunks it arrived in and replayed in them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from harness.contract.errors import HarnessError
from harness.wire import sse, transports
from harness.wire.patching import patched

_sse_local = threading.local()


def _noted_sse_bodies() -> list[list[bytes]]:
    """The chunks of each event-stream response read on this thread while recording."""
    if not hasattr(_sse_local, "bodies"):
        _sse_local.bodies = []
    bodies: list[list[bytes]] = _sse_local.bodies
    return bodies


def take_sse_chunks(body: Any) -> list[bytes] | None:
    """The noted chunks that make up ``body`` (forgotten once taken), or None."""
    if not isinstance(body, bytes):
        return None
    bodies = _noted_sse_bodies()
    for i in range(len(bodies) - 1, -1, -1):
        if b"".join(bodies[i]) == body:
            return [chunk for chunk in bodies.pop(i) if chunk]
    return None


def _is_sse(headers: Any) -> bool:
    for name, value in headers:
        if bytes(name).lower() == b"content-type":
            return sse.CONTENT_TYPE.encode() in bytes(value).lower()
    return False


@contextlib.contextmanager
def _note_sse_chunks() -> Iterator[None]:
    """While recording, note the chunks of every event-stream response as the network delivers them."""

    class NotedStream:
        def __init__(self, stream: Any) -> None:
            self._stream = stream
            self._chunks: list[bytes] = []
            _noted_sse_bodies().append(self._chunks)

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._stream:
                self._chunks.append(bytes(chunk))
                yield chunk

        async def __aiter__(self) -> Any:
            async for chunk in self._stream:
                self._chunks.append(bytes(chunk))
                yield chunk

        def close(self) -> None:
            self._stream.close()

        async def aclose(self) -> None:
            await self._stream.aclose()

    def noting(original: Any, is_async: bool) -> Any:
        def handle_request(self: Any, request: Any) -> Any:
            response = original(self, request)
            if _is_sse(response.headers):
                response.stream = NotedStream(response.stream)
            return response

        async def handle_async_request(self: Any, request: Any) -> Any:
            response = await original(self, request)
            if _is_sse(response.headers):
                response.stream = NotedStream(response.stream)
            return response

        return handle_async_request if is_async else handle_request

    # every connection pool of every hooked stack (httpcore, httpcore2)
    replacements = [(owner, name, noting(getattr(owner, name), is_async))
                    for owner, name, is_async in transports.pool_targets()]
    try:
        with patched(*replacements):
            yield
    finally:
        _noted_sse_bodies().clear()


def recorded_chunks(response: Mapping[str, Any]) -> list[bytes] | None:
    """A recorded response's body in the chunks it arrived in, or None if they were not recorded."""
    body = response.get("body") or {}
    sizes, string = body.get("chunks"), body.get("string") or b""
    if not sizes:
        return None
    data: bytes = string.encode("utf-8") if isinstance(string, str) else bytes(string)
    if sum(sizes) != len(data):
        raise HarnessError(f"the recorded chunk lengths add up to {sum(sizes)} bytes, the body has {len(data)}")
    chunks, at = [], 0
    for size in sizes:
        chunks.append(data[at : at + size])
        at += size
    return chunks


@contextlib.contextmanager
def _replay_sse_chunks(cassette: Any) -> Iterator[None]:
    """While replaying, hand out each played response that has recorded chunks in those chunks."""
    def rechunk(played: dict[int, int], response: Any, chunks_class: Any) -> Any:
        for index, count in cassette.play_counts.items():
            if count != played.get(index, 0):
                chunks = recorded_chunks(cassette.responses[index])
                if chunks is not None:
                    response.stream = chunks_class(chunks)
                break
        return response

    def rechunking(stack: Any, original: Any, is_async: bool) -> Any:
        chunks_class = transports.chunked_stream_class(stack.client)

        def handle_request(self: Any, request: Any) -> Any:
            played = dict(cassette.play_counts)
            return rechunk(played, original(self, request), chunks_class)

        async def handle_async_request(self: Any, request: Any) -> Any:
            played = dict(cassette.play_counts)
            return rechunk(played, await original(self, request), chunks_class)

        return handle_async_request if is_async else handle_request

    # every transport of every hooked stack (httpx, httpx2), above vcrpy's own patch of it
    with patched(*[(owner, name, rechunking(stack, getattr(owner, name), is_async))
                   for stack, owner, name, is_async in transports.transport_targets()]):
        yield


@contextlib.contextmanager
def keeping_sse_chunks(cassette_manager: Any, record: bool) -> Iterator[Any]:
    with cassette_manager as cassette:
        with _note_sse_chunks() if record else _replay_sse_chunks(cassette):
            yield cassette
