"""--backend=custom: a user's own model, named by --model-factory, judged by the same suites."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import ChatMessage, Model, Request
from harness.backends.custom import (
    CallableModel,
    UnsupportedSettings,
    build_custom_model,
    custom_capabilities,
    load_model_factory,
    missing_reason,
)
from harness.contract.errors import HarnessError

ROOT = Path(__file__).resolve().parent.parent
UNUSED_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:anyio")


# -- naming the model: clear errors -------------------------------------------------------------

def test_factory_not_of_the_form_module_attr():
    with pytest.raises(HarnessError, match=r"'examples\.custom_models' is not of the form pkg\.module:attr; it names "
                                           r"a Model subclass, a model instance"):
        load_model_factory("examples.custom_models")


def test_factory_module_not_importable_names_the_module():
    with pytest.raises(HarnessError, match=r"cannot import module 'no_such_pkg\.models' \(ModuleNotFoundError"):
        load_model_factory("no_such_pkg.models:model")


def test_factory_attribute_missing_lists_what_the_module_defines():
    with pytest.raises(HarnessError) as info:
        load_model_factory("examples.custom_models:no_such_model")
    text = str(info.value)
    assert "module 'examples.custom_models' has no attribute 'no_such_model'" in text
    assert "custom_model" in text and "EmbeddedChatModel" in text  # what it does define


def test_factory_that_is_not_callable_says_what_was_expected():
    with pytest.raises(HarnessError, match=r"is 48 of type int, which is neither callable nor a model; expected a "
                                           r"Model subclass"):
        load_model_factory("examples.custom_models:MAX_NEW_TOKENS")


def test_plain_callable_without_stop_sequences_is_refused():
    def model(messages):
        return "hi"

    with pytest.raises(HarnessError, match=r"takes no stop_sequences argument; the documented form is "
                                           r"custom_model\(messages, stop_sequences=None\)"):
        build_custom_model(model, {}, "--model-factory=x:model")


# -- what a plain callable is given and what it returns -----------------------------------------

def _recording_callable(reply):
    calls = []

    def custom_model(messages, stop_sequences=None):
        calls.append({"messages": messages, "stop_sequences": stop_sequences})
        return reply

    return custom_model, calls


def test_plain_callable_gets_normalised_messages_and_its_answer_is_not_cut():
    fn, calls = _recording_callable(SimpleNamespace(content="Monday, Tuesday, END and more"))
    model = build_custom_model(fn, {}, "x:custom_model")
    assert isinstance(model, CallableModel)
    message = model(
        [{"role": "system", "content": "Be brief."}, {"role": "tool-response", "content": "Sunny"},
         {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
        stop_sequences=["END"],
    )
    # tool-response became a user turn and merged with the next user message; the stop was forwarded
    sent = calls[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["stop_sequences"] == ["END"]
    # stopping is the callable's part: the wrapper returns what it answered, stop included
    assert message.content == "Monday, Tuesday, END and more"


def test_plain_callable_returning_a_string_or_without_content():
    model = build_custom_model(_recording_callable("plain text")[0], {}, "x:f")
    assert model([{"role": "user", "content": "hi"}]).content == "plain text"
    broken = build_custom_model(_recording_callable(42)[0], {}, "x:f")
    with pytest.raises(TypeError, match="returned 42 of type int, which has no .content"):
        broken([{"role": "user", "content": "hi"}])


def test_grammar_is_passed_only_to_a_callable_that_takes_it():
    seen = {}

    def with_grammar(messages, stop_sequences=None, grammar=None):
        seen["grammar"] = grammar
        return SimpleNamespace(content="{}")

    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    model = build_custom_model(with_grammar, {}, "x:f")
    model([{"role": "user", "content": "hi"}], response_format=schema)
    assert seen["grammar"] == schema
    assert "structured_output" in custom_capabilities(model)
    plain = build_custom_model(_recording_callable(SimpleNamespace(content="x"))[0], {}, "x:f")
    with pytest.raises(ValueError, match="takes no grammar argument"):
        plain([{"role": "user", "content": "hi"}], response_format=schema)


def test_plain_callable_capabilities_and_skip_reasons():
    model = build_custom_model(_recording_callable("x")[0], {}, "x:f")
    assert custom_capabilities(model) == {"stop_parameter"}
    assert "cannot stream" in missing_reason(model, "stream")
    assert "no token usage" in missing_reason(model, "token_usage")


# -- classes, instances, factories --------------------------------------------------------------

class _Echo(Model):
    def __init__(self, prefix: str = "", **kwargs):
        super().__init__(**kwargs)
        self.prefix = prefix

    def _generate(self, request: Request) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.prefix + request.messages[-1]["content"][0]["text"])


def test_class_instance_and_factory_forms():
    built = build_custom_model(_Echo, {"prefix": "> "}, "x:_Echo")
    assert isinstance(built, _Echo) and built.prefix == "> "
    instance = _Echo()
    assert build_custom_model(instance, {}, "x:echo") is instance
    with pytest.raises(UnsupportedSettings, match="is a model instance; this test builds the model with"):
        build_custom_model(instance, {"flatten_messages_as_text": True}, "x:echo")
    assert isinstance(build_custom_model(lambda: _Echo(prefix="!"), {}, "x:make"), _Echo)
    fn, _ = _recording_callable("x")
    assert isinstance(build_custom_model(lambda: fn, {}, "x:make"), CallableModel)
    with pytest.raises(HarnessError, match="returned 3 of type int"):
        build_custom_model(lambda: 3, {}, "x:make")


def test_model_capabilities_declared_or_inferred():
    class Declared(_Echo):
        capabilities = ("tools", "native_tools")

    assert custom_capabilities(Declared()) == {"tools", "native_tools"}
    assert custom_capabilities(_Echo()) == {"tools", "token_usage"}  # no streaming, no tokenizer

    class Streams(_Echo):
        def _generate_stream(self, request):
            yield from ()

    assert "stream" in custom_capabilities(Streams())


# -- the plugin: usage errors, and the suites judging real models -------------------------------

def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*UNUSED_PLUGINS, *args)


@pytest.fixture
def on_path(monkeypatch):
    """The repository root on the subprocess' path, so that ``examples`` imports in a fresh clone too."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def test_backend_custom_without_a_factory_is_a_usage_error(pytester):
    result = _run(pytester, "--backend=custom")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --backend=custom needs --model-factory=pkg.module:attr naming a Model "
                                 "subclass, a model instance (with generate), a factory returning one, or a plain "
                                 "callable custom_model(messages, stop_sequences=None) returning an object with "
                                 ".content"])


