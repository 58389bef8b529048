"""Reference definitions the suites judge by: written from the contract's text, sharing no code with harness.

Each function is the slowest obvious reading of one rule of the smolagents Model contract. The
suites compute every expected value with these (or write it down), never with the code under
test, so a bug in ``harness`` cannot make its own check pass.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
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


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def exact_diff(sent: Any, expected: Any, where: str = "") -> list[str]:
    """Every place where ``sent`` differs from ``expected``, type-exactly: an int is not a float, not a bool.

    Whitespace is content (strings are compared as they are), key sets must be equal, lists are
    compared in order and by length. Each difference reads ``<path>: sent <x>, expected <y>``.
    """
    here = where or "<root>"
    if type(sent) is not type(expected):
        return [f"{here}: sent {sent!r} ({_type_name(sent)}), expected {expected!r} ({_type_name(expected)})"]
    if isinstance(sent, dict):
        out = []
        for key in sorted(set(sent) | set(expected), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in expected:
                out.append(f"{path}: sent {sent[key]!r}, expected nothing (not in the recording)")
            elif key not in sent:
                out.append(f"{path}: sent nothing, expected {expected[key]!r}")
            else:
                out.extend(exact_diff(sent[key], expected[key], path))
        return out
    if isinstance(sent, (list, tuple)):
        if len(sent) != len(expected):
            return [f"{here}: sent {len(sent)} items, expected {len(expected)}: sent {sent!r}, expected {expected!r}"]
        out = []
        for i, (a, b) in enumerate(zip(sent, expected)):
            out.extend(exact_diff(a, b, f"{where}[{i}]"))
        return out
    if sent != expected:
        return [f"{here}: sent {sent!r}, expected {expected!r}"]
    return []


def exactly_equal(a: Any, b: Any) -> bool:
    """``a == b`` with types preserved at every level (``5``, ``5.0`` and ``True`` are three values)."""
    return not exact_diff(a, b)


def _is_text_part(part: Any) -> bool:
    return (isinstance(part, dict) and "text" in part and set(part) <= {"type", "text"}
            and part.get("type", "text") == "text")


def _merged_text_parts(body: Any) -> Any:
    """``body`` with each message's consecutive text parts read as one, joined by a newline.

    The contract lets consecutive messages of one role be merged, never losing text; smolagents
    merges them into one text part joined by a newline, an implementation may also keep the parts
    apart. Both read the same here; every other difference (a character, a part's type) remains.
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return body
    messages = []
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            merged: list[Any] = []
            for part in content:
                if _is_text_part(part) and merged and _is_text_part(merged[-1]):
                    merged[-1] = {**merged[-1], "text": merged[-1]["text"] + "\n" + part["text"]}
                else:
                    merged.append(part)
            message = {**message, "content": merged}
        messages.append(message)
    return {**body, "messages": messages}


# Query parameters that identify the call rather than the client's build: compared (api-version).
# Everything in headers is left out: user-agent and x-stainless-* carry SDK versions, the rest
# (lengths, retry counters, dates) is volatile; no contract field travels in a header.
def request_diff(
    sent_body: Any, recorded_body: Any, sent_query: dict[str, str], recorded_query: dict[str, str],
    sent_path: str, recorded_path: str, free: Sequence[str] = (),
) -> list[str]:
    """Field-level differences between a request sent and the one recorded for it.

    Compared: the body parsed from JSON (model, messages, stop, tools and their schemas,
    tool_choice, sampling parameters, stream and stream options, response format; Converse's
    messages, system, inferenceConfig and toolConfig), the query (``api-version``) and the path
    (an Azure deployment, a Bedrock model id). A difference at or under a field named in ``free``
    is left out.
    """
    out = exact_diff(_merged_text_parts(sent_body), _merged_text_parts(recorded_body), "body")
    out += exact_diff(sent_query, recorded_query, "query")
    if sent_path != recorded_path:
        out.append(f"path: sent {sent_path!r}, expected {recorded_path!r}")

    def is_free(line: str) -> bool:
        field = line.split(":", 1)[0]
        return any(field == f or field.startswith(f + ".") or field.startswith(f + "[") for f in free)

    return [line for line in out if not is_free(line)]


def tool_parameters_schema(inputs: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of a tool's parameters from its smolagents ``inputs``, as smolagents' get_tool_json_schema
    writes it: the inputs whole (types, enum, items, nesting, descriptions), a top-level ``any`` as ``string``,
    every input not ``nullable`` required, in order."""
    properties = copy.deepcopy(inputs)
    for spec in properties.values():
        if spec.get("type") == "any":
            spec["type"] = "string"
    required = [key for key, spec in properties.items() if not spec.get("nullable")]
    return {"type": "object", "properties": properties, "required": required}


def merged_stream(deltas: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """(content, tool calls) that stream deltas amount to, read from the deltas' public fields only.

    The contract: content pieces joined in order; tool-call fragments merged by their ``index``
    (a fragment without one is its own call), the id and name from the fragments that carry them,
    the argument text concatenated in order (arguments given whole as a mapping are taken as they are).
    """
    content = "".join(getattr(d, "content", None) or "" for d in deltas)
    calls: dict[Any, dict[str, Any]] = {}
    order: list[Any] = []
    position = 0
    for delta in deltas:
        for fragment in getattr(delta, "tool_calls", None) or []:
            index = getattr(fragment, "index", None)
            key = ("index", index) if index is not None else ("position", position)
            position += 1
            if key not in calls:
                calls[key] = {"id": None, "name": "", "arguments": ""}
                order.append(key)
            call = calls[key]
            if getattr(fragment, "id", None):
                call["id"] = fragment.id
            function = getattr(fragment, "function", None)
            if function is not None:
                if getattr(function, "name", None):
                    call["name"] = function.name
                arguments = getattr(function, "arguments", None)
                if isinstance(arguments, dict):
                    call["arguments"] = dict(arguments)
                elif arguments:
                    call["arguments"] = (call["arguments"] if isinstance(call["arguments"], str) else "") + arguments
    ordered = sorted(order, key=lambda k: (k[0] != "index", k[1]))
    return content, [calls[k] for k in ordered]


def message_of_stream(contract: Any, deltas: Sequence[Any]) -> Any:
    """The contract's ChatMessage for ``deltas``, merged by :func:`merged_stream` (not by the code under test)."""
    content, calls = merged_stream(deltas)
    tool_calls = [contract.ChatMessageToolCall(
        id=c["id"] or "", type="function",
        function=contract.ChatMessageToolCallFunction(name=c["name"], arguments=c["arguments"]))
        for c in calls]
    return contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=content, tool_calls=tool_calls or None)


# -- the request lens: what an implementation sent, read in the contract's terms -----------------


@dataclass
class SentRequest:
    """One request as sent: its turns (role, text, content as sent), stops and offered tool names."""

    messages: list[dict[str, Any]]
    stop: list[str] | None
    tools: list[str]
    raw: Any = None

    @property
    def roles(self) -> list[str]:
        return [m["role"] for m in self.messages]

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]


