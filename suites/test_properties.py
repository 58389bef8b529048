"""Property suites: generated conversations, stop lists and tool calls, through every backend.

HTTP backends: each generated case goes through the adapter and its real SDK to the request the
SDK sends (captured before the network), and is answered at the transport by
``responder.RecordedReplyResponder`` (the suites' one fake: a recorded reply of the same backend
with the generated text or tool calls put in). The request is checked against the backend's wire
rules and the returned message against the suite's reference definitions (``oracles``).

Local engines run live: a generated conversation is checked at the chat template's input with
one new token generated; generated stops are checked against the engine's own greedy answer.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default here: derandomized, run by ``make test``)
and ``nightly`` (thousands of examples). The number of examples each test ran is reported as
its checked cases (see the terminal summary).
"""

from __future__ import annotations

import base64
import io
import json
import string
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from responder import Reply, ToolCallSpec
from wires import lens_of

from conftest import assert_stop_on_wire, distinct_words, one_new_token, text_of
from oracles import ROLES, cut_at_first_stop, exact_diff, exactly_equal, merged_stream, message_of_stream, wire_turns

# nothing here reads a cassette through the plugin: HTTP cases are answered by the responder
pytestmark = pytest.mark.no_cassette

# A 1x1 PNG: the format every image-taking wire accepts.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()

# Custom role conversions a caller may pass; each adds to the tool-role defaults.
CONVERSIONS: list[dict[str, str] | None] = [None, {"system": "user"}, {"tool-response": "assistant"},
                                            {"system": "user", "assistant": "user"}]

# text: any unicode (no surrogates), whitespace and JSON/regex metacharacters included
TEXT = st.text(st.characters(codec="utf-8"), max_size=24)
SHORT_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)


def examples(backend: Any, http: int, local: int) -> int:
    """Examples for one property: the profile's budget scaled down, and much lower for live engines."""
    base = settings.default.max_examples  # ci: 25, nightly: 3000, mutation: 12
    return max(2, base * (http if backend.kind == "http" else local) // 100)


def run_property(request: Any, strategy: Any, check: Any, max_examples: int, explicit: Sequence[Any] = ()) -> None:
    """Run ``check`` on ``explicit`` cases, then ``max_examples`` generated ones; the count is this test's
    checked cases. Explicit cases make a small budget (live engines in ci) exercise what the property is about."""
    count = 0

    @settings(max_examples=max_examples, suppress_health_check=list(HealthCheck), deadline=None)
    @given(strategy)
    def run(case: Any) -> None:
        nonlocal count
        if check(case) is not False:  # False: the case was declared not checkable on this backend
            count += 1

    for case in reversed(explicit):
        run = example(case)(run)
    run()
    request.node.user_properties.append(("checked_cases", count))


# -- generated conversations -------------------------------------------------------------------

@st.composite
def contents(draw: Any, images: bool) -> Any:
    form = draw(st.sampled_from(["string", "parts", "empty_string", "empty_list", "strings_in_list"]))
    if form == "string":
        return draw(TEXT)
    if form == "empty_string":
        return ""
    if form == "empty_list":
        return []
    if form == "strings_in_list":
        return [{"type": "text", "text": t} for t in draw(st.lists(TEXT, min_size=1, max_size=3))]
    kinds = st.sampled_from(["text", "image"] if images else ["text"])
    parts = []
    for kind in draw(st.lists(kinds, min_size=1, max_size=4)):
        parts.append({"type": "image", "image": PNG_B64} if kind == "image" else {"type": "text", "text": draw(TEXT)})
    return parts


@st.composite
def conversations(draw: Any, images: bool, flatten_choices: tuple[bool, ...], conversions: list[Any]) -> Any:
    messages = []
    for role in draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=7)):
        # images only where every wire takes them: in a user turn (system and assistant turns are text-only)
        message: dict[str, Any] = {"role": role, "content": draw(contents(images and role == "user"))}
        if draw(st.booleans()) and role in ("user", "assistant"):
            message["name"] = draw(st.sampled_from(["ada", "tool_7"]))
        messages.append(message)
    assume(any(m["content"] for m in messages))  # at least some text or image to send
    flatten = draw(st.sampled_from(flatten_choices))
    if flatten:
        for m in messages:  # flattened conversations are text-only
            if isinstance(m["content"], list):
                m["content"] = [p for p in m["content"] if p["type"] == "text"]
    stops = draw(st.lists(SHORT_TEXT, max_size=3, unique=True))
    return messages, draw(st.sampled_from(conversions)), flatten, stops


