"""Chat-completions messages, tools and response formats in Amazon Bedrock Converse's shapes.

One translation for the Bedrock adapter (requests) and for ``harness derive-cassettes`` (bodies
of derived cassettes); each brings its own image blocks, since the adapter sends image bytes
and a cassette holds them as base64.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# content of message ``index`` -> Converse content blocks
Blocks = Callable[[Any, int], list[dict[str, Any]]]


def content_blocks(content: Any, index: int, images: Mapping[str, Callable[[Any], dict[str, Any]]],
                   refused: Callable[[str], Exception]) -> list[dict[str, Any]]:
    """Converse content blocks for message ``index``'s content (a string or a list of parts).

    A blank text block is never made (Converse rejects one); a part whose type is in ``images``
    becomes the block that function makes of the part; any other part raises ``refused(its type)``.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind in images:
            blocks.append(images[kind](part))
        else:
            raise refused(kind)
    return blocks


def converse_turns(
    messages: Sequence[Mapping[str, Any]], blocks: Blocks, strict: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages) for Converse from wire messages (roles system, user, assistant).

    Leading system messages become ``system``; a later one becomes a user turn, since Converse
    has no system turn inside a conversation. Consecutive turns of one role are merged; a message
    without content is dropped (Converse rejects an empty turn), except that ``strict`` refuses an
    empty user turn and a conversation left without any turn with a ValueError.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        content = blocks(message.get("content"), i)
        role = getattr(message["role"], "value", message["role"])  # a str-valued Enum reads by value
        if role == "system" and not turns:
            system.extend(content)
            continue
        role = "user" if role == "system" else role
        if not content and strict and role == "user":
            # Converse forbids an empty text block; dropping the turn would send another conversation
            raise ValueError(f"messages[{i}] is a user turn with empty content {message.get('content')!r}; "
                             "Bedrock Converse refuses empty text")
        if not content:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(content)
        else:
            turns.append({"role": role, "content": content})
    if strict and not turns:
        raise ValueError("messages hold no user or assistant turn with content; Bedrock Converse needs one")
    return system, turns


def tool_choice(choice: Any) -> dict[str, Any]:
    """Converse ``toolChoice`` for an OpenAI tool_choice (``none`` means: send no toolConfig)."""
    if choice in (None, "auto"):
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if name:
            return {"tool": {"name": name}}
    raise ValueError(f"tool_choice {choice!r} has no Converse equivalent; use 'auto', 'required' or a tool name")


def tool_config(tools: Sequence[Mapping[str, Any]], choice: Any) -> dict[str, Any]:
    """Converse ``toolConfig`` from OpenAI function schemas and a tool_choice."""
    specs = []
    for tool in tools:
        function = tool.get("function", tool)
        spec: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["inputSchema"] = {"json": function.get("parameters") or {"type": "object", "properties": {}}}
        specs.append({"toolSpec": spec})
    return {"tools": specs, "toolChoice": tool_choice(choice)}


def output_config(response_format: Mapping[str, Any]) -> dict[str, Any]:
    """Converse ``outputConfig`` for an OpenAI ``json_schema`` response_format."""
    if response_format.get("type") != "json_schema" or "json_schema" not in response_format:
        raise ValueError(
            f"Bedrock Converse takes only a json_schema response_format, got type {response_format.get('type')!r}"
        )
    spec = response_format["json_schema"]
    schema: dict[str, Any] = {"schema": json.dumps(spec.get("schema") or {})}
    if spec.get("name"):
        schema["name"] = spec["name"]
    if spec.get("description"):
        schema["description"] = spec["description"]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
