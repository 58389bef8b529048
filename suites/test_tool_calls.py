"""Tool calls: native and written as text become ChatMessageToolCall with dict arguments.

Tests that call the backend check the tools offered on the request (name and JSON schema, read
in the backend's wire format) and the returned call. Tests that hand a message to
``parse_tool_calls`` send nothing: their docstrings say so and they check the reply side alone.
"""

from __future__ import annotations

import copy
import json

import pytest
from responder import Reply
from wires import lens_of

from conftest import tool_parameters

WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]



@pytest.mark.requires("native_tools")
@pytest.mark.clause("tools.native-calls-surface", "tools.offered-on-request", "tools.arguments-dict")
def test_native_tool_call(model, wire, contract, weather_tool):
    message = model(WEATHER, tools_to_call_from=[weather_tool])
    assert "get_weather" in wire.last().tools, f"tools offered: {wire.last().tools}"
    assert message.tool_calls, f"no native tool call; content={message.content!r}"
    parsed = model.parse_tool_calls(message)
    call = parsed.tool_calls[0]
    assert isinstance(call, contract.ChatMessageToolCall)
    assert call.type == "function"
    assert call.function.name == "get_weather"
    # written down: what the recorded model answered (see the cassette)
    assert call.function.arguments == {"city": "Paris"}, f"arguments: {call.function.arguments!r}"
    assert call.id
    assert not (message.content or "").strip(), f"the tool call leaked into content: {message.content!r}"


@pytest.mark.requires("tools")
@pytest.mark.clause("tools.offered-on-request")
def test_tools_offered_on_the_request(model, wire, backend, weather_tool):
    message = model(WEATHER, tools_to_call_from=[weather_tool])
    sent = wire.last()
    assert sent.tools == ["get_weather"]
    assert sent.texts == ["What is the weather in Paris?"]
    schema = tool_parameters(backend, sent.raw)
    assert schema["type"] == "object"
    assert schema["properties"]["city"]["type"] == "string"
    assert schema["required"] == ["city"]
    call = model.parse_tool_calls(message).tool_calls[0]
    assert call.function.name == "get_weather", f"returned {message.content!r} {message.tool_calls!r}"


FORECAST_INPUTS = {
    "city": {"type": "string", "description": "The city name"},
    "when": {"type": "any", "description": "A date, or a number of days from today"},
    "days": {"type": "integer", "anyOf": [{"type": "integer"}, {"type": "null"}], "nullable": True,
             "description": "How many days to forecast"},
    "units": {"type": "string", "anyOf": [{"type": "string", "enum": ["celsius", "fahrenheit"]}, {"type": "integer"},
                                          {"type": "null"}],
              "nullable": True, "description": "A unit name, or a unit code"},
    "detail": {"type": "any", "anyOf": [{"type": "null"}, {"type": "any"}], "nullable": True,
               "description": "Anything else to report on"},
}


class ForecastTool:
    """A tool whose inputs are typed as smolagents' tools write them: an input of type ``any``, inputs marked
    ``nullable``, and inputs whose ``anyOf`` lists several types (Tool subclasses and tools converted from
    JSON schemas, such as MCP tools, from Optional[...] and Union[...] types)."""

    name = "get_forecast"
    description = "Get the weather forecast for a city."
    output_type = "string"

    def __init__(self) -> None:
        self.inputs = copy.deepcopy(FORECAST_INPUTS)  # each tool its own, so that a change shows on this one only

    def __call__(self, city: str, when: object, days: int | None = None, units: str | int | None = None,
                 detail: object = None) -> str:
        return f"Sunny in {city}"


# Written down from smolagents' get_tool_json_schema (smolagents.models): an input of type "any" goes out as a
# string; an input marked nullable is not required; an anyOf becomes the "type" (one type, or the list of the
# types it names, "any" read as "string"), its enum the input's enum, and a "null" among them makes it nullable.
FORECAST_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city name"},
        "when": {"type": "string", "description": "A date, or a number of days from today"},
        "days": {"type": "integer", "nullable": True, "description": "How many days to forecast"},
        "units": {"type": ["string", "integer"], "enum": ["celsius", "fahrenheit"], "nullable": True,
                  "description": "A unit name, or a unit code"},
        "detail": {"type": "string", "nullable": True, "description": "Anything else to report on"},
    },
    "required": ["city", "when"],
}


@pytest.mark.requires("tools")
@pytest.mark.no_cassette
@pytest.mark.clause("tools.input-schema", "tools.not-mutated")
def test_tool_inputs_go_out_as_smolagents_writes_them(backend, model, wire, responder):
    """Request side: the inputs of a tool typed `any`, nullable and anyOf go out as the JSON schema smolagents'
    get_tool_json_schema writes for them; the caller's tool is left as it was given."""
    tool = ForecastTool()
    responder.reply = Reply(text="Sunny.")
    model(WEATHER, tools_to_call_from=[tool])
    sent = tool_parameters(backend, wire.last().raw)
    assert sent == FORECAST_PARAMETERS, f"the tool's parameters went out as {json.dumps(sent)}"
    assert tool.inputs == FORECAST_INPUTS, f"the caller's tool inputs became {tool.inputs!r}"