def _consume(sent_text: str, pieces: list[str], where: str) -> None:
    """Every piece's text is sent exactly, in order, with nothing added but one line break between pieces.

    Whether a separator goes between merged or flattened parts differs by implementation
    (smolagents joins adjacent text parts with a line break, others keep them apart); an empty part is
    a piece too, so two empty parts may be sent as one line break; whitespace is content otherwise:
    nothing may be stripped, lost, reordered or invented.
    """
    ends = {0}
    for i, piece in enumerate(pieces):
        ends = {at + len(sep) + len(piece) for at in ends for sep in ("", "\n") if (i or not sep)
                and sent_text.startswith(sep + piece, at)}
    assert len(sent_text) in ends, f"{where}: sent {sent_text!r} for the parts {pieces!r}"


def _expected_turns(
    messages: list[dict[str, Any]], conversions: Any, lens: Any, flatten: bool
) -> list[tuple[str, list]] | None:
    """The turns the wire must carry (None: the backend must refuse the conversation before sending)."""
    return lens.wire_turns(wire_turns_with_images(messages, conversions), flatten)


def wire_turns_with_images(messages: list[dict[str, Any]], conversions: Any) -> list[tuple[str, list]]:
    """``oracles.wire_turns`` with image parts kept as ("image", None) in their place."""
    marked = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [p if p["type"] == "text" else {"type": "text", "text": "\x00IMAGE\x00"} for p in content]
        marked.append({"role": m["role"], "content": content})
    return [(role, [("image", None) if t == "\x00IMAGE\x00" else ("text", t) for t in texts])
            for role, texts in wire_turns(marked, conversions)]


def check_wire_rules(backend: Any, sent: Any, messages: list, conversions: Any, flatten: bool) -> None:
    lens = lens_of(backend)
    expected = _expected_turns(messages, conversions, lens, flatten)
    assert expected is not None
    allowed = {"user", "assistant"} | ({"system"} if lens.has_system_turn else set())
    body_roles = [m["role"] for m in (sent.raw.get("messages") or [])]
    assert set(body_roles) <= allowed, f"roles {body_roles} on a wire that allows {sorted(allowed)}"
    if lens.alternating_turns:
        for a, b in zip(body_roles, body_roles[1:]):
            assert a != b, f"{lens.name} turns must alternate: {body_roles}"
    assert sent.roles == [r for r, _ in expected], f"roles sent {sent.roles}, expected {[r for r, _ in expected]}"
    for i, ((role, want), got) in enumerate(zip(expected, sent.messages)):
        where = f"turn {i} ({role})"
        pieces = lens.part_kinds(got["content"])
        assert not [p for p in pieces if p[0] == "other"], f"{where}: unexpected parts {pieces!r}"
        if not lens.blank_text_allowed:
            assert ("text", "") not in pieces, f"{where}: a blank text block ({lens.name} rejects it)"
        want_texts = [t for k, t in want if k == "text"]
        got_texts = [t for k, t in pieces if k == "text"]
        if flatten or isinstance(got["content"], str):
            # flattened: one string per turn (a wire without string content, Converse, has text blocks only)
            flat = isinstance(got["content"], str) or not lens.has_string_content
            assert flat, f"{where}: not flattened: {got['content']!r}"
            assert all(k == "text" for k, _ in pieces), f"{where}: a flattened turn carries {pieces!r}"
            _consume("".join(got_texts), want_texts, where)
        else:
            # parts of merged messages may be joined (as smolagents does): the text in order, nothing
            # lost or added but separating whitespace, and the images in place between the text
            assert [k for k, _ in pieces if k != "text"] == [k for k, _ in want if k != "text"], f"{where}: {pieces!r}"
            _consume("".join(got_texts), want_texts, where)