def test_bad_factory_is_a_usage_error_before_any_test(pytester, on_path):
    result = _run(pytester, "--backend=custom", "--model-factory=examples.custom_models:nothing_here")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --model-factory='examples.custom_models:nothing_here': module "
                                 "'examples.custom_models' has no attribute 'nothing_here'. It defines: *"])


NAIVE = '''
from examples.custom_models import Reply, custom_model

_ASKED = {}


def naive_stops(messages, stop_sequences=None):
    """Cuts before the stop that starts first, a common mistake: the stop that completes first must win."""
    key = repr(messages)
    if key not in _ASKED:  # greedy: the same conversation gives the same text, so ask the model once
        _ASKED[key] = custom_model(messages).content
    text = _ASKED[key]
    starts = [text.find(stop) for stop in stop_sequences or [] if stop in text]
    return Reply(content=text[: min(starts)] if starts else text)
'''


@pytest.fixture
def embedded_engine(monkeypatch):
    """The examples' transformers engine, loaded once in this process for the in-process suite runs."""
    from examples import custom_models
    from harness.backends import registry

    monkeypatch.syspath_prepend(str(ROOT))
    # the in-process runs register the "custom" backend; later tests see the registry as it was
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    custom_models._engine()
    yield
    custom_models._LOADED.clear()  # the weights are not kept for the rest of the session


def test_the_stop_suite_certifies_the_callable_example_and_fails_a_naive_one(pytester, embedded_engine):
    """Real generation (transformers on the embedded model) through the documented plain-callable form.

    In-process runs share one loaded engine; two checks only (one generates twice, one refuses bad
    input before calling the model): the full suites on the examples are the commands in the README.
    """
    suite = str(ROOT / "suites" / "test_stop_sequences.py")
    good = pytester.runpytest_inprocess(suite, "--backend=custom",
                                        "--model-factory=examples.custom_models:custom_model",
                                        "-k", "overlapping or empty", "-rs", "-p", "no:randomly")
    good.assert_outcomes(passed=2)
    good.stdout.fnmatch_lines(["*custom = --model-factory=examples.custom_models:custom_model*"])
    pytester.makepyfile(naive=NAIVE)
    pytester.syspathinsert()
    bad = pytester.runpytest_inprocess(suite, "--backend=custom", "--model-factory=naive:naive_stops",
                                       "-k", "overlapping", "-p", "no:randomly")
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines(["*test_overlapping_stops_inside_one_word?custom?*", "*stops * got *expected*"])


class _Strict(Model):
    def __init__(self, only: str = "") -> None:
        super().__init__()

    def _generate(self, request: Request) -> ChatMessage:
        return ChatMessage(role="assistant", content="x")


def test_a_class_that_takes_the_arguments_raises_its_own_error_on_a_bad_value():
    # the suites pass a bad value on purpose (custom_role_conversions={"system": 42}) and expect the
    # class's own TypeError naming it, not "cannot be built"
    with pytest.raises(TypeError, match=r"custom_role_conversions.*42"):
        build_custom_model(_Echo, {"custom_role_conversions": {"system": 42}}, "x:_Echo")
    # a class that does not take an argument a test asks for still cannot be built with it
    with pytest.raises(HarnessError, match=r"class _Strict cannot be built with \{'flatten_messages_as_text': True\}"):
        build_custom_model(_Strict, {"flatten_messages_as_text": True}, "x:_Strict")
