"""suites/oracles.py's reading of an error that must name something: a parameter, as a word of its own, spelt as
passed; the exception it stands for (errors.names-its-cause), by its class or its own first words."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def oracles():
    spec = importlib.util.spec_from_file_location("_suites_oracles", ROOT / "suites" / "oracles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("text", [
    "AzureOpenAIServerModel needs `api_key`: pass api_key=...",
    "api_key missing",
    "got token and api_key; pass one",
    "(api_key)",
])
def test_a_parameter_named_as_a_word_of_its_own(oracles, text):
    assert oracles.names(text, "api_key")


@pytest.mark.parametrize("text", [
    "needs `XXapi_keyXX`",  # a name inside a longer word is not named
    "needs API_KEY",  # nor in another case
    "set AZURE_OPENAI_API_KEY",
    "needs api_keys",
    "set my_api_key",  # an underscore joins words: a name inside another identifier is not named
    "needs api-key",
    "",
])
def test_a_parameter_inside_another_word_or_spelt_otherwise_is_not_named(oracles, text):
    assert not oracles.names(text, "api_key")


class Typed(Exception):
    """Stands for the harness's own error type."""


class ReadTimeout(Exception):
    pass


def _raised(text: str, cause: BaseException) -> Typed:
    try:
        try:
            raise cause
        except Exception as exc:
            raise Typed(text) from exc
    except Typed as typed:
        return typed


def _through_one_more(text: str, cause: BaseException) -> Typed:
    """``cause`` two links down: Typed from RuntimeError('wrapper') from ``cause``."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise RuntimeError("wrapper") from exc
    except RuntimeError as wrapper:
        return _raised(text, wrapper)


@pytest.mark.parametrize("text", [
    "backend: the request timed out: ReadTimeout: timed out (kind=timeout)",
    "backend: the request timed out: The read operation timed out after 5 s (kind=timeout)",
    "backend: no deployment available: The read operation timed out after 5 s (kind=timeout)",
])
def test_a_cause_named_by_its_class_or_its_first_words(oracles, text):
    assert oracles.unnamed_cause(_raised(text, ReadTimeout("The read operation timed out after 5 s")),
                                 own=(Typed,)) is None


def test_a_cause_further_down_the_chain_is_named_too(oracles):
    assert oracles.unnamed_cause(_through_one_more("failed: ReadTimeout: x", ReadTimeout("x")), own=(Typed,)) is None


@pytest.mark.parametrize("text", [
    "backend: the request timed out: NoneType: None (kind=timeout)",  # the exception lost
    "backend: the request timed out (kind=timeout)",  # only the kind
    "backend: the request timed out: READTIMEOUT (kind=timeout)",  # not as spelt
    "backend: the request timed out: XXReadTimeoutXX (kind=timeout)",  # not a word of its own
    "backend: XXXXThe read operation timed out after 5 s (kind=timeout)",  # the first words not beginning a word
    "backend: The read operation timed (kind=timeout)",  # fewer than the first words
])
def test_an_error_that_loses_its_cause_is_told(oracles, text):
    found = oracles.unnamed_cause(_raised(text, ReadTimeout("The read operation timed out after 5 s")), own=(Typed,))
    assert found is not None and "ReadTimeout" in found


def test_the_harness_own_types_do_not_count_as_the_cause(oracles):
    inner = _raised("inner", ReadTimeout("elsewhere"))
    assert oracles.unnamed_cause(_raised("outer names Typed", inner), own=(Typed,)) is not None
    assert oracles.unnamed_cause(_raised("outer names Typed", inner)) is None  # without `own`: named by class


def test_an_error_raised_from_nothing_names_nothing(oracles):
    found = oracles.unnamed_cause(Typed("backend: failed"), own=(Typed,))
    assert found is not None and "nothing" in found