# A tool as its JSON schema: "units" is neither required nor nullable, which smolagents' rule for a Tool's
# inputs would make required; a schema given as a dict goes out as given.
SCHEMA_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city name"},
                   "units": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
}
SCHEMA_FUNCTION = {"name": "get_weather", "description": "Get the current weather for a city.",
                   "parameters": SCHEMA_PARAMETERS}


# A tool that takes nothing, as its function object without `parameters`: where the wire requires a tool's
# parameters it goes out with an object schema of no properties; elsewhere without, or with that schema.
CLOCK_FUNCTION = {"name": "get_time", "description": "The current time."}
NO_PARAMETERS = ({"type": "object", "properties": {}}, {"type": "object", "properties": {}, "required": []})


@pytest.mark.requires("tools")
@pytest.mark.no_cassette
@pytest.mark.parametrize("form", ["chat_completions_tool", "function_object", "responses_api_tool",
                                  "without_parameters"])
@pytest.mark.clause("tools.schema-dict", "tools.not-mutated")
def test_a_tool_given_as_its_json_schema_goes_out_as_given(backend, model, wire, responder, form):
    """Request side: a tool given as a dict (``{"type": "function", "function": {...}}``, the function object
    alone, or the Responses API's flat ``{"type": "function", "name": ...}``) is offered under its name with its
    parameters exactly as given (one given without parameters: with none, or with an object schema of no
    properties where the wire requires one); the caller's dict is left as it was."""
    function = copy.deepcopy(CLOCK_FUNCTION if form == "without_parameters" else SCHEMA_FUNCTION)
    tool = {"chat_completions_tool": {"type": "function", "function": function},
            "responses_api_tool": {"type": "function", **function}}.get(form, function)
    given = copy.deepcopy(tool)
    responder.reply = Reply(text="Sunny.")
    model(WEATHER, tools_to_call_from=[tool])
    sent = wire.last()
    assert sent.tools == [function["name"]], f"tools offered: {sent.tools}"
    definition = lens_of(backend).tool_definition(sent.raw)
    beside = sorted(set(definition) - lens_of(backend).tool_fields)
    assert not beside, f"the tool went out with fields its wire's definition has not: {beside}: {definition}"
    assert definition.get("description") == function["description"], f"the tool went out as {definition}"
    parameters = tool_parameters(backend, sent.raw)
    if form != "without_parameters":
        assert parameters == SCHEMA_PARAMETERS, f"the tool's parameters went out as {json.dumps(parameters)}"
    elif lens_of(backend).parameters_required:
        assert parameters in NO_PARAMETERS, f"a tool without parameters went out with {json.dumps(parameters)}"
    else:
        assert parameters in (None, *NO_PARAMETERS), f"a tool without parameters went out with {json.dumps(parameters)}"
    assert tool == given, f"the caller's tool became {tool!r}"


TEXT_FORMS = {
    "json_blob": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    "fenced_block": 'Action:\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    "python_dict": "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",
    "prose_around": 'I will check. {"name": "get_weather", "arguments": {"city": "Paris"}} Then I answer.',
    "json_string_arguments": '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
    "call_then_period": 'I will check {"name": "get_weather", "arguments": {"city": "Paris"}}.',
}


# the clause each form checks: a Python-literal dict is this project's choice (STRICT), the rest what agents need
TEXT_FORM_CLAUSES = {form: "tools.text-python-literal" if form == "python_dict" else "tools.text-calls-parsed"
                     for form in TEXT_FORMS}


@pytest.mark.no_cassette
@pytest.mark.parametrize("form", [pytest.param(form, marks=pytest.mark.clause(TEXT_FORM_CLAUSES[form]))
                                  for form in sorted(TEXT_FORMS)])
def test_text_tool_call_forms(model, contract, form):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing."""
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=TEXT_FORMS[form])
    parsed = model.parse_tool_calls(message)
    assert len(parsed.tool_calls) == 1
    assert parsed.role == "assistant", f"the message after parse_tool_calls has role {parsed.role!r}"
    call = parsed.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris"}
    assert call.id


def _native(contract, arguments, call_id="call_1"):
    return contract.ChatMessageToolCall(
        id=call_id,
        type="function",
        function=contract.ChatMessageToolCallFunction(name="get_weather", arguments=arguments),
    )


@pytest.mark.no_cassette
@pytest.mark.parametrize("arguments", [
    # a dict or a JSON string is what agents need; a double-encoded string decoded is this project's choice
    pytest.param({"city": "Paris"}, id="dict", marks=pytest.mark.clause("tools.arguments-dict")),
    pytest.param(json.dumps({"city": "Paris"}), id="json_string", marks=pytest.mark.clause("tools.arguments-dict")),
    pytest.param(json.dumps(json.dumps({"city": "Paris"})), id="double_encoded",
                 marks=pytest.mark.clause("tools.arguments-decoded")),
])
def test_native_arguments_become_a_dict(model, contract, arguments):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing."""
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=None,
                                   tool_calls=[_native(contract, arguments)])
    assert model.parse_tool_calls(message).tool_calls[0].function.arguments == {"city": "Paris"}


