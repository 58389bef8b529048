"""Clauses of the strongest standard suites that apply to this contract, for every backend.

From LangChain's standard chat-model tests, vLLM's tool-use tests and pydantic-ai's provider
tests: ``tool_choice`` values on the wire (auto, none, required, a named tool); a tool without
arguments; parallel tool calls; the tool-result round trip with an id the backend never issued;
unicode arguments; no tool call leaking into ``content``; the finish reason visible; structured
output (``response_format`` JSON schema: the request per backend, a clear refusal where the
backend has none). BFCL cases are in test_bfcl.py.

HTTP backends are answered by the recorded-reply responder (conftest.responder), so each clause
is checked on the request the real SDK sends and on the message its real parser returns. In
``--mode live`` the checks marked ``live_target`` go to the target itself (conftest.stand_in is then
None): the request is judged as in replay, and the answer by what holds for any answer (the native
tool calls the endpoint sent surface exactly, the finish reason agrees with the tokens generated).
The rest need a reply no endpoint can be made to give (three parallel calls, unicode arguments cut
mid-character) and stay client-side checks. Each check names the clauses of the registry
(clauses.yaml) it enforces.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from responder import Reply, ToolCallSpec
from wires import lens_of

from conftest import one_new_token, raw_text, text_of, tool_parameters
from oracles import exact_diff, exactly_equal

pytestmark = pytest.mark.no_cassette

WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]

class NoArgumentsTool:
    name = "get_time"
    description = "Get the current time."
    inputs: dict[str, Any] = {}
    output_type = "string"

    def __call__(self) -> str:
        return "12:00"


def _surfaced(model: Any, message: Any) -> list[tuple[str, Any]]:
    return [(c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]


def _field(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _sent_back_calls(backend: Any, message: Any) -> list[tuple[str, Any]]:
    """The native tool calls in the backend's own answer (``message.raw``), arguments decoded: what it sent."""
    raw = message.raw
    if backend.wire_format == "bedrock":
        blocks = raw["output"]["message"]["content"]
        return [(b["toolUse"]["name"], b["toolUse"]["input"]) for b in blocks if "toolUse" in b]
    choice = (_field(raw, "choices") or [None])[0]
    calls = _field(_field(choice, "message"), "tool_calls") or []
    out = []
    for call in calls:
        function = _field(call, "function")
        arguments = _field(function, "arguments")
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        out.append((_field(function, "name"), arguments or {}))
    return out


def _assert_calls_surface_as_sent(backend: Any, model: Any, message: Any) -> None:
    """A live answer: the native calls the endpoint sent surface exactly, and none is invented."""
    sent_back = _sent_back_calls(backend, message)
    if sent_back:
        assert _surfaced(model, message) == sent_back
    else:
        assert not message.tool_calls, f"tool calls the endpoint never sent: {message.tool_calls!r}"


# The tool_choice values the contract passes through (what each becomes on each wire: the lens's
# ``tool_choices``, written down from the APIs' documentation in suites/wires.py).
TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "required",
                "named": {"type": "function", "function": {"name": "get_weather"}}}




@pytest.mark.live_target
@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("choice", ["auto", "none", "required", "named"])
@pytest.mark.clause("tools.choice-on-wire", "tools.native-calls-surface")
@pytest.mark.free_fields("tool_choice")  # the check passes each choice itself
def test_tool_choice_on_the_wire(backend, model, wire, weather_tool, stand_in, choice):
    value = TOOL_CHOICES[choice]
    if stand_in is None:
        pass  # the target answers as it will
    elif choice == "none":
        stand_in.reply = Reply(text="It is sunny.")
    else:
        stand_in.reply = Reply(tool_calls=[ToolCallSpec("call_1", "get_weather", {"city": "Paris"})])
    message = model(WEATHER, tools_to_call_from=[weather_tool], tool_choice=value)
    sent, lens = wire.last(), lens_of(backend)
    expected = lens.tool_choices[choice]
    got = lens.tool_choice(sent.raw)
    assert got == expected, f"tool choice sent {got!r}, expected {expected!r}"
    # a wire without this choice offers no tools at all
    assert sent.tools == ([] if expected is None else ["get_weather"]), f"tools offered: {sent.tools}"
    if stand_in is None:
        _assert_calls_surface_as_sent(backend, model, message)
    elif choice == "none":
        assert text_of(message) == "It is sunny." and not message.tool_calls
    else:
        assert _surfaced(model, message) == [("get_weather", {"city": "Paris"})]


