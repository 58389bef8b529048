"""Replay fails fast and clearly: an unmatched request or a damaged cassette is named at once, never retried."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from harness.contract.errors import ReplayError
from harness.recording.cassettes import check_cassette, make_vcr
from harness.recording.network import block_network, hub_clients_online

ROOT = Path(__file__).resolve().parent.parent / "cassettes"
USER = [{"role": "user", "content": "Say hello."}]


def _one(backend: str, suite: str) -> Path:
    found = sorted(p for p in ROOT.rglob("*.yaml") if f"/{backend}/{suite}/" in p.as_posix())
    assert found, f"no {backend}/{suite} cassette under {ROOT}"
    return found[0]


def _model(backend: str) -> object:
    from adapters import AmazonBedrockServerModel, LiteLLMModel, OpenAIServerModel

    if backend == "openai":
        return OpenAIServerModel("SmolLM2-135M-Instruct", api_base="http://127.0.0.1:8000/v1", api_key="replay-key")
    if backend == "litellm":
        return LiteLLMModel("openai/SmolLM2-135M-Instruct", api_base="http://127.0.0.1:8000/v1", api_key="replay-key")
    return AmazonBedrockServerModel("example.smollm2-135m-instruct-v1:0", client_kwargs={
        "region_name": "us-east-1", "aws_access_key_id": "replay-access-key",
        "aws_secret_access_key": "replay-secret-key"})


@pytest.mark.parametrize("backend", ["openai", "litellm", "bedrock"])
def test_a_request_the_cassette_does_not_hold_fails_at_once_naming_file_and_interaction(tmp_path, backend):
    source = _one(backend, "stop_sequences")
    path = tmp_path / source.name
    shutil.copy(source, path)
    recorded = len(yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"])
    model = _model(backend)
    waits: list[float] = []
    model._sleep = waits.append  # type: ignore[attr-defined]
    with hub_clients_online(), block_network(), make_vcr("replay").use_cassette(str(path)):
        for _ in range(recorded):
            model.generate(USER)
        with pytest.raises(ReplayError) as info:
            model.generate(USER)
    text = str(info.value)
    assert str(path) in text and f"request #{recorded + 1}" in text, text
    assert f"{recorded} of {recorded} recorded interactions played" in text, text
    assert waits == []  # no retry, no back-off


GOOD = {"interactions": [{"request": {"method": "POST", "uri": "http://127.0.0.1:8000/v1/chat/completions",
                                      "body": "{}", "headers": {}},
                          "response": {"status": {"code": 200, "message": "OK"}, "headers": {},
                                       "body": {"string": "{}"}}}], "version": 1}


def _bad_event_stream(tmp_path: Path) -> str:
    source = _one("bedrock", "streaming")
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    streamed = [i for i in data["interactions"] if isinstance(i["response"]["body"]["string"], bytes)]
    assert streamed, source
    body = streamed[0]["response"]["body"]["string"]
    damaged = body[:20] + bytes([body[20] ^ 0xFF]) + body[21:]  # one flipped byte: the CRC no longer holds
    streamed[0]["response"]["body"]["string"] = damaged
    data["interactions"] = streamed[:1]
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("truncated-yaml", yaml.safe_dump(GOOD)[:-40] + "  body: {string: '\n", "not valid YAML at line"),
        ("top-level-list", yaml.safe_dump([GOOD]), "the top level is a list"),
        ("no-interactions", yaml.safe_dump({"version": 1}), "it has no interactions"),
        ("empty-interactions", yaml.safe_dump({"interactions": [], "version": 1}), "it has no interactions"),
        ("python-tag", "interactions: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
        ("bad-event-stream-crc", None, "interaction 1's event stream is damaged"),
    ],
)
def test_a_damaged_cassette_is_named_with_what_is_wrong(tmp_path, name, text, says):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text if text is not None else _bad_event_stream(tmp_path), encoding="utf-8")
    with pytest.raises(ReplayError) as info:
        check_cassette(path)
    assert str(path) in str(info.value) and says in str(info.value), str(info.value)


def test_every_committed_cassette_passes_the_check():
    paths = sorted(ROOT.rglob("*.yaml"))
    assert paths
    for path in paths:
        check_cassette(path)


def test_hub_clients_online_fetch_nothing_from_the_hub_for_their_user_agent(tmp_path: Path) -> None:
    """Online, huggingface_hub 1.33 fetches a registry of agent harnesses from the Hub the first time a process
    builds a request's headers; inside hub_clients_online nothing is fetched, whichever test builds them first
    (a process of its own: the registry is kept once fetched)."""
    import os
    import subprocess
    import sys

    script = ("from huggingface_hub.utils import build_hf_headers\n"
              "from harness.recording.network import block_network, hub_clients_online\n"
              "with hub_clients_online(), block_network('the first headers of a process'):\n"
              "    build_hf_headers()\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PYTHONPATH": str(ROOT.parent)}
    env.pop("HF_HUB_DISABLE_TELEMETRY", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