BAD_ARGUMENTS = {
    # not JSON: the error names the tool and shows the arguments
    "not_json": ('{"city": "Par', r"get_weather.*city.*Par"),
    # JSON, but not an object: the error names the tool and what they decoded to
    "not_an_object": ("[1, 2]", r"get_weather.*\[1, 2\].*\blist\b"),
    # three layers of JSON: the contract decodes at most two (a dict, a JSON string, a JSON string of one)
    "three_layers": (json.dumps(json.dumps(json.dumps({"city": "Paris"}))), r"get_weather"),
}


@pytest.mark.no_cassette
@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
@pytest.mark.clause("tools.malformed-is-clear-error")
def test_malformed_arguments_are_a_clear_error(model, contract, case):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing."""
    arguments, named = BAD_ARGUMENTS[case]
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=None,
                                   tool_calls=[_native(contract, arguments)])
    with pytest.raises(ValueError, match=named):
        model.parse_tool_calls(message)


@pytest.mark.no_cassette
@pytest.mark.clause("tools.ids-unique")
def test_tool_call_ids_unique(model, contract):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing."""
    message = contract.ChatMessage(
        role=contract.MessageRole.ASSISTANT,
        content=None,
        tool_calls=[_native(contract, {"city": "Paris"}, "dup"), _native(contract, {"city": "Rome"}, "dup")],
    )
    ids = [c.id for c in model.parse_tool_calls(message).tool_calls]
    assert len(set(ids)) == 2, f"ids not unique: {ids}"
    assert all(isinstance(i, str) and i for i in ids), f"ids must be non-empty strings: {ids}"
    assert "dup" in ids, f"the first call lost the id the backend gave it: {ids}"


@pytest.mark.no_cassette
@pytest.mark.clause("tools.malformed-is-clear-error")
def test_text_without_a_tool_call_is_a_clear_error(model, contract):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing."""
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content="It is sunny.")
    # the error names what it looked for (the name and arguments keys) and shows the output
    with pytest.raises(ValueError, match=r"(?s)'name'.*'arguments'.*It is sunny\.") as error:
        model.parse_tool_calls(message)
    # a short output is shown whole, not marked as cut
    assert not str(error.value).endswith("...'"), f"a short output marked as cut: {str(error.value)!r}"


BAD_TEXT_CALLS = {
    # the name is not a non-empty string: the error shows the value given
    "name_not_a_string": ('{"name": ["get_weather"], "arguments": {"city": "Paris"}}', r"name.*\['get_weather'\]"),
    # the arguments do not decode: the error names the tool
    "arguments_not_json": ('{"name": "get_weather", "arguments": "{\\"city\\": "}', r"get_weather.*city"),
}


@pytest.mark.no_cassette
@pytest.mark.parametrize("case", sorted(BAD_TEXT_CALLS))
@pytest.mark.clause("tools.malformed-is-clear-error")
def test_bad_text_tool_call_is_a_clear_error(model, contract, case):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing."""
    text, named = BAD_TEXT_CALLS[case]
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=text)
    with pytest.raises(ValueError, match=named):
        model.parse_tool_calls(message)