@pytest.mark.live_target
@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("arguments", [
    pytest.param({}, id="object", marks=pytest.mark.clause("tools.no-arguments")),
    pytest.param("{}", id="json", marks=pytest.mark.clause("tools.no-arguments")),
    # an empty string read as {} is this project's decoding (STRICT)
    pytest.param("", id="empty_string", marks=pytest.mark.clause("tools.no-arguments", "tools.arguments-decoded")),
])
def test_tool_without_arguments(backend, model, wire, stand_in, arguments):
    """A tool with no inputs: an empty object schema on the wire; a call with no arguments surfaces as {}."""
    if stand_in is None and arguments != {}:
        pytest.skip("live: the form of the arguments is the target's to choose; the request is checked once, "
                    "in [object]")
    if arguments == "" and not lens_of(backend).arguments_as_text:
        arguments = {}  # e.g. Converse carries toolUse.input as an object: no empty-string form exists there
    if stand_in is not None:
        stand_in.reply = Reply(tool_calls=[ToolCallSpec("call_1", "get_time", arguments)])
    message = model([{"role": "user", "content": "What time is it?"}], tools_to_call_from=[NoArgumentsTool()])
    schema = tool_parameters(backend, wire.last().raw)
    assert schema.get("type") == "object" and not schema.get("properties") and not schema.get("required")
    if stand_in is None:
        _assert_calls_surface_as_sent(backend, model, message)
    else:
        assert _surfaced(model, message) == [("get_time", {})]


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("streamed", [
    pytest.param(False, id="generate", marks=pytest.mark.clause("tools.parallel-calls", "tools.native-calls-surface")),
    pytest.param(True, id="stream", marks=pytest.mark.clause("tools.parallel-calls", "tools.native-calls-surface",
                                                             "stream.tool-call-deltas-by-index")),
])
def test_parallel_tool_calls(model, contract, weather_tool, responder, streamed, wire):
    """Three calls in one answer surface in order, with distinct ids, and nothing of them in content."""
    calls = [ToolCallSpec("call_a", "get_weather", {"city": "Paris"}),
             ToolCallSpec("call_b", "get_weather", {"city": "Rome"}),
             ToolCallSpec("call_c", "get_weather", {"city": "Madrid"})]
    responder.reply = Reply(tool_calls=calls, argument_pieces=[2, 9])
    if streamed:
        deltas = list(model.generate_stream(WEATHER, tools_to_call_from=[weather_tool]))
        message = contract.agglomerate_stream_deltas(deltas)
    else:
        message = model(WEATHER, tools_to_call_from=[weather_tool])
    assert wire.last().tools == ["get_weather"]
    assert _surfaced(model, message) == [("get_weather", {"city": c}) for c in ("Paris", "Rome", "Madrid")]
    assert [c.id for c in message.tool_calls] == ["call_a", "call_b", "call_c"]
    assert not (message.content or "").strip(), f"tool calls leaked into content: {message.content!r}"


