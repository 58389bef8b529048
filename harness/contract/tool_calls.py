"""The one tool-call parser: native objects and tool calls written as text."""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from harness.contract.errors import ToolCallParseError
from harness.contract.types import (
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
)

_FENCE = re.compile(r"```(?:json|JSON|python|py)?\s*\n?(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def parse_arguments(arguments: Any, tool_name: Any) -> dict[str, Any]:
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
    j = start
    while j < len(text):
        ch = text[j]
        if quote is not None:
            if ch == "\\":
                j += 1  # the escaped character neither closes the string nor escapes the next
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
        j += 1
    return None


def parse_json_blob(text: str, tool_name_key: str, tool_arguments_key: str) -> dict[str, Any]:
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


def make_tool_call(name: Any, arguments: Any, call_id: str | None) -> ChatMessageToolCall:
    """A tool call as a backend sent it: arguments decoded to a dict where they decode, else kept as they
    came (``generate`` never raises on them: ``parse_tool_calls`` raises the clear error later, where an
    agent turns it into an observation); a name that is not a string becomes ``""``."""
    try:
        decoded = parse_arguments(arguments, name)
    except ToolCallParseError:
        decoded = arguments
    return ChatMessageToolCall(
        id=call_id or new_tool_call_id(),
        function=ChatMessageToolCallFunction(name=name if isinstance(name, str) else "", arguments=decoded),
    )


def tool_call_from_text(text: str, tool_name_key: str, tool_arguments_key: str) -> ChatMessageToolCall:
    """One tool call written as text (JSON blob, fenced block, Python dict, prose around it); a name that
    is not a non-empty string, or arguments that do not decode to an object, are a ToolCallParseError."""
    blob = parse_json_blob(text, tool_name_key, tool_arguments_key)
    name = blob[tool_name_key]
    if not isinstance(name, str) or not name:
        raise ToolCallParseError(f"tool call name must be a non-empty string, got {_excerpt(name)}")
    return make_tool_call(name, parse_arguments(blob.get(tool_arguments_key), name), None)


def native_tool_calls(raw_calls: Iterable[Any] | None) -> list[ChatMessageToolCall] | None:
    """Tool calls from an SDK's objects or dicts (OpenAI shape), arguments decoded, ids unique."""
    if not raw_calls:
        return None
    calls = []
    for raw in raw_calls:
        # pydantic objects (openai, litellm) are dumped; huggingface_hub's and Bedrock's calls are Mappings
        data = raw.model_dump() if hasattr(raw, "model_dump") else raw
        function = data.get("function") or {}
        calls.append(make_tool_call(function.get("name"), function.get("arguments"), data.get("id")))
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
            if delta.function.name:  # as smolagents merges: a later name replaces an earlier one
                slot["name"] = delta.function.name
            args = delta.function.arguments
            if isinstance(args, Mapping):
                slot["arguments"] = dict(args)
            elif args:
                slot["arguments"] = (slot["arguments"] if isinstance(slot["arguments"], str) else "") + args
    calls = [make_tool_call(s["name"], s["arguments"], s["id"]) for _, s in sorted(merged.items())]
    return ensure_unique_ids(calls)
