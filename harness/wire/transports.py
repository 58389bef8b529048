"""The HTTP stacks the SDKs send through, defined once.

Every hook of the harness reads them from here: capture (the clients' ``send``), the SSE chunk
recording (the connection pools) and replay (the transports), the suites' recorded-reply responder,
the network guard of replay mode and the adapters' transport-error typing. openai 3 and
huggingface_hub 2 send through ``httpx2``/``httpcore2``, the releases before them (and litellm)
through ``httpx``/``httpcore``; boto3 sends through botocore's endpoint over ``urllib3``. A new
stack of the httpx family is one line in ``HTTPX_STACKS``.

Nothing here imports an SDK or a stack at module level: each is imported when a hook is installed,
and a stack that is not installed is left out.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class HttpxStack:
    """One client package of the httpx family and the connection layer under it."""

    client: str  # httpx, httpx2: Client/AsyncClient.send, HTTPTransport, Response, errors
    core: str  # httpcore, httpcore2: ConnectionPool/AsyncConnectionPool


# Every stack the harness hooks, oldest first. A new one is one line here.
HTTPX_STACKS: tuple[HttpxStack, ...] = (
    HttpxStack("httpx", "httpcore"),
    HttpxStack("httpx2", "httpcore2"),
)
# boto3: botocore's endpoint sends through botocore.httpsession.URLLib3Session over urllib3
BOTOCORE_PACKAGES: tuple[str, ...] = ("botocore", "urllib3", "requests")


def stack_packages() -> tuple[str, ...]:
    """Every package name that carries requests of a hooked stack, client packages first."""
    return tuple(s.client for s in HTTPX_STACKS) + tuple(s.core for s in HTTPX_STACKS) + BOTOCORE_PACKAGES


@dataclass(frozen=True)
class LoadedStack:
    """An installed httpx-family stack: its modules."""

    name: str
    client: ModuleType
    core: ModuleType | None


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def httpx_stacks() -> list[LoadedStack]:
    """The stacks of ``HTTPX_STACKS`` that are installed here."""
    loaded = []
    for stack in HTTPX_STACKS:
        client = _import(stack.client)
        if client is not None:
            loaded.append(LoadedStack(stack.client, client, _import(stack.core)))
    return loaded


def client_send_targets() -> list[tuple[Any, str, bool]]:
    """``(owner, attribute, is_async)`` of every client ``send``: where a request is first seen whole."""
    targets: list[tuple[Any, str, bool]] = []
    for stack in httpx_stacks():
        targets += [(stack.client.Client, "send", False), (stack.client.AsyncClient, "send", True)]
    return targets


def transport_targets() -> list[tuple[LoadedStack, Any, str, bool]]:
    """``(stack, owner, attribute, is_async)`` of every default HTTP transport's handler."""
    targets: list[tuple[LoadedStack, Any, str, bool]] = []
    for stack in httpx_stacks():
        targets += [(stack, stack.client.HTTPTransport, "handle_request", False),
                    (stack, stack.client.AsyncHTTPTransport, "handle_async_request", True)]
    return targets


def pool_targets() -> list[tuple[Any, str, bool]]:
    """``(owner, attribute, is_async)`` of every connection pool's handler: the bytes as the network gives them."""
    targets: list[tuple[Any, str, bool]] = []
    for stack in httpx_stacks():
        if stack.core is not None:
            targets += [(stack.core.ConnectionPool, "handle_request", False),
                        (stack.core.AsyncConnectionPool, "handle_async_request", True)]
    return targets


def ssl_context_modules() -> list[ModuleType]:
    """The modules whose ``create_ssl_context`` each stack's default transport calls."""
    modules = []
    for stack in httpx_stacks():
        module = _import(f"{stack.name}._transports.default")
        if module is not None and hasattr(module, "create_ssl_context"):
            modules.append(module)
    return modules


def chunked_stream_class(client: ModuleType) -> Any:
    """A byte stream of ``client`` (httpx or httpx2; sync and async) that hands out a body in chunks."""

    class Chunks(client.SyncByteStream, client.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, chunks: list[bytes]) -> None:
            self._chunks = chunks

        def __iter__(self) -> Any:
            yield from self._chunks

        async def __aiter__(self) -> Any:
            for chunk in self._chunks:
                yield chunk

    return Chunks


def transport_error_kind(exc: BaseException) -> str | None:
    """``"timeout"`` or ``"connection"`` for a transport error of any hooked httpx-family stack; else None.

    Only stacks already imported are consulted: an error cannot come from a stack never loaded.
    """
    for stack in HTTPX_STACKS:
        module = sys.modules.get(stack.client)
        if module is None:
            continue
        if isinstance(exc, module.TimeoutException):
            return "timeout"
        if isinstance(exc, (module.TransportError, module.StreamError)):
            return "connection"
    return None


def carrying_package(frames: Any) -> str:
    """The package of the innermost frame that belongs to an HTTP stack (hooked or not), or 'unknown'.

    ``frames`` are ``traceback.extract_stack()``-style entries or ``inspect`` frames, innermost last.
    """
    lowest = ("socket", "ssl", "asyncio", "anyio", "selectors", "contextlib", "harness", "threading")
    for frame in reversed(list(frames)):
        module = frame.f_globals.get("__name__", "") if hasattr(frame, "f_globals") else ""
        top = module.split(".")[0]
        if top and top not in lowest and not top.startswith("_"):
            return top
    return "unknown"
