"""Drop-in fidelity: smolagents' own types in, smolagents-consumable results out, the behaviours users rely on.

The references are smolagents' own functions and classes (``smolagents.models``), never this
project's code. HTTP checks run against a scripted loopback server (a transport fake).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pytest
import smolagents.models as sm
from smolagents import FinalAnswerTool, tool

import adapters
from adapters.azure import AzureOpenAIServerModel
from adapters.litellm import LiteLLMModel, LiteLLMRouterModel
from adapters.openai import OpenAIServerModel
from harness import REMOVE_PARAMETER, get_clean_message_list, supports_stop_parameter, tool_json_schema
from harness.contract.errors import ToolCallParseError
from harness.contract.model import Model
from harness.contract.types import ChatMessage, ChatMessageStreamDelta, MessageRole, TokenUsage
from tests.test_streaming_wire import FakeServer, server  # noqa: F401 - the fixture

COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "one two three"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


@tool
def get_weather(city: str, unit: str | None = None) -> str:
    """Get the current weather for a city.

    Args:
        city: The city name, e.g. Paris
        unit: celsius or fahrenheit
    """
    return f"Sunny in {city}"


# -- documented types from anywhere -------------------------------------------------------------


class Role(str, Enum):
    """A str-valued Enum that is not this project's (nor smolagents')."""

    USER = "user"
    SYSTEM = "system"


def _smolagents_conversation() -> list[Any]:
    """A conversation as smolagents' agents build it from memory (ActionStep.to_messages)."""
    call = sm.ChatMessageToolCall(
        id="call_1", type="function", function=sm.ChatMessageToolCallFunction(name="get_weather",
                                                                              arguments={"city": "Paris"}))
    return [
        sm.ChatMessage(role=sm.MessageRole.SYSTEM, content=[{"type": "text", "text": "Be brief."}]),
        sm.ChatMessage(role=sm.MessageRole.USER, content=[{"type": "text", "text": "New task:\nWeather?"}]),
        sm.ChatMessage(role=sm.MessageRole.ASSISTANT, content=[{"type": "text", "text": "Let me look."}],
                       tool_calls=[call]),
        sm.ChatMessage(role=sm.MessageRole.TOOL_CALL,
                       content=[{"type": "text", "text": "Calling tools:\n[{'id': 'call_1'}]"}]),
        sm.ChatMessage(role=sm.MessageRole.TOOL_RESPONSE,
                       content=[{"type": "text", "text": "Observation:\nSunny in Paris"}]),
    ]


@pytest.mark.parametrize("flatten", [True, False])
def test_smolagents_messages_normalise_like_smolagents_own_normaliser(flatten):
    ours = get_clean_message_list(_smolagents_conversation(), convert_images_to_image_urls=False,
                                  flatten_messages_as_text=flatten)
    reference = sm.get_clean_message_list(_smolagents_conversation(), role_conversions=sm.tool_role_conversions,
                                          flatten_messages_as_text=flatten)
    assert [m["role"] for m in ours] == [m["role"].value if isinstance(m["role"], Enum) else m["role"]
                                         for m in reference] == ["system", "user", "assistant", "user"]
    assert [m["content"] for m in ours] == [m["content"] for m in reference]


def test_a_role_is_read_by_value_from_any_str_enum():
    out = get_clean_message_list([{"role": Role.SYSTEM, "content": "S"}, {"role": Role.USER, "content": "U"},
                                  {"role": sm.MessageRole.ASSISTANT, "content": "A"}],
                                 convert_images_to_image_urls=False, flatten_messages_as_text=False)
    assert [m["role"] for m in out] == ["system", "user", "assistant"]
    assert all(type(m["role"]) is str for m in out)


def test_a_role_that_is_not_a_string_is_a_clear_error():
    with pytest.raises(TypeError, match=r"messages\[0\].role .* int"):
        get_clean_message_list([{"role": 3, "content": "x"}], convert_images_to_image_urls=False,
                               flatten_messages_as_text=False)


def test_smolagents_role_conversions_are_accepted():
    out = get_clean_message_list([{"role": "system", "content": "S"}],
                                 role_conversions={sm.MessageRole.SYSTEM: sm.MessageRole.USER},
                                 convert_images_to_image_urls=False, flatten_messages_as_text=False)
    assert out == [{"role": "user", "content": [{"type": "text", "text": "S"}]}]


