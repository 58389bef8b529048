"""Berkeley Function Calling Leaderboard cases (the PyPI wheel ``bfcl-eval``) through every backend.

Categories simple (python), multiple and parallel. For each case the functions are offered as
tools, and the leaderboard's ground-truth call(s) (the first acceptable value of every argument)
come back in the backend's own wire format: a native tool call from the recorded-reply responder
on HTTP backends (non-streamed and streamed), the text form a model writes on text-tool engines.
The request must offer every function with its parameters and required list; the calls must
surface exactly: same names, same arguments, in order.

Profile ci checks every 10th case of each category (always the same ones), mutation every 40th;
nightly and ``BFCL_CASES=all`` check them all. Names with a dot (``spotify.play``) are offered and
expected with ``_`` instead, as BFCL's own OpenAI handler does: no function-calling wire takes a dot.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from responder import Reply, ToolCallSpec
from wires import lens_of

from conftest import one_new_token
from oracles import exact_diff, exactly_equal, message_of_stream, tool_parameters_schema

pytestmark = pytest.mark.no_cassette

CATEGORIES = {"simple": "BFCL_v4_simple_python.json", "multiple": "BFCL_v4_multiple.json",
              "parallel": "BFCL_v4_parallel.json"}
BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array", "integer": "integer", "string": "string",
              "boolean": "boolean", "array": "array", "any": "any"}
INSTALL = "pip install --no-deps 'bfcl-eval==2026.3.23' (make install does)"


def _data_dir() -> Path | None:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _schema(node: dict[str, Any]) -> dict[str, Any]:
    """A BFCL parameter schema in JSON Schema terms (dict->object, float->number, tuple->array)."""
    out = {k: v for k, v in node.items() if k not in ("properties", "items", "type")}
    if "type" in node:
        out["type"] = BFCL_TYPES.get(node["type"], node["type"])
    if "properties" in node:
        out["properties"] = {k: _schema(v) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = _schema(node["items"])
    return out


def wire_name(name: str) -> str:
    return name.replace(".", "_")


class BfclTool:
    """A BFCL function as a tool in the smolagents shape (name, description, inputs, output_type)."""

    output_type = "string"

    def __init__(self, function: dict[str, Any]) -> None:
        self.name = wire_name(function["name"])
        self.description = function.get("description") or function["name"]
        params = function.get("parameters") or {}
        required = set(params.get("required") or [])
        self.inputs = {}
        for key, spec in (params.get("properties") or {}).items():
            entry = _schema(spec)
            entry.setdefault("description", key)
            if key not in required:
                entry["nullable"] = True
            self.inputs[key] = entry
        self.required = [k for k in params.get("required") or [] if k in self.inputs]

    def __call__(self, **kwargs: Any) -> str:
        return "ok"


def _chosen_value(values: list[Any]) -> tuple[bool, Any]:
    """(present, value): the first acceptable value; "" as the only choice means the argument is left out."""
    present = [v for v in values if v != ""]
    return (True, present[0]) if present else (False, None)


def ground_truth_calls(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for call in answer["ground_truth"]:
        (name, arguments), = call.items()
        chosen = {}
        for key, values in arguments.items():
            present, value = _chosen_value(values)
            if present:
                chosen[key] = value
        calls.append((wire_name(name), chosen))
    return calls


def _cases(category: str) -> list[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]]:
    data = _data_dir()
    if data is None:
        pytest.skip(f"the BFCL data is not installed: {INSTALL}")
    questions = _read(data / CATEGORIES[category])
    answers = {a["id"]: a for a in _read(data / "possible_answer" / CATEGORIES[category])}
    budget = settings.default.max_examples
    every = 1 if os.environ.get("BFCL_CASES") == "all" or budget >= 1000 else 10 if budget >= 25 else 40
    return [(q, ground_truth_calls(answers[q["id"]])) for q in questions[::every]]


def _record(request: Any, checked: int, failed: list[str], total: int) -> None:
    request.node.user_properties.append(("checked_cases", checked))
    request.node.user_properties.append(("observation", f"BFCL: {checked - len(failed)}/{checked} of {total} passed"))


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("category", sorted(CATEGORIES))
@pytest.mark.clause("tools.bfcl", "tools.native-calls-surface", "tools.arguments-dict")
def test_bfcl_native_calls_surface_exactly(request, backend, model, contract, wire, capture, responder,
                                           category):
    cases = _cases(category)
    failed: list[str] = []
    for i, (case, calls) in enumerate(cases):
        tools = [BfclTool(f) for f in case["function"]]
        question = case["question"][0]
        streamed = i % 2 == 1  # every other case streamed, cut inside the argument JSON
        responder.reply = Reply(
            tool_calls=[ToolCallSpec(id=f"call_{j}", name=n, arguments=a) for j, (n, a) in enumerate(calls)],
            argument_pieces=[3, 11, 17], byte_cuts=[50, 333, 334, 700],
        )
        capture.http.clear()
        try:
            if streamed:
                message = message_of_stream(contract, list(model.generate_stream(question, tools_to_call_from=tools)))
            else:
                message = model(question, tools_to_call_from=tools)
            sent = wire.last()
            assert sent.tools == [t.name for t in tools], f"tools offered: {sent.tools}"
            for offered, tool in zip(range(len(tools)), tools):
                # the schema whole: types, enum, items, nesting and descriptions, type-exactly
                schema = lens_of(backend).tool_parameters(sent.raw, offered)
                diff = exact_diff(schema, tool_parameters_schema(tool.inputs))
                assert not diff, f"{tool.name} offered with: " + "; ".join(diff)
            assert sent.texts[-1] == question[-1]["content"]
            parsed = model.parse_tool_calls(message)
            got = [(c.function.name, c.function.arguments) for c in parsed.tool_calls]
            assert exactly_equal(got, calls), "surfaced: " + "; ".join(exact_diff(got, calls))
            assert not (message.content or "").strip(), f"a call leaked into content: {message.content!r}"
        except Exception as exc:  # noqa: BLE001 - every case is judged; all failures are listed below
            failed.append(f"{case['id']}{' (stream)' if streamed else ''}: {type(exc).__name__}: {exc}"[:400])
    _record(request, len(cases), failed, len(cases))
    assert not failed, f"{len(failed)}/{len(cases)} BFCL {category} cases failed:\n" + "\n".join(failed[:10])


@pytest.mark.requires("text_tools")
@pytest.mark.parametrize("category", sorted(CATEGORIES))
@pytest.mark.clause("tools.bfcl", "tools.text-calls-parsed", "tools.arguments-dict")
def test_bfcl_text_calls_surface_exactly(request, backend, model, contract, category):
    """Text-tool engines: each ground-truth call in the text form a model writes, parsed by the contract.

    Reply side only: the text is handed to parse_tool_calls (a call per message, the contract's
    text form); what the engine receives is checked by the chat-template test below.
    """
    cases = _cases(category)
    failed: list[str] = []
    checked = 0
    for case, calls in cases:
        for name, arguments in calls:
            checked += 1
            text = "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + \
                "\n</tool_call>"
            message = contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=text)
            try:
                parsed = model.parse_tool_calls(message)
                got = [(c.function.name, c.function.arguments) for c in parsed.tool_calls]
                assert exactly_equal(got, [(name, arguments)]), "surfaced: " + "; ".join(
                    exact_diff(got, [(name, arguments)]))
            except Exception as exc:  # noqa: BLE001
                failed.append(f"{case['id']}: {type(exc).__name__}: {exc}"[:400])
    _record(request, checked, failed, checked)
    assert not failed, f"{len(failed)}/{checked} BFCL {category} calls failed:\n" + "\n".join(failed[:10])


@pytest.mark.requires("text_tools")
@pytest.mark.clause("tools.bfcl", "tools.chat-template-renders-tools")
def test_bfcl_tools_reach_the_chat_template(backend, model, wire):
    """Local engines, live with one new token: a BFCL case's functions reach the chat template and its prompt."""
    # the case with the shortest function list: the live engine reads the whole prompt for one token
    case, _ = min(_cases("multiple"), key=lambda c: len(json.dumps(c[0]["function"])))
    tools = [BfclTool(f) for f in case["function"]]
    one_token = one_new_token(backend)
    message = model(case["question"][0], tools_to_call_from=tools, **one_token)
    sent = wire.last()
    assert sent.tools == [t.name for t in tools]
    prompt = model.tokenizer.apply_chat_template(sent.raw["messages"], tools=sent.raw["tools"], tokenize=False,
                                                 add_generation_prompt=True)
    for tool in tools:
        assert tool.name in prompt, f"{tool.name} not rendered"
    assert isinstance(message.content, str)
