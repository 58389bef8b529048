"""A stream gives the same message wherever the transport cuts it.

A server's stream reaches the SDK in chunks whose boundaries fall anywhere: inside a UTF-8
character, inside the JSON string of a tool call's arguments, between a fragment's index and the
fragment. The same stream, delivered cut at every boundary of one class, must give the message it
gives delivered whole. HTTP backends are answered by the recorded-reply responder
(conftest.responder): the recorded stream itself, and a stream with non-ASCII text and arguments
built from it. The boundaries are found in the body's bytes here, not by the code under test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from responder import Reply, ToolCallSpec

from conftest import text_of
from oracles import arguments_as_dict

pytestmark = [pytest.mark.no_cassette, pytest.mark.requires("stream")]

WEATHER = [{"role": "user", "content": "What is the weather in Zürich?"}]
TEXT = "Zürich: 東京 🙂 naïve — ok"
ARGUMENTS = {"city": "Zürich 東京 🙂", "note": 'a "quoted" \\ back — ok'}


def _inside_characters(body: bytes) -> list[int]:
    """Every offset inside a multi-byte UTF-8 character (before each continuation byte)."""
    return [i for i, byte in enumerate(body) if byte & 0xC0 == 0x80]


def _inside_argument_strings(body: bytes) -> list[int]:
    """Every offset inside the JSON string that carries tool-call arguments (OpenAI ``arguments``,
    Converse ``input``), from its opening quote to its closing one."""
    offsets = []
    for match in re.finditer(rb'"(?:arguments|input)": ?"', body):
        i = match.end()
        while i < len(body) and body[i:i + 1] != b'"':
            i += 2 if body[i:i + 1] == b"\\" else 1
        offsets += range(match.end() - 1, min(i + 1, len(body)))
    return offsets


def _after_indexes(body: bytes) -> list[int]:
    """Every offset between a fragment's index (``index``, ``contentBlockIndex``) and what follows it."""
    offsets = []
    for match in re.finditer(rb'"(?:index|contentBlockIndex)": ?\d+', body):
        offsets += [match.end(), match.end() + 1]
    return offsets


BOUNDARIES = {
    "utf8": _inside_characters,
    "arguments": _inside_argument_strings,
    "index": _after_indexes,
    "every-byte": lambda body: list(range(1, len(body))),
}


def _message(model: Any, contract: Any, tool: Any) -> Any:
    return contract.agglomerate_stream_deltas(list(model.generate_stream(WEATHER, tools_to_call_from=[tool])))


def _seen(model: Any, message: Any) -> tuple[Any, ...]:
    """What a message amounts to: its text, its calls (id, name, arguments as a dict) and its usage."""
    role = getattr(message.role, "value", message.role)  # a str-valued Enum read by value
    assert role == "assistant", f"the streamed message's role is {message.role!r}"
    calls = [(c.id, c.function.name, arguments_as_dict(c.function.arguments)) for c in message.tool_calls or []]
    usage = message.token_usage
    return text_of(message), calls, None if usage is None else (usage.input_tokens, usage.output_tokens)


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("boundary", list(BOUNDARIES))
@pytest.mark.parametrize("source", ["recorded", "unicode"])
@pytest.mark.clause("stream.agglomerates-to-generate", "stream.tool-call-deltas-by-index", "tools.unicode-arguments")
def test_a_stream_cut_anywhere_gives_the_same_message(model, contract, weather_tool, responder, source, boundary):
    if source == "recorded":
        reply = Reply(recorded=True)
    else:
        reply = Reply(text=TEXT, tool_calls=[ToolCallSpec("call_u", "get_weather", ARGUMENTS)],
                      argument_pieces=[4, 11, 19], usage=(41, 17))
    responder.reply = reply
    whole = _seen(model, _message(model, contract, weather_tool))
    if source == "unicode":
        assert whole == (TEXT, [("call_u", "get_weather", ARGUMENTS)], (41, 17)), whole
    else:
        assert whole[1], "the recorded stream has a tool call: none came back"
    cuts = sorted(set(BOUNDARIES[boundary](responder.stream_body())))
    if not cuts:
        pytest.skip(f"the {source} stream has no {boundary} boundary")
    responder.reply = Reply(**{**reply.__dict__, "byte_cuts": cuts})
    cut = _seen(model, _message(model, contract, weather_tool))
    assert cut == whole, f"cut at {len(cuts)} {boundary} boundaries: {cut!r}, whole: {whole!r}"


# How an SSE stream may be framed (the OpenAI wire): lines ended by CRLF or CR instead of LF, and the
# first text sent in the event that carries the role. Each is delivered whole and cut at every byte.
FRAMINGS = {"crlf": {"line_break": "\r\n"}, "cr": {"line_break": "\r"}, "text-with-role": {"text_with_role": True}}


@pytest.mark.requires("token_usage")
@pytest.mark.parametrize("cut_at_every_byte", [False, True], ids=["whole", "every-byte"])
@pytest.mark.parametrize("framing", list(FRAMINGS))
@pytest.mark.clause("stream.sse-framing", "stream.agglomerates-to-generate")
def test_a_stream_framed_as_sse_allows_gives_its_text(model, contract, responder, framing, cut_at_every_byte):
    """CRLF, CR and LF end an event-stream line alike, and the first event's text counts as much as any."""
    if responder.lens.stream_content_type != "text/event-stream":
        pytest.skip(f"the {responder.lens.name} wire does not stream server-sent events")
    responder.reply = Reply(text=TEXT, text_pieces=[3, 9], usage=(41, 17), **FRAMINGS[framing])
    if cut_at_every_byte:
        responder.reply.byte_cuts = list(range(1, len(responder.stream_body())))
    message = contract.agglomerate_stream_deltas(list(model.generate_stream(WEATHER)))
    usage = message.token_usage
    got = text_of(message), None if usage is None else (usage.input_tokens, usage.output_tokens)
    assert got == (TEXT, (41, 17)), f"{framing} framing: text and usage {got!r}, sent {(TEXT, (41, 17))!r}"