# Cases every run judges whatever is generated: whitespace at the edges of text parts and strings (it is
# content: nothing may strip it), flattened or not; flattened empty text parts beside text, and a user turn
# of empty parts only (found by generation on Converse, which refuses blank text: two empty parts were
# sent as a line break)
WIRE_RULE_CASES = [
    ([{"role": "user", "content": [{"type": "text", "text": " Hi "}, {"type": "text", "text": "\tthere\n"}]},
      {"role": "assistant", "content": " ok \n"}, {"role": "user", "content": [{"type": "text", "text": "\n?"}]}],
     None, False, []),
    ([{"role": "system", "content": " Be brief. "}, {"role": "user", "content": [{"type": "text", "text": " Hi "}]},
      {"role": "user", "content": "  there\n"}], None, True, []),
    ([{"role": "system", "content": ""}, {"role": "user", "content": [{"type": "text", "text": ""},
                                                                      {"type": "text", "text": "0"}]},
      {"role": "system", "content": "0"}], None, True, []),
    ([{"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": ""}]},
      {"role": "system", "content": "0"}], None, True, []),
]


@pytest.mark.clause("messages.string-content", "messages.parts-content", "messages.mixed-forms",
                     "messages.every-text-part-kept", "roles.tool-roles-converted")
def test_generated_conversations_follow_the_wire_rules(request, backend, model_factory, capture, wire, responder):
    models: dict[tuple[str, bool], Any] = {}
    images = backend.kind == "http"  # an engine's chat template takes no images

    def check(case: Any) -> None:
        messages, conversions, flatten, stops = case
        key = (json.dumps(conversions, sort_keys=True), flatten)
        if key not in models:
            models[key] = model_factory(custom_role_conversions=conversions, flatten_messages_as_text=flatten)
        capture.http.clear()
        responder.reply = Reply(text="ok")
        original = json.loads(json.dumps(messages))
        turns = _expected_turns(messages, conversions, lens_of(backend), flatten)
        if turns is None:  # a clear error, nothing sent
            with pytest.raises(ValueError, match="Converse"):
                models[key](messages, stop_sequences=stops)
            assert wire.calls() == [] and messages == original
            return
        message = models[key](messages, stop_sequences=stops)
        assert messages == original, "the caller's messages were mutated"
        assert text_of(message) == cut_at_first_stop("ok", stops)
        sent = wire.last()
        check_wire_rules(backend, sent, messages, conversions, flatten)
        assert_stop_on_wire(backend, sent, stops)

    strategy = conversations(images, (False, True), CONVERSIONS)
    run_property(request, strategy, check, examples(backend, http=100, local=0), explicit=WIRE_RULE_CASES)


@pytest.mark.clause("messages.string-content", "messages.parts-content", "messages.mixed-forms",
                     "messages.every-text-part-kept", "roles.tool-roles-converted")
def test_generated_conversations_reach_the_chat_template(request, backend, model, wire):
    """Local engines: the chat template's input, with one new token generated by the live engine.

    Custom role conversions are checked by the example suite here (building an engine per
    conversion map would load the model again); flattening is the engines' default.
    """
    if backend.kind == "http":
        pytest.skip("HTTP backends are checked at the transport by the conversation property above")
    if backend.kind != "local":
        pytest.skip(f"{backend.name}: generated conversations run live on the local engines only (a failing example "
                    "would be shrunk by generating again and again); the example suites check its conversations")
    one_token = one_new_token(backend)

    def check(case: Any) -> None:
        messages, _, _, stops = case
        before = len(wire.calls())
        model(messages, stop_sequences=stops, **one_token)
        assert len(wire.calls()) == before + 1
        check_wire_rules(backend, wire.last(), messages, None, True)
        assert_stop_on_wire(backend, wire.last(), stops)

    strategy = conversations(False, (False,), [None])
    run_property(request, strategy, check, examples(backend, http=0, local=8), explicit=TEMPLATE_CASES)