def text_of_content(content: Any) -> str:
    """A message's text: a string as it is; the text parts of a list (``{"text": ...}`` blocks included)
    joined by a line break, as flattening joins them; other parts left out."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str) and part.get("type", "text") == "text":
                texts.append(part["text"])
        return "\n".join(texts)
    return str(content)


def _tool_names(tools: Any, typed: bool = False) -> list[str]:
    """The names of the tools a request offers; ``typed``: a chat-completions tool is ``{"type": "function",
    "function": {...}}`` (the OpenAI reference), and one typed otherwise is named with its type."""
    names = []
    for tool in tools or []:
        if isinstance(tool, dict):
            spec = tool.get("toolSpec") or tool.get("function") or tool
            name = spec.get("name", "?")
            names.append(name if not typed or tool.get("type") == "function" else f"{name} (type {tool.get('type')!r})")
    return names


def read_openai(body: Any) -> SentRequest | None:
    """A chat-completions body (also what a chat template receives), or None if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    messages = [{"role": m.get("role"), "text": text_of_content(m.get("content")), "content": m.get("content")}
                for m in body["messages"]]
    stop = body.get("stop")
    return SentRequest(messages, [stop] if isinstance(stop, str) else stop, _tool_names(body.get("tools"), typed=True),
                       body)


def _lone_text(content: Any) -> Any:
    # Converse has no string content: a message flattened to one string travels as one text block
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict) and set(content[0]) == {"text"}:
        return content[0]["text"]
    return content


def read_converse(body: Any) -> SentRequest | None:
    """A Bedrock Converse body (``system`` read as the first turn), or None if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    messages = [{"role": "system", "text": text_of_content(body["system"]), "content": _lone_text(body["system"])}
                ] if body.get("system") else []
    messages += [{"role": m.get("role"), "text": text_of_content(m.get("content")), "content": _lone_text(
        m.get("content"))} for m in body["messages"]]
    stop = (body.get("inferenceConfig") or {}).get("stopSequences")
    return SentRequest(messages, stop, _tool_names((body.get("toolConfig") or {}).get("tools")), body)


_WORD_START = r"(?<![A-Za-z0-9_])"  # what comes before a word of its own: no letter, digit or underscore


def names(text: str, name: str) -> bool:
    """``text`` names ``name`` as a word of its own, spelt as it is: ``api_key`` is named by "pass `api_key`" and
    "api_key=...", not by "XXapi_keyXX", "API_KEY" or "AZURE_OPENAI_API_KEY"."""
    return re.search(rf"{_WORD_START}{re.escape(name)}(?![A-Za-z0-9_])", text) is not None


def chain_of(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from (``__cause__``, else ``__context__``), each once."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# how much of an exception's own words (the first line of its text) an error must repeat to name it by them
CAUSE_WORDS = 40


def unnamed_cause(error: BaseException, own: tuple[type, ...] = ()) -> str | None:
    """None where ``str(error)`` names an exception it was raised from, other than ``own``'s (the harness's own
    types): by its class, as a word of its own, or by the first ``CAUSE_WORDS`` characters of its text's first
    line, beginning a word; else what it names instead, with the chain it was raised from."""
    text = str(error)
    causes = [e for e in chain_of(error)[1:] if not isinstance(e, own)]
    for cause in causes:
        words = str(cause).strip().splitlines()[0][:CAUSE_WORDS] if str(cause).strip() else ""
        if names(text, type(cause).__name__) or (words and re.search(_WORD_START + re.escape(words), text)):
            return None
    raised_from = ", ".join(f"{type(e).__name__}: {str(e)[:80]!r}" for e in causes) or "nothing"
    return f"the error names none of the exceptions it was raised from ({raised_from}): {text}"
