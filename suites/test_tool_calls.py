"""Tool calls: native and written as text become ChatMessageToolCall with dict arguments."""

from __future__ import annotations

import json

import pytest

WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.mark.requires("native_tools")
def test_native_tool_call(model, wire, contract, weather_tool):
    message = model(WEATHER, tools_to_call_from=[weather_tool])
    assert "get_weather" in wire.last().tools, f"tools offered: {wire.last().tools}"
    assert message.tool_calls, f"no native tool call; content={message.content!r}"
    parsed = model.parse_tool_calls(message)
    call = parsed.tool_calls[0]
    assert isinstance(call, contract.ChatMessageToolCall)
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, dict), f"arguments: {call.function.arguments!r}"
    assert "city" in call.function.arguments
    assert call.id


@pytest.mark.requires("tools")
def test_tools_offered_on_the_request(model, wire, weather_tool):
    model(WEATHER, tools_to_call_from=[weather_tool])
    sent = wire.last()
    assert sent.tools == ["get_weather"]
    if sent.raw.get("tools") and "function" in sent.raw["tools"][0]:  # the OpenAI schema shape
        schema = sent.raw["tools"][0]["function"]
        assert schema["parameters"]["properties"]["city"]["type"] == "string"
        assert schema["parameters"]["required"] == ["city"]


TEXT_FORMS = {
    "json_blob": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    "fenced_block": 'Action:\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    "python_dict": "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",
    "prose_around": 'I will check. {"name": "get_weather", "arguments": {"city": "Paris"}} Then I answer.',
    "json_string_arguments": '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
}


@pytest.mark.no_cassette
@pytest.mark.parametrize("form", sorted(TEXT_FORMS))
def test_text_tool_call_forms(model, contract, form):
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=TEXT_FORMS[form])
    parsed = model.parse_tool_calls(message)
    assert len(parsed.tool_calls) == 1
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
@pytest.mark.parametrize(
    "arguments",
    [{"city": "Paris"}, json.dumps({"city": "Paris"}), json.dumps(json.dumps({"city": "Paris"}))],
    ids=["dict", "json_string", "double_encoded"],
)
def test_native_arguments_become_a_dict(model, contract, arguments):
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=None,
                                   tool_calls=[_native(contract, arguments)])
    assert model.parse_tool_calls(message).tool_calls[0].function.arguments == {"city": "Paris"}


@pytest.mark.no_cassette
def test_malformed_arguments_are_a_clear_error(model, contract):
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=None,
                                   tool_calls=[_native(contract, '{"city": "Par')])
    with pytest.raises(ValueError, match="get_weather"):
        model.parse_tool_calls(message)


@pytest.mark.no_cassette
def test_tool_call_ids_unique(model, contract):
    message = contract.ChatMessage(
        role=contract.MessageRole.ASSISTANT,
        content=None,
        tool_calls=[_native(contract, {"city": "Paris"}, "dup"), _native(contract, {"city": "Rome"}, "dup")],
    )
    ids = [c.id for c in model.parse_tool_calls(message).tool_calls]
    assert len(set(ids)) == 2, f"ids not unique: {ids}"


@pytest.mark.no_cassette
def test_text_without_a_tool_call_is_a_clear_error(model, contract):
    message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content="It is sunny.")
    with pytest.raises(ValueError):
        model.parse_tool_calls(message)


@pytest.mark.requires("text_tools")
def test_chat_template_renders_the_tools(model, wire, weather_tool):
    model(WEATHER, tools_to_call_from=[weather_tool])
    sent = wire.last()
    assert sent.tools == ["get_weather"], f"tools passed to the chat template: {sent.raw.get('tools')!r}"
    prompt = model.tokenizer.apply_chat_template(
        sent.raw["messages"], tools=sent.raw["tools"], tokenize=False, add_generation_prompt=True
    )
    assert "get_weather" in prompt, f"the chat template did not render the tool: {prompt!r}"
    assert "city" in prompt and "Get the current weather" in prompt, f"tool schema not rendered: {prompt!r}"


@pytest.mark.requires("text_tools")
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