# What a live engine's small ci budget must cover whatever is generated: a system turn, both tool roles
# (converted), parts beside strings, consecutive turns of one role, whitespace and non-ASCII text.
TEMPLATE_CASES = [
    ([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "th\u00e9re\n"}]},
      {"role": "tool-call", "content": "get_weather('Paris')"},
      {"role": "tool-response", "content": [{"type": "text", "text": "Sunny"}]},
      {"role": "user", "content": "  and now?"}], None, False, ["\n\n"]),
    ([{"role": "user", "content": "One."}, {"role": "user", "content": [{"type": "text", "text": "Two."}]},
      {"role": "assistant", "content": "\u00a1Tres!"}, {"role": "user", "content": ""}], None, False, []),
]


# -- generated stops against generated outputs -------------------------------------------------

@st.composite
def outputs_and_stops(draw: Any) -> tuple[str, list[str]]:
    """An output and stops that occur in it, overlap, hold regex characters, unicode and whitespace."""
    alphabet = st.sampled_from(list("ab .*?$^()[]\\|+{}\n\t") + ["é", "日", "🙂", "\u00a0"])
    output = draw(st.text(alphabet, min_size=1, max_size=40))
    stops: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            start = draw(st.integers(0, len(output) - 1))
            stops.append(output[start: draw(st.integers(start + 1, min(len(output), start + 6)))])
        else:
            stops.append(draw(st.text(alphabet, min_size=1, max_size=4)))
    return output, list(dict.fromkeys(stops))


def _split_points(draw: Any, size: int) -> list[int]:
    return draw(st.lists(st.integers(0, max(size, 1)), max_size=12))


@pytest.mark.clause("stop.before-stop-sequence", "stop.trimmed-client-side", "stop.earliest-completing")
def test_generated_stops_cut_generated_outputs(request, backend, model, wire, capture, responder):
    def check(case: Any) -> None:
        output, stops = case
        capture.http.clear()
        responder.reply = Reply(text=output)
        message = model([{"role": "user", "content": "Go on."}], stop_sequences=stops)
        assert text_of(message) == cut_at_first_stop(output, stops), f"output {output!r}, stops {stops!r}"
        assert_stop_on_wire(backend, wire.last(), stops)

    run_property(request, outputs_and_stops(), check, examples(backend, http=100, local=0))


@pytest.mark.parametrize("stops", [["Tuesday", "sday"], ["sday", "Tuesday"]], ids=["longer_first", "longer_last"])
@pytest.mark.clause("stop.earliest-completing")
def test_stops_ending_together_cut_before_the_longer(backend, model, contract, wire, capture, responder, stops):
    """Two stops complete at the same character (one ends the other): the text is cut before the longer.

    Whatever their order in the list, "Monday, Tuesday, Friday" with "Tuesday" and "sday" is cut
    to "Monday, " (written down here), by generate and by a stream cut inside the word. Wire side:
    the stops went out as given.
    """
    capture.http.clear()
    responder.reply = Reply(text="Monday, Tuesday, Friday", text_pieces=[10, 12])
    assert text_of(model([{"role": "user", "content": "Go on."}], stop_sequences=stops)) == "Monday, "
    assert_stop_on_wire(backend, wire.last(), stops)
    if "stream" in backend.capabilities:
        deltas = list(model.generate_stream([{"role": "user", "content": "Go on."}], stop_sequences=stops))
        assert merged_stream(deltas)[0] == "Monday, "
        assert_stop_on_wire(backend, wire.last(), stops)


