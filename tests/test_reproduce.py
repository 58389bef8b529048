"""One-line reproductions of a failed check of smolagents' classes: the python -c line rebuilds the model and
repeats the call, through the shell, quotes and all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness.plugin import reproduce

STUB = '''
import json


class Echo:
    def __init__(self, **settings):
        self.settings = settings

    def generate(self, messages, **kwargs):
        print(json.dumps({"settings": self.settings, "messages": messages, "kwargs": kwargs}))

        class Reply:
            content, tool_calls = "ok", None
        return Reply()
'''


class Echo:
    """Stands in for smolagents' class in the check: a model whose generate is watched."""

    def __init__(self, **settings):
        self.settings = settings

    def generate(self, messages, stop_sequences=None, **kwargs):
        return "answer"


def test_python_line_rebuilds_the_model_and_repeats_the_last_call(tmp_path):
    (tmp_path / "smolagents.py").write_text(STUB)  # the line imports "smolagents": here a stub that echoes
    reproduce.start_check()
    settings = {"model_id": "it's \"quoted\" $HOME `x` \\ back", "max_tokens": 8}
    model = reproduce.watch(Echo(**settings), "Echo", settings)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Say 'hi' $USER"}]}]
    assert model.generate(messages, ["Sund"], temperature=0.0) == "answer"  # the call goes through unchanged
    messages[0]["content"] = "changed afterwards"  # the call was noted as it was made
    line = reproduce.python_line()
    assert line is not None and line.startswith("python -c ")
    done = subprocess.run(line.replace("python", sys.executable, 1), shell=True, capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    echoed = json.loads(done.stdout.splitlines()[0])
    assert echoed == {"settings": settings,
                      "messages": [{"role": "user", "content": [{"type": "text", "text": "Say 'hi' $USER"}]}],
                      "kwargs": {"temperature": 0.0, "stop_sequences": ["Sund"]}}


def test_no_python_line_for_what_is_not_a_literal_and_none_across_checks():
    reproduce.start_check()
    model = reproduce.watch(Echo(client=object()), "Echo", {"client": object()})
    model.generate([{"role": "user", "content": "hi"}])
    assert reproduce.python_line() is None  # a client object cannot be written on a command line
    reproduce.start_check()
    assert reproduce.python_line() is None  # the next check knows nothing of the previous one's models
    assert reproduce.pytest_line("suites/t.py::test[openai-dicts]", ["--backend=openai"]) == (
        "pytest 'suites/t.py::test[openai-dicts]' --backend=openai")


def test_a_failed_check_of_smolagents_class_carries_its_reproduction(tmp_path):
    """The real suites, replayed: smolagents' OpenAIServerModel fails flatten_messages_as_text (its TypeError on a
    string content); the row holds the python -c line of that call and the pytest line of the case."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    results = tmp_path / "rows.jsonl"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-m", "pytest", "suites/test_message_format.py::test_flatten_messages_as_text",
                    "-q", "-p", "no:randomly", "--backend=openai", "--subject=smolagents",
                    "--server=transformers-serve", "-k", "not smolagents_types", f"--results={results}"],
                   cwd=root, env=env, capture_output=True, text=True, timeout=600)
    [row] = [json.loads(line) for line in results.read_text().splitlines()]
    assert row["outcome"] == "failed" and "string indices must be integers" in row["message"]
    python, pytest_line = row["extra"]["reproduction"]
    assert python.startswith('python -c "from smolagents import OpenAIServerModel as M; m = M(**{')
    assert "m.generate([{'role': 'system', 'content': 'Be brief.'}" in python
    assert "'flatten_messages_as_text': True" in python
    assert pytest_line == ("pytest 'suites/test_message_format.py::test_flatten_messages_as_text[openai-dicts]' "
                           "--backend=openai --subject=smolagents --server=transformers-serve")
