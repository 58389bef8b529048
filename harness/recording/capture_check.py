"""Prove, before a backend's first replayed test, that its requests are captured.

One probe call of the backend's model is sent with every hooked transport (``harness.wire.transports``)
answering by stopping the call, and the network blocked: a request that passes a hooked client is
captured and stops at its transport; one that escapes every hook reaches the socket and stops there,
naming the package that carried it. Either way nothing is sent and nothing is retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.recording.capture import Capture, capture_http
from harness.recording.network import CaptureEscapeError, block_network
from harness.wire import transports
from harness.wire.patching import patched

PROBE_MESSAGES = [{"role": "user", "content": "capture probe"}]
# the same probe with list-of-parts content: sent when a model fails on the first before sending anything (a
# class that does not take string content), so that the capture is checked, not the class's message handling
PROBE_MESSAGES_AS_PARTS = [{"role": "user", "content": [{"type": "text", "text": "capture probe"}]}]


class _Stopped(BaseException):
    """The probe request reached a hooked transport: stop it there (no SDK retries a BaseException)."""


@dataclass
class CaptureCheck:
    """What the probe saw: the stacks that carried the captured request, or why the backend is refused."""

    stacks: list[str]
    refused: str | None = None


def _stopping(is_async: bool) -> Any:
    def handle_request(self: Any, request: Any) -> Any:
        raise _Stopped

    async def handle_async_request(self: Any, request: Any) -> Any:
        raise _Stopped

    return handle_async_request if is_async else handle_request


def check_capture(backend: str, build: Callable[[], Any]) -> CaptureCheck:
    """Send one probe call of the model ``build`` returns; refuse the backend unless it was captured."""
    capture = Capture()
    stops = [(owner, name, _stopping(is_async)) for _, owner, name, is_async in transports.transport_targets()]
    with contextlib.suppress(ImportError):
        from botocore.httpsession import URLLib3Session

        stops.append((URLLib3Session, "send", _stopping(False)))
    guard = f"backend {backend} (capture self-check)"
    escaped: str | None = None
    failure: str | None = None
    with patched(*stops), block_network(guard), capture_http(capture):
        for messages in (PROBE_MESSAGES, PROBE_MESSAGES_AS_PARTS):
            try:
                build().generate(messages)
            except _Stopped:
                pass
            except CaptureEscapeError as exc:
                escaped = str(exc)
            except Exception as exc:  # noqa: BLE001 - the model failed before or after sending: judged below
                failure = f"{type(exc).__name__}: {exc}"
            if capture.http or escaped is not None:
                break
    stacks = sorted({request.stack for request in capture.http})
    if escaped is not None:
        return CaptureCheck(stacks, f"{escaped}; refusing to run backend {backend}")
    if not capture.http:
        why = f" ({failure})" if failure else ""
        return CaptureCheck(stacks, f"backend {backend}: its probe call sent no request that the harness "
                                    f"captured{why}; refusing to run it (hooked: "
                                    f"{', '.join(transports.stack_packages())})")
    return CaptureCheck(stacks)
