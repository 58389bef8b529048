"""A call's arguments besides the conversation, judged on any implementation.

Reply side: a response_format, tools_to_call_from or a content part no wire accepts is refused before anything
is sent, with an error naming the argument and the value. Wire side: a tool_choice the model was built with (a
value, or REMOVE_PARAMETER) is judged on the request its real SDK sends. HTTP backends are answered by the
recorded-reply responder (conftest.responder). Expected errors and requests are written down here, never
computed by the code under test.
"""

from __future__ import annotations

import pytest
from responder import Reply
from wires import lens_of

from conftest import text_of

pytestmark = [pytest.mark.no_cassette]

HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL = object()  # stands for the weather tool, given by its fixture


class ToolWithoutInputs:
    """An object offered as a tool that has a name and a description but no inputs (a tool of another library)."""

    name = "get_weather"
    description = "Get the current weather for a city."

    def __repr__(self) -> str:
        return "<get_weather>"

# case: (messages, call keyword arguments, error type, what the error must name)
BAD_CALLS = {
    "part_not_a_dict": pytest.param(
        [{"role": "user", "content": ["Say hello."]}], {}, TypeError, r"messages\[0\]\.content\[0\].*\bstr\b",
        marks=pytest.mark.clause("messages.malformed-is-clear-error"), id="part_not_a_dict"),
    "part_of_unknown_type": pytest.param(
        [{"role": "user", "content": [{"type": "audio", "audio": "UklGRg=="}]}], {}, ValueError,
        r"messages\[0\]\.content\[0\].*'audio'",
        marks=pytest.mark.clause("messages.malformed-is-clear-error"), id="part_of_unknown_type"),
    "response_format_not_a_dict": pytest.param(
        HELLO, {"response_format": "json"}, TypeError, r"\bresponse_format\b.*'json'.*\bstr\b",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error"), id="response_format_not_a_dict"),
    "response_format_of_unknown_type": pytest.param(
        HELLO, {"response_format": {"type": "xml"}}, ValueError, r"\bresponse_format\b.*'xml'",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error"), id="response_format_of_unknown_type"),
    "json_schema_without_a_name": pytest.param(
        HELLO, {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}}, ValueError,
        r"\bresponse_format\b.*\bname\b",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error"), id="json_schema_without_a_name"),
    "json_schema_missing": pytest.param(
        HELLO, {"response_format": {"type": "json_schema"}}, ValueError, r"\bresponse_format\b.*\bjson_schema\b",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error"), id="json_schema_missing"),
    "tools_not_a_list": pytest.param(
        WEATHER, {"tools_to_call_from": TOOL}, TypeError, r"\btools_to_call_from\b.*\bWeatherTool\b",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error"), id="tools_not_a_list"),
    "tools_a_string": pytest.param(
        WEATHER, {"tools_to_call_from": "get_weather"}, TypeError, r"\btools_to_call_from\b.*'get_weather'.*\bstr\b",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error"), id="tools_a_string"),
    "tool_without_inputs": pytest.param(
        WEATHER, {"tools_to_call_from": [ToolWithoutInputs()]}, TypeError, r"\bToolWithoutInputs\b.*'inputs'",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error"), id="tool_without_inputs"),
    "tool_schema_without_a_name": pytest.param(
        WEATHER, {"tools_to_call_from": [{"description": "Get the weather.", "parameters": SCHEMA}]}, ValueError,
        r"'name'.*'Get the weather\.'",
        marks=pytest.mark.clause("call.bad-argument-is-clear-error", "tools.schema-dict"),
        id="tool_schema_without_a_name"),
}


@pytest.mark.parametrize("messages, arguments, error, named", list(BAD_CALLS.values()))
def test_a_bad_call_argument_is_a_clear_error(model, wire, responder, weather_tool, messages, arguments, error,
                                              named):
    """Reply side: an error of the written type naming the argument and the value; wire side: nothing was sent
    (a request that goes out anyway is answered by the responder, so that it shows here as sent)."""
    responder.reply = Reply(text="Hello.")
    arguments = {key: weather_tool if value is TOOL else value for key, value in arguments.items()}
    with pytest.raises(error, match=named):
        model(messages, **arguments)
    assert wire.calls() == [], "a request was sent for a call no wire accepts"


@pytest.mark.requires("native_tools")
@pytest.mark.free_fields("tool_choice")  # the check gives the model its own tool_choice
@pytest.mark.parametrize("choice", [
    pytest.param("auto", marks=pytest.mark.clause("model.kwargs-at-instantiation", "tools.choice-on-wire")),
    pytest.param("remove", marks=pytest.mark.clause("model.remove-parameter")),
])
def test_a_models_own_tool_choice(backend, model_factory, contract, wire, responder, weather_tool, choice):
    """A model built with tool_choice="auto" asks for it with every call that offers tools, in the wire's form;
    one built with tool_choice=REMOVE_PARAMETER sends no tool choice (on Converse, where toolConfig may name
    one, at most auto: the API's default with tools). The tools go out either way, and no raw tool_choice field
    beside the wire's own."""
    lens = lens_of(backend)
    model = model_factory(tool_choice="auto" if choice == "auto" else contract.REMOVE_PARAMETER)
    responder.reply = Reply(text="It is sunny.")
    message = model(WEATHER, tools_to_call_from=[weather_tool])
    sent = wire.last()
    assert sent.tools == ["get_weather"], f"tools offered: {sent.tools}"
    got = lens.tool_choice(sent.raw)
    if choice == "auto":
        assert got == lens.tool_choices["auto"], f"tool choice sent {got!r}, the model was built with 'auto'"
    else:
        # absent on the OpenAI wire; on Converse absent or auto, the default either way
        allowed = [None] if backend.wire_format == "openai" else [None, lens.tool_choices["auto"]]
        assert got in allowed, f"tool choice sent {got!r}, the model removes tool_choice"
    assert "tool_choice" not in sent.raw or backend.wire_format == "openai", (
        f"a raw tool_choice field went out beside the {backend.wire_format} wire's own: {sent.raw!r}")
    assert text_of(message) == "It is sunny."


@pytest.mark.clause("stop.parameter-switch")
def test_a_stop_parameter_switch_that_is_not_a_bool_is_a_clear_error(model_factory, wire):
    """Building a model with supports_stop_parameter other than True, False or None fails with a TypeError naming
    the parameter and the value; nothing is sent."""
    with pytest.raises(TypeError, match=r"\bsupports_stop_parameter\b.*'yes'"):
        model_factory(supports_stop_parameter="yes")(HELLO)
    assert wire.calls() == []
