"""Live runs against the user's own endpoint, and a third-party backend installed as a distribution.

The "user's endpoint" here is the harness's own local server (transformers serve on the embedded
model), started once on 127.0.0.1 for this module; the suites are pointed at it with --base-url,
so the plugin starts no server of its own. Each run selects a handful of checks (dicts only: the
smolagents-typed form is the replay suites' business) to keep the generation on two cores short.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNUSED_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:anyio")
OPENAI_WIRE = "openai,inference-client,litellm,litellm-router"
ONE_CHECK = "string_content and not smolagents_types"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[str, str]]:
    """(base URL, model id) of a local server standing in for the user's deployment."""
    from harness.servers.local import LocalOpenAIServer

    server = LocalOpenAIServer()
    server.start()
    try:
        yield server.base_url, server.model_id
    finally:
        server.stop()


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*UNUSED_PLUGINS, *args)


def test_live_run_targets_the_given_endpoint(pytester, endpoint):
    base_url, model_id = endpoint
    suite = str(ROOT / "suites" / "test_message_format.py")
    results = pytester.path / "results.jsonl"
    result = _run(pytester, suite, f"--backend={OPENAI_WIRE}", "--mode=live", f"--base-url={base_url}",
                  f"--model-id={model_id}", "--api-key=user-key", "-k", ONE_CHECK, f"--results={results}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"model-conformance: live target {base_url} (from --base-url), model {model_id}*"])
    import json

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert {(r["mode"], r["server"], r["target"], r["endpoint"], r["model"], r["answered_by"]) for r in rows} == {
        ("live", None, f"endpoint={base_url}", base_url, model_id, "target")}


def test_live_run_reads_the_sdk_environment_and_never_falls_back(pytester, endpoint, monkeypatch):
    base_url, model_id = endpoint
    suite = str(ROOT / "suites" / "test_message_format.py")
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "user-key")
    ok = _run(pytester, suite, "--backend=openai", "--mode=live", f"--model-id={model_id}", "-k", ONE_CHECK)
    ok.assert_outcomes(passed=1)
    ok.stdout.fnmatch_lines([f"*live target {base_url} (from $OPENAI_BASE_URL)*"])
    # an endpoint that answers with an error (here a path the server does not serve: a 404) stops the
    # session before any check, naming the URL: the run never quietly uses a server of its own instead
    wrong = base_url.replace("/v1", "/not-served/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", wrong)
    dead = _run(pytester, suite, "--backend=openai", "--mode=live", f"--model-id={model_id}", "-k", ONE_CHECK)
    assert dead.ret == pytest.ExitCode.USAGE_ERROR
    dead.stderr.fnmatch_lines([f"  openai: GET {wrong}/models answered HTTP 404*"])


def test_the_embedded_server_answers_the_models_list(endpoint):
    import json
    import urllib.request

    base_url, _ = endpoint
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    with opener.open(f"{base_url}/models", timeout=30) as answer:
        assert answer.status == 200
        assert json.loads(answer.read())["object"] == "list"


def test_endpoint_options_need_live_mode_and_a_model_id(pytester):
    replay = _run(pytester, "--backend=openai", "--base-url=http://127.0.0.1:9/v1")
    assert replay.ret == pytest.ExitCode.USAGE_ERROR
    replay.stderr.fnmatch_lines(["ERROR: --base-url apply to --mode live only (this run is --mode replay)"])
    no_model = _run(pytester, "--backend=openai", "--mode=live", "--base-url=http://127.0.0.1:9/v1")
    assert no_model.ret == pytest.ExitCode.USAGE_ERROR
    no_model.stderr.fnmatch_lines(["ERROR: --mode live against --base-url=http://127.0.0.1:9/v1 needs --model-id*"])


# -- a third-party backend, installed from its own distribution --------------------------------

