"""Clauses of the strongest standard suites that apply to this contract, for every backend.

From LangChain's standard chat-model tests, vLLM's tool-use tests and pydantic-ai's provider
tests: ``tool_choice`` values on the wire (auto, none, required, a named tool); a tool without
arguments; parallel tool calls; the tool-result round trip with an id the backend never issued;
unicode arguments; no tool call leaking into ``content``; the finish reason visible; structured
output (``response_format`` JSON schema: the request per backend, a clear refusal where the
backend has none). BFCL cases are in test_bfcl.py.

HTTP backends are answered by the recorded-reply responder (conftest.responder), so each clause
is checked on the request the real SDK sends and on the message its real parser returns. Each check
names the clauses of the registry (clauses.yaml) it enforces.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from responder import Reply, ToolCallSpec

from conftest import one_new_token, text_of, tool_parameters

pytestmark = pytest.mark.no_cassette

WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]

class NoArgumentsTool:
    name = "get_time"
    description = "Get the current time."
    inputs: dict[str, Any] = {}
    output_type = "string"

    def __call__(self) -> str:
        return "12:00"


def _finish_reason(backend: Any, message: Any) -> Any:
    raw = message.raw
    if backend.wire_format == "bedrock":
        return raw["stopReason"]
    choice = raw["choices"][0] if isinstance(raw, dict) else raw.choices[0]
    return choice["finish_reason"] if isinstance(choice, dict) else choice.finish_reason


def _surfaced(model: Any, message: Any) -> list[tuple[str, Any]]:
    return [(c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]


# What each tool_choice becomes on each wire (written down from the APIs' documentation).
TOOL_CHOICE_WIRE = {
    "openai": {
        "auto": "auto",
        "none": "none",
        "required": "required",
        "named": {"type": "function", "function": {"name": "get_weather"}},
    },
    # Converse: auto -> {"auto": {}}, required -> {"any": {}}, a named tool -> {"tool": {"name": ...}};
    # it has no "none": the tools are not offered at all
    "bedrock": {
        "auto": {"auto": {}},
        "none": None,
        "required": {"any": {}},
        "named": {"tool": {"name": "get_weather"}},
    },
}


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("choice", ["auto", "none", "required", "named"])
@pytest.mark.clause("tools.choice-on-wire", "tools.native-calls-surface")
def test_tool_choice_on_the_wire(backend, model, wire, weather_tool, responder, choice):
    value = TOOL_CHOICE_WIRE["openai"][choice]
    if choice == "none":
        responder.reply = Reply(text="It is sunny.")
    else:
        responder.reply = Reply(tool_calls=[ToolCallSpec("call_1", "get_weather", {"city": "Paris"})])
    message = model(WEATHER, tools_to_call_from=[weather_tool], tool_choice=value)
    sent = wire.last().raw
    if backend.wire_format == "bedrock":
        expected = TOOL_CHOICE_WIRE["bedrock"][choice]
        got = (sent.get("toolConfig") or {}).get("toolChoice")
        assert got == expected, f"toolChoice sent {got!r}, expected {expected!r}"
        assert ("toolConfig" in sent) == (choice != "none")
    else:
        assert sent.get("tool_choice") == value, f"tool_choice sent {sent.get('tool_choice')!r}, expected {value!r}"
        assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    if choice == "none":
        assert text_of(message) == "It is sunny." and not message.tool_calls
    else:
        assert _surfaced(model, message) == [("get_weather", {"city": "Paris"})]


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("arguments", [
    pytest.param({}, id="object", marks=pytest.mark.clause("tools.no-arguments")),
    pytest.param("{}", id="json", marks=pytest.mark.clause("tools.no-arguments")),
    # an empty string read as {} is this project's decoding (STRICT)
    pytest.param("", id="empty_string", marks=pytest.mark.clause("tools.no-arguments", "tools.arguments-decoded")),
])
def test_tool_without_arguments(backend, model, wire, responder, arguments):
    """A tool with no inputs: an empty object schema on the wire; a call with no arguments surfaces as {}."""
    if backend.wire_format == "bedrock" and arguments == "":
        arguments = {}  # Converse carries toolUse.input as an object: no empty-string form exists there
    responder.reply = Reply(tool_calls=[ToolCallSpec("call_1", "get_time", arguments)])
    message = model([{"role": "user", "content": "What time is it?"}], tools_to_call_from=[NoArgumentsTool()])
    schema = tool_parameters(backend, wire.last().raw)
    assert schema.get("type") == "object" and not schema.get("properties") and not schema.get("required")
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


@pytest.mark.requires("tools")
@pytest.mark.clause("tools.foreign-id-round-trip", "roles.tool-roles-converted")
def test_tool_result_round_trip_with_a_foreign_id(request, backend, model, wire, weather_tool):
    """A tool call and its result from elsewhere (an id this backend never issued) go back as text turns.

    Local engines run it live with one new token: the turns are checked at the chat template.
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
        request.getfixturevalue("responder").reply = Reply(text="It is sunny in Paris.")
        message = model(messages, tools_to_call_from=[weather_tool], tool_choice="auto")
        assert text_of(message) == "It is sunny in Paris."
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


@pytest.mark.parametrize("reason", ["stop", "length"])
@pytest.mark.clause("response.finish-reason-visible", "messages.string-content")
def test_finish_reason_visible(backend, model, wire, responder, reason):
    """The backend's finish reason is readable on the returned message's raw response."""
    wire_reason = {"stop": "end_turn", "length": "max_tokens"}[reason] if backend.wire_format == "bedrock" else reason
    responder.reply = Reply(text="Monday, Tuesday", finish_reason=wire_reason)
    message = model([{"role": "user", "content": "Name two days."}])
    assert _finish_reason(backend, message) == wire_reason
    assert text_of(message) == "Monday, Tuesday"
    assert wire.last().texts == ["Name two days."]


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
          "required": ["city", "temperature"], "additionalProperties": False}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}


@pytest.mark.requires("structured_output")
@pytest.mark.clause("structured.on-the-wire")
def test_structured_output_request(backend, model, wire, responder):
    """response_format as a JSON schema: sent in the backend's form; the JSON answer comes back as content."""
    responder.reply = Reply(text='{"city": "Paris", "temperature": 21.5}')
    message = model(WEATHER, response_format=RESPONSE_FORMAT)
    sent = wire.last().raw
    if backend.wire_format == "bedrock":
        structure = sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
        assert sent["outputConfig"]["textFormat"]["type"] == "json_schema"
        assert json.loads(structure["schema"]) == SCHEMA and structure["name"] == "weather"
    elif backend.name == "inference-client":
        # huggingface_hub's hf-inference provider sends TGI's grammar form of a json_schema
        assert sent["response_format"] == {"type": "json_object", "value": SCHEMA}
    else:
        assert sent["response_format"] == RESPONSE_FORMAT
    assert json.loads(text_of(message)) == {"city": "Paris", "temperature": 21.5}


@pytest.mark.clause("structured.refused-clearly")
def test_structured_output_refused_clearly(backend, model, wire):
    """Where a backend has no structured output, asking for it is a ValueError naming response_format, sent nowhere."""
    if "structured_output" in backend.capabilities:
        pytest.skip(f"{backend.name} supports structured output (checked by test_structured_output_request)")
    with pytest.raises(ValueError, match="response_format"):
        model(WEATHER, response_format=RESPONSE_FORMAT)
    assert wire.calls() == [], "a request was sent although response_format cannot be honoured"
