"""A third-party OpenAI-compatible backend, from an outside distribution, runs the whole suite, faults included.

The distribution is built in a temporary directory and installed there with pip (a ``.dist-info``
with its ``entry_points.txt``), never into this environment. It registers ``acme-chat``: a
provider's OpenAI-compatible endpoint wrapped by its own class, naming the ``openai`` wire, its
settings for every target (the fault suite's stand-in included) and ``replays="openai"`` (it sends
the requests the openai cassettes hold, which the request judge holds it to). Nothing in ``suites/``
names it: what the suites know of its wire comes from its registration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

THIRD_PARTY_MODULE = '''
"""acme-chat: Acme's OpenAI-compatible chat endpoint for model-conformance."""

from harness.backends.registry import backend

API_GENERATION = {"max_tokens": 48, "temperature": 0.0}


def settings(target):
    if target.mode == "stand-in":  # the fault suite's loopback stand-in, with its read timeout
        return {"model_id": target.served_model_id, "api_base": target.base_url, "api_key": target.api_key,
                "client_kwargs": {"timeout": target.timeout}}
    return {"model_id": target.served_model_id, "api_base": target.base_url, "api_key": target.api_key,
            **API_GENERATION}


@backend("acme-chat", extra="openai", modules=("openai",), libraries=("openai", "acme-chat-backend"), kind="http",
         wire_format="openai", settings=settings, replays="openai",
         capabilities=("tools", "native_tools", "stream", "stop_parameter", "structured_output", "token_usage"),
         description="Acme chat (OpenAI-compatible; third-party test distribution)")
def load():
    from adapters.openai import OpenAIServerModel

    class AcmeChatModel(OpenAIServerModel):
        """Acme's endpoint speaks the OpenAI wire; its errors name it."""

        backend_name = "acme-chat"

    return AcmeChatModel
'''

THIRD_PARTY_PYPROJECT = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-chat-backend"
version = "0.0.1"

[project.entry-points."model_conformance.backends"]
acme = "acme_chat"

[tool.setuptools]
py-modules = ["acme_chat"]
'''


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution built and installed with pip into a directory of its own (not this environment)."""
    source = tmp_path_factory.mktemp("acme-src")
    (source / "pyproject.toml").write_text(textwrap.dedent(THIRD_PARTY_PYPROJECT), encoding="utf-8")
    (source / "acme_chat.py").write_text(THIRD_PARTY_MODULE, encoding="utf-8")
    site = tmp_path_factory.mktemp("acme-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        check=True, capture_output=True, text=True,
    )
    assert list(site.glob("acme_chat_backend-0.0.1.dist-info/entry_points.txt"))
    return site


def test_the_whole_suite_runs_on_a_third_party_openai_wire_backend(pytester: pytest.Pytester, acme_site: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(acme_site), os.environ.get("PYTHONPATH")])))
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    result = pytester.runpytest_subprocess(
        str(ROOT / "suites"), "--backend=acme-chat", f"--cassette-dir={ROOT / 'cassettes'}",
        "--server=transformers-serve", "-p", "no:anyio", "-v", "-rfEs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()[-6000:]
    assert outcomes["passed"] >= 150, outcomes  # the whole suite, not a handful
    # the transport faults: those of every wire and the OpenAI wire's own passed (content filter included), the
    # 11 of Bedrock's skipped
    out = result.stdout.str()
    faults = re.findall(r"test_fault\[acme-chat-([\w-]+)\] (PASSED|SKIPPED|FAILED)", out)
    assert len([f for f, verdict in faults if verdict == "PASSED"]) == 36, faults
    # skipped: the Bedrock wire's own faults, the answers only Hugging Face's servers give (the inference-client
    # backend's), and the faults of a client option only the openai SDK's client takes (openai and azure)
    assert sorted(f for f, verdict in faults if verdict == "SKIPPED") == [
        "400-named-by-its-trace-id", "500-message-in-its-header",
        "bedrock-ModelNotReadyException", "bedrock-ModelTimeoutException", "bedrock-ThrottlingException",
        "bedrock-ValidationException", "bedrock-context-window-cut-tool-call", "bedrock-malformed_model_output",
        "bedrock-malformed_tool_use-stream", "bedrock-message-without-content", "bedrock-stream-checksum-mismatch",
        "bedrock-stream-error-echoing-the-key", "bedrock-stream-error-event",
        "strict-client-answer-not-json", "strict-client-message-not-an-object",
        "strict-client-stream-event-not-a-chunk"], faults
    result.stdout.fnmatch_lines(["*test_fault?acme-chat-content-filter-400? PASSED*",
                                 "*bedrock-ThrottlingException is a fault of the bedrock wire only*"])
    result.stdout.fnmatch_lines(["*400-named-by-its-trace-id is an answer of inference-client only*"])
    # the requests it sent were judged against the openai recordings it replays
    assert "model-conformance checked cases per backend: acme-chat " in out


def test_a_wire_the_suites_do_not_know_is_read_by_the_lens_its_registration_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    monkeypatch.syspath_prepend(str(ROOT / "suites"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "acme_lens.py").write_text(textwrap.dedent('''
        from wires import OpenAIChatLens

        class AcmeLens(OpenAIChatLens):
            """Acme's wire: chat completions whose stream is asked for by a query flag."""

            name = "acme-wire"

            def is_stream(self, url, body):
                return url.endswith("?stream=1")

        LENS = AcmeLens()
    '''), encoding="utf-8")
    import wires

    own = SimpleNamespace(name="acme", wire_format="acme-wire", wire_lens="acme_lens:LENS")
    lens = wires.lens_of(own)
    assert lens.name == "acme-wire" and lens.is_stream("https://acme.test/chat?stream=1", {})
    assert wires.lens_of(SimpleNamespace(name="o", wire_format="openai", wire_lens=None)) is wires.WIRES["openai"]
    with pytest.raises(LookupError, match=r"'acme' speaks wire 'acme-wire'.*wire_lens='module:object'"):
        wires.lens_of(SimpleNamespace(name="acme", wire_format="acme-wire", wire_lens=None))
