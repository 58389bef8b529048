"""The cassette layer: secret detection, refusal, provenance, layout, modes, network blocking."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from harness.contract.errors import HarnessError
from harness.contract.secrets import find_secret
from harness.plugin.replay import provenance
from harness.recording.cassettes import (
    MODES,
    NetworkBlockedError,
    SecretInCassetteError,
    block_network,
    cassette_path,
    content_digest,
    finalize_recording,
    read_provenance,
    record_command,
    scrub_text,
    validate_mode,
    validate_server,
)

CONFIGURED = "configured-secret-value-1234"


@pytest.fixture(autouse=True)
def _no_real_secrets(no_configured_secrets: None) -> None:
    """Tests see only the secrets they configure themselves."""


# -- find_secret -------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY"])
def test_find_secret_catches_configured_env_values(monkeypatch, env):
    monkeypatch.setenv(env, CONFIGURED)
    found = find_secret(f"body: {{'key': '{CONFIGURED}'}}")
    assert found == "a configured credential value"
    assert find_secret("body: nothing secret") is None


def test_short_env_values_are_not_treated_as_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "abc")  # would match everywhere
    assert find_secret("abcdef") is None


def test_find_secret_catches_extra_values():
    assert find_secret("header: my-live-key-0001", extra=["my-live-key-0001"]) is not None
    assert find_secret("header: other", extra=["my-live-key-0001"]) is None


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer sk-proj-abcdefghijklmnop1234",
        "sk-abcdefghijklmnopqrstuvwx",
        "token=hf_abcdefghijklmnopqrstuvwxyz",
        "aws_access_key_id = AKIAABCDEFGHIJKLMNOP",
        "ASIAABCDEFGHIJKLMNOP",
        "X-Amz-Credential=Credential=ABCDEFGHIJKLMNOPQ/20240101/us-east-1",
    ],
)
def test_find_secret_catches_key_patterns_without_echoing_them(text):
    found = find_secret(text)
    assert found is not None
    secret = re.search(r"(sk-|hf_|AKIA|ASIA|Credential=)\S+", text).group(0)  # type: ignore[union-attr]
    assert secret not in found


@pytest.mark.parametrize(
    "text",
    ["sk-short", "task-abcdefghijklmnopqrstuvwx", "hf_short", "AKIA1234", "replay-key", "model: SmolLM2-135M"],
)
def test_find_secret_ignores_lookalikes(text):
    assert find_secret(text) is None


def test_scrub_text_redacts_configured_values_and_hosts(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", CONFIGURED)
    out = scrub_text(f"http://127.0.0.1:54321/v1 {CONFIGURED}", hosts={"127.0.0.1:54321": "127.0.0.1:8000"})
    assert out == "http://127.0.0.1:8000/v1 REDACTED:HF_TOKEN"


# -- finalize_recording ------------------------------------------------------------------------


def _cassette(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "openai" / "suite" / "test_x.yaml"
    path.parent.mkdir(parents=True)
    data = {
        "interactions": [
            {
                "request": {"method": "POST", "uri": "http://127.0.0.1:8000/v1/chat/completions", "body": "{}",
                            "headers": {}},
                "response": {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": body}},
            }
        ],
        "version": 1,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _prov() -> dict:
    return provenance("openai", "adapters", "suites/test_x.py::test_x[openai]", server="transformers serve (test)")


@pytest.mark.parametrize(
    "secret", ["sk-abcdefghijklmnopqrstuvwx", "hf_abcdefghijklmnopqrstuvwxyz", "AKIAABCDEFGHIJKLMNOP"]
)
def test_finalize_refuses_a_cassette_with_a_secret_pattern(tmp_path, secret):
    path = _cassette(tmp_path, f'{{"echo": "{secret}"}}')
    with pytest.raises(SecretInCassetteError) as info:
        finalize_recording(path, _prov())
    assert not path.exists()
    assert str(path) in str(info.value)
    assert secret not in str(info.value)


def test_finalize_refuses_a_cassette_with_a_configured_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", CONFIGURED)
    path = _cassette(tmp_path, CONFIGURED)
    with pytest.raises(SecretInCassetteError):
        finalize_recording(path, _prov())
    assert not path.exists()


def test_finalize_refuses_a_cassette_with_the_api_key_used(tmp_path):
    path = _cassette(tmp_path, "echo live-api-key-0001")
    with pytest.raises(SecretInCassetteError):
        finalize_recording(path, _prov(), api_key="live-api-key-0001")
    assert not path.exists()


def test_finalize_adds_provenance_and_keeps_the_interactions(tmp_path):
    path = _cassette(tmp_path, '{"choices": []}')
    before = yaml.safe_load(path.read_text(encoding="utf-8"))
    prov = _prov()
    finalize_recording(path, prov, api_key="replay-key")
    after = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert after["interactions"] == before["interactions"]
    assert after["provenance"] == {**prov, "content_digest": content_digest(after["interactions"])}
    assert after["provenance"] == read_provenance(path)
    assert prov["kind"] == "recorded" and prov["backend"] == "openai"
    assert prov["command"] == record_command("openai", "suites/test_x.py::test_x[openai]")
    assert not list(path.parent.glob("*.tmp"))


def test_finalize_without_a_recording_does_nothing(tmp_path):
    finalize_recording(tmp_path / "absent.yaml", _prov())
    assert not (tmp_path / "absent.yaml").exists()


# -- layout and modes --------------------------------------------------------------------------


def test_cassette_path_layout():
    root = Path("cassettes")
    assert cassette_path(root, "transformers-serve", "openai", "stop_sequences", "test_earliest_stop") == Path(
        "cassettes/transformers-serve/openai/stop_sequences/test_earliest_stop.yaml"
    )
    assert cassette_path(root, "vllm-serve", "azure", "tool_calls", "test_call[a b/c]") == Path(
        "cassettes/vllm-serve/azure/tool_calls/test_call_a_b_c.yaml"
    )


@given(st.text(min_size=1, max_size=30))
def test_cassette_path_is_one_safe_file_in_its_suite_folder(test_name):
    root = Path("/cassettes")
    path = cassette_path(root, "vllm-serve", "openai", "suite", test_name)
    assert path.parent == root / "vllm-serve" / "openai" / "suite"
    assert re.fullmatch(r"[A-Za-z0-9_.-]*\.yaml", path.name)


def test_an_unknown_server_is_refused_naming_the_valid_ones():
    assert validate_server("vllm-serve") == "vllm-serve"
    with pytest.raises(HarnessError, match="'vllm' is not a server.*transformers-serve, vllm-serve, cloud"):
        validate_server("vllm")


def test_record_command_names_a_server_other_than_the_default():
    assert "--server" not in record_command("openai", "s.py::t[openai]")
    assert record_command("openai", "s.py::t[openai]", "vllm-serve") == (
        "pytest 's.py::t[openai]' --backend=openai --server=vllm-serve --mode record"
    )


def test_record_command_names_the_node_and_backend():
    assert record_command("openai", "suites/test_a.py::test_b[openai]") == (
        "pytest 'suites/test_a.py::test_b[openai]' --backend=openai --mode record"
    )


@pytest.mark.parametrize("mode", MODES)
def test_validate_mode_accepts_the_modes(mode):
    assert validate_mode(mode) == mode


@pytest.mark.parametrize("mode", ["bogus", "Replay", ""])
def test_validate_mode_error_lists_the_valid_modes(mode):
    with pytest.raises(HarnessError) as info:
        validate_mode(mode)
    assert repr(mode) in str(info.value)
    assert "Valid modes are: replay, record, live" in str(info.value)


# -- network blocking --------------------------------------------------------------------------


def test_block_network_refuses_a_loopback_connect_and_restores_it():
    original = socket.socket.connect, socket.socket.connect_ex
    with block_network():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            with pytest.raises(NetworkBlockedError, match="127.0.0.1"):
                sock.connect(("127.0.0.1", 9))
            with pytest.raises(NetworkBlockedError):
                sock.connect_ex(("127.0.0.1", 9))
        with pytest.raises(OSError):  # what SDKs catch: NetworkBlockedError is an OSError
            socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert (socket.socket.connect, socket.socket.connect_ex) == original


def test_block_network_restores_after_an_error():
    original = socket.socket.connect
    with pytest.raises(RuntimeError), block_network():
        raise RuntimeError("inside")
    assert socket.socket.connect is original