@pytest.mark.no_cassette
@pytest.mark.clause("tools.malformed-is-clear-error")
def test_long_text_without_a_tool_call_is_a_clear_error(model, contract):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing.

    For a long output (1,300 characters here) the error still is a ValueError that shows the
    output's beginning, as an excerpt: the message stays shorter than the output itself.
    """
    long_text = "It is sunny. " * 100
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=long_text)
    with pytest.raises(ValueError, match=r"It is sunny\. It is sunny\.") as error:
        model.parse_tool_calls(message)
    assert len(str(error.value)) < len(long_text), f"the whole output is in the error: {len(str(error.value))} chars"
    # the excerpt ends the message, marked as cut
    assert str(error.value).endswith("...'"), f"the excerpt is not marked as cut: {str(error.value)[-40:]!r}"


@pytest.mark.requires("text_tools")
@pytest.mark.clause("tools.chat-template-renders-tools", "tools.offered-on-request")
def test_chat_template_renders_the_tools(model, wire, weather_tool):
    message = model(WEATHER, tools_to_call_from=[weather_tool])
    assert not message.tool_calls, f"a text-only engine returned native tool calls: {message.tool_calls!r}"
    assert isinstance(message.content, str) and message.content.strip(), f"no text returned: {message.content!r}"
    sent = wire.last()
    assert sent.tools == ["get_weather"], f"tools passed to the chat template: {sent.raw.get('tools')!r}"
    prompt = model.tokenizer.apply_chat_template(
        sent.raw["messages"], tools=sent.raw["tools"], tokenize=False, add_generation_prompt=True
    )
    assert "get_weather" in prompt, f"the chat template did not render the tool: {prompt!r}"
    assert "city" in prompt and "Get the current weather" in prompt, f"tool schema not rendered: {prompt!r}"


@pytest.mark.requires("text_tools")
@pytest.mark.clause("tools.text-calls-parsed", "tools.chat-template-renders-tools")
def test_tool_call_written_as_text(model, wire, contract, weather_tool):
    message = model(WEATHER, tools_to_call_from=[weather_tool])
    assert "get_weather" in wire.last().tools
    assert not message.tool_calls, f"a text-only engine returned native tool calls: {message.tool_calls!r}"
    parsed = model.parse_tool_calls(message)
    assert len(parsed.tool_calls) == 1, f"tool calls: {parsed.tool_calls!r}"
    call = parsed.tool_calls[0]
    assert isinstance(call, contract.ChatMessageToolCall)
    assert call.type == "function"
    assert call.function.name == "get_weather", f"model wrote {message.content!r}"
    assert call.function.arguments == {"city": "Paris"}, f"model wrote {message.content!r}"
    assert call.id


BRACED_TEXT_CALLS = {
    # braces in the prose around the call, an escaped quote followed by a brace in an argument
    "quote_then_brace": ("Given {x} and {y: 1}, I call "
                         '{"name": "get_weather", "arguments": {"city": "Par\\"}is", "note": "a {b} c", '
                         '"quote": "it\'s"}} then {z}.',
                         {"city": 'Par"}is', "note": "a {b} c", "quote": "it's"}),
    # an argument ending in a backslash: the escaped backslash does not escape the closing quote
    "backslash_then_quote": ('I call {"name": "get_weather", "arguments": {"city": "C:\\\\", "note": "}"}} now.',
                             {"city": "C:\\", "note": "}"}),
    "python_backslash_then_quote": ("I call {'name': 'get_weather', 'arguments': {'city': 'C:\\\\', 'note': '}'}} now.",
                                    {"city": "C:\\", "note": "}"}),
    # a brace in the prose that never closes, before the call
    "unclosed_brace_before": ('Mind the { here. I call {"name": "get_weather", "arguments": {"city": "Paris"}} now.',
                              {"city": "Paris"}),
    # a Python literal with a hex number written 0X..: outside a string, an X is no quote
    "python_hex_number": ("{'name': 'get_weather', 'arguments': {'city': 'Paris', 'zip': 0X1F}}",
                          {"city": "Paris", "zip": 31}),
}


@pytest.mark.no_cassette
@pytest.mark.parametrize("case", sorted(BRACED_TEXT_CALLS))
@pytest.mark.clause("tools.text-python-literal")
def test_text_tool_call_amid_braces_quotes_and_escapes(model, contract, case):
    """Reply side only: parse_tool_calls reads a message given by hand and sends nothing.

    Braces and quotes in the prose and in the arguments (expected arguments written down here):
    only a scan that skips quoted text, escapes included, finds the call.
    """
    text, arguments = BRACED_TEXT_CALLS[case]
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=text)
    call = model.parse_tool_calls(message).tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("get_weather", arguments)


@pytest.mark.no_cassette
@pytest.mark.clause("tools.custom-keys", "tools.malformed-is-clear-error")
def test_custom_tool_keys_read_text_tool_calls(backend, model_factory, contract):
    """Reply side only: parse_tool_calls reads messages given by hand and sends nothing.

    A model built with ``tool_name_key="tool"`` and ``tool_arguments_key="params"`` reads a call
    written with those keys, and its error for text without a call names those keys. HTTP
    backends only: a second local engine would load the model again for the same parser.
    """
    if backend.kind != "http":
        pytest.skip(f"{backend.name}: building a second engine loads the model again; the parser is shared")
    model = model_factory(tool_name_key="tool", tool_arguments_key="params")
    text = 'Calling {"tool": "get_weather", "params": {"city": "Paris"}} now.'
    parsed = model.parse_tool_calls(contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=text))
    assert [(c.function.name, c.function.arguments) for c in parsed.tool_calls] == [("get_weather", {"city": "Paris"})]
    with pytest.raises(ValueError, match=r"(?s)'tool'.*'params'.*It is sunny\."):
        model.parse_tool_calls(contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content="It is sunny."))
