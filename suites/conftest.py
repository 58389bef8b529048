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
from wires import lens_of

from harness.plugin.answers import declare
from harness.plugin.clauses import use_registry
from harness.plugin.replay import played_requests
from harness.plugin.run_log import RESULT_PROPERTY
from harness.plugin.server_findings import use_server_findings
from harness.recording.scan import redacting_example_database
from oracles import exact_diff, exactly_equal, read_openai, request_diff

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
    use_server_findings(config, Path(__file__).with_name("server_findings.yaml"))  # what a server gets wrong
    config.addinivalue_line(
        "markers", "free_fields(*fields): request fields (body.temperature, query.api-version, path) that this "
        "check lets differ from the recording in replay, and contract fields (tool_choice, max_tokens, temperature, "
        "top_p) that it sets itself where the responder answers")


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


def judge_by_contract(item: pytest.Item) -> list[str]:
    """Each request of ``item`` that the recorded-reply responder answered (no recording to compare with),
    against what the contract says it must hold: the sampling parameters the model was built with
    (model.kwargs-at-instantiation) and, where tools are offered without a tool_choice, a required call
    (tools.default-choice-required). A check that passes its own values declares them free."""
    funcargs = getattr(item, "funcargs", {})
    backend, capture = funcargs.get("backend"), funcargs.get("capture")
    if funcargs.get("responder") is None or backend is None or capture is None:
        return []
    free = {str(f) for mark in item.iter_markers("free_fields") for f in mark.args}
    lens = lens_of(backend)
    from harness.backends.registry import Target

    given = {k: v for k, v in lens.sampling(backend.settings(Target(mode="replay"))).items() if k not in free}
    problems = []
    for number, request in enumerate(capture.http):
        body = request.body
        if not isinstance(body, dict) or lens.read(body) is None:
            continue
        where = f"request {number} ({request.method} {request.url.split('?')[0]})"
        sent = lens.sampling(body)
        diff = exact_diff({k: sent.get(k, "<not sent>") for k in given}, given, "sampling")
        problems += [f"{where}: {line} (given when the model was built)" for line in diff]
        if "tool_choice" not in free and lens.read(body).tools:
            expected = lens.tool_choices["required"]
            if not exactly_equal(lens.tool_choice(body), expected):
                problems.append(f"{where}: tools offered with tool choice {lens.tool_choice(body)!r}, expected "
                                f"{expected!r} (a call without tool_choice asks for a tool call)")
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    # replay answers by method, endpoint and order; what was sent is judged here, once the check passed:
    # against the recording, and where a responder answered, against what the contract says
    result = yield
    problems = judge_played(item) + judge_by_contract(item)
    if problems:
        # the recorded answer belongs to another request: the row says so (the report does not count such a
        # failure as a contract break of the implementation; a live run judges it)
        item.user_properties.append(("request_differs", True))
        pytest.fail("\n".join(problems), pytrace=False)
    return result


_CHECKED: Counter[str] = Counter()
_INDEPENDENT: dict[tuple[str, ...], int] = {}
BACKEND_REACHED = "backend_reached"


def mark_backend_reached(node: pytest.Item) -> None:
    """Say that this check reached the backend's wire where the suites' own lens cannot see it (a stand-in)."""
    node.user_properties.append((BACKEND_REACHED, True))


def backend_reached(item: pytest.Item) -> bool:
    """Whether the check exercised the backend's wire or engine: a request or chat-template input captured,
    a recorded-reply responder or a cassette that answered it, or a stand-in that said so."""
    funcargs = getattr(item, "funcargs", {})
    capture = funcargs.get("capture")
    if capture is not None and (capture.http or capture.templates):
        return True
    responder = funcargs.get("responder")
    if responder is not None and responder.requests:
        return True
    return bool(played_requests(item)) or any(k == BACKEND_REACHED and v for k, v in item.user_properties)