@pytest.mark.requires("stream")
@pytest.mark.clause("stop.before-stop-sequence", "stream.stop-matches-generate", "stop.earliest-completing")
def test_generated_stops_cut_streams_split_anywhere(request, backend, model, contract, wire, capture, responder):
    """Content deltas cut at generated characters, the body at generated bytes (inside UTF-8 characters)."""

    @st.composite
    def cases(draw: Any) -> Any:
        output, stops = draw(outputs_and_stops())
        return output, stops, _split_points(draw, len(output)), _split_points(draw, 4 * len(output) + 600)

    def check(case: Any) -> None:
        output, stops, pieces, cuts = case
        capture.http.clear()
        responder.reply = Reply(text=output, text_pieces=pieces, byte_cuts=cuts)
        deltas = list(model.generate_stream([{"role": "user", "content": "Go on."}], stop_sequences=stops))
        streamed, _ = merged_stream(deltas)
        assert streamed == cut_at_first_stop(output, stops), f"output {output!r}, stops {stops!r}"
        assert_stop_on_wire(backend, wire.last(), stops)

    run_property(request, cases(), check, examples(backend, http=100, local=0))


@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("stop.before-stop-sequence")
def test_generated_stops_cut_the_engines_answer(request, backend, model, contract, wire, streamed):
    """Local engines, live: stops drawn from the engine's own greedy answer (and free text) cut it there."""
    if backend.kind == "http":
        pytest.skip("HTTP backends are checked against generated outputs above")
    if backend.kind != "local":
        pytest.skip(f"{backend.name}: generated stops run live on the local engines only (a failing example would be "
                    "shrunk by generating again and again); the stop_sequences suite checks its stops")
    if streamed and "stream" not in backend.capabilities:
        pytest.skip(f"{backend.name} does not support 'stream'")
    prompt = [{"role": "user", "content": "Name the days of the week, from Monday to Sunday, separated by commas."}]
    reference = text_of(model(prompt))
    assert reference, "the engine answered nothing"

    @st.composite
    def stops(draw: Any) -> list[str]:
        out = []
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                start = draw(st.integers(0, len(reference) - 1))
                out.append(reference[start: draw(st.integers(start + 1, min(len(reference), start + 6)))])
            else:
                out.append(draw(st.text(st.sampled_from(list(string.ascii_letters + " ,.🙂")), min_size=1, max_size=4)))
        return list(dict.fromkeys(out))

    def check(case: list[str]) -> None:
        if streamed:
            got = merged_stream(list(model.generate_stream(prompt, stop_sequences=case)))[0]
        else:
            got = text_of(model(prompt, stop_sequences=case))
        assert got == cut_at_first_stop(reference, case), f"stops {case!r} on {reference!r}"
        assert_stop_on_wire(backend, wire.last(), case)
        assert wire.last().texts == [prompt[0]["content"]]

    # explicit: stops the engine's own answer holds (the generated ones may all be free text it never writes)
    words = distinct_words(reference, min_len=4)
    explicit = [[words[1]], [words[2][1:3], "\u2603"]] if len(words) > 2 else []
    run_property(request, stops(), check, examples(backend, http=0, local=6), explicit=explicit)


# -- generated tool calls -------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=False, allow_infinity=False, width=32), TEXT)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(TEXT, inner, max_size=3)),
                           max_leaves=6)
ARGUMENTS = st.dictionaries(st.text(st.characters(codec="utf-8"), min_size=1, max_size=8), JSON_VALUES, max_size=4)


@st.composite
def tool_call_lists(draw: Any) -> list[ToolCallSpec]:
    calls = []
    for i in range(draw(st.integers(1, 3))):
        calls.append(ToolCallSpec(id=f"call_{i}_{draw(st.integers(0, 999))}", name=draw(NAMES),
                                  arguments=draw(ARGUMENTS)))
    return calls


