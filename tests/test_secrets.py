"""The one definition of a secret: where credentials come from, the forms they take, ``harness scan``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from harness.cli import main as cli_main
from harness.contract.errors import BackendError
from harness.contract.secrets import find_secret, is_secret_name, register_secret, scrub_bytes, scrub_query, scrub_text
from harness.plugin.replay import provenance
from harness.recording.cassettes import SecretInCassetteError, _scrub_request, _scrub_response, finalize_recording
from harness.recording.scan import scan_paths

SECRET = "canary/Secret+Value=0123456789"  # '/', '+' and '=' so every encoding differs from raw


@pytest.fixture(autouse=True)
def _no_real_secrets(no_configured_secrets: None) -> None:
    """Tests see only the secrets they configure themselves."""


@pytest.mark.parametrize(
    "env",
    [
        "OPENAI_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_AD_TOKEN",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "MISTRAL_API_KEY",  # any *_API_KEY: litellm reads one per provider
    ],
)
def test_every_credential_the_sdks_read_from_the_environment_is_a_secret(monkeypatch, env):
    monkeypatch.setenv(env, SECRET)
    assert find_secret(f"echo {SECRET}") == "a configured credential value"


def test_credentials_in_aws_profile_and_config_files_are_secrets(monkeypatch, tmp_path):
    credentials, config = tmp_path / "credentials", tmp_path / "config"
    credentials.write_text("[default]\naws_access_key_id = profile-access-0001\n"
                           "aws_secret_access_key = profile-secret-0002\n", encoding="utf-8")
    config.write_text("[profile other]\nregion = us-east-1\naws_session_token = config-session-0003\n",
                      encoding="utf-8")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for value in ("profile-access-0001", "profile-secret-0002", "config-session-0003"):
        assert find_secret(f"x {value} y") is not None, value
    assert find_secret("region us-east-1") is None


def test_the_hugging_face_token_file_is_a_secret(monkeypatch, tmp_path):
    (tmp_path / "token").write_text("stored-hf-token-0004\n", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "token"))
    assert scrub_text("Bearer-less stored-hf-token-0004") == "Bearer-less REDACTED:hf-token-file"


def test_a_key_passed_in_code_becomes_a_secret_once_a_model_holds_it():
    from adapters import OpenAIServerModel

    assert find_secret("code-passed-key-0005") is None
    OpenAIServerModel("m", api_base="http://127.0.0.1:9/v1", api_key="code-passed-key-0005")
    assert find_secret("echo code-passed-key-0005") is not None


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        quote(SECRET, safe=""),
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(b"user:" + SECRET.encode()).decode(),  # Basic auth: at another alignment
        base64.b64encode(b"ab" + SECRET.encode() + b"tail").decode(),
        base64.urlsafe_b64encode(b"x" + SECRET.encode()).decode(),
    ],
    ids=["raw", "url-encoded", "json-escaped", "base64", "base64-offset-1", "base64-offset-2", "base64-url"],
)
def test_a_configured_value_is_found_and_scrubbed_in_every_encoding(monkeypatch, form):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    text = f'{{"echo": "{form}"}}'
    assert find_secret(text) is not None
    assert find_secret(scrub_text(text)) is None


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdefghijklmnopqrstuvwx",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2lnbmF0dXJl",  # an Entra ID token
        base64.b64encode(b'{"key": "sk-abcdefghijklmnopqrstuvwx"}').decode(),  # a pattern inside base64
    ],
)
def test_credential_shaped_text_is_found_without_configuration(text):
    assert find_secret(text) is not None


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("Authorization: Bearer abcdefghijklmnopqrstuvwx", "Authorization: REDACTED:bearer-token"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2lnbmF0dXJl.", "token REDACTED:jwt."),
        ('{"k": "sk-abcdefghijklmnopqrstuvwx"}', '{"k": "REDACTED:openai-key"}'),
    ],
)
def test_credential_shaped_text_is_scrubbed(text, scrubbed):
    assert scrub_text(text) == scrubbed


@pytest.mark.parametrize(
    "name", ["Api-Key", "apikey", "API_KEY", "access_token", "X-Amz-Security-Token", "subscription-key", "sig",
             "X-Amz-Signature", "X-Amz-Credential", "token", "key", "Authorization", "Cookie", "code"]
)
def test_query_parameters_with_a_credential_name_are_redacted_whatever_their_case(name):
    url = f"https://h.example/v1/x?api-version=2024-10-21&{name}=abcdef123456&model=m"
    assert scrub_query(url) == f"https://h.example/v1/x?api-version=2024-10-21&{name}=REDACTED&model=m"


@pytest.mark.parametrize("name", ["max_tokens", "model", "api-version", "stream", "tool_name_key", "top_k"])
def test_ordinary_names_are_not_secret(name):
    assert not is_secret_name(name)


def _response(headers: dict[str, list[str]], body: bytes) -> dict:
    return {"status": {"code": 200, "message": "OK"}, "headers": headers, "body": {"string": body}}


def test_response_headers_are_scrubbed_a_location_token_included(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", SECRET)
    response = _response(
        {"Location": [f"https://h.example/next?token=unknown-value-123&x={quote(SECRET, safe='')}"],
         "X-Echo": [SECRET], "Set-Cookie": ["session=abc"], "x-api-key": ["abc"]},
        b"{}",
    )
    out = _scrub_response({})(response)
    assert out["headers"] == {"Location": ["https://h.example/next?token=REDACTED&x=REDACTED:AZURE_OPENAI_AD_TOKEN"],
                              "X-Echo": ["REDACTED:AZURE_OPENAI_AD_TOKEN"]}


def test_a_body_that_is_not_utf8_is_scrubbed_before_vcrpy_encodes_it(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", SECRET)
    body = b"\xff\xfe binary " + SECRET.encode() + b" \x80 and Bearer abcdefghijklmnopqrstuvwx"
    out = _scrub_response({})(_response({"Content-Type": ["application/octet-stream"]}, body))
    assert out["body"]["string"] == b"\xff\xfe binary REDACTED:AZURE_OPENAI_API_KEY \x80 and REDACTED:bearer-token"
    assert scrub_bytes(body) == out["body"]["string"]


def test_request_headers_uri_and_body_are_scrubbed(monkeypatch):
    import vcr.request

    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET)
    request = vcr.request.Request(
        "POST", f"https://h.example/model/x/converse?Api-Key=k123456789&q={quote(SECRET, safe='')}",
        b'{"echo": "' + json.dumps(SECRET)[1:-1].replace("/", "\\/").encode() + b'"}',
        {"X-Amz-Security-Token": SECRET, "Authorization": "AWS4-HMAC-SHA256 ...", "X-Trace": SECRET,
         "Content-Type": "application/json"},
    )
    out = _scrub_request({})(request)
    assert out.uri == "https://h.example/model/x/converse?Api-Key=REDACTED&q=REDACTED:AWS_SESSION_TOKEN"
    assert dict(out.headers) == {"X-Trace": "REDACTED:AWS_SESSION_TOKEN", "Content-Type": "application/json"}
    assert out.body == b'{"echo": "REDACTED:AWS_SESSION_TOKEN"}'


def test_backend_errors_never_show_a_secret(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    error = BackendError(f"HTTP 401: Incorrect API key provided: {SECRET}", backend="openai", status=401)
    assert SECRET not in str(error) and "Incorrect API key provided: REDACTED" in str(error)


# -- refuse-to-write and harness scan ----------------------------------------------------------

KEY = "sk-proj-abcdefghijklmnop1234"


def _write_cassette(path: Path, body: object) -> Path:
    data = {"interactions": [{"request": {"method": "POST", "uri": "http://127.0.0.1:8000/v1/chat/completions",
                                          "body": "{}", "headers": {}},
                              "response": {"status": {"code": 200, "message": "OK"}, "headers": {},
                                           "body": {"string": body}}}], "version": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, width=60), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


@pytest.mark.parametrize("encoding", ["raw", "base64", "binary-body"])
def test_scan_fails_naming_file_and_line_of_a_pasted_key(tmp_path, capsys, encoding):
    clean = _write_cassette(tmp_path / "c" / "openai" / "s" / "clean.yaml", '{"content": "hello"}')
    if encoding == "raw":
        bad = _write_cassette(tmp_path / "c" / "openai" / "s" / "bad.yaml", f'{{"echo": "{KEY}"}}')
        line = _line_of(bad, KEY)
    elif encoding == "base64":
        pasted = base64.b64encode(f'{{"echo": "{KEY}"}}'.encode()).decode()
        bad = _write_cassette(tmp_path / "c" / "openai" / "s" / "bad.yaml", pasted)
        line = _line_of(bad, pasted[:20])
    else:  # vcrpy writes a body that is not UTF-8 as !!binary
        bad = _write_cassette(tmp_path / "c" / "openai" / "s" / "bad.yaml", b"\xff" + KEY.encode())
        line = _line_of(bad, "!!binary")
    assert cli_main(["scan", str(tmp_path / "c")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out and out[0].startswith(f"{bad}:{line}: "), out
    assert all(o.startswith(f"{bad}:") for o in out) and KEY not in "".join(out)
    assert cli_main(["scan", str(clean)]) == 0


def test_scan_names_a_configured_value_in_a_log_or_junit_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    log = tmp_path / "junit.xml"
    log.write_text("<testsuite>\n<failure>boom " + quote(SECRET, safe="") + "</failure>\n</testsuite>\n")
    assert scan_paths([log]) == [f"{log}:2: a configured credential value"]


def test_finalize_refuses_a_secret_split_across_event_stream_frames(tmp_path, monkeypatch):
    from harness.wire.eventstream import encode_event_message

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    half = len(SECRET) // 2
    frames = encode_event_message({":event-type": "contentBlockDelta"}, SECRET[:half].encode())
    frames += encode_event_message({":event-type": "contentBlockDelta"}, SECRET[half:].encode())
    path = _write_cassette(tmp_path / "bedrock" / "s" / "t.yaml", frames)
    assert find_secret(path.read_text(encoding="utf-8")) is None  # neither half is the secret
    with pytest.raises(SecretInCassetteError, match="line"):
        finalize_recording(path, provenance("bedrock", "adapters", "t", server="test"))
    assert not path.exists()


def test_registered_short_values_are_ignored():
    register_secret("short")
    assert find_secret("a short text") is None


def test_a_credential_set_after_a_scrub_is_scrubbed_next_time(monkeypatch):
    """The secret forms are cached; a change to the credential environment must reach the next scrub."""
    from harness.contract.secrets import scrub_text

    first, second = "plain-env-value-one-0001", "plain-env-value-two-0002"  # no credential shape
    monkeypatch.setenv("OPENAI_API_KEY", first)
    assert first not in scrub_text(f"key={first}")
    monkeypatch.setenv("OPENAI_API_KEY", second)
    assert second not in scrub_text(f"key={second}")
