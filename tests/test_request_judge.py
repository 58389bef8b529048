"""Replay judges the request: what was sent is compared with what was recorded, field by field and type-exactly."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from harness.recording.cassettes import block_network, hub_clients_online, make_vcr
from harness.recording.played import PlayedRequest, noting_played

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("suite_oracles", ROOT / "suites" / "oracles.py")
assert _spec is not None and _spec.loader is not None
oracles = importlib.util.module_from_spec(_spec)
sys.modules["suite_oracles"] = oracles  # a dataclass needs its module registered
_spec.loader.exec_module(oracles)

CASSETTE = ROOT / "cassettes" / "transformers-serve" / "openai" / "tool_calls" / "test_native_tool_call.yaml"
QUESTION = [{"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}]
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string", "description": "The city name, e.g. Paris"}}}}}


def _replay(tmp_path: Path, **settings: object) -> list[PlayedRequest]:
    from adapters import OpenAIServerModel

    path = tmp_path / CASSETTE.name
    shutil.copy(CASSETTE, path)
    model = OpenAIServerModel("SmolLM2-135M-Instruct", api_base="http://127.0.0.1:8000/v1", api_key="replay-key",
                              max_tokens=48, **settings)
    played: list[PlayedRequest] = []
    with hub_clients_online(), block_network(), make_vcr("replay").use_cassette(str(path)) as cassette:
        with noting_played(cassette, str(path), played):
            model.generate(QUESTION, tools_to_call_from=[_Weather()])
    return played


class _Weather:
    name = "get_weather"
    description = "Get the current weather for a city."
    inputs = {"city": {"type": "string", "description": "The city name, e.g. Paris"}}
    output_type = "string"


def _diff(played: PlayedRequest, free: tuple[str, ...] = ()) -> list[str]:
    return oracles.request_diff(played.sent_body, played.recorded_body, played.sent_query, played.recorded_query,
                                played.sent_path, played.recorded_path, free)


def test_a_request_as_recorded_has_no_difference(tmp_path):
    played = _replay(tmp_path, temperature=0.0)
    assert [p.interaction for p in played] == [1]
    assert played[0].cassette.endswith(CASSETTE.name)
    assert _diff(played[0]) == []


def test_a_changed_tool_choice_and_temperature_are_named_field_by_field(tmp_path):
    played = _replay(tmp_path, temperature=0.5, tool_choice="auto")
    assert sorted(_diff(played[0])) == [
        "body.temperature: sent 0.5, expected 0.0",
        "body.tool_choice: sent 'auto', expected 'required'",
    ]
    assert _diff(played[0], free=("body.temperature",)) == ["body.tool_choice: sent 'auto', expected 'required'"]


def test_equality_is_type_exact():
    assert oracles.exact_diff(5, 5.0) == ["<root>: sent 5 (int), expected 5.0 (float)"]
    assert oracles.exact_diff({"n": True}, {"n": 1}) == ["n: sent True (bool), expected 1 (int)"]
    assert oracles.exact_diff([1, [2.0]], [1, [2]]) == ["[1][0]: sent 2.0 (float), expected 2 (int)"]
    assert oracles.exactly_equal({"a": [1, "x "]}, {"a": [1, "x "]})
    assert not oracles.exactly_equal("x ", "x")  # whitespace is content


def test_tool_schemas_are_compared_whole():
    changed = {**TOOL["function"]["parameters"],
               "properties": {"city": {"type": "string", "description": "The city name"}}}
    sent = {"tools": [{"type": "function", "function": {**TOOL["function"], "parameters": changed}}]}
    assert oracles.request_diff(sent, {"tools": [TOOL]}, {}, {}, "/", "/") == [
        "body.tools[0].function.parameters.properties.city.description: sent 'The city name', "
        "expected 'The city name, e.g. Paris'"]


def test_merged_messages_read_the_same_but_a_lost_character_does_not():
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
    merged = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a\nb"}]}]}
    stripped = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a\nb "}]}]}
    assert oracles.request_diff(merged, parts, {}, {}, "/", "/") == []
    assert oracles.request_diff(stripped, parts, {}, {}, "/", "/") == [
        "body.messages[0].content[0].text: sent 'a\\nb ', expected 'a\\nb'"]


def test_query_and_path_are_judged():
    diff = oracles.request_diff({}, {}, {"api-version": "2024-02-01"}, {"api-version": "2024-10-21"},
                                "/openai/deployments/other/chat/completions",
                                "/openai/deployments/gpt/chat/completions")
    assert diff == ["query.api-version: sent '2024-02-01', expected '2024-10-21'",
                    "path: sent '/openai/deployments/other/chat/completions', "
                    "expected '/openai/deployments/gpt/chat/completions'"]


def test_tuples_are_compared_item_by_item():
    diff = oracles.exact_diff([("f", {"n": 5.0})], [("f", {"n": 5})])
    assert diff == ["[0][1].n: sent 5.0 (float), expected 5 (int)"]