# Unicode line breaks that JSON may carry unescaped (json.dumps(ensure_ascii=False), pydantic's
# model_dump_json): a stream reader splitting lines like str.splitlines would cut a JSON line at
# them. Every backend is judged on them, streamed and not.
UNICODE_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("line_break", UNICODE_LINE_BREAKS, ids=["U+0085", "U+2028", "U+2029"])
@pytest.mark.clause("tools.native-calls-surface", "tools.unicode-arguments")
def test_streamed_arguments_keep_unicode_line_breaks(backend, model, contract, weather_tool, responder, line_break):
    """A streamed tool call whose JSON arguments carry an unescaped Unicode line break surfaces exactly."""
    arguments = {"city": f"Par{line_break}is", "note": f"a{line_break}b"}
    responder.reply = Reply(tool_calls=[ToolCallSpec(id="call_0", name="get_weather", arguments=arguments)],
                            argument_pieces=[5], byte_cuts=[])
    weather = [{"role": "user", "content": "What is the weather in Paris?"}]
    deltas = list(model.generate_stream(weather, tools_to_call_from=[weather_tool]))
    message = message_of_stream(contract, deltas)
    got = _surfaced(model, message)
    assert exactly_equal(got, [("get_weather", arguments)]), "; ".join(exact_diff(got, [("get_weather", arguments)]))


def _surfaced(model: Any, message: Any) -> list[tuple[str, Any]]:
    parsed = model.parse_tool_calls(message)
    return [(c.function.name, c.function.arguments) for c in parsed.tool_calls]


@pytest.mark.requires("native_tools")
@pytest.mark.clause("tools.native-calls-surface", "tools.arguments-dict", "tools.unicode-arguments")
def test_generated_native_tool_calls_surface_exactly(request, backend, model, contract, weather_tool, responder):
    """Native tool calls, in a reply and in a stream cut inside the argument JSON and the body's bytes."""

    @st.composite
    def cases(draw: Any) -> Any:
        calls = draw(tool_call_lists())
        return calls, draw(st.booleans()), _split_points(draw, 40), _split_points(draw, 2000)

    def check(case: Any) -> bool:
        calls, streamed, pieces, cuts = case
        responder.reply = Reply(tool_calls=calls, argument_pieces=pieces, byte_cuts=cuts)
        weather = [{"role": "user", "content": "What is the weather in Paris?"}]
        if streamed:
            deltas = list(model.generate_stream(weather, tools_to_call_from=[weather_tool]))
            message = message_of_stream(contract, deltas)
        else:
            message = model(weather, tools_to_call_from=[weather_tool])
        assert not (message.content or "").strip(), f"a tool call leaked into content: {message.content!r}"
        expected = [(c.name, c.arguments) for c in calls]
        assert exactly_equal(_surfaced(model, message), expected), "; ".join(exact_diff(_surfaced(model, message),
                                                                                      expected))
        ids = [c.id for c in message.tool_calls]
        assert len(set(ids)) == len(ids) and all(ids), f"ids {ids!r}"
        return True

    run_property(request, cases(), check, examples(backend, http=100, local=0))


@pytest.mark.requires("native_tools")
@pytest.mark.clause("tools.malformed-is-clear-error")
def test_native_tool_call_without_a_name_is_a_clear_error(backend, model, weather_tool, wire, capture, responder):
    """A native call the backend sent with no function name (the suites' recorded-reply responder).

    Reply side: the returned call's name is still a string, empty, never another value, and
    parse_tool_calls raises a ValueError naming the missing name. Wire side: the tool was offered.
    """
    capture.http.clear()
    responder.reply = Reply(tool_calls=[ToolCallSpec(id="call_1", name=None, arguments={"city": "Paris"})])  # type: ignore[arg-type]
    message = model([{"role": "user", "content": "What is the weather in Paris?"}], tools_to_call_from=[weather_tool])
    assert [c.function.name for c in message.tool_calls] == [""], f"tool calls: {message.tool_calls!r}"
    with pytest.raises(ValueError, match="name"):
        model.parse_tool_calls(message)
    assert wire.last().tools == ["get_weather"]


