"""See what a model sent, before the network: the suites assert on the request as sent.

HTTP requests are captured at the clients' send methods (every httpx-family stack of
``harness.wire.transports``: openai, huggingface_hub and litellm; botocore's endpoint for boto3), above
the cassette layer, so capture works the same in replay, record and live modes and for either
subject. Local engines are observed at the chat template, which every in-process implementation calls.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.contract.messages import flatten_parts
from harness.wire.patching import patched
from harness.wire.transports import client_send_targets


@dataclass
class CapturedRequest:
    method: str
    url: str
    body: Any  # decoded JSON when it is JSON, else bytes
    stack: str = ""  # the client package that sent it (httpx, httpx2, botocore)
    header_names: tuple[str, ...] = ()  # lower-case, sorted: what a drift report compares (values vary)


@dataclass
class WireCall:
    """The parts of an outgoing request the suites check, read from any wire format."""

    messages: list[dict[str, Any]]  # {"role": str, "text": str, "content": original}
    stop: list[str] | None
    tools: list[str]  # tool names offered
    raw: Any = None

    @property
    def roles(self) -> list[str]:
        return [m["role"] for m in self.messages]

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]


@dataclass
class Capture:
    """Everything sent during one test."""

    http: list[CapturedRequest] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)

    def calls(self, wire_format: str, reader: RequestReader | None = None) -> list[WireCall]:
        """The requests sent, read in ``wire_format``, or by a backend's own ``reader``."""
        if wire_format == "chat_template":
            return [_from_template(t) for t in self.templates]
        if wire_format == "custom":  # a model of the user's: whatever could be observed of it
            return [_from_template(t) for t in self.templates] + [
                call for call in map(_from_openai, self.http) if call is not None and call.messages
            ]
        if reader is None:
            try:
                reader = READERS[wire_format]
            except KeyError:
                raise ValueError(
                    f"no request reader for wire format {wire_format!r}; built in: {', '.join(READERS)}, "
                    "chat_template"
                ) from None
        return [call for call in map(reader, self.http) if call is not None]

    def last(self, wire_format: str, reader: RequestReader | None = None) -> WireCall:
        calls = self.calls(wire_format, reader)
        if not calls:
            raise AssertionError(f"no outgoing request was captured ({wire_format} wire)")
        return calls[-1]


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            elif isinstance(part, dict) and "text" in part and part.get("type", "text") == "text":
                parts.append({"type": "text", "text": part["text"]})
        return flatten_parts(parts)
    return str(content)


def _tool_names(tools: Any) -> list[str]:
    names = []
    for tool in tools or []:
        if isinstance(tool, dict):
            fn = tool.get("function", tool)
            spec = tool.get("toolSpec")
            names.append((spec or fn).get("name", "?"))
    return names


def _from_openai(request: CapturedRequest) -> WireCall | None:
    body = request.body
    if not isinstance(body, dict):
        return None
    messages = [
        {"role": m.get("role"), "text": _text_of(m.get("content")), "content": m.get("content")}
        for m in body.get("messages", [])
    ]
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    return WireCall(messages=messages, stop=stop, tools=_tool_names(body.get("tools")), raw=body)


def _converse_content(message: dict[str, Any]) -> Any:
    """Converse content as sent, except that one lone text block reads as its string.

    Converse has no string content: a message flattened to one string travels as one text block.
    """
    content = message.get("content")
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict) and set(content[0]) == {"text"}:
        return content[0]["text"]
    return content


def _from_bedrock(request: CapturedRequest) -> WireCall | None:
    body = request.body
    if not isinstance(body, dict):
        return None
    messages = [
        {"role": "system", "text": _text_of(body["system"]), "content": _converse_content({"content": body["system"]})}
    ] if body.get("system") else []
    for m in body.get("messages", []):
        messages.append({"role": m.get("role"), "text": _text_of(m.get("content")), "content": _converse_content(m)})
    stop = (body.get("inferenceConfig") or {}).get("stopSequences")
    tools = (body.get("toolConfig") or {}).get("tools")
    return WireCall(messages=messages, stop=stop, tools=_tool_names(tools), raw=body)


