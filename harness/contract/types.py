"""The contract's data types, with the field and method names of smolagents' models module."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

_Dict = dict  # ChatMessage.dict() shadows the builtin inside the class body


class MessageRole(str, Enum):
    """The five roles of the messages format."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL_CALL = "tool-call"
    TOOL_RESPONSE = "tool-response"

    @classmethod
    def roles(cls) -> list[str]:
        return [r.value for r in cls]


# Roles that may appear on a wire; the tool roles never do.
WIRE_ROLES: frozenset[str] = frozenset({"user", "assistant", "system"})


@dataclass
class ChatMessageToolCallFunction:
    arguments: Any
    name: str
    description: str | None = None


@dataclass
class ChatMessageToolCall:
    function: ChatMessageToolCallFunction
    id: str
    type: str = "function"

    def __str__(self) -> str:
        return f"Call: {self.id}: Calling {self.function.name} with arguments: {self.function.arguments}"


@dataclass
class TokenUsage:
    input_tokens: int
    output_tokens: int
    total_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.total_tokens = self.input_tokens + self.output_tokens

    def dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class ChatMessage:
    role: MessageRole | str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ChatMessageToolCall] | None = None
    raw: Any | None = None
    token_usage: TokenUsage | None = None
    # why the provider ended the answer when it is not a plain stop, e.g. "content_filter" or
    # "guardrail_intervened": an answer a filter replaced or emptied still comes back, marked
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        if self.tool_calls is not None:
            self.tool_calls = [_coerce_tool_call(tc) for tc in self.tool_calls]

    def model_dump_json(self) -> str:
        """JSON of :meth:`dict` without ``raw`` (as smolagents' ``ChatMessage.model_dump_json``)."""
        data = self.dict()
        data.pop("raw", None)
        return json.dumps(data)

    def dict(self) -> dict[str, Any]:
        """Every field as plain data, with the keys of smolagents' ``ChatMessage.dict()``."""
        out: dict[str, Any] = {
            "role": _role_str(self.role),
            "content": self.content,
            "tool_calls": [asdict(tc) for tc in self.tool_calls] if self.tool_calls is not None else None,
            "raw": self.raw,
            "token_usage": self.token_usage.dict() if self.token_usage is not None else None,
        }
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        return out

    @classmethod
    def from_dict(
        cls, data: _Dict[str, Any], raw: Any | None = None, token_usage: TokenUsage | None = None
    ) -> ChatMessage:
        """A message from :meth:`dict`'s shape (or smolagents'); ``data`` is not modified."""
        role = _role_str(data["role"])
        if role in MessageRole.roles():
            role = MessageRole(role)
        usage = token_usage
        if usage is None and isinstance(data.get("token_usage"), Mapping):
            u = data["token_usage"]
            usage = TokenUsage(input_tokens=int(u.get("input_tokens", 0)), output_tokens=int(u.get("output_tokens", 0)))
        return cls(
            role=role,
            content=data.get("content"),
            tool_calls=list(data["tool_calls"]) if data.get("tool_calls") else None,
            raw=raw,
            token_usage=usage,
            finish_reason=data.get("finish_reason"),
        )

    def render_as_markdown(self) -> str:
        text = self.content if isinstance(self.content, str) else _parts_text(self.content or [])
        if self.tool_calls:
            text += "\n" + "\n".join(str(tc) for tc in self.tool_calls)
        return text


@dataclass
class ChatMessageToolCallStreamDelta:
    """A fragment of one tool call in a stream, merged with others of the same index."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: ChatMessageToolCallFunction | None = None


@dataclass
class ChatMessageStreamDelta:
    content: str | None = None
    tool_calls: list[ChatMessageToolCallStreamDelta] | None = None
    token_usage: TokenUsage | None = None


def _role_str(role: Any) -> Any:
    """A role's plain value (by value for any str-valued Enum), anything else unchanged."""
    return role.value if isinstance(role, Enum) else role


def _coerce_tool_call(tool_call: Any) -> ChatMessageToolCall:
    """A ChatMessageToolCall from ours, smolagents', an SDK object or a dict of the OpenAI shape."""
    if isinstance(tool_call, ChatMessageToolCall):
        return tool_call
    data = tool_call
    if not isinstance(data, Mapping):
        if hasattr(data, "model_dump"):
            data = data.model_dump()
        elif hasattr(data, "function") and hasattr(data, "id"):
            function = data.function
            return ChatMessageToolCall(
                function=ChatMessageToolCallFunction(
                    arguments=function.arguments, name=function.name, description=getattr(function, "description", None)
                ),
                id=data.id,
                type=getattr(data, "type", None) or "function",
            )
        else:
            raise TypeError(f"a tool call must be a ChatMessageToolCall or a dict, got {type(tool_call).__name__}")
    function = data.get("function") or {}
    return ChatMessageToolCall(
        function=ChatMessageToolCallFunction(
            arguments=function.get("arguments"),
            name=function.get("name") or "",
            description=function.get("description"),
        ),
        id=data.get("id"),
        type=data.get("type") or "function",
    )


def _parts_text(parts: list[dict[str, Any]]) -> str:
    return "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
