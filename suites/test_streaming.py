"""Streaming: the deltas agglomerate to what generate returns, stops hold across chunks, usage counts once.

Every check goes through the contract (generate, generate_stream, agglomerate_stream_deltas,
parse_tool_calls), so the suite runs for any backend that declares "stream", local engines included.
On the wire, a streamed call sends what the matching generate call sent (conversation, stops,
tools), as a streaming request of its API (``stream: true`` on the OpenAI wire, ConverseStream on
Bedrock). Expected stopped text comes from the suite's reference definition, not from harness.
"""

from __future__ import annotations

import pytest
from responder import Reply
from wires import lens_of

from conftest import STORY_PROMPT, WEEK_PROMPT, assert_stop_on_wire, distinct_words, text_of
from oracles import cut_at_first_stop

pytestmark = pytest.mark.requires("stream")

HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def _user(prompt):
    return [{"role": "user", "content": prompt}]


def _stream(model, contract, messages, **kwargs):
    deltas = list(model.generate_stream(messages, **kwargs))
    return deltas, contract.agglomerate_stream_deltas(deltas)


def _assert_same_usage(streamed, generated):
    want, got = generated.token_usage, streamed.token_usage
    assert want is not None and want.input_tokens > 0, f"generate returned no usage: {want!r}"
    assert got is not None, "the stream carried no token usage"
    for times in (2, 3):
        assert (got.input_tokens, got.output_tokens) != (times * want.input_tokens, times * want.output_tokens), (
            f"usage counted {times} times: stream {got!r}, generate {want!r}"
        )
    assert (got.input_tokens, got.output_tokens) == (want.input_tokens, want.output_tokens), (
        f"stream usage {got!r} != generate usage {want!r}"
    )
    assert got.total_tokens == got.input_tokens + got.output_tokens


def _assert_streamed_like_generate(backend, capture, wire):
    """The last two requests: a generate call, then a streamed call that sent the same things."""
    calls = wire.calls()
    assert len(calls) >= 2, f"expected a generate and a stream request, captured {len(calls)}"
    generated, streamed = calls[-2], calls[-1]
    assert streamed.messages == generated.messages, "the stream sent another conversation than generate"
    assert (streamed.stop, streamed.tools) == (generated.stop, generated.tools)
    if backend.wire_format == "chat_template" or (backend.kind == "custom" and not capture.http):
        # an in-process engine (or a custom model seen at its chat template or as a callable) streams
        # from the same input; there is no request flag
        return
    last = capture.http[-1]
    streaming = lens_of(backend).is_stream(last.url, last.body)
    assert streaming, f"the stream was sent as a non-streaming request: {last.url} {last.body!r}"


def _calls(model, message):
    parsed = model.parse_tool_calls(message)
    return [(c.function.name, c.function.arguments) for c in parsed.tool_calls]


@pytest.mark.clause("stream.agglomerates-to-generate")
def test_stream_agglomerates_to_generate(model, contract, backend, capture, wire):
    generated = model(_user(STORY_PROMPT))
    deltas, streamed = _stream(model, contract, _user(STORY_PROMPT))
    _assert_streamed_like_generate(backend, capture, wire)
    assert wire.last().texts == [STORY_PROMPT]
    assert sum(1 for d in deltas if d.content) > 1, f"the answer came in one piece: {deltas!r}"
    assert text_of(streamed) == text_of(generated)
    assert not streamed.tool_calls and not generated.tool_calls
    _assert_same_usage(streamed, generated)


@pytest.mark.clause("stream.usage-once", "usage.token-usage")
def test_usage_counted_once(model, contract, backend, capture, wire):
    generated = model(HELLO)
    deltas, streamed = _stream(model, contract, HELLO)
    _assert_streamed_like_generate(backend, capture, wire)
    assert any(d.token_usage for d in deltas), "no delta carried token usage"
    _assert_same_usage(streamed, generated)


@pytest.mark.requires("native_tools")
@pytest.mark.clause("stream.agglomerates-to-generate", "tools.native-calls-surface")
def test_stream_tool_call_matches_generate(model, contract, backend, capture, wire, weather_tool):
    generated = model(WEATHER, tools_to_call_from=[weather_tool])
    deltas, streamed = _stream(model, contract, WEATHER, tools_to_call_from=[weather_tool])
    _assert_streamed_like_generate(backend, capture, wire)
    assert wire.last().tools == ["get_weather"]
    fragments = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert fragments, f"no tool-call deltas in the stream; content={text_of(streamed)!r}"
    assert all(tc.index is not None for tc in fragments), f"tool-call deltas without an index: {fragments!r}"
    # the delta that opens a call (its id) says what it is, as the wire does (OpenAI tool_calls[].type)
    opening = [tc for tc in fragments if tc.id]
    assert opening and all(tc.type == "function" for tc in opening), f"opening tool-call deltas: {opening!r}"
    assert streamed.tool_calls and all(c.id for c in streamed.tool_calls), f"tool calls: {streamed.tool_calls!r}"
    assert _calls(model, streamed) == _calls(model, generated)
    _assert_same_usage(streamed, generated)


