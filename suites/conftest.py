"""Shared fixtures and prompts of the conformance suites."""

from __future__ import annotations

import importlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, settings
from responder import RecordedReplyResponder

from harness.plugin.answers import declare
from harness.plugin.clauses import use_registry
from harness.plugin.replay import played_requests
from harness.recording.scan import redacting_example_database
from oracles import WIRE_READERS, read_openai, request_diff

# Profiles of the property suites (HYPOTHESIS_PROFILE selects; ci is the default here, so that
# `make test` is reproducible): ci derandomized and bounded, dev hypothesis' own defaults, nightly
# thousands of examples per property, mutation a short derandomized run per mutant.
# Every profile that stores examples stores them through the redaction (harness.contract.secrets).
_DEFAULT = settings(settings.get_profile("default"), database=redacting_example_database())
settings.register_profile("ci", parent=_DEFAULT, derandomize=True, max_examples=25, deadline=None, print_blob=True)
settings.register_profile("dev", parent=_DEFAULT)
settings.register_profile("nightly", parent=_DEFAULT, max_examples=3000, deadline=None)
# mutation: the suites as the judge of many mutants, each run kept short (tools/mutation.py): a
# failing example kills the mutant as it is, so it is not shrunk, and nothing is stored
settings.register_profile("mutation", parent=_DEFAULT, derandomize=True, max_examples=12, deadline=None,
                          database=None, phases=[Phase.explicit, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci")

# Prompts that make even the 135M embedded model write several plain words.
WEEK_PROMPT = "Name the days of the week, from Monday to Sunday, separated by commas."
STORY_PROMPT = "Write three short sentences about a cat who likes the sun."


class WeatherTool:
    """A tool in the smolagents shape (name, description, inputs, output_type), usable by either subject."""

    name = "get_weather"
    description = "Get the current weather for a city."
    inputs = {"city": {"type": "string", "description": "The city name, e.g. Paris"}}
    output_type = "string"

    def __call__(self, city: str) -> str:
        return f"Sunny in {city}"


@pytest.fixture
def contract(subject: str) -> Any:
    """The subject's contract types: this project's ``harness`` or ``smolagents.models``."""
    return importlib.import_module("smolagents.models" if subject == "smolagents" else "harness")


@pytest.fixture
def weather_tool() -> WeatherTool:
    """A get_weather(city) tool."""
    return WeatherTool()


def text_of(message: Any) -> str:
    """A returned message's content as one string."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def raw_text(message: Any) -> str | None:
    """The text the backend itself returned, before any client-side processing, if it can be read."""
    raw = message.raw

    def get(obj: Any, key: Any) -> Any:
        if obj is None:
            return None
        if isinstance(obj, dict):
            return obj.get(key)
        if isinstance(obj, list):
            return obj[key] if isinstance(key, int) and len(obj) > key else None
        return getattr(obj, key, None)

    for path in (("choices", 0, "message", "content"), ("output", "message", "content", 0, "text")):
        value = raw
        for key in path:
            value = get(value, key)
        if isinstance(value, str):
            return value
    return None


def distinct_words(text: str, min_len: int = 5, skip_chars: int = 1) -> list[str]:
    """Words of ``text`` in order of first occurrence, none inside another, none at its very start."""
    words: list[str] = []
    for match in re.finditer(rf"[A-Za-z]{{{min_len},}}", text):
        word = match.group(0)
        if match.start() < skip_chars or text.find(word) != match.start():
            continue
        if any(word in w or w in word for w in words):
            continue
        words.append(word)
    return words


def assert_usage(message: Any) -> None:
    """Token usage is filled and adds up."""
    usage = message.token_usage
    assert usage is not None, "token_usage is None"
    assert usage.input_tokens > 0, f"input_tokens={usage.input_tokens}"
    assert usage.output_tokens > 0, f"output_tokens={usage.output_tokens}"
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def one_new_token(backend: Any) -> dict[str, Any]:
    """The keyword that makes a local engine generate one token; a custom model gets none (its own settings)."""
    if backend.kind == "custom":
        return {}
    return {"max_tokens": 1} if backend.name in ("mlx", "vllm") else {"max_new_tokens": 1}


def assert_stop_on_wire(backend: Any, sent: Any, stops: list[str]) -> None:
    """The stops went out as given where the backend takes a stop parameter; none went out elsewhere."""
    if "stop_parameter" in backend.capabilities:
        expected = list(dict.fromkeys(stops)) or None
    else:
        expected = None  # local engines stop inside the engine; nothing is sent
    assert (sent.stop or None) == expected, f"stop on the wire: {sent.stop!r}, expected {expected!r}"


def pytest_configure(config: pytest.Config) -> None:
    use_registry(config, Path(__file__).with_name("clauses.yaml"))  # every check names its clauses there
    config.addinivalue_line(
        "markers", "free_fields(*fields): request fields (body.temperature, query.api-version, path) that this "
        "check lets differ from the recording in replay")


def judge_played(item: pytest.Item) -> list[str]:
    """Each request of ``item`` that replay answered, compared with the recorded one: the differences found."""
    free = [str(f) for mark in item.iter_markers("free_fields") for f in mark.args]
    problems = []
    for played in played_requests(item):
        diff = request_diff(played.sent_body, played.recorded_body, played.sent_query, played.recorded_query,
                            played.sent_path, played.recorded_path, free)
        if diff:
            problems.append(f"the request sent differs from the one recorded in {played.cassette}, interaction "
                            f"{played.interaction} ({played.method} {played.recorded_path}):\n    "
                            + "\n    ".join(diff))
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    # replay answers by method, endpoint and order; what was sent is judged here, once the check passed
    result = yield
    problems = judge_played(item)
    if problems:
        # the recorded answer belongs to another request: the row says so (the report does not count such a
        # failure as a contract break of the implementation; a live run judges it)
        item.user_properties.append(("request_differs", True))
        pytest.fail("\n".join(problems), pytrace=False)
    return result


_CHECKED: Counter[str] = Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("backend_name") if callspec is not None else None
    if backend and report.when == "call":
        # carried by the report, so that a pytest-xdist controller counts its workers' cases too
        # (a new list: the report may share item.user_properties)
        report.user_properties = [*report.user_properties, ("checked_backend", backend)]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.passed:
        return
    properties = dict(report.user_properties)
    backend = properties.get("checked_backend")
    if backend:
        generated = [n for k, n in report.user_properties if k == "checked_cases"]
        _CHECKED[backend] += sum(generated) if generated else 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Checked cases per backend: a passed test counts once, a property test once per generated example."""
    if _CHECKED:
        figures = ", ".join(f"{backend} {n}" for backend, n in sorted(_CHECKED.items()))
        terminalreporter.write_line(f"model-conformance checked cases per backend: {figures}")


@pytest.fixture
def responder(request: pytest.FixtureRequest, backend: Any, pytestconfig: pytest.Config, capture: Any) -> Any:
    """The recorded-reply responder of this backend (the suites' one fake), answering every request meanwhile."""
    if backend.kind != "http":
        pytest.skip(f"{backend.name} runs in-process: no transport to answer at")
    declare(request.node, "responder")  # in --mode live too: the endpoint never sees these requests
    root = Path(pytestconfig.getoption("--cassette-dir") or Path(str(pytestconfig.rootpath)) / "cassettes")
    with RecordedReplyResponder(backend.name, backend.wire_format, root).active() as fake:
        yield fake


def tool_parameters(backend: Any, raw: Any) -> Any:
    """The JSON schema of the first tool's parameters, as the backend's wire format carries it."""
    if backend.wire_format == "bedrock":
        return raw["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]
    return raw["tools"][0]["function"]["parameters"]  # the OpenAI shape, also what chat templates receive


@pytest.fixture
def wire(backend: Any, capture: Any) -> Any:
    """The outgoing requests of this test, read by the suites' own lens (``oracles.read_openai``,
    ``oracles.read_converse``; chat-template inputs read as chat-completions bodies), or by the
    backend's own registered reader."""

    class Wire:
        def calls(self) -> list[Any]:
            if backend.wire_format == "chat_template":
                return [read_openai(t) for t in capture.templates]
            if backend.wire_format == "custom":
                return [read_openai(t) for t in capture.templates] + [
                    call for call in (read_openai(r.body) for r in capture.http) if call is not None and call.messages]
            if backend.request_reader is not None:
                return [c for c in map(backend.request_reader, capture.http) if c is not None]
            reader = WIRE_READERS.get(backend.wire_format)
            if reader is None:
                raise ValueError(f"no request reader for wire format {backend.wire_format!r}; the suites read "
                                 f"{', '.join(WIRE_READERS)} and chat_template, or a backend's registered reader")
            return [c for c in (reader(r.body) for r in capture.http) if c is not None]

        def last(self) -> Any:
            calls = self.calls()
            if not calls and backend.kind == "custom":
                pytest.skip("custom: the request this model sends cannot be observed (no chat template on its "
                            "`tokenizer`, no HTTP through httpx or botocore, not a plain callable); the checks "
                            "of its reply before this point passed")
            if not calls:
                raise AssertionError(f"no outgoing request was captured ({backend.wire_format} wire)")
            return calls[-1]

    return Wire()
