"""Recording from the cloud services: what identifies the account never reaches a cassette."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import httpx
import openai
import pytest
import yaml
from botocore.config import Config

from harness.contract.secrets import find_secret
from harness.recording.cassettes import (
    AWS_ACCOUNT_PLACEHOLDER,
    NetworkBlockedError,
    block_network,
    endpoint_path,
    make_vcr,
    scrub_text,
)
from harness.wire.eventstream import decode_event_stream, encode_event_message

ACCOUNT = "123456789012"
PROFILE_ARN = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.amazon.nova-micro-v1:0"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENvalue0123456789"


@pytest.fixture(autouse=True)
def _no_real_secrets(no_configured_secrets: None) -> None:
    """Tests see only the secrets they configure themselves."""


# -- scrubbing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://contoso-prod.openai.azure.com/openai/deployments/x", "https://example-resource.openai.azure.com/openai/"
                                                                       "deployments/x"),
        ("host: my-res.cognitiveservices.azure.com", "host: example-resource.cognitiveservices.azure.com"),
        ("https://proj-1.services.ai.azure.com/models", "https://example-resource.services.ai.azure.com/models"),
        ("https://example-resource.openai.azure.com", "https://example-resource.openai.azure.com"),
    ],
)
def test_the_azure_resource_host_becomes_a_placeholder(text, expected):
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        PROFILE_ARN,
        f"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A{ACCOUNT}%3Ainference-profile%2Fus.amazon.nova-micro-v1%3A0/converse",
        f'"guardrailArn": "arn:aws-us-gov:bedrock:us-gov-west-1:{ACCOUNT}:guardrail/abc"',
        f"arn:aws:iam::{ACCOUNT}:role/bedrock-caller",
    ],
)
def test_account_ids_in_arns_become_a_placeholder(text):
    out = scrub_text(text)
    assert ACCOUNT not in out and AWS_ACCOUNT_PLACEHOLDER in out
    assert out.replace(AWS_ACCOUNT_PLACEHOLDER, ACCOUNT) == text


def test_other_twelve_digit_numbers_are_left_alone():
    text = '{"created": 179529163012, "text": "call 123456789012"}'
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: AWS4-HMAC-SHA256 Credential=x/20261121/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host, Signature=" + "ab12" * 16,
        "Authorization: Bearer ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlLWtleQ==",
        "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29tLz9BY3Rpb249Q2FsbFdpdGhCZWFyZXJUb2tlbg",
    ],
)
def test_aws_signatures_and_bedrock_api_keys_are_secrets(text):
    assert find_secret(text) is not None


def test_the_bedrock_bearer_token_variable_is_a_secret(monkeypatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "my-bedrock-token-value")
    assert find_secret("Authorization: Bearer my-bedrock-token-value") == "a configured credential value"


# -- replay matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/openai/deployments/gpt4o-prod/chat/completions", "/openai/deployments/{deployment}/chat/completions"),
        ("/model/us.amazon.nova-micro-v1%3A0/converse", "/model/{modelId}/converse"),
        (f"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A{ACCOUNT}%3Ainference-profile%2Fx/converse-stream",
         "/model/{modelId}/converse-stream"),
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("", "/"),
    ],
)
def test_a_users_own_deployment_or_model_replays_with_the_placeholders(path, expected):
    assert endpoint_path(path) == expected


# -- event streams -----------------------------------------------------------------------------


def test_event_stream_messages_round_trip():
    body = encode_event_message({":event-type": "messageStart", ":message-type": "event"}, b'{"role":"assistant"}')
    body += encode_event_message([("flag", 0, b""), ("n", 4, struct.pack("!i", 7)), ("s", 7, b"x")], b"")
    (h1, p1), (h2, p2) = decode_event_stream(body)
    assert h1 == [(":event-type", 7, b"messageStart"), (":message-type", 7, b"event")] and p1 == b'{"role":"assistant"}'
    assert h2 == [("flag", 0, b""), ("n", 4, struct.pack("!i", 7)), ("s", 7, b"x")] and p2 == b""


def test_a_corrupt_or_truncated_event_stream_is_an_error():
    body = encode_event_message({":event-type": "x"}, b"{}")
    with pytest.raises(ValueError, match="CRC"):
        decode_event_stream(body[:-1] + bytes([body[-1] ^ 1]))
    with pytest.raises(ValueError, match="truncated"):
        decode_event_stream(body + body[:10])


# -- recording end to end, against a loopback stand-in for the service -------------------------


def _frame(event: str, payload: dict) -> bytes:
    return encode_event_message({":event-type": event, ":content-type": "application/json", ":message-type": "event"},
                                json.dumps(payload).encode())


class _Bedrock(BaseHTTPRequestHandler):
    """Answers Converse and ConverseStream the way Bedrock does; echoes the model ARN back."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        self.rfile.read(int(self.headers["content-length"]))
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        trace = {"guardrail": {"modelOutput": [PROFILE_ARN]}}
        if self.path.endswith("/converse-stream"):
            body = _frame("messageStart", {"role": "assistant"}) + _frame(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"from {PROFILE_ARN}"}}
            ) + _frame("messageStop", {"stopReason": "end_turn"}) + _frame(
                "metadata", {"usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
                             "metrics": {"latencyMs": 1}})
            content_type = "application/vnd.amazon.eventstream"
        else:
            body = json.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
                               "stopReason": "end_turn", "trace": trace,
                               "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
                               "metrics": {"latencyMs": 1}}).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("x-amzn-RequestId", "req-local")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bedrock_stand_in() -> Iterator[HTTPServer]:
    """A loopback HTTP server speaking Bedrock's Converse wire."""
    server = HTTPServer(("127.0.0.1", 0), _Bedrock)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _bedrock_client(endpoint: str | None = None):
    options = {"endpoint_url": endpoint} if endpoint else {}
    return boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="AKIAABCDEFGHIJKLMNOP",
                        aws_secret_access_key="test-secret-access-key", aws_session_token=SESSION_TOKEN,
                        config=Config(retries={"total_max_attempts": 1}), **options)