@pytest.mark.no_cassette
@pytest.mark.clause("stream.tool-call-deltas-by-index", "tools.ids-unique")
def test_tool_call_deltas_merged_by_index(model, contract):
    """Reply side only: deltas given by hand are merged; nothing is sent, so there is no request to check."""
    def fragment(index, arguments, call_id=None, name=None):
        function = contract.ChatMessageToolCallFunction(name=name or "", arguments=arguments)
        call = contract.ChatMessageToolCallStreamDelta(index=index, id=call_id, type="function" if call_id else None,
                                                       function=function)
        return contract.ChatMessageStreamDelta(content=None, tool_calls=[call])

    deltas = [  # two calls whose argument text arrives interleaved
        fragment(0, '{"ci', "call_a", "get_weather"),
        fragment(1, '{"city": ', "call_b", "get_weather"),
        fragment(0, 'ty": "Paris"}'),
        fragment(1, '"Rome"}'),
    ]
    message = contract.agglomerate_stream_deltas(deltas)
    assert [c.id for c in message.tool_calls] == ["call_a", "call_b"]
    assert _calls(model, message) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    # a call whose fragments never carry an id still gets one of its own
    deltas.append(fragment(2, '{"city": "Oslo"}', None, "get_weather"))
    message = contract.agglomerate_stream_deltas(deltas)
    ids = [c.id for c in message.tool_calls]
    assert ids[:2] == ["call_a", "call_b"] and ids[2] and ids[2] not in ids[:2], f"ids {ids!r}"
    assert _calls(model, message)[2] == ("get_weather", {"city": "Oslo"})


@pytest.mark.no_cassette
@pytest.mark.clause("tools.malformed-is-clear-error")
def test_malformed_streamed_arguments_surface_at_parse(model, contract):
    """Reply side only: deltas given by hand, nothing sent.

    A stream whose argument text does not decode still agglomerates (the message is returned,
    arguments as they came); parse_tool_calls then raises naming the tool. Arguments a delta
    carries as an object are kept as that object. A call no delta names agglomerates with the
    name ``""``, never another value, and parse_tool_calls raises naming the missing name.
    """
    function = contract.ChatMessageToolCallFunction
    delta = contract.ChatMessageToolCallStreamDelta
    broken = [contract.ChatMessageStreamDelta(content=None, tool_calls=[
        delta(index=0, id="call_x", type="function", function=function(name="get_weather", arguments='{"city": "Pa'))])]
    message = contract.agglomerate_stream_deltas(broken)
    assert message.tool_calls[0].function.arguments == '{"city": "Pa'
    with pytest.raises(ValueError, match="get_weather"):
        model.parse_tool_calls(message)
    whole = [contract.ChatMessageStreamDelta(content=None, tool_calls=[
        delta(index=0, id="call_y", type="function",
              function=function(name="get_weather", arguments={"city": "Oslo"}))])]
    assert _calls(model, contract.agglomerate_stream_deltas(whole)) == [("get_weather", {"city": "Oslo"})]
    nameless = [contract.ChatMessageStreamDelta(content=None, tool_calls=[
        delta(index=0, id="call_z", type="function", function=function(name="", arguments='{"city": "Rome"}'))])]
    message = contract.agglomerate_stream_deltas(nameless)
    assert [c.function.name for c in message.tool_calls] == [""], f"tool calls: {message.tool_calls!r}"
    with pytest.raises(ValueError, match="name"):
        model.parse_tool_calls(message)


@pytest.mark.clause("stream.stop-matches-generate", "stop.before-stop-sequence")
def test_stop_in_stream_matches_generate(model, contract, backend, capture, wire):
    reference = text_of(model(_user(WEEK_PROMPT)))
    word = next(iter(distinct_words(reference, min_len=6)), None)
    assert word, f"no long word in {reference!r}"
    stops = [word[:4]]  # ends inside a token, like "Tues" of "Tuesday"
    expected = reference[: reference.index(stops[0])]
    generated = model(_user(WEEK_PROMPT), stop_sequences=stops)
    _, streamed = _stream(model, contract, _user(WEEK_PROMPT), stop_sequences=stops)
    _assert_streamed_like_generate(backend, capture, wire)
    assert_stop_on_wire(backend, wire.last(), stops)
    assert text_of(streamed) == expected, f"stream with {stops!r}: {text_of(streamed)!r}, expected {expected!r}"
    assert text_of(generated) == text_of(streamed)


