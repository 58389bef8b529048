"""The one message normaliser: messages format in, wire messages out."""

from __future__ import annotations

import base64
import copy
import io
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from harness.contract.types import WIRE_ROLES, ChatMessage, MessageRole

DEFAULT_ROLE_CONVERSIONS: dict[str, str] = {
    MessageRole.TOOL_CALL.value: MessageRole.ASSISTANT.value,
    MessageRole.TOOL_RESPONSE.value: MessageRole.USER.value,
}

_ROLES = frozenset(MessageRole.roles())

# Separator used when parts or consecutive messages of one role become one string.
TEXT_JOINER = "\n"


def role_conversions(custom: Mapping[str, str] | None = None) -> dict[str, str]:
    """The default tool-role mapping with ``custom`` added on top (it never removes a default)."""
    merged = dict(DEFAULT_ROLE_CONVERSIONS)
    for source, target in (custom or {}).items():
        source, target = _role_value(source), _role_value(target)
        if source not in _ROLES:
            raise ValueError(
                f"custom_role_conversions has unknown source role {source!r}; roles are {MessageRole.roles()}"
            )
        if target not in WIRE_ROLES:
            raise ValueError(
                f"custom_role_conversions maps {source!r} to {target!r}, which is not a wire role; "
                f"targets must be one of {sorted(WIRE_ROLES)}"
            )
        merged[source] = target
    return merged


_merged_role_conversions = role_conversions  # the parameter below shadows the name


def role_value(role: Any, where: str) -> str:
    """A role as its plain string, read by value from a ``str`` or any ``str``-valued Enum.

    ``str()`` is never used: ``str(smolagents.MessageRole.USER)`` is ``'MessageRole.USER'``.
    """
    if isinstance(role, Enum):
        role = role.value
    if not isinstance(role, str):
        raise TypeError(f"{where} must be a string or a str-valued Enum, got {role!r} of type {type(role).__name__}")
    return str.__str__(role)


def _as_dict(message: Any, index: int) -> dict[str, Any]:
    """Role and content of a dict, this project's ChatMessage or any object with the same attributes
    (smolagents' ChatMessage included); tool_calls and raw are not part of a wire message."""
    if isinstance(message, Mapping):
        if "role" not in message:
            raise ValueError(f"messages[{index}] has no 'role': {dict(message)!r}")
        role, content = message["role"], message.get("content")
    elif isinstance(message, ChatMessage) or (hasattr(message, "role") and hasattr(message, "content")):
        role, content = message.role, message.content
    else:
        raise TypeError(
            f"messages[{index}] must be a dict or ChatMessage, got {message!r} of type {type(message).__name__}"
        )
    return {"role": role_value(role, f"messages[{index}].role"), "content": content}


def _role_value(role: Any) -> str:
    return role_value(role, "custom_role_conversions role")


def _encode_image(image: Any) -> str:
    """Base64 of an image given as bytes, a base64 string, or an object with PIL's ``save``."""
    if isinstance(image, bytes):
        return base64.b64encode(image).decode()
    if isinstance(image, str):
        return image
    if hasattr(image, "save"):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()
    raise TypeError(f"image part must hold bytes, a base64/URL string or a PIL image, got {type(image).__name__}")


def _copy_part(part: Mapping[str, Any], convert_images_to_image_urls: bool) -> dict[str, Any]:
    """A plain dict that shares nothing with the caller's part; an image as an image_url when converting."""
    if not convert_images_to_image_urls or part.get("type") != "image":
        return copy.deepcopy(dict(part))
    image = _encode_image(part.get("image"))
    if not image.startswith(("data:", "http://", "https://")):
        image = f"data:image/png;base64,{image}"
    return {"type": "image_url", "image_url": {"url": image}}


def _parts(content: Any, index: int, convert_images_to_image_urls: bool) -> list[dict[str, Any]]:
    """The content as new part dicts (the caller's are never changed); ``validate_call`` has already
    refused a list item that is not a dict with a known ``type``."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, (list, tuple)):
        parts = []
        for j, part in enumerate(content):
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise ValueError(f"messages[{index}].content[{j}] is a text part without a string 'text'")
            parts.append(_copy_part(part, convert_images_to_image_urls))
        return parts
    raise TypeError(
        f"messages[{index}].content must be a string or a list of parts, got {type(content).__name__}"
    )


def _is_text(part: Mapping[str, Any]) -> bool:
    return part.get("type") == "text" and len(part) == 2


def flatten_parts(parts: Sequence[Mapping[str, Any]]) -> str:
    """Every text part, in order, joined into one string (non-text parts are dropped)."""
    return TEXT_JOINER.join(p["text"] for p in parts if p.get("type") == "text")


def get_clean_message_list(
    messages: Sequence[Any],
    role_conversions: Mapping[str, str] | None = None,
    *,
    convert_images_to_image_urls: bool,
    flatten_messages_as_text: bool,
) -> list[dict[str, Any]]:
    """Normalise ``messages`` to wire messages.

    Content in either form (string or list of parts) becomes a list of parts, or one string per
    message with ``flatten_messages_as_text``. Roles are converted (tool roles always), and
    consecutive messages of one role are merged without losing text. The input is not mutated.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of dicts or ChatMessages, got {type(messages).__name__}")
    conversions = _merged_role_conversions(role_conversions)
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(messages):
        message = _as_dict(raw, i)
        role = message["role"]
        if role not in _ROLES:
            raise ValueError(f"messages[{i}] has role {role!r}; valid roles are {MessageRole.roles()}")
        role = conversions.get(role, role)
        parts = _parts(message["content"], i, convert_images_to_image_urls)
        if out and out[-1]["role"] == role:
            # as smolagents merges: a text part joins the text part before it, on a new line, so a
            # chat template that concatenates parts still sees the two messages apart
            merged = out[-1]["_parts"]
            for part in parts:
                if _is_text(part) and merged and _is_text(merged[-1]):
                    # an empty text adds nothing, not even the separator
                    texts = [t for t in (merged[-1]["text"], part["text"]) if t]
                    merged[-1] = {"type": "text", "text": TEXT_JOINER.join(texts)}
                else:
                    merged.append(part)
        else:
            out.append({"role": role, "_parts": parts})
    result = []
    for message in out:
        parts = message.pop("_parts")
        content: Any = flatten_parts(parts) if flatten_messages_as_text else parts
        result.append({"role": message["role"], "content": content})
    return result