# One captured HTTP request -> what the suites check (None: not a model call).
RequestReader = Callable[[CapturedRequest], "WireCall | None"]
READERS: dict[str, RequestReader] = {"openai": _from_openai, "bedrock": _from_bedrock}


def _from_template(call: dict[str, Any]) -> WireCall:
    messages = [
        {"role": m.get("role"), "text": _text_of(m.get("content")), "content": m.get("content")}
        for m in call.get("messages", [])
    ]
    return WireCall(messages=messages, stop=call.get("stop"), tools=_tool_names(call.get("tools")), raw=call)


def decode_body(body: Any) -> Any:
    """A request body as parsed JSON where it is JSON, else its text or bytes."""
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return bytes(body)
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _names(headers: Any) -> tuple[str, ...]:
    return tuple(sorted({str(name).lower() for name in headers.keys()}))


@contextlib.contextmanager
def capture_http(capture: Capture) -> Iterator[Capture]:
    """Record every request the clients of every hooked stack (``harness.wire.transports``) send while active."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, wrapper_factory: Any) -> None:
        patches.append((owner, name, wrapper_factory(getattr(owner, name), owner.__module__.split(".")[0])))

    def sync_send(original: Any, stack: str) -> Any:
        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            capture.http.append(CapturedRequest(request.method, str(request.url), decode_body(request.read()), stack,
                                                _names(request.headers)))
            return original(self, request, *args, **kwargs)

        return send

    def async_send(original: Any, stack: str) -> Any:
        async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            capture.http.append(CapturedRequest(request.method, str(request.url), decode_body(request.read()), stack,
                                                _names(request.headers)))
            return await original(self, request, *args, **kwargs)

        return send

    for owner, name, is_async in client_send_targets():  # every httpx-family stack (httpx, httpx2)
        patch(owner, name, async_send if is_async else sync_send)
    try:
        from botocore.endpoint import Endpoint
    except ImportError:
        Endpoint = None  # type: ignore[assignment,misc]
    if Endpoint is not None:

        def boto_send(original: Any, stack: str) -> Any:
            def _send(self: Any, request: Any) -> Any:
                capture.http.append(CapturedRequest(request.method, request.url, decode_body(request.body), stack,
                                                _names(request.headers)))
                return original(self, request)

            return _send

        patch(Endpoint, "_send", boto_send)
    with patched(*patches):
        yield capture


@contextlib.contextmanager
def capture_callable(model: Any, capture: Capture) -> Iterator[Capture]:
    """Record what a wrapped plain callable (``model.function``) is given: its messages and stops are its wire."""
    original = model.function

    @functools.wraps(original)
    def function(messages: Any, *args: Any, **kwargs: Any) -> Any:
        capture.templates.append({"messages": list(messages), "stop": kwargs.get("stop_sequences"), "tools": None,
                                  "grammar": kwargs.get("grammar")})
        return original(messages, *args, **kwargs)

    model.function = function
    try:
        yield capture
    finally:
        model.function = original


@contextlib.contextmanager
def capture_chat_template(tokenizer: Any, capture: Capture) -> Iterator[Capture]:
    """Record the messages and tools every ``apply_chat_template`` call on ``tokenizer`` receives."""
    original = tokenizer.apply_chat_template

    def apply_chat_template(conversation: Any = None, *args: Any, **kwargs: Any) -> Any:
        messages = conversation if conversation is not None else kwargs.get("messages")
        capture.templates.append({"messages": list(messages or []), "tools": kwargs.get("tools")})
        return original(conversation, *args, **kwargs)

    tokenizer.apply_chat_template = apply_chat_template
    try:
        yield capture
    finally:
        try:
            del tokenizer.apply_chat_template
        except AttributeError:
            tokenizer.apply_chat_template = original
