"""suites/oracles.py's reading of an error that must name a parameter: as a word of its own, spelt as passed."""

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