THIRD_PARTY_MODULE = '''
"""A backend on OpenAI's legacy completions API: the conversation goes out as one ChatML prompt."""

import re

from harness.recording.capture import WireCall
from harness.contract.model import ApiModel
from harness.backends.registry import backend
from harness.contract.types import ChatMessage, MessageRole, TokenUsage

TURN = re.compile(r"<\\|im_start\\|>(\\w+)\\n(.*?)<\\|im_end\\|>\\n", re.S)


def _text(content):
    if isinstance(content, str):
        return content
    return "\\n".join(part["text"] for part in content if part.get("type") == "text")


def render(messages):
    turns = "".join(f"<|im_start|>{m['role']}\\n{_text(m['content'])}<|im_end|>\\n" for m in messages)
    return turns + "<|im_start|>assistant\\n"


def read_prompt(request):
    """This backend's wire as the suites check it: the turns of the prompt, and the stop sent."""
    body = request.body
    if not isinstance(body, dict) or "prompt" not in body:
        return None
    messages = [{"role": role, "text": text, "content": text} for role, text in TURN.findall(body["prompt"])]
    stop = body.get("stop")
    return WireCall(messages=messages, stop=[stop] if isinstance(stop, str) else stop, tools=[], raw=body)


class CompletionsModel(ApiModel):
    def __init__(self, model_id, api_base, api_key, **kwargs):
        self.api_base, self.api_key = api_base, api_key
        super().__init__(model_id=model_id, **kwargs)

    def create_client(self):
        import openai

        return openai.OpenAI(base_url=self.api_base, api_key=self.api_key)

    def _generate(self, request):
        response = self._call(lambda: self.client.completions.create(
            model=self.model_id, prompt=render(request.messages), stop=request.stop_sequences or None,
            **request.kwargs))
        usage = response.usage
        return ChatMessage(role=MessageRole.ASSISTANT, content=response.choices[0].text, raw=response.model_dump(),
                           token_usage=TokenUsage(usage.prompt_tokens, usage.completion_tokens))


def _settings(target):
    return {"model_id": target.served_model_id, "api_base": target.base_url, "api_key": target.api_key,
            "max_tokens": 48, "temperature": 0.0}


@backend("chatml-completions", extra="openai", modules=("openai",), kind="http", wire_format="chatml-prompt",
         request_reader=read_prompt, settings=_settings, capabilities=("stop_parameter", "token_usage"),
         libraries=("openai", "chatml-completions-backend"),
         description="OpenAI legacy completions with a ChatML prompt (third-party test distribution)")
def load():
    return CompletionsModel
'''

THIRD_PARTY_PYPROJECT = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "chatml-completions-backend"
version = "0.0.1"

[project.entry-points."model_conformance.backends"]
chatml = "chatml_completions"

[tool.setuptools]
py-modules = ["chatml_completions"]
'''


@pytest.fixture(scope="module")
def third_party(tmp_path_factory) -> Path:
    """The distribution built and installed with pip into a directory of its own (not this environment)."""
    source = tmp_path_factory.mktemp("chatml-src")
    (source / "pyproject.toml").write_text(textwrap.dedent(THIRD_PARTY_PYPROJECT), encoding="utf-8")
    (source / "chatml_completions.py").write_text(THIRD_PARTY_MODULE, encoding="utf-8")
    target = tmp_path_factory.mktemp("chatml-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    assert list(target.glob("chatml_completions_backend-0.0.1.dist-info/entry_points.txt"))
    return target


@pytest.fixture
def installed(third_party, monkeypatch):
    """The third-party distribution on the path of the pytest subprocesses (only theirs)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(third_party), os.environ.get("PYTHONPATH")])))
    return third_party


def test_third_party_backend_is_listed_with_its_reader_and_libraries(installed):
    out = subprocess.run(
        [sys.executable, "-c",
         "from harness.backends.registry import get_backend, library_versions;"
         "s = get_backend('chatml-completions');"
         "print(s.wire_format, s.request_reader.__module__, s.smolagents_class);"
         "print(library_versions(['chatml-completions'])['chatml-completions-backend'])"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    assert out[0] == "chatml-prompt chatml_completions None"
    assert out[1] == "0.0.1"


def test_a_suite_runs_on_the_third_party_backend(pytester, installed, endpoint):
    base_url, model_id = endpoint
    suite = str(ROOT / "suites" / "test_message_format.py")
    # the checks that read the request: its own reader turns the prompt it sent back into roles and texts
    checks = "(mixed_string or token_usage) and not smolagents_types"
    result = _run(pytester, suite, "--backend=chatml-completions", "--mode=live", f"--base-url={base_url}",
                  f"--model-id={model_id}", "-v", "-rs", "-k", checks)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_mixed_string_and_parts_in_one_conversation?chatml-completions-dicts? PASSED*"])
    smol = _run(pytester, suite, "--backend=chatml-completions", "--mode=live", f"--base-url={base_url}",
                f"--model-id={model_id}", "--subject=smolagents", "-k", ONE_CHECK, "-rs")
    smol.assert_outcomes(skipped=1)
    smol.stdout.fnmatch_lines(["*chatml-completions: smolagents has no class for this backend*"])
