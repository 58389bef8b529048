"""The OpenAI chat-completions wire, shared by every backend that speaks it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from harness.contract.errors import BackendError, transport_error
from harness.contract.model import Request
from harness.contract.tool_calls import native_tool_calls
from harness.contract.types import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)
from harness.wire.transports import transport_error_kind


def completion_kwargs(request: Request, model_id: str | None) -> dict[str, Any]:
    """The body of a chat-completions call for ``request`` (without what REMOVE_PARAMETER removed)."""
    body: dict[str, Any] = {"messages": request.messages}
    if model_id is not None:
        body["model"] = model_id
    if request.stop_sequences and request.send_stop:
        body["stop"] = list(request.stop_sequences)
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.tools:
        body["tools"] = request.tools
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
    body.update(request.kwargs)
    for name in request.removed:
        body.pop(name, None)
    return body


def translate_transport_error(exc: BaseException, backend: str) -> BackendError | None:
    """A transport error of any hooked stack (httpx, httpx2) that an SDK let through, typed; else None.

    A read cut mid-body or mid-stream, or a connection the SDK does not wrap (huggingface_hub).
    """
    kind = transport_error_kind(exc)
    return transport_error(backend, kind, exc) if kind is not None else None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def request_id_of(answer: Any) -> str | None:
    """The x-request-id header an SDK kept with an answer or a stream (openai: ``_request_id``, a stream's
    ``response``; litellm: ``_response_headers``), or None."""
    found = _get(answer, "_request_id")
    for headers in (_get(_get(answer, "response"), "headers"), _get(answer, "_response_headers")):
        if not found and headers:
            found = headers.get("x-request-id")
    return found or None


def usage_of(usage: Any) -> TokenUsage | None:
    if not usage:
        return None
    return TokenUsage(
        input_tokens=int(_get(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(_get(usage, "completion_tokens", 0) or 0),
    )


def raise_if_cut_tool_call(arguments: Iterable[Any], backend: str, request_id: str | None) -> None:
    """An answer cut by the token limit inside a tool call's JSON arguments is an error, not a tool call."""
    for text in arguments:
        if isinstance(text, str) and text.strip():
            try:
                json.loads(text)
            except ValueError:
                raise BackendError("the answer hit the token limit inside a tool call's arguments "
                                   "(finish_reason=length); raise max_tokens", backend=backend, status=200,
                                   request_id=request_id, kind="truncated") from None


def message_from_completion(response: Any, backend: str, request_id: str | None = None) -> ChatMessage:
    """A ChatMessage from a chat-completions response, or a typed error: never half filled."""
    # the header names the request; the completion's own id only where no header came
    request_id = request_id or request_id_of(response) or _get(response, "id")
    choices = _get(response, "choices") or []
    if not choices:
        raise BackendError("the response has no choices", backend=backend, status=200, request_id=request_id,
                           kind="malformed")
    choice = choices[0]
    finish = _get(choice, "finish_reason")
    message = _get(choice, "message")
    if finish == "content_filter":
        # HTTP 200: an answer the filter cut or emptied is still an answer, marked as such
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=(_get(message, "content") if message is not None else None) or "",
            tool_calls=native_tool_calls(_get(message, "tool_calls")) if message is not None else None,
            raw=response,
            token_usage=usage_of(_get(response, "usage")),
            finish_reason="content_filter",
        )
    if message is None:
        raise BackendError("the first choice has no message", backend=backend, status=200, request_id=request_id,
                           kind="malformed")
    if finish == "length":
        raise_if_cut_tool_call([_get(_get(c, "function"), "arguments") for c in _get(message, "tool_calls") or []],
                               backend, request_id)
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=_get(message, "content"),
        tool_calls=native_tool_calls(_get(message, "tool_calls")),
        raw=response,
        token_usage=usage_of(_get(response, "usage")),
    )


def _tool_call_deltas(raw_calls: Iterable[Any]) -> list[ChatMessageToolCallStreamDelta]:
    deltas = []
    for tc in raw_calls:
        function = _get(tc, "function")
        deltas.append(
            ChatMessageToolCallStreamDelta(
                index=_get(tc, "index"),
                id=_get(tc, "id"),
                type=_get(tc, "type"),
                function=None
                if function is None
                else ChatMessageToolCallFunction(
                    name=_get(function, "name") or "", arguments=_get(function, "arguments") or ""
                ),
            )
        )
    return deltas


def deltas_from_chunks(chunks: Iterable[Any], backend: str, request_id: str | None = None
                       ) -> Iterator[ChatMessageStreamDelta]:
    """Stream deltas from chat-completion chunks of the first choice; usage yielded once, at the end.

    Servers that repeat usage send running totals, so the last one counts. A stream that ends
    without any finish_reason was cut off: that is an error, not a shorter answer. ``request_id``:
    the stream's x-request-id header; without one, the chunks' own id names the errors.
    """
    try:
        yield from _deltas_from_chunks(chunks, backend, request_id)
    except BackendError as exc:  # a stream broken after its headers: the error names the request they named
        named = exc.naming_request(request_id)
        if named is exc:
            raise
        raise named from exc.__cause__


def _deltas_from_chunks(chunks: Iterable[Any], backend: str, request_id: str | None
                        ) -> Iterator[ChatMessageStreamDelta]:
    usage = None
    finished = False
    finish_reason = None
    arguments: dict[Any, str] = {}
    for chunk in chunks:
        request_id = request_id or _get(chunk, "id")
        usage = usage_of(_get(chunk, "usage")) or usage
        choices = _get(chunk, "choices") or []
        if not isinstance(choices, list):  # an event that is no chunk: never skipped as if it said nothing
            raise BackendError(f"a stream chunk whose choices are a {type(choices).__name__}, not a list (malformed)",
                               backend=backend, status=200, request_id=request_id, kind="malformed")
        for choice in choices:
            if _get(choice, "index") not in (0, None):
                continue
            finish = _get(choice, "finish_reason")
            finished = finished or bool(finish)
            finish_reason = finish or finish_reason
            delta = _get(choice, "delta")
            if delta is None:
                continue
            raw_calls = _get(delta, "tool_calls")
            tool_calls = _tool_call_deltas(raw_calls) if raw_calls else None
            for call in tool_calls or []:
                piece = call.function.arguments if call.function else ""
                arguments[call.index] = arguments.get(call.index, "") + piece
            content = _get(delta, "content")
            if content or tool_calls:
                yield ChatMessageStreamDelta(content=content or None, tool_calls=tool_calls)
    if not finished:
        raise BackendError("the stream ended without a finish_reason (truncated)", backend=backend, status=200,
                           request_id=request_id, kind="truncated")
    if finish_reason == "length":
        raise_if_cut_tool_call(arguments.values(), backend, request_id)
    if usage is not None:
        yield ChatMessageStreamDelta(token_usage=usage)