def _text_forms(name: str, arguments: dict[str, Any]) -> dict[str, str]:
    blob = {"name": name, "arguments": arguments}
    as_json = json.dumps(blob, ensure_ascii=False)
    return {
        "json_blob": as_json,
        "fenced_block": f"Action:\n```json\n{as_json}\n```",
        "prose_around": f"I will call it. {as_json} Then I answer.",
        "prose_with_braces": f"Given {{x}} and {{y: 1}}, I call {as_json} and then {{done}}.",
        "tagged": f"<tool_call>\n{as_json}\n</tool_call>",
        "python_dict": repr(blob),
        "json_string_arguments": json.dumps({"name": name, "arguments": json.dumps(arguments)}, ensure_ascii=False),
    }


@pytest.mark.clause("tools.text-calls-parsed", "tools.text-python-literal")
def test_generated_text_tool_calls_surface_exactly(request, backend, model, contract):
    """Reply side only: every text form of a generated call, handed to parse_tool_calls; nothing is sent."""

    def check(case: Any) -> None:
        name, arguments = case
        for form, text in _text_forms(name, arguments).items():
            message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=text)
            got = _surfaced(model, message)
            assert exactly_equal(got, [(name, arguments)]), f"{form}: {text!r}: " + "; ".join(
                exact_diff(got, [(name, arguments)]))

    # pure parsing, no engine or transport: cheap enough for a larger share everywhere
    run_property(request, st.tuples(NAMES, ARGUMENTS), check, examples(backend, http=300, local=600))


def _pixels(png: bytes) -> Any:
    from PIL import Image  # pillow: a smolagents dependency

    with Image.open(io.BytesIO(png)) as image:
        return image.format, image.size, list(image.convert("RGBA").getdata())


@pytest.mark.parametrize("form", ["bytes", "base64", "data_url", "pil", "image_url_part"])
@pytest.mark.clause("images.reach-the-wire")
def test_image_forms_reach_the_wire(backend, model, wire, responder, form):
    """An image given as bytes, base64, a data URL, a PIL image or an OpenAI ``image_url`` part holding a data
    URL goes out as PNG, in its place among the text.

    Bytes, base64 and the data URLs go out as the same PNG; a PIL image is encoded, so it goes out as a
    PNG with the same pixels.
    """
    if form == "pil":
        from PIL import Image

        image: Any = Image.open(io.BytesIO(PNG))
        image.load()
        responder.reply = Reply(text="A dot.")
        message = model([{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                      {"type": "image", "image": image}]}])
        assert text_of(message) == "A dot."
        sent = wire.last().raw["messages"][0]["content"]
        assert [p.get("text") for p in sent if "text" in p] == ["What is this?"]
        image_format, png = lens_of(backend).sent_image(sent[1])
        assert image_format == "png"
        assert _pixels(png) == _pixels(PNG)
        return
    data_url = f"data:image/png;base64,{PNG_B64}"
    part = ({"type": "image_url", "image_url": {"url": data_url}} if form == "image_url_part" else
            {"type": "image", "image": {"bytes": PNG, "base64": PNG_B64, "data_url": data_url}[form]})
    responder.reply = Reply(text="A dot.")
    content = [{"type": "text", "text": "What is this?"}, part, {"type": "text", "text": "Be brief."}]
    message = model([{"role": "user", "content": content}])
    assert text_of(message) == "A dot."
    sent = wire.last().raw["messages"][0]["content"]
    assert [p.get("text") for p in sent if "text" in p] == ["What is this?", "Be brief."]
    assert lens_of(backend).sent_image(sent[1]) == ("png", PNG)