def _check_key(item: pytest.Item) -> tuple[str, ...]:
    """The check without its backend and message form: what a backend-independent check is counted once as."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    rest = tuple(f"{k}={v!r}" for k, v in sorted(params.items()) if k not in ("backend_name", "message_types"))
    return (str(item.path.name), getattr(item, "originalname", item.name), *rest)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("backend_name") if callspec is not None else None
    if backend and report.when == "call":
        # carried by the report, so that a pytest-xdist controller counts its workers' cases too
        # (a new list: the report may share item.user_properties); a check that never reached the
        # backend's wire or engine (a parsing helper, a check refused before sending) judged shared
        # code only: it is counted once, not once per backend and message form
        reached = backend_reached(item)
        if reached:
            counted: tuple[str, Any] = ("checked_backend", backend)
        else:
            counted = ("checked_independent", "|".join(_check_key(item)))
        for key, row in report.user_properties:
            if key == RESULT_PROPERTY:  # the results row: the report counts by it too
                row["extra"] = {**(row.get("extra") or {}), BACKEND_REACHED: reached}
        report.user_properties = [*report.user_properties, counted]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.passed:
        return
    properties = dict(report.user_properties)
    generated = [n for k, n in report.user_properties if k == "checked_cases"]
    cases = sum(generated) if generated else 1
    if properties.get("checked_backend"):
        _CHECKED[properties["checked_backend"]] += cases
    elif properties.get("checked_independent"):
        key = (properties["checked_independent"],)
        _INDEPENDENT[key] = max(_INDEPENDENT.get(key, 0), cases)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Checked cases: per backend those that reached its wire or engine (a passed test once, a property
    test once per generated example); the checks that reached none counted once, whatever the backends."""
    if _CHECKED or _INDEPENDENT:
        figures = ", ".join(f"{backend} {n}" for backend, n in sorted(_CHECKED.items())) or "none"
        terminalreporter.write_line(f"model-conformance checked cases per backend: {figures}; backend-independent "
                                    f"(no wire or engine reached, counted once): {sum(_INDEPENDENT.values())}")


@pytest.fixture
def responder(request: pytest.FixtureRequest, backend: Any, pytestconfig: pytest.Config, capture: Any) -> Any:
    """The recorded-reply responder of this backend (the suites' one fake), answering every request meanwhile."""
    if backend.kind != "http":
        pytest.skip(f"{backend.name} runs in-process: no transport to answer at")
    declare(request.node, "responder")  # in --mode live too: the endpoint never sees these requests
    root = Path(pytestconfig.getoption("--cassette-dir") or Path(str(pytestconfig.rootpath)) / "cassettes")
    sources = [backend.name, *([backend.replays] if getattr(backend, "replays", None) else [])]
    with RecordedReplyResponder(sources, lens_of(backend), root).active() as fake:
        yield fake


@pytest.fixture
def stand_in(request: pytest.FixtureRequest, backend: Any, pytestconfig: pytest.Config) -> Any:
    """The recorded-reply responder, or None where the target answers this check itself (a check marked
    ``live_target``, in --mode live)."""
    if (pytestconfig.getoption("--mode") == "live" and backend.kind == "http"
            and request.node.get_closest_marker("live_target") is not None):
        return None
    return request.getfixturevalue("responder")


def tool_parameters(backend: Any, raw: Any) -> Any:
    """The JSON schema of the first tool's parameters, as the backend's wire carries it (chat templates:
    the chat-completions shape)."""
    return lens_of(backend).tool_parameters(raw)


@pytest.fixture
def wire(backend: Any, capture: Any) -> Any:
    """The outgoing requests of this test, read by the suites' own lens of the backend's wire
    (``wires.lens_of``; chat-template inputs read as chat-completions bodies), or by the backend's
    own registered reader."""

    class Wire:
        def calls(self) -> list[Any]:
            if backend.wire_format == "chat_template":
                return [read_openai(t) for t in capture.templates]
            if backend.wire_format == "custom":
                return [read_openai(t) for t in capture.templates] + [
                    call for call in (read_openai(r.body) for r in capture.http) if call is not None and call.messages]
            if backend.request_reader is not None:
                return [c for c in map(backend.request_reader, capture.http) if c is not None]
            lens = lens_of(backend)
            return [c for c in (lens.read(r.body) for r in capture.http) if c is not None]

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