@pytest.mark.live_target
@pytest.mark.requires("tools")
@pytest.mark.clause("tools.foreign-id-round-trip", "roles.tool-roles-converted")
@pytest.mark.free_fields("tool_choice")  # the final answer after a tool result: tool_choice="auto", passed here
def test_tool_result_round_trip_with_a_foreign_id(request, backend, model, wire, weather_tool):
    """A tool call and its result from elsewhere (an id this backend never issued) go back as text turns.

    Local engines run it live with one new token: the turns are checked at the chat template; so does
    an HTTP backend's target in --mode live.
    """
    foreign = "call_from_another_backend_42"
    messages = [
        *WEATHER,
        {"role": "tool-call", "content": [{"type": "text", "text": (
            f"Calling tools:\n[{{'id': '{foreign}', 'type': 'function', "
            "'function': {'name': 'get_weather', 'arguments': {'city': 'Paris'}}}]")}]},
        {"role": "tool-response", "content": [{"type": "text", "text": f"Call id: {foreign}\nObservation:\nSunny"}]},
    ]
    if backend.kind == "http":
        stand_in = request.getfixturevalue("stand_in")
        if stand_in is not None:
            stand_in.reply = Reply(text="It is sunny in Paris.")
        message = model(messages, tools_to_call_from=[weather_tool], tool_choice="auto")
        if stand_in is not None:
            assert text_of(message) == "It is sunny in Paris."
        else:
            _assert_calls_surface_as_sent(backend, model, message)
    else:
        one_token = one_new_token(backend)
        message = model(messages, tools_to_call_from=[weather_tool], **one_token)
        assert isinstance(message.content, str)
    sent = wire.last()
    assert sent.roles == ["user", "assistant", "user"], sent.roles
    assert foreign in sent.texts[1] and foreign in sent.texts[2] and "Sunny" in sent.texts[2]
    body = json.dumps(sent.raw, default=str)
    assert '"tool_call_id"' not in body and '"toolResult"' not in body, "a native tool result was invented"


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("streamed", [
    pytest.param(False, id="generate", marks=pytest.mark.clause("tools.unicode-arguments")),
    pytest.param(True, id="stream", marks=pytest.mark.clause("tools.unicode-arguments",
                                                             "stream.agglomerates-to-generate")),
])
def test_unicode_arguments(model, contract, weather_tool, responder, streamed):
    arguments = {"city": "Zürich 東京 🙂 \"quoted\" \\ back", "note": "naïve — ok"}
    responder.reply = Reply(tool_calls=[ToolCallSpec("call_u", "get_weather", arguments)],
                            argument_pieces=[5, 10, 15, 20], byte_cuts=[400, 401, 402, 403, 450])
    if streamed:
        deltas = list(model.generate_stream(WEATHER, tools_to_call_from=[weather_tool]))
        message = contract.agglomerate_stream_deltas(deltas)
    else:
        message = model(WEATHER, tools_to_call_from=[weather_tool])
    assert _surfaced(model, message) == [("get_weather", arguments)]


def _wire_reason(backend: Any, reason: str) -> str:
    return lens_of(backend).finish_reasons[reason]


def _finish_reason(backend: Any, message: Any) -> Any:
    return lens_of(backend).finish_reason(message.raw)


def _limited(backend: Any, model_factory: Any, limit: int) -> Any:
    """The model under test, built to generate at most ``limit`` tokens (a model's own setting wins over a call's)."""
    if backend.wire_format == "bedrock":
        return model_factory(inferenceConfig={"maxTokens": limit, "temperature": 0.0})
    return model_factory(max_tokens=limit)


