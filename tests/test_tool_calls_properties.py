"""Laws of the one tool-call parser: arguments, calls written as text, ids, streamed fragments."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.contract.errors import ToolCallParseError
from harness.contract.model import Model
from harness.contract.tool_calls import (
    ensure_unique_ids,
    make_tool_call,
    merge_tool_call_deltas,
    parse_arguments,
    tool_call_from_text,
)
from harness.contract.types import (
    ChatMessage,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
)

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
# prose that a model writes around a call: no braces, no fences
prose = st.text(alphabet="abcdefghij XYZ.,:;!?\n'\"", max_size=20)


@given(arguments)
def test_arguments_survive_dict_json_and_double_encoded_forms(args):
    assert parse_arguments(args, "f") == args
    assert parse_arguments(json.dumps(args), "f") == args
    assert parse_arguments(json.dumps(json.dumps(args)), "f") == args


@given(st.text(max_size=30), names)
def test_arguments_are_a_dict_or_a_clear_error_never_a_silent_empty_dict(text, name):
    try:
        decoded = json.loads(text)
        if isinstance(decoded, str):
            decoded = json.loads(decoded)
    except json.JSONDecodeError:
        decoded = ...
    try:
        out = parse_arguments(text, name)
    except ToolCallParseError as exc:
        assert isinstance(exc, ValueError)
        assert repr(name) in str(exc)
        assert not isinstance(decoded, dict)
        return
    assert isinstance(out, dict)
    if out == {}:
        # only what says "no arguments" may become {}
        assert decoded in ({}, None) or not text.strip() or (isinstance(decoded, str) and not decoded.strip())
    else:
        assert out == decoded


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", "42", '"just a string"', "true", 3, ["a"], '{"a": 1'])
def test_malformed_arguments_raise_a_tool_call_parse_error_naming_the_tool(bad):
    with pytest.raises(ToolCallParseError, match="get_weather"):
        parse_arguments(bad, "get_weather")
    with pytest.raises(ValueError, match="get_weather"):
        tool_call_from_text(json.dumps({"name": "get_weather", "arguments": bad}), "name", "arguments")


def _written_forms(name: str, args: dict[str, Any], before: str, after: str) -> dict[str, str]:
    call = {"name": name, "arguments": args}
    blob = json.dumps(call)
    return {
        "json blob": blob,
        "indented json": json.dumps(call, indent=2),
        "fenced json": f"```json\n{blob}\n```",
        "bare fence": f"```\n{blob}\n```",
        "python literal": repr(call),
        "fenced python": f"```py\n{call!r}\n```",
        "tagged": f"<tool_call>{blob}</tool_call>",
        "prose around": f"{before} {blob} {after}",
        "prose around a fence": f"{before}\n```json\n{blob}\n```\n{after}",
        "prose around a literal": f"{before} {call!r} {after}",
        "arguments as a json string": json.dumps({"name": name, "arguments": json.dumps(args)}),
    }


@given(names, arguments, prose, prose)
def test_a_tool_call_written_as_text_is_found_in_every_form(name, args, before, after):
    for form, text in _written_forms(name, args, before, after).items():
        call = tool_call_from_text(text, "name", "arguments")
        assert (call.function.name, call.function.arguments) == (name, args), form
        assert call.type == "function" and call.id, form


@given(names, arguments)
def test_custom_name_and_arguments_keys(name, args):
    text = json.dumps({"tool": name, "args": args})
    call = tool_call_from_text(text, "tool", "args")
    assert (call.function.name, call.function.arguments) == (name, args)


def test_braces_in_the_prose_do_not_hide_the_call():
    text = 'I will use {the tool} now: {"name": "get_weather", "arguments": {"city": "Paris"}} (see {docs}).'
    call = tool_call_from_text(text, "name", "arguments")
    assert (call.function.name, call.function.arguments) == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize("text", ["", "no call here", "{}", '{"arguments": {}}', "```json\n[1]\n```"])
def test_text_without_a_call_is_a_tool_call_parse_error(text):
    with pytest.raises(ToolCallParseError, match="no tool call found"):
        tool_call_from_text(text, "name", "arguments")


ids = st.one_of(st.none(), st.just(""), st.sampled_from(["call_a", "call_b", "x"]))


@given(st.lists(ids, max_size=8))
def test_ensure_unique_ids_gives_unique_ids_and_keeps_first_occurrences(call_ids):
    calls = [make_tool_call("f", {}, None) for _ in call_ids]
    for call, call_id in zip(calls, call_ids, strict=True):
        call.id = call_id  # type: ignore[assignment]
    out = ensure_unique_ids(calls)
    assert out is calls
    out_ids = [c.id for c in out]
    assert all(out_ids) and len(set(out_ids)) == len(out_ids)
    for i, call_id in enumerate(call_ids):
        if call_id and call_id not in call_ids[:i]:
            assert out_ids[i] == call_id


def _split(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


@given(names, names, arguments, arguments, st.data())
def test_streamed_fragments_of_two_interleaved_calls_merge_by_index(name0, name1, args0, args1, data):
    calls = [("call_0", name0, args0), ("call_1", name1, args1)]
    streams: list[list[ChatMessageToolCallStreamDelta]] = []
    for index, (call_id, name, args) in enumerate(calls):
        pieces = _split(json.dumps(args), data.draw(st.lists(st.integers(0, 10**6), max_size=6)))
        # as OpenAI streams: the first fragment carries id and name, the rest only argument text
        deltas = [
            ChatMessageToolCallStreamDelta(
                index=index,
                id=call_id if i == 0 else None,
                type="function" if i == 0 else None,
                function=ChatMessageToolCallFunction(name=name if i == 0 else None, arguments=piece),  # type: ignore[arg-type]
            )
            for i, piece in enumerate(pieces)
        ]
        streams.append(deltas)
    order = data.draw(st.permutations([0] * (len(streams[0]) - 1) + [1] * (len(streams[1]) - 1)))
    # each call's first fragment comes first (it opens the call); the rest interleave arbitrarily
    merged_input = [streams[0][0], streams[1][0]]
    positions = [1, 1]
    for which in order:
        merged_input.append(streams[which][positions[which]])
        positions[which] += 1
    out = merge_tool_call_deltas(merged_input)
    assert [(c.id, c.function.name, c.function.arguments) for c in out] == calls
    assert all(isinstance(c, ChatMessageToolCall) and c.type == "function" for c in out)


def test_merged_fragments_with_malformed_arguments_name_the_tool():
    deltas = [
        ChatMessageToolCallStreamDelta(
            index=0, id="c", function=ChatMessageToolCallFunction(name="f", arguments='{"a"')
        ),
        ChatMessageToolCallStreamDelta(index=0, function=ChatMessageToolCallFunction(name=None, arguments=": ")),  # type: ignore[arg-type]
    ]
    merged = merge_tool_call_deltas(deltas)  # what the stream sent, kept: merging never raises
    assert merged[0].function.name == "f" and merged[0].function.arguments == '{"a": '
    with pytest.raises(ToolCallParseError, match="'f'"):
        Model().parse_tool_calls(ChatMessage(role="assistant", content=None, tool_calls=merged))
