"""AmazonBedrockServerModel: Converse replies become the right ChatMessage, faults typed errors.

Replies are raw HTTP bodies in Bedrock's documented wire format, handed to botocore at its
``before-send`` hook so that botocore's own parser reads them, as it would read the service's.
botocore's Stubber is used only to inject faults.
"""

from __future__ import annotations

import base64
import json

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from adapters import AmazonBedrockModel as AliasFromPackage  # noqa: F401 - the package re-exports it
from adapters.bedrock import STOP_REASONS, AmazonBedrockModel, AmazonBedrockServerModel
from harness.contract.errors import BackendError
from harness.contract.model import agglomerate_stream_deltas
from harness.contract.types import MessageRole
from harness.wire.eventstream import encode_event_message

MODEL_ID = "us.amazon.nova-micro-v1:0"
KEYS = {"region_name": "us-east-1", "aws_access_key_id": "test-access-key", "aws_secret_access_key": "test-secret"}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {"name": "get_weather", "description": "Get the weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


class _Raw:
    """A urllib3-like body for AWSResponse (botocore reads .stream() for event streams)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, amt: int = 1024, decode_content: bool = False):
        for at in range(0, len(self.data), amt):
            yield self.data[at : at + amt]

    def read(self, amt: int | None = None) -> bytes:
        data, self.data = self.data, b""
        return data

    def close(self) -> None:
        pass


class Wire:
    """Answers each Converse call with the next raw reply and keeps what was sent."""

    def __init__(self, *replies: tuple[int, dict[str, str], bytes]) -> None:
        self.replies = list(replies)
        self.sent: list[dict] = []

    def __call__(self, request, **kwargs):
        self.sent.append({"url": request.url, "body": json.loads(request.body)})
        status, headers, body = self.replies.pop(0)
        return AWSResponse(request.url, status, headers, _Raw(body))


def _json_reply(payload: dict, request_id: str = "req-1") -> tuple[int, dict[str, str], bytes]:
    return 200, {"content-type": "application/json", "x-amzn-RequestId": request_id}, json.dumps(payload).encode()


def _converse(content: list[dict], stop_reason: str, usage: tuple[int, int] = (12, 7)) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": sum(usage)},
        "metrics": {"latencyMs": 321},
    }


def _events(*events: tuple[str, dict]) -> tuple[int, dict[str, str], bytes]:
    body = b"".join(
        encode_event_message({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                             json.dumps(payload).encode())
        for name, payload in events
    )
    return 200, {"content-type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": "req-s"}, body


def _model(wire: Wire | None = None, **kwargs) -> AmazonBedrockServerModel:
    model = AmazonBedrockServerModel(MODEL_ID, client_kwargs=dict(KEYS), **kwargs)
    if wire is not None:
        model.client.meta.events.register("before-send.bedrock-runtime.*", wire)
    model._sleep = lambda seconds: None
    return model


# -- the three replies ------------------------------------------------------------------------


def test_text_only_reply():
    wire = Wire(_json_reply(_converse([{"text": "Hello there."}], "end_turn"), "req-text"))
    message = _model(wire)([{"role": "user", "content": "Say hello."}])
    assert message.role == MessageRole.ASSISTANT
    assert message.content == "Hello there."
    assert message.tool_calls is None
    assert message.token_usage.dict() == {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19}
    assert message.raw["stopReason"] == "end_turn"
    assert message.raw["ResponseMetadata"]["RequestId"] == "req-text"
    assert wire.sent[0]["url"].endswith("/model/us.amazon.nova-micro-v1%3A0/converse")


def test_text_and_two_tool_use_blocks():
    content = [
        {"text": "I will check both cities."},
        {"toolUse": {"toolUseId": "tooluse_paris", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_rome", "name": "get_weather", "input": {"city": "Rome"}}},
    ]
    wire = Wire(_json_reply(_converse(content, "tool_use")))
    model = _model(wire)
    message = model([{"role": "user", "content": "Weather in Paris and Rome?"}], tools_to_call_from=[WEATHER_TOOL])
    assert message.content == "I will check both cities."
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("tooluse_paris", "function", "get_weather", {"city": "Paris"}),
        ("tooluse_rome", "function", "get_weather", {"city": "Rome"}),
    ]
    assert model.parse_tool_calls(message).tool_calls[1].function.arguments == {"city": "Rome"}
    tool_config = wire.sent[0]["body"]["toolConfig"]
    assert tool_config["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]
    assert tool_config["toolChoice"] == {"any": {}}


def test_reply_ending_in_stop_sequence():
    # Bedrock leaves the stop sequence out of the text and says so in stopReason
    wire = Wire(_json_reply(_converse([{"text": "Monday, Tuesday, "}], "stop_sequence")))
    message = _model(wire)([{"role": "user", "content": "Days?"}], stop_sequences=["Wednesday"])
    assert message.content == "Monday, Tuesday, "
    assert message.raw["stopReason"] == "stop_sequence"
    assert wire.sent[0]["body"]["inferenceConfig"]["stopSequences"] == ["Wednesday"]


def test_stop_sequence_the_model_left_in_is_trimmed():
    wire = Wire(_json_reply(_converse([{"text": "Monday, Tuesday, Wednesday"}], "stop_sequence")))
    message = _model(wire)([{"role": "user", "content": "Days?"}], stop_sequences=["Tues", "Wednesday"])
    assert message.content == "Monday, "


def test_tool_use_without_text_has_no_content():
    content = [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}]
    message = _model(Wire(_json_reply(_converse(content, "tool_use"))))([{"role": "user", "content": "x"}])
    assert message.content is None and message.tool_calls[0].function.arguments == {"city": "Paris"}


# -- stopReason --------------------------------------------------------------------------------


def test_every_stop_reason_of_the_service_model_is_mapped():
    service = botocore.session.get_session().get_service_model("bedrock-runtime")
    assert set(service.shape_for("StopReason").enum) == set(STOP_REASONS)


@pytest.mark.parametrize("stop_reason", sorted(STOP_REASONS))
def test_stop_reason_maps_onto_the_message_or_a_typed_error(stop_reason):
    wire = Wire(_json_reply(_converse([{"text": "Some text"}], stop_reason), "req-stop"))
    model = _model(wire)
    outcome = STOP_REASONS[stop_reason]
    if outcome in ("complete", "truncated", "content_filter"):
        message = model([{"role": "user", "content": "x"}])
        assert message.content == "Some text" and message.raw["stopReason"] == stop_reason
        # a guardrail or filter that answered HTTP 200 is an answer, marked with its reason
        assert message.finish_reason == (stop_reason if outcome == "content_filter" else None)
        return
    expected = BackendError
    with pytest.raises(expected) as info:
        model([{"role": "user", "content": "x"}])
    assert info.value.backend == "bedrock" and info.value.request_id == "req-stop"
    assert stop_reason in str(info.value)


# -- the request -------------------------------------------------------------------------------


def test_request_translation():
    wire = Wire(_json_reply(_converse([{"text": "ok"}], "end_turn")))
    model = _model(wire, inferenceConfig={"maxTokens": 48, "temperature": 0.0},
                   guardrailConfig={"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
                   additionalModelRequestFields={"top_k": 5})
    model(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image", "image": PNG}]},
            {"role": "tool-call", "content": "Calling get_weather"},
            {"role": "tool-response", "content": [{"type": "text", "text": "Sunny"}]},
            {"role": "system", "content": "Answer now."},
        ],
        stop_sequences=["END"],
        inferenceConfig={"temperature": 0.5},
    )
    body = wire.sent[0]["body"]
    assert body["system"] == [{"text": "Be brief."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][0] == {"text": "Look:"}
    image = body["messages"][0]["content"][1]["image"]
    assert image["format"] == "png" and base64.b64decode(image["source"]["bytes"]) == PNG
    # a system message after the conversation started becomes a user turn, merged with its neighbour
    assert body["messages"][2]["content"] == [{"text": "Sunny"}, {"text": "Answer now."}]
    # the model's own inferenceConfig keys win over the call's (as every model kwarg does), the rest merge
    assert body["inferenceConfig"] == {"maxTokens": 48, "temperature": 0.0, "stopSequences": ["END"]}
    assert body["guardrailConfig"] == {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"}
    assert body["additionalModelRequestFields"] == {"top_k": 5}


def test_flattened_messages_are_one_text_block_each():
    wire = Wire(_json_reply(_converse([{"text": "ok"}], "end_turn")))
    _model(wire, flatten_messages_as_text=True)(
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert wire.sent[0]["body"]["messages"] == [{"role": "user", "content": [{"text": "a\nb"}]}]


def test_custom_role_conversions_add_to_the_default():
    wire = Wire(_json_reply(_converse([{"text": "ok"}], "end_turn")))
    _model(wire, custom_role_conversions={"system": "user"})(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "tool-call", "content": "C"}])
    body = wire.sent[0]["body"]
    assert "system" not in body
    # merged as smolagents merges: adjacent texts joined on a new line
    assert body["messages"] == [{"role": "user", "content": [{"text": "S\nU"}]},
                                {"role": "assistant", "content": [{"text": "C"}]}]


def test_guardrail_replacement_text_is_the_answer():
    wire = Wire(_json_reply(_converse([{"text": "Sorry, the model cannot answer this question."}],
                                      "guardrail_intervened"), "req-g"))
    message = _model(wire)([{"role": "user", "content": "x"}])
    assert message.content == "Sorry, the model cannot answer this question."
    assert message.finish_reason == "guardrail_intervened"
    empty = _model(Wire(_json_reply(_converse([], "content_filtered"))))([{"role": "user", "content": "x"}])
    assert empty.content == "" and empty.finish_reason == "content_filtered"


def test_supports_stop_parameter_false_keeps_the_contract_client_side():
    wire = Wire(_json_reply(_converse([{"text": "one two three"}], "end_turn")))
    model = _model(wire, supports_stop_parameter=False)
    assert model([{"role": "user", "content": "x"}], stop_sequences=["two"]).content == "one "
    assert "inferenceConfig" not in wire.sent[0]["body"]


def test_response_format_json_schema_goes_to_output_config():
    wire = Wire(_json_reply(_converse([{"text": "{}"}], "end_turn")))
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    _model(wire)([{"role": "user", "content": "x"}], response_format=fmt)
    assert wire.sent[0]["body"]["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["name"] == "answer"
    with pytest.raises(ValueError, match="json_schema"):
        _model()([{"role": "user", "content": "x"}], response_format={"type": "json_object"})


def test_image_urls_are_a_clear_error():
    with pytest.raises(ValueError, match="not URLs"):
        _model()([{"role": "user", "content": [{"type": "image", "image": "https://example.com/cat.png"}]}])


# -- streaming ---------------------------------------------------------------------------------


def test_converse_stream_agglomerates_to_the_message():
    wire = Wire(_events(
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking "}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "the weather."}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockStart", {"contentBlockIndex": 1,
                               "start": {"toolUse": {"toolUseId": "t1", "name": "get_weather"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\": "}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29}, "metrics": {"latencyMs": 5}}),
    ))
    model = _model(wire)
    deltas = list(model.generate_stream([{"role": "user", "content": "Weather?"}], tools_to_call_from=[WEATHER_TOOL]))
    message = agglomerate_stream_deltas(deltas)
    assert message.content == "Checking the weather."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("t1", "get_weather", {"city": "Paris"})]
    assert message.token_usage.total_tokens == 29
    assert wire.sent[0]["url"].endswith("/converse-stream")


def test_stream_stops_across_chunks():
    wire = Wire(_events(
        ("messageStart", {"role": "assistant"}),
        *[("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}}) for t in ("Mon", "day, Tu", "esday")],
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": 1, "outputTokens": 3, "totalTokens": 4}, "metrics": {"latencyMs": 1}}),
    ))
    deltas = list(_model(wire).generate_stream([{"role": "user", "content": "x"}], stop_sequences=["y, T"]))
    assert agglomerate_stream_deltas(deltas).content == "Monda"


def test_stream_without_message_stop_is_a_truncation_error():
    wire = Wire(_events(("messageStart", {"role": "assistant"}),
                        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}})))
    with pytest.raises(BackendError) as info:
        list(_model(wire).generate_stream([{"role": "user", "content": "x"}]))
    assert info.value.kind == "truncated" and info.value.request_id == "req-s"


def test_exception_event_in_the_stream_is_a_typed_error():
    throttled = encode_event_message(
        {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": "Too many tokens"}).encode(),
    )
    status, headers, body = _events(("messageStart", {"role": "assistant"}))
    wire = Wire((status, headers, body + throttled))
    with pytest.raises(BackendError) as info:
        list(_model(wire).generate_stream([{"role": "user", "content": "x"}]))
    error = info.value
    assert (error.backend, error.status, error.request_id, error.kind) == ("bedrock", 429, "req-s", "throttled")
    assert "Too many tokens" in str(error)


# -- faults (injected with botocore's Stubber) -------------------------------------------------


def _fault_injector(model: AmazonBedrockServerModel, code: str, status: int, times: int) -> Stubber:
    stubber = Stubber(model.client)
    for attempt in range(times):
        stubber.add_client_error("converse", service_error_code=code, service_message=f"{code} #{attempt}",
                                 http_status_code=status, response_meta={"RequestId": f"req-{attempt}"})
    stubber.activate()
    return stubber


def test_throttling_is_retried_a_bounded_number_of_times_then_typed():
    model = _model()
    waits: list[float] = []
    model._sleep = waits.append
    stubber = _fault_injector(model, "ThrottlingException", 429, model.max_retries + 1)
    with pytest.raises(BackendError) as info:
        model([{"role": "user", "content": "x"}])
    stubber.assert_no_pending_responses()
    error = info.value
    assert (error.backend, error.status, error.kind) == ("bedrock", 429, "throttled")
    assert error.request_id == f"req-{model.max_retries}"
    assert "ThrottlingException" in str(error) and "bedrock" in str(error)
    assert len(waits) == model.max_retries


def test_throttling_then_success_returns_the_message():
    model = _model()
    stubber = _fault_injector(model, "ThrottlingException", 429, 1)
    stubber.add_response("converse", _converse([{"text": "fine"}], "end_turn"))
    assert model([{"role": "user", "content": "x"}]).content == "fine"


def test_validation_error_is_not_retried():
    model = _model()
    stubber = _fault_injector(model, "ValidationException", 400, 1)
    with pytest.raises(BackendError) as info:
        model([{"role": "user", "content": "x"}])
    stubber.assert_no_pending_responses()
    assert (info.value.status, info.value.request_id, info.value.kind) == (400, "req-0", "validation")
    assert not info.value.retryable


# -- construction ------------------------------------------------------------------------------


def test_client_kwargs_build_the_client_without_botocore_retries():
    model = AmazonBedrockServerModel(MODEL_ID, client_kwargs={**KEYS, "endpoint_url": "http://127.0.0.1:9"})
    assert model.client.meta.region_name == "us-east-1"
    assert model.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert model.client.meta.config.retries["total_max_attempts"] == 1


def test_a_given_client_is_used():
    client = boto3.client("bedrock-runtime", **KEYS)
    assert AmazonBedrockServerModel(MODEL_ID, client=client).client is client


def test_to_dict_round_trips_and_never_exports_keys():
    model = _model(requests_per_minute=30, inferenceConfig={"maxTokens": 10})
    data = model.to_dict()
    assert "test-secret" not in json.dumps(data, default=str) and "test-access-key" not in json.dumps(data, default=str)
    assert data["client_kwargs"] == {"region_name": "us-east-1"}
    rebuilt = AmazonBedrockServerModel.from_dict(data)
    assert (rebuilt.model_id, rebuilt.requests_per_minute, rebuilt.kwargs) == (MODEL_ID, 30, {"inferenceConfig": {
        "maxTokens": 10}})


def test_alias():
    assert AmazonBedrockModel is AmazonBedrockServerModel


# -- the suites' settings ----------------------------------------------------------------------


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No AWS configuration at all, and no instance-metadata lookup."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK", "BEDROCK_MODEL_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_replay_settings_sign_with_dummy_keys_and_match_the_cassettes(no_aws, monkeypatch):
    from harness.backends.registry import Target, get_backend
    from harness.recording.derive import BEDROCK_MODEL_ID, BEDROCK_REGION

    monkeypatch.setenv("AWS_PROFILE", "a-profile-this-machine-lacks")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

    settings = get_backend("bedrock").settings(Target(mode="replay"))
    model = AmazonBedrockServerModel(**settings)
    assert (model.model_id, model.client.meta.region_name) == (BEDROCK_MODEL_ID, BEDROCK_REGION)
    assert model.client.meta.endpoint_url == f"https://bedrock-runtime.{BEDROCK_REGION}.amazonaws.com"
    assert model.client._request_signer._credentials.access_key == "replay-access-key"
    assert settings["inferenceConfig"] == {"maxTokens": 48, "temperature": 0.0}


def test_record_settings_name_what_is_missing(no_aws, monkeypatch):
    from harness.backends.registry import Target, get_backend
    from harness.contract.errors import HarnessError
    from harness.recording.cassettes import block_network

    settings = get_backend("bedrock").settings
    with pytest.raises(HarnessError, match="BEDROCK_MODEL_ID"):
        settings(Target(mode="record", api_key=""))
    monkeypatch.setenv("BEDROCK_MODEL_ID", MODEL_ID)
    with pytest.raises(HarnessError, match="AWS_REGION"):
        settings(Target(mode="record", api_key=""))
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    with block_network(), pytest.raises(HarnessError, match="no AWS credentials"):
        settings(Target(mode="record", api_key=""))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "live-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "live-secret")
    live = settings(Target(mode="live", api_key=""))
    assert live["model_id"] == MODEL_ID and live["client_kwargs"] == {"region_name": "us-west-2"}