@pytest.mark.live_target
@pytest.mark.parametrize("reason", ["stop", "length"])
@pytest.mark.clause("response.finish-reason-visible", "messages.string-content")
def test_finish_reason_visible(backend, model_factory, wire, stand_in, reason):
    """The backend's finish reason is readable on the returned message's raw response.

    Live, the target is held to 1 token ([length]: it must say length) or to 16 ([stop]: it says length
    exactly when it generated all 16, stop otherwise).
    """
    if stand_in is not None:
        wire_reason = _wire_reason(backend, reason)
        stand_in.reply = Reply(text="Monday, Tuesday", finish_reason=wire_reason)
        message = model_factory()([{"role": "user", "content": "Name two days."}])
        assert _finish_reason(backend, message) == wire_reason
        assert text_of(message) == "Monday, Tuesday"
    else:
        limit = 1 if reason == "length" else 16
        message = _limited(backend, model_factory, limit)([{"role": "user", "content": "Name two days."}])
        generated = message.token_usage.output_tokens if message.token_usage is not None else None
        assert generated is not None and 0 < generated <= limit, f"{generated} tokens generated, limit {limit}"
        expected = _wire_reason(backend, "length" if generated == limit else "stop")
        assert _finish_reason(backend, message) == expected, f"{generated} of at most {limit} tokens generated"
        assert isinstance(message.content, str)
    assert wire.last().texts == ["Name two days."]


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
          "required": ["city", "temperature"], "additionalProperties": False}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}


@pytest.mark.live_target
@pytest.mark.requires("structured_output")
@pytest.mark.clause("structured.on-the-wire")
def test_structured_output_request(backend, model, wire, stand_in):
    """response_format as a JSON schema: sent in the backend's form; the JSON answer comes back as content."""
    if stand_in is not None:
        stand_in.reply = Reply(text='{"city": "Paris", "temperature": 21.5}')
    message = model(WEATHER, response_format=RESPONSE_FORMAT)
    sent = wire.last().raw
    if backend.name == "inference-client":
        # huggingface_hub's hf-inference provider sends TGI's grammar form of a json_schema (its SDK, not the wire)
        assert sent["response_format"] == {"type": "json_object", "value": SCHEMA}
    else:
        assert lens_of(backend).response_schema(sent) == ("weather", SCHEMA)
    if stand_in is None:
        assert text_of(message) == raw_text(message), "the target's answer did not come back as content unchanged"
    else:
        assert json.loads(text_of(message)) == {"city": "Paris", "temperature": 21.5}


@pytest.mark.clause("structured.refused-clearly")
def test_structured_output_refused_clearly(backend, model, wire):
    """Where a backend has no structured output, asking for it is a ValueError naming response_format, sent nowhere."""
    if "structured_output" in backend.capabilities:
        pytest.skip(f"{backend.name} supports structured output (checked by test_structured_output_request)")
    with pytest.raises(ValueError, match="response_format"):
        model(WEATHER, response_format=RESPONSE_FORMAT)
    assert wire.calls() == [], "a request was sent although response_format cannot be honoured"


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("tools.default-choice-required")
def test_tools_without_a_choice_ask_for_a_call(backend, model, wire, weather_tool, responder, streamed):
    """Tools offered without tool_choice: the request asks for a tool call (the wire's form of "required")."""
    responder.reply = Reply(tool_calls=[ToolCallSpec("call_1", "get_weather", {"city": "Paris"})])
    if streamed:
        list(model.generate_stream(WEATHER, tools_to_call_from=[weather_tool]))
    else:
        model(WEATHER, tools_to_call_from=[weather_tool])
    lens = lens_of(backend)
    sent = wire.last().raw
    assert lens.tool_choice(sent) == lens.tool_choices["required"], f"tool choice sent {lens.tool_choice(sent)!r}"


@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("model.kwargs-at-instantiation")
def test_kwargs_given_at_instantiation_reach_every_request(backend, model, wire, responder, streamed):
    """The sampling parameters the model was built with (the suite's settings) are in the request, type-exactly."""
    responder.reply = Reply(text="Monday, Tuesday")
    if streamed:
        list(model.generate_stream([{"role": "user", "content": "Name two days."}]))
    else:
        model([{"role": "user", "content": "Name two days."}])
    from harness.backends.registry import Target

    lens = lens_of(backend)
    given = lens.sampling(backend.settings(Target(mode="replay")))
    assert given, f"{backend.name}: its suite settings give no sampling parameter to check"
    sent = lens.sampling(wire.last().raw)
    assert exactly_equal({k: sent.get(k) for k in given}, given), "; ".join(exact_diff(sent, given))
