"""A fault injector: a loopback HTTP stand-in that answers each request as scripted, faults included.

The one fake the project allows: it stands in for a provider at the transport, so the real SDKs
(openai, huggingface_hub, litellm, boto3) read real sockets that misbehave on purpose: statuses
with Retry-After, resets before and inside a body or stream, stalls, truncated streams, bodies
that are not JSON or not UTF-8. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.wire.sse import encode as encode_sse


@dataclass
class Reply:
    """One scripted answer to one request.

    ``chunks`` are written one by one (chunked transfer encoding unless ``content_length`` is
    set); ``then`` says how the answer ends: ``"end"`` cleanly, ``"reset"`` with a TCP reset
    where the body stops, ``"hang"`` by stalling (a client timeout must fire), ``"hold"`` by keeping the
    connection open until the client closes it (:attr:`FaultInjector.released` is then set).
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Sequence[bytes] = ()
    content_length: int | None = None
    then: str = "end"
    reset_before: bool = False  # reset the connection before any byte of a response
    stall_before: float = 0.0  # seconds to wait before the status line

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        data = json.dumps(body).encode("utf-8")
        return cls(status, {"Content-Type": "application/json", **(headers or {})}, [data], content_length=len(data))

    @classmethod
    def raw(cls, data: bytes, status: int = 200, content_type: str = "application/json",
            headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, {"Content-Type": content_type, **(headers or {})}, [data], content_length=len(data))


@dataclass
class Seen:
    """A request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up on a fault it was sent is expected: no traceback for it on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FaultInjector:
    """``with FaultInjector([reply, ...]) as server:`` request n gets reply n (the last one repeats)."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        if not replies:
            raise ValueError("FaultInjector needs at least one reply")
        self.replies = list(replies)
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.released = threading.Event()  # a client closed a connection held open (a reply ending in "hold")
        injector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with injector._lock:
                    injector.requests.append(Seen(self.command, self.path, dict(self.headers), body))
                    reply = injector.replies[min(len(injector.requests), len(injector.replies)) - 1]
                injector._answer(self, reply)

            do_GET = do_POST = _handle  # noqa: N815

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # a short poll: shutdown() waits up to one poll interval (the default 0.5 s, paid by every fault)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultInjector:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _reset(self, handler: BaseHTTPRequestHandler) -> None:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        handler.connection.close()

    def _hold(self, handler: BaseHTTPRequestHandler) -> None:
        """Keep the connection open, sending nothing more, until the client closes it (or the stand-in stops)."""
        connection = handler.connection
        while not self._stop.is_set():
            readable, _, _ = select.select([connection], [], [], 0.02)
            if not readable:
                continue
            try:
                closed = connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:  # reset by the client
                closed = True
            if closed:
                self.released.set()
                handler.close_connection = True
                return
            self._stop.wait(0.02)  # bytes of a next request on this connection: not a close

    def _answer(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.stall_before:
            self._stop.wait(reply.stall_before)
        if reply.reset_before:
            self._reset(handler)
            return
        handler.send_response(reply.status)
        chunked = reply.content_length is None
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(reply.content_length))
        handler.end_headers()
        try:
            for chunk in reply.chunks:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                handler.wfile.flush()
                self._stop.wait(0.002)  # separate reads, so a stream arrives in its chunks
            if reply.then == "reset":
                self._reset(handler)
                return
            if reply.then == "hang":
                self._stop.wait(30)
                return
            if reply.then == "hold":
                self._hold(handler)
                return
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            pass


def sse(events: Sequence[Any], done: bool = True) -> list[bytes]:
    """Server-sent events, one chunk each; ``done`` adds the ``[DONE]`` terminator."""
    return [event.encode() for event in encode_sse((e if isinstance(e, str) else json.dumps(e) for e in events), done)]


def retry_after_date(seconds_from_now: float) -> str:
    """An HTTP-date Retry-After, ``seconds_from_now`` ahead of the clock."""
    from email.utils import formatdate

    return formatdate(time.time() + seconds_from_now, usegmt=True)


def iter_requests(server: FaultInjector) -> Iterator[Seen]:
    yield from list(server.requests)