def test_recording_bedrock_keeps_no_signature_token_date_or_account(tmp_path, bedrock_stand_in):
    path = tmp_path / "bedrock.yaml"
    endpoint = f"http://127.0.0.1:{bedrock_stand_in.server_port}"
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    with make_vcr("record").use_cassette(str(path)):
        client = _bedrock_client(endpoint)
        client.converse(modelId=PROFILE_ARN, messages=messages)
        list(client.converse_stream(modelId=PROFILE_ARN, messages=messages)["stream"])
    sent = bedrock_stand_in.seen[0]
    assert {"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} <= set(sent), "the stand-in saw a signed request"
    text = path.read_text(encoding="utf-8")
    for secret in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "amz-sdk-invocation-id", SESSION_TOKEN,
                   "AKIAABCDEFGHIJKLMNOP", "Signature=", ACCOUNT):
        assert secret not in text, f"{secret!r} reached the cassette"
    assert find_secret(text) is None
    data = yaml.safe_load(text)
    stream = data["interactions"][1]["response"]["body"]["string"]
    frames = decode_event_stream(stream)  # re-framed: lengths and CRCs still hold
    assert AWS_ACCOUNT_PLACEHOLDER.encode() in frames[1][1] and ACCOUNT.encode() not in stream

    # replayed with another account's profile (the model id is not matched), network blocked
    other = PROFILE_ARN.replace(ACCOUNT, "210987654321")
    with block_network(), make_vcr("replay").use_cassette(str(path)):
        client = _bedrock_client(endpoint)
        assert client.converse(modelId=other, messages=messages)["output"]["message"]["content"] == [{"text": "hi"}]
        events = list(client.converse_stream(modelId=other, messages=messages)["stream"])
    assert events[1]["contentBlockDelta"]["delta"]["text"] == "from " + PROFILE_ARN.replace(ACCOUNT,
                                                                                           AWS_ACCOUNT_PLACEHOLDER)


class _Azure(BaseHTTPRequestHandler):
    """Answers chat completions the way Azure OpenAI does."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        self.rfile.read(int(self.headers["content-length"]))
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        body = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "hi"}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("apim-request-id", "apim-1")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_recording_azure_keeps_no_api_key(tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-live-key-0123456789")
    server = HTTPServer(("127.0.0.1", 0), _Azure)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "azure.yaml"
    try:
        with make_vcr("record").use_cassette(str(path)):
            client = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{server.server_port}",
                                        api_version="2024-10-21", max_retries=0)
            client.chat.completions.create(model="prod-deployment", messages=[{"role": "user", "content": "hi"}])
    finally:
        server.shutdown()
        server.server_close()
    assert server.seen[0]["api-key"] == "azure-live-key-0123456789"
    text = path.read_text(encoding="utf-8")
    assert "api-key" not in text and "azure-live-key-0123456789" not in text and find_secret(text) is None


def test_the_record_hooks_replace_the_azure_resource_host():
    from vcr.request import Request

    instance = make_vcr("record")
    request = Request("POST", "https://contoso-prod.openai.azure.com/openai/deployments/d/chat/completions"
                              "?api-version=2024-10-21", b'{"model": "d"}',
                      {"host": "contoso-prod.openai.azure.com", "api-key": "k"})
    scrubbed = instance._build_before_record_request({})(request)
    assert scrubbed.uri.startswith("https://example-resource.openai.azure.com/openai/deployments/d/")
    assert scrubbed.headers["host"] == "example-resource.openai.azure.com"
    assert "api-key" not in scrubbed.headers


def test_block_network_refuses_name_lookups_too():
    original = socket.getaddrinfo
    with block_network():
        with pytest.raises(NetworkBlockedError, match="example-resource.openai.azure.com"):
            socket.getaddrinfo("example-resource.openai.azure.com", 443)
        with pytest.raises(httpx.ConnectError):
            httpx.get("https://example-resource.openai.azure.com/")
    assert socket.getaddrinfo is original
