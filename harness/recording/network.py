"""The network in replay: every real connection refused (an escaped request named with the package that
carried it), and huggingface_hub's clients let through its offline mode."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from harness.contract.errors import HarnessError
from harness.wire import transports
from harness.wire.patching import patched


class NetworkBlockedError(HarnessError, OSError):
    """Replay mode attempted a real connection."""


class CaptureEscapeError(BaseException):
    """A request reached the network in replay: it escaped every hook, so it stops the test at once.

    A BaseException, not an Exception: the SDKs retry every Exception of their transport with
    back-off (openai about 8 s), which would hide the escape behind a slow connection error.
    """


@contextlib.contextmanager
def block_network(guard: str | None = None, allow: tuple[str, int] | None = None) -> Iterator[None]:
    """Any real connection attempt fails while active (replay must never reach a socket).

    With ``guard`` (what is running: backend and cassette), an attempt is a request that escaped
    capture: it raises ``CaptureEscapeError`` naming ``guard`` and the package that carried it, which no
    SDK retries. Without, it raises ``NetworkBlockedError`` (an OSError, as a refused connect would).
    ``allow`` (host, port): the one address a fault run's requests may reach, its loopback injector.
    """
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def refused(what: str) -> BaseException:
        if guard is None:
            return NetworkBlockedError(f"replay mode blocks the network; {what} was attempted")
        import inspect

        carrier = transports.carrying_package(frame.frame for frame in reversed(inspect.stack(0)))
        reach = f" (a fault run only {allow[0]}:{allow[1]})" if allow else ""
        return CaptureEscapeError(
            f"{guard}: a request escaped capture through {carrier!r} ({what}); replay never reaches the network"
            f"{reach}, and the harness hooks only {', '.join(transports.stack_packages())} (harness/wire/transports.py)"
        )

    def refuse(original: Any) -> Any:
        def connect_or_refuse(self: socket.socket, address: Any) -> Any:
            if allow is not None and tuple(address[:2]) == allow:
                return original(self, address)
            raise refused(f"a connection to {address!r}")

        return connect_or_refuse

    def refuse_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        # a name lookup already reaches a DNS server, before any connect
        if allow is not None and host == allow[0]:
            return getaddrinfo(host, *args, **kwargs)
        raise refused(f"a lookup of {host!r}")

    patches: list[tuple[Any, str, Any]] = [
        (socket.socket, "connect", refuse(connect)),
        (socket.socket, "connect_ex", refuse(connect_ex)),
        (socket, "getaddrinfo", refuse_lookup),
    ]
    # no TLS handshake can happen here, so every client may share one default SSL context
    # (loading the CA bundle costs about 40 ms per client, and each SDK client builds one)
    for module in transports.ssl_context_modules():
        patches.append((module, "create_ssl_context", _shared_ssl_context(module.create_ssl_context)))
    with patched(*patches):
        yield


_SSL_CONTEXTS: dict[Any, Any] = {}


def _shared_ssl_context(create: Any) -> Any:
    """httpx's ``create_ssl_context``, returning one context per set of inputs for the default verify."""
    import os

    def create_once(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return create(verify=verify, cert=cert, trust_env=trust_env)
        key = (create, trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in _SSL_CONTEXTS:
            _SSL_CONTEXTS[key] = create(verify=verify, cert=cert, trust_env=trust_env)
        return _SSL_CONTEXTS[key]

    return create_once


@contextlib.contextmanager
def hub_clients_online() -> Iterator[None]:
    """Let huggingface_hub's HTTP clients send while HF_HUB_OFFLINE keeps model loading local.

    Offline mode fails every request made through huggingface_hub's session, an InferenceClient's
    call to the local server or to a cassette included; the mode's own policy (no network in
    replay, the loopback server in record) governs those instead. Telemetry stays off meanwhile:
    online, huggingface_hub 1.33 builds each request's user agent by fetching a registry of agent
    harnesses from the Hub (once per process), which would be the first request of whichever test
    reaches it first.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    with patched((constants, "HF_HUB_OFFLINE", False), (constants, "HF_HUB_DISABLE_TELEMETRY", True)):
        yield
