"""The contract's data types, with the field and method names of smolagents' models module."""

from __future__ import annotations

import json
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

    def model_dump_json(self) -> str:
        return json.dumps(self.dict())

    def dict(self) -> dict[str, Any]:
        role = self.role.value if isinstance(self.role, MessageRole) else self.role
        out: dict[str, Any] = {"role": role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [asdict(tc) for tc in self.tool_calls]
        if self.token_usage is not None:
            out["token_usage"] = self.token_usage.dict()
        return out

    @classmethod
    def from_dict(
        cls, data: _Dict[str, Any], raw: Any | None = None, token_usage: TokenUsage | None = None
    ) -> ChatMessage:
        tool_calls = None
        if data.get("tool_calls"):
            tool_calls = [
                ChatMessageToolCall(
                    function=ChatMessageToolCallFunction(**tc["function"]),
                    id=tc["id"],
                    type=tc.get("type") or "function",
                )
                for tc in data["tool_calls"]
            ]
        role = data["role"]
        if role in MessageRole.roles():
            role = MessageRole(role)
        return cls(role=role, content=data.get("content"), tool_calls=tool_calls, raw=raw, token_usage=token_usage)

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


def _parts_text(parts: list[dict[str, Any]]) -> str:
    return "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