def _stop_across_a_boundary(pieces):
    """A stop made of the end of one chunk and the start of the next, first occurring right there."""
    text = "".join(pieces)
    at = 0
    for k in range(1, len(pieces)):
        at += len(pieces[k - 1])
        if k < 3:
            continue  # leave some text before the stop
        tail, head = pieces[k - 1][-2:], pieces[k][:2]
        stop = tail + head
        if stop.strip() and text.find(stop) == at - len(tail):
            return stop
    return None


@pytest.mark.clause("stream.stop-matches-generate")
def test_stop_split_across_chunks(model, contract, backend, wire):
    deltas, reference = _stream(model, contract, _user(WEEK_PROMPT))
    pieces = [d.content for d in deltas if d.content]
    stop = _stop_across_a_boundary(pieces)
    assert stop, f"no chunk boundary to put a stop across in {pieces!r}"
    expected = cut_at_first_stop(text_of(reference), [stop])
    deltas, streamed = _stream(model, contract, _user(WEEK_PROMPT), stop_sequences=[stop])
    assert_stop_on_wire(backend, wire.last(), [stop])
    assert wire.last().texts == [WEEK_PROMPT]
    content = text_of(streamed)
    assert stop not in content, f"stop {stop!r} left in the stream: {content!r}"
    assert content == expected, f"stop {stop!r} across chunks: got {content!r}, expected {expected!r}"


@pytest.mark.no_cassette
@pytest.mark.clause("stop.bad-value-is-clear-error")
def test_empty_stop_in_stream_is_a_value_error(model, wire):
    """Reply side: a ValueError naming the parameter; wire side: nothing was sent."""
    with pytest.raises(ValueError, match="stop_sequences"):
        list(model.generate_stream(HELLO, stop_sequences=["ok", ""]))
    assert wire.calls() == [], "a request was sent for invalid input"


@pytest.mark.no_cassette
@pytest.mark.clause("stream.not-held-back")
def test_text_no_stop_can_begin_in_is_not_held_back(model, contract, backend, wire, capture, responder):
    """Stops hold back only text that may begin one: other text streams out as the backend sent it.

    Reply side: the backend streams "Monday, " then "Tuesday" (the suites' recorded-reply
    responder) under the stop "Friday"; no end of either piece begins "Friday", so the content
    deltas are those two pieces, written down here (holding back even one character delays it to
    the next piece). Wire side: the stop went out as given.
    """
    capture.http.clear()
    responder.reply = Reply(text="Monday, Tuesday", text_pieces=[8])
    deltas = list(model.generate_stream(_user(WEEK_PROMPT), stop_sequences=["Friday"]))
    assert [d.content for d in deltas if d.content] == ["Monday, ", "Tuesday"], f"deltas {deltas!r}"
    assert text_of(contract.agglomerate_stream_deltas(deltas)) == "Monday, Tuesday"
    assert wire.last().texts == [WEEK_PROMPT]
    assert_stop_on_wire(backend, wire.last(), ["Friday"])


@pytest.mark.no_cassette
@pytest.mark.parametrize("begun", [1, 2, 3, 4, 5], ids=lambda k: f"{k}-of-6")
@pytest.mark.parametrize("then", ["completed", "not-completed", "stream-ends"])
@pytest.mark.clause("stream.stop-matches-generate", "stream.not-held-back")
def test_a_stop_begun_at_a_pieces_end_is_held_until_the_next_piece_tells(model, contract, backend, wire, responder,
                                                                         begun, then):
    """The stop "Friday" begun by the last ``begun`` characters of the first piece the backend streams: what
    follows completes it (the text before it is the answer), or does not ("Fri" then "Xmas."), or the stream ends
    there (the whole text is the answer in both). Every length of a begun stop is held back, then dropped or
    released; written down here, not computed."""
    first = "It is Monday, then " + "Friday"[:begun]
    rest = {"completed": "Friday"[begun:] + " comes.", "not-completed": "Xmas.", "stream-ends": ""}[then]
    responder.reply = Reply(text=first + rest, text_pieces=[len(first)] if rest else [])
    deltas = list(model.generate_stream(_user(WEEK_PROMPT), stop_sequences=["Friday"]))
    content = text_of(contract.agglomerate_stream_deltas(deltas))
    expected = "It is Monday, then " if then == "completed" else first + rest
    assert content == expected, f"stop 'Friday' begun by {first[-begun:]!r} at a piece's end, {then}: got {content!r}"
    assert_stop_on_wire(backend, wire.last(), ["Friday"])
