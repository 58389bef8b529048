"""The one tool-call parser: native objects and tool calls written as text."""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from harness.errors import ToolCallParseError
from harness.types import (
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
)

_FENCE = re.compile(r"```(?:json|JSON|python|py)?\s*\n?(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def parse_arguments(arguments: Any, tool_name: str = "?") -> dict[str, Any]:
    """Tool-call arguments as a dict, from a dict, a JSON string or a double-encoded JSON string."""
    value = arguments
    for _ in range(3):  # dict, JSON string, JSON string of a JSON string
        if isinstance(value, Mapping):
            return dict(value)
        if value is None:
            return {}
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ToolCallParseError(
                    f"arguments of tool call {tool_name!r} are not valid JSON ({exc.msg} at char {exc.pos}): "
                    f"{_excerpt(arguments)}"
                ) from None
            continue
        break
    raise ToolCallParseError(
        f"arguments of tool call {tool_name!r} must decode to a JSON object, got {_excerpt(arguments)} "
        f"(decoded to {type(value).__name__})"
    )


def _excerpt(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def _load_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _candidates(text: str) -> Iterable[str]:
    for match in _TAGGED.finditer(text):
        yield match.group(1)
    for match in _FENCE.finditer(text):
        yield match.group(1).strip()
    # a balanced object per opening brace, for prose with several braces around the call
    for m in re.finditer(r"\{", text):
        close = _balanced_end(text, m.start())
        if close is not None:
            yield text[m.start() : close]


def _balanced_end(text: str, start: int) -> int | None:
    """End of the object opening at ``start``: braces counted outside quoted strings (JSON or Python)."""
    depth = 0
    quote: str | None = None
    escaped = False
    for j in range(start, len(text)):
        ch = text[j]
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def parse_json_blob(text: str, tool_name_key: str = "name", tool_arguments_key: str = "arguments") -> dict[str, Any]:
    """The first object in ``text`` (JSON, fenced, Python-literal, amid prose) that names a tool."""
    for candidate in _candidates(text):
        obj = _load_object(candidate)
        if isinstance(obj, Mapping) and tool_name_key in obj:
            return dict(obj)
    raise ToolCallParseError(
        f"no tool call found in the model output: expected an object with key {tool_name_key!r} "
        f"(and {tool_arguments_key!r}); output was {_excerpt(text)}"
    )


def new_tool_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def make_tool_call(name: Any, arguments: Any, call_id: str | None = None, strict: bool = True) -> ChatMessageToolCall:
    """A tool call with dict arguments; ``strict=False`` keeps arguments that do not decode as they came
    (what ``generate`` returns: ``parse_tool_calls`` raises the clear error later, where an agent
    turns it into an observation)."""
    if strict and (not isinstance(name, str) or not name):
        raise ToolCallParseError(f"tool call name must be a non-empty string, got {_excerpt(name)}")
    try:
        decoded = parse_arguments(arguments, name)
    except ToolCallParseError:
        if strict:
            raise
        decoded = arguments
    return ChatMessageToolCall(
        id=call_id or new_tool_call_id(),
        type="function",
        function=ChatMessageToolCallFunction(name=name if isinstance(name, str) else "", arguments=decoded),
    )


def tool_call_from_text(
    text: str, tool_name_key: str = "name", tool_arguments_key: str = "arguments"
) -> ChatMessageToolCall:
    """One tool call written as text (JSON blob, fenced block, Python dict, prose around it)."""
    blob = parse_json_blob(text, tool_name_key, tool_arguments_key)
    return make_tool_call(blob[tool_name_key], blob.get(tool_arguments_key))


def native_tool_calls(raw_calls: Iterable[Any] | None) -> list[ChatMessageToolCall] | None:
    """Tool calls from an SDK's objects or dicts (OpenAI shape), arguments decoded, ids unique."""
    if not raw_calls:
        return None
    calls = []
    for raw in raw_calls:
        data = raw.model_dump() if hasattr(raw, "model_dump") else raw
        if not isinstance(data, Mapping):
            data = vars(data)
        function = data.get("function") or {}
        if not isinstance(function, Mapping):
            function = vars(function)
        calls.append(make_tool_call(function.get("name"), function.get("arguments"), data.get("id"), strict=False))
    return ensure_unique_ids(calls)


def ensure_unique_ids(calls: list[ChatMessageToolCall]) -> list[ChatMessageToolCall]:
    """Give a fresh id to every call whose id is missing or already taken."""
    seen: set[str] = set()
    for call in calls:
        if not call.id or call.id in seen:
            call.id = new_tool_call_id()
        seen.add(call.id)
    return calls


def merge_tool_call_deltas(deltas: Iterable[ChatMessageToolCallStreamDelta]) -> list[ChatMessageToolCall]:
    """Streamed tool-call fragments merged by index: id, name, then argument text appended."""
    merged: dict[int, dict[str, Any]] = {}
    for position, delta in enumerate(deltas):
        index = delta.index if delta.index is not None else position
        slot = merged.setdefault(index, {"id": None, "name": "", "arguments": ""})
        if delta.id:
            slot["id"] = delta.id
        if delta.function is not None:
            if delta.function.name and not slot["name"]:
                slot["name"] = delta.function.name
            args = delta.function.arguments
            if isinstance(args, Mapping):
                slot["arguments"] = dict(args)
            elif args:
                slot["arguments"] = (slot["arguments"] if isinstance(slot["arguments"], str) else "") + args
    calls = [make_tool_call(s["name"], s["arguments"], s["id"], strict=False) for _, s in sorted(merged.items())]
    return ensure_unique_ids(calls)
