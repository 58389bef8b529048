"""Reference definitions the suites judge by: written from the contract's text, sharing no code with harness.

Each function is the slowest obvious reading of one rule of the smolagents Model contract. The
suites compute every expected value with these (or write it down), never with the code under
test, so a bug in ``harness`` cannot make its own check pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def cut_at_first_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` cut before the stop sequence that completes first; at a tie, before the longest.

    Literally: walk the end position forward one character at a time; at the first end where
    some stop sequence is complete, cut before the longest stop complete there.
    """
    for end in range(1, len(text) + 1):
        complete = [s for s in stops if s and text[:end].endswith(s)]
        if complete:
            return text[: end - max(len(s) for s in complete)]
    return text


# The contract's role mapping: tool roles never reach a wire.
TOOL_ROLE_TARGETS = {"tool-call": "assistant", "tool-response": "user"}
ROLES = ("system", "user", "assistant", "tool-call", "tool-response")


def text_parts(content: Any) -> list[str]:
    """The text of a message's content, as the list of its text pieces in order."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    pieces = []
    for part in content:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text" and "text" in part:
            pieces.append(part["text"])
    return pieces


def wire_turns(
    messages: Sequence[dict[str, Any]], conversions: dict[str, str] | None = None
) -> list[tuple[str, list[str]]]:
    """(wire role, text pieces) per turn: roles converted, consecutive same-role messages merged."""
    mapping = {**TOOL_ROLE_TARGETS, **(conversions or {})}
    turns: list[tuple[str, list[str]]] = []
    for message in messages:
        role = mapping.get(message["role"], message["role"])
        pieces = text_parts(message.get("content"))
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(pieces)
        else:
            turns.append((role, list(pieces)))
    return turns


def arguments_as_dict(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as the contract hands them out: a dict, decoded from at most two layers of JSON."""
    value = arguments
    for _ in range(3):
        if isinstance(value, dict):
            return value
        value = json.loads(value)
    raise AssertionError(f"arguments {arguments!r} do not decode to an object")