def test_smolagents_messages_reach_the_wire_with_plain_roles(server: FakeServer):  # noqa: F811
    server.completion = COMPLETION
    model = OpenAIServerModel("m", api_base=server.base_url, api_key="k")
    model(_smolagents_conversation())
    assert [m["role"] for m in server.requests[0]["messages"]] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize("tool_object", [FinalAnswerTool(), get_weather], ids=["final_answer", "anyOf"])
def test_smolagents_tools_give_smolagents_own_schema(tool_object):
    assert tool_json_schema(tool_object) == sm.get_tool_json_schema(tool_object)


def test_a_json_schema_dict_is_a_tool():
    schema = sm.get_tool_json_schema(FinalAnswerTool())
    assert tool_json_schema(schema) == schema
    assert tool_json_schema(schema["function"]) == schema


# -- what generate returns, consumed by smolagents ---------------------------------------------


def _returned() -> ChatMessage:
    return ChatMessage(
        role=MessageRole.ASSISTANT, content="Hi",
        tool_calls=[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
        raw={"id": "r"}, token_usage=TokenUsage(input_tokens=3, output_tokens=2),
    )


def test_message_dict_has_smolagents_keys_and_round_trips_through_smolagents():
    ours = _returned()
    theirs = sm.ChatMessage(role=sm.MessageRole.ASSISTANT, content="Hi", tool_calls=[
        sm.ChatMessageToolCall(id="c1", type="function", function=sm.ChatMessageToolCallFunction(name="f",
                                                                                             arguments={"a": 1}))],
        raw={"id": "r"}, token_usage=sm.TokenUsage(input_tokens=3, output_tokens=2))
    assert ours.dict() == theirs.dict()
    assert json.loads(ours.model_dump_json()) == json.loads(theirs.model_dump_json())
    rebuilt = sm.ChatMessage.from_dict(ours.dict())
    assert rebuilt.tool_calls[0].function.arguments == {"a": 1} and rebuilt.role == sm.MessageRole.ASSISTANT
    back = ChatMessage.from_dict(theirs.dict())
    assert back.dict() == ours.dict() | {"raw": None}


def test_from_dict_does_not_modify_its_input():
    data = _returned().dict()
    before = json.dumps(data)
    ChatMessage.from_dict(data)
    assert json.dumps(data) == before


def test_smolagents_agglomerates_our_stream_deltas():
    deltas = [ChatMessageStreamDelta(content="Hel"), ChatMessageStreamDelta(content="lo"),
              ChatMessageStreamDelta(token_usage=TokenUsage(input_tokens=4, output_tokens=2))]
    message = sm.agglomerate_stream_deltas(deltas)
    assert message.content == "Hello" and message.token_usage.total_tokens == 6


# -- stop is not sent to model families that reject it ------------------------------------------


MODEL_IDS = ["o3", "o3-2025-04-16", "o3-mini", "o3-pro", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-4o", "gpt-4.1",
             "openai/o3", "openai/o3-mini", "openai/gpt-5-nano", "xai/grok-4", "grok-3-mini", "xai.grok-3",
             "o1", "claude-3-5-sonnet", "SmolLM2-135M-Instruct"]


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_stop_rule_is_smolagents_rule(model_id):
    assert supports_stop_parameter(model_id) == sm.supports_stop_parameter(model_id)


def _stop_models(server: FakeServer, model_id: str, **options: Any) -> dict[str, Any]:  # noqa: F811
    base = server.base_url
    return {
        "openai": OpenAIServerModel(model_id, api_base=base, api_key="k", **options),
        "azure": AzureOpenAIServerModel(model_id, azure_endpoint=base.removesuffix("/v1"), api_key="k",
                                        api_version="2024-10-21", **options),
        "litellm": LiteLLMModel(f"openai/{model_id}", api_base=base, api_key="k", **options),
        "litellm-router": LiteLLMRouterModel("group", model_list=[{"model_name": "group", "litellm_params": {
            "model": f"openai/{model_id}", "api_base": base, "api_key": "k"}}], **options),
    }


@pytest.mark.parametrize("backend", ["openai", "azure", "litellm", "litellm-router"])
@pytest.mark.parametrize("model_id,sent", [("o3", False), ("gpt-5-mini", False), ("grok-4", False),
                                           ("o3-mini", True), ("gpt-4o", True)])
def test_stop_is_sent_only_to_families_that_accept_it(server: FakeServer, backend, model_id, sent):  # noqa: F811
    server.completion = COMPLETION
    model = _stop_models(server, model_id)[backend]
    message = model([{"role": "user", "content": "Count"}], stop_sequences=["two"])
    assert ("stop" in server.requests[-1]) is sent
    assert message.content == "one "  # cut client-side either way


@pytest.mark.parametrize("backend", ["openai", "azure", "litellm", "litellm-router"])
@pytest.mark.parametrize("model_id,switch", [("o3", True), ("gpt-4o", False)])
def test_supports_stop_parameter_switch_overrides_the_rule(server: FakeServer, backend, model_id, switch):  # noqa: F811
    server.completion = COMPLETION
    model = _stop_models(server, model_id, supports_stop_parameter=switch)[backend]
    assert model.supports_stop_parameter is switch
    message = model([{"role": "user", "content": "Count"}], stop_sequences=["two"])
    assert ("stop" in server.requests[-1]) is switch and message.content == "one "
    assert type(model).from_dict({**model.to_dict(), "api_key": "k"}).supports_stop_parameter is switch


# -- REMOVE_PARAMETER and kwargs priority -------------------------------------------------------


@pytest.mark.parametrize("sentinel", [sm.REMOVE_PARAMETER, REMOVE_PARAMETER, adapters.REMOVE_PARAMETER],
                         ids=["smolagents", "harness", "adapters"])
def test_remove_parameter_removes_it_from_the_request(server: FakeServer, sentinel):  # noqa: F811
    server.completion = COMPLETION
    model = OpenAIServerModel("m", api_base=server.base_url, api_key="k", tool_choice=sentinel,
                              temperature=sentinel, stop=sentinel)
    message = model([{"role": "user", "content": "x"}], tools_to_call_from=[get_weather], temperature=0.5,
                    stop_sequences=["two"])
    body = server.requests[-1]
    assert "tools" in body and "tool_choice" not in body and "temperature" not in body and "stop" not in body
    assert message.content == "one "


def test_model_kwargs_win_over_call_kwargs_as_in_smolagents(server: FakeServer):  # noqa: F811
    server.completion = COMPLETION
    ours = OpenAIServerModel("m", api_base=server.base_url, api_key="k", temperature=0.1, max_tokens=7)
    ours([{"role": "user", "content": "x"}], temperature=0.9, top_p=0.5)
    reference = sm.OpenAIServerModel("m", api_base=server.base_url, api_key="k", temperature=0.1, max_tokens=7)
    expected = reference._prepare_completion_kwargs([{"role": "user", "content": "x"}], temperature=0.9, top_p=0.5)
    body = server.requests[-1]
    assert {k: body[k] for k in ("temperature", "max_tokens", "top_p")} == {
        k: expected[k] for k in ("temperature", "max_tokens", "top_p")} == {"temperature": 0.1, "max_tokens": 7,
                                                                              "top_p": 0.5}


def test_model_tool_choice_wins_over_the_default(server: FakeServer):  # noqa: F811
    server.completion = COMPLETION
    OpenAIServerModel("m", api_base=server.base_url, api_key="k", tool_choice="auto")(
        [{"role": "user", "content": "x"}], tools_to_call_from=[get_weather])
    assert server.requests[-1]["tool_choice"] == "auto"


# -- malformed tool-call arguments never make generate() raise ---------------------------------


def _tool_call_completion(arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    return {**COMPLETION, "choices": [{"index": 0, "finish_reason": "tool_calls",
                                       "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}


def test_malformed_native_arguments_come_back_from_generate(server: FakeServer):  # noqa: F811
    server.completion = _tool_call_completion('{"city": "Par')
    model = OpenAIServerModel("m", api_base=server.base_url, api_key="k")
    message = model([{"role": "user", "content": "x"}], tools_to_call_from=[get_weather])
    assert message.tool_calls[0].function.arguments == '{"city": "Par'  # what the backend sent
    with pytest.raises(ToolCallParseError, match="get_weather.*not valid JSON"):
        model.parse_tool_calls(message)


def test_well_formed_native_arguments_are_a_dict(server: FakeServer):  # noqa: F811
    server.completion = _tool_call_completion('{"city": "Paris"}')
    message = OpenAIServerModel("m", api_base=server.base_url, api_key="k")(
        [{"role": "user", "content": "x"}], tools_to_call_from=[get_weather])
    assert message.tool_calls[0].function.arguments == {"city": "Paris"}


def test_parse_tool_calls_names_a_call_without_a_name():
    message = ChatMessage(role="assistant", tool_calls=[{"id": "c", "type": "function",
                                                         "function": {"name": "", "arguments": "{}"}}])
    with pytest.raises(ToolCallParseError, match="no function name"):
        Model().parse_tool_calls(message)