# The formats a wire that names an image's format takes besides PNG, as PIL writes them (its name, the wire's name).
IMAGE_FORMATS = [("JPEG", "jpeg"), ("GIF", "gif"), ("WEBP", "webp")]


@pytest.mark.parametrize("pil_format,wire_format", IMAGE_FORMATS, ids=[w for _, w in IMAGE_FORMATS])
@pytest.mark.clause("images.format-named", "images.reach-the-wire")
def test_an_images_format_is_named_as_its_own(backend, model, wire, responder, pil_format, wire_format):
    """Where the wire names an image's format (Converse: ``image.format``, one of png, jpeg, gif, webp), a JPEG,
    GIF or WebP image given as bytes goes out as those bytes, named by its own format."""
    lens = lens_of(backend)
    if not lens.names_image_format:
        pytest.skip(f"the {lens.name} wire sends an image without a format of its own")
    from PIL import features

    if pil_format == "WEBP" and not features.check("webp"):
        pytest.skip("this PIL cannot write WebP")
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 10, 10)).save(buffer, format=pil_format)
    data = buffer.getvalue()
    responder.reply = Reply(text="A red square.")
    message = model([{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                  {"type": "image", "image": data}]}])
    assert text_of(message) == "A red square."
    sent = wire.last().raw["messages"][0]["content"]
    assert lens.sent_image(sent[1]) == (wire_format, data), f"image sent as {lens.sent_image(sent[1])[0]!r}"


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "http://example.com/cat.png"], ids=["https", "http"])
@pytest.mark.clause("images.reach-the-wire")
def test_image_url_goes_out_as_given(backend, model, wire, responder, url):
    """An image given as an http(s) URL: sent as that URL where the wire takes URLs.

    Bedrock Converse takes image bytes only: there, a ValueError naming URLs, and nothing sent.
    Elsewhere the request carries the URL unchanged (written down here) and the reply's text returns.
    """
    responder.reply = Reply(text="A cat.")
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             {"type": "image", "image": url}]}]
    lens = lens_of(backend)
    if not lens.takes_image_urls:
        with pytest.raises(ValueError, match="URL"):
            model(messages)
        assert wire.calls() == [], f"a request was sent for a conversation {lens.name} cannot take"
        return
    message = model(messages)
    assert text_of(message) == "A cat."
    sent = wire.last().raw["messages"][0]["content"]
    assert lens.sent_image_url(sent[1]) == url


@pytest.mark.clause("images.reach-the-wire", "messages.every-text-part-kept")
def test_images_at_the_seams_of_merged_messages(backend, model, wire, responder):
    """Three user messages in a row, the middle one opening and ending with an image: one user turn, nothing lost.

    Wire side: the text of the first, an image, the middle text, an image, the text of the last,
    in that order (written down here). Reply side: the reply's text.
    """
    responder.reply = Reply(text="A dot.")
    messages = [{"role": "user", "content": "Look at this."},
                {"role": "user", "content": [{"type": "image", "image": PNG_B64},
                                             {"type": "text", "text": "What is it?"},
                                             {"type": "image", "image": PNG_B64}]},
                {"role": "user", "content": "Be brief."}]
    message = model(messages)
    assert text_of(message) == "A dot."
    sent = wire.last()
    assert sent.roles == ["user"], f"roles sent {sent.roles}"
    pieces = lens_of(backend).part_kinds(sent.messages[0]["content"])
    assert pieces == [("text", "Look at this."), ("image", None), ("text", "What is it?"), ("image", None),
                      ("text", "Be brief.")], pieces


@pytest.mark.clause("images.bad-type-is-clear-error")
def test_image_of_another_type_is_a_clear_error(backend, model, wire, responder):
    """Reply side: a TypeError naming the image part and the type given; wire side: nothing was sent."""
    with pytest.raises(TypeError, match=r"image.*\bint\b"):
        model([{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                            {"type": "image", "image": 42}]}])
    assert wire.calls() == [], "a request was sent for invalid input"
