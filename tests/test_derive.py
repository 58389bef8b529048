"""Derived Azure and Bedrock cassettes: every body parses with the SDKs' own types and parsers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import botocore.parsers
import botocore.serialize
import botocore.validate
import pytest
import yaml
from botocore.awsrequest import HeadersDict
from botocore.eventstream import EventStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from harness.backends.registry import Target, get_backend
from harness.cli import main
from harness.contract.model import Request, agglomerate_stream_deltas
from harness.recording.cassettes import block_network, make_vcr, read_provenance, recorded_chunks
from harness.recording.derive import (
    AZURE_DEPLOYMENT,
    BEDROCK_MODEL_ID,
    DERIVE_COMMAND,
    DerivationError,
    bedrock_operation,
    converse_body,
    derive_all,
    derive_cassette,
    parse_sse,
    render,
)
from harness.wire.eventstream import decode_event_stream

ROOT = Path(__file__).resolve().parent.parent / "cassettes"
WEATHER_TOOL = {"name": "get_weather", "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _derived(backend: str) -> list[Path]:
    return sorted(p for p in ROOT.glob(f"*/{backend}/*/*.yaml") if read_provenance(p).get("kind") == "derived")


AZURE = _derived("azure")
BEDROCK = _derived("bedrock")


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parents[2].name}/{p.parent.name}/{p.stem}" for p in paths]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _body_bytes(body) -> bytes:
    value = body["string"] if isinstance(body, dict) else body
    return value if isinstance(value, bytes) else value.encode("utf-8")


class _Raw:
    """The urllib3-like body botocore's EventStream reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, amt: int = 1024):
        for at in range(0, len(self.data), amt):
            yield self.data[at : at + amt]

    def close(self) -> None:
        pass


def _parse_converse(interaction: dict) -> tuple[object, dict | list]:
    """(operation model, parsed response) with botocore's parsers, as the client would get it."""
    operation, _ = bedrock_operation(interaction["request"]["uri"])
    response = interaction["response"]
    raw = _body_bytes(response["body"])
    headers = HeadersDict({k: v[0] for k, v in response["headers"].items()})
    if operation.name == "ConverseStream" and response["status"]["code"] == 200:
        shape = operation.output_shape.members["stream"]
        return operation, list(EventStream(_Raw(raw), shape, botocore.parsers.EventStreamJSONParser(), operation.name))
    parser = botocore.parsers.create_parser("rest-json")
    return operation, parser.parse({"status_code": response["status"]["code"], "headers": headers, "body": raw},
                                   operation.output_shape)


# -- the committed cassettes -------------------------------------------------------------------


def test_every_openai_recording_has_derived_cassettes():
    sources = [p for p in sorted(ROOT.glob("*/openai/*/*.yaml")) if read_provenance(p).get("kind") == "recorded"]
    assert sources, "no recorded openai cassettes"
    for backend in ("azure", "bedrock"):
        for source in sources:
            target = source.parents[2] / backend / source.parent.name / source.name
            assert target.exists(), f"missing {target}; run: {DERIVE_COMMAND}"


def test_derived_cassettes_are_up_to_date():
    outcomes = derive_all(ROOT, check=True)
    stale = [f"{path} ({what})" for path, what in outcomes if what.startswith("stale")]
    assert not stale, f"re-run `{DERIVE_COMMAND}`: " + ", ".join(stale)


@pytest.mark.parametrize("path", AZURE + BEDROCK, ids=_ids(AZURE) + _ids(BEDROCK))
def test_provenance_says_derived_from_what_and_how(path):
    prov = read_provenance(path)
    assert prov["kind"] == "derived"
    assert prov["command"] == DERIVE_COMMAND
    assert prov["backend"] == path.parent.parent.name
    source = ROOT.parent / prov["source"]
    assert source.exists() and read_provenance(source)["kind"] == "recorded"
    assert prov["source_provenance"] == read_provenance(source)
    assert prov["not_recorded"], "what the recording cannot tell must be said"


@pytest.mark.parametrize("path", AZURE, ids=_ids(AZURE))
def test_azure_bodies_parse_with_the_openai_types(path):
    for interaction in _load(path)["interactions"]:
        request, response = interaction["request"], interaction["response"]
        url = urlsplit(request["uri"])
        assert url.path == f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions"
        assert url.query.startswith("api-version=")
        body = json.loads(request["body"])
        assert body["model"] == AZURE_DEPLOYMENT and body["messages"]
        assert "api-key" not in {k.lower() for k in request["headers"]}
        assert response["headers"]["apim-request-id"] and response["headers"]["x-ms-region"]
        text = _body_bytes(response["body"]).decode("utf-8")
        if "text/event-stream" in response["headers"]["content-type"][0]:
            pieces = recorded_chunks(response)
            assert pieces is None or b"".join(pieces).decode("utf-8") == text
            chunks, _ = parse_sse(text)
            parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
            assert parsed[0].model_extra["prompt_filter_results"]
        else:
            completion = ChatCompletion.model_validate(json.loads(text))
            assert completion.choices, "no choices"
            assert completion.model_extra["prompt_filter_results"][0]["content_filter_results"]
            assert all(c.model_extra["content_filter_results"] for c in completion.choices)


@pytest.mark.parametrize("path", BEDROCK, ids=_ids(BEDROCK))
def test_bedrock_request_bodies_are_what_botocore_serializes(path):
    for interaction in _load(path)["interactions"]:
        operation, model_id = bedrock_operation(interaction["request"]["uri"])
        assert model_id == BEDROCK_MODEL_ID
        params = {"modelId": model_id, **json.loads(interaction["request"]["body"])}
        botocore.validate.validate_parameters(params, operation.input_shape)  # raises ParamValidationError
        serialized = botocore.serialize.create_serializer("rest-json").serialize_to_request(params, operation)
        assert serialized["url_path"] == urlsplit(interaction["request"]["uri"]).path
        assert serialized["body"] == interaction["request"]["body"].encode("utf-8")


@pytest.mark.parametrize("path", BEDROCK, ids=_ids(BEDROCK))
def test_bedrock_response_bodies_parse_with_botocore(path):
    for interaction in _load(path)["interactions"]:
        operation, parsed = _parse_converse(interaction)
        stop_reasons = operation.service_model.shape_for("StopReason").enum
        assert interaction["response"]["headers"]["x-amzn-RequestId"]
        if operation.name == "ConverseStream":
            kinds = [next(iter(e)) for e in parsed]
            assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
            assert parsed[-2]["messageStop"]["stopReason"] in stop_reasons
            continue
        assert parsed["stopReason"] in stop_reasons
        assert parsed["output"]["message"]["role"] == "assistant"
        assert parsed["output"]["message"]["content"], "empty content"
        usage = parsed["usage"]
        assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 0
        assert "latencyMs" in parsed["metrics"]


def _tool_ids_renamed(original: dict, derived: dict) -> dict[str, str]:
    """The tool-call ids of a recorded (non-streamed) answer, each with the toolUseId of the derived answer."""
    if original["response"]["status"]["code"] != 200 or "event-stream" in str(original["response"]["headers"]):
        return {}
    calls = (json.loads(original["response"]["body"]["string"])["choices"][0]["message"].get("tool_calls") or [])
    blocks = json.loads(derived["response"]["body"]["string"])["output"]["message"]["content"]
    uses = [block["toolUse"]["toolUseId"] for block in blocks if "toolUse" in block]
    return {call["id"]: use for call, use in zip(calls, uses)}


@pytest.mark.parametrize("path", BEDROCK, ids=_ids(BEDROCK))
def test_bedrock_request_is_what_the_adapter_sends(path):
    from adapters.bedrock import converse_request

    source = _load(ROOT.parent / read_provenance(path)["source"])
    renamed: dict[str, str] = {}  # a recorded tool-call id -> the toolUseId the derived answer gave it
    for interaction, original in zip(_load(path)["interactions"], source["interactions"]):
        text = original["request"]["body"]
        for recorded_id, tool_use_id in renamed.items():
            text = text.replace(recorded_id, tool_use_id)
        body = json.loads(text)
        renamed.update(_tool_ids_renamed(original, interaction))
        request = Request(
            messages=body["messages"],
            stop_sequences=body.get("stop") or [],
            tools=body.get("tools"),
            tool_choice=body.get("tool_choice"),
            kwargs={"inferenceConfig": {"maxTokens": body["max_tokens"], "temperature": body["temperature"]}},
        )
        sent = converse_request(request, BEDROCK_MODEL_ID)
        assert sent.pop("modelId") == BEDROCK_MODEL_ID
        assert sent == json.loads(interaction["request"]["body"])


# -- the derivation itself ---------------------------------------------------------------------

_REQUEST_HEADERS = {"content-type": ["application/json"], "user-agent": ["OpenAI/Python 2.54.0"],
                    "x-stainless-runtime-version": ["3.11.7"]}


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
    choice: dict = {"delta": delta, "index": 0}
    if finish:
        choice["finish_reason"] = finish
    out = {"id": "chunk-1", "choices": [choice], "created": 1795292580, "model": "SmolLM2-135M-Instruct@main",
           "object": "chat.completion.chunk", "system_fingerprint": ""}
    if usage:
        out["usage"] = usage
    return out


def _sse(chunks: list[dict], done: bool = False) -> str:
    return "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks) + (
        "data: [DONE]\n\n" if done else "")


USAGE = {"completion_tokens": 7, "prompt_tokens": 33, "total_tokens": 40}
# shaped as the local server streams: a role chunk, content chunks, the finish chunk carrying usage
TEXT_STREAM = _sse([_chunk({"role": "assistant"}), _chunk({"content": "Hello"}), _chunk({"content": " there,"}),
                    _chunk({"content": " welcome to my world"}), _chunk({}, "stop", USAGE)])
# shaped as OpenAI streams: text, then two tool calls in fragments, [DONE], usage in its own chunk
TOOL_STREAM = _sse([
    _chunk({"role": "assistant", "content": "Checking."}),
    _chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
    _chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]}),
    _chunk({}, "tool_calls"),
    {"id": "chunk-1", "choices": [], "created": 1795292580, "model": "m", "object": "chat.completion.chunk",
     "usage": USAGE},
], done=True)


def _source(body: dict, response_text: str, content_type: str = "text/event-stream", status: int = 200) -> dict:
    return {
        "interactions": [{
            "request": {"body": json.dumps(body), "headers": dict(_REQUEST_HEADERS), "method": "POST",
                        "uri": "http://127.0.0.1:8000/v1/chat/completions"},
            "response": {"body": {"string": response_text}, "headers": {"content-type": [content_type],
                                                                        "date": ["Sat, 21 Nov 2026 20:07:00 GMT"]},
                         "status": {"code": status, "message": "OK"}},
        }],
        "version": 1,
        "provenance": {"kind": "recorded", "backend": "openai", "date": "2026-11-21", "model": "test",
                       "libraries": {"openai": "2.54.0", "boto3": "1.44.5"}},
    }


def _stream_body(stop: list[str] | None = None, tools: bool = False) -> dict:
    body: dict = {"messages": [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
                  "model": "SmolLM2-135M-Instruct", "max_tokens": 48, "temperature": 0.0, "stream": True,
                  "stream_options": {"include_usage": True}}
    if stop:
        body["stop"] = stop
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                                           "parameters": {"type": "object", "properties": {
                                                               "city": {"type": "string"}}, "required": ["city"]}}}]
        body["tool_choice"] = "required"
    return body


def test_derivation_is_pure_and_reproducible():
    source = _source(_stream_body(["world"]), TEXT_STREAM)
    before = copy.deepcopy(source)
    for target in ("azure", "bedrock"):
        first = render(derive_cassette(source, target, "cassettes/openai/s/t.yaml"))
        assert first == render(derive_cassette(copy.deepcopy(source), target, "cassettes/openai/s/t.yaml"))
    assert source == before


def test_bedrock_stream_frames_decode_with_botocore_and_keep_the_text():
    cassette = derive_cassette(_source(_stream_body(["world"]), TEXT_STREAM), "bedrock", "s.yaml")
    interaction = cassette["interactions"][0]
    assert interaction["request"]["uri"].endswith("/converse-stream")
    assert "stream" not in json.loads(interaction["request"]["body"])
    frames = decode_event_stream(interaction["response"]["body"]["string"])
    assert all(dict((n, v) for n, _, v in h)[":message-type"] == b"event" for h, _ in frames)
    _, events = _parse_converse(interaction)
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Hello there, welcome to my world"
    stop = next(e["messageStop"] for e in events if "messageStop" in e)
    assert stop["stopReason"] == "stop_sequence"  # the server stopped at "world" and left it in the text
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 33, "outputTokens": 7, "totalTokens": 40}


def test_bedrock_stream_of_tool_calls_opens_a_block_per_tool():
    cassette = derive_cassette(_source(_stream_body(tools=True), TOOL_STREAM), "bedrock", "s.yaml")
    _, events = _parse_converse(cassette["interactions"][0])
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert [s["contentBlockIndex"] for s in starts] == [1, 2]
    assert all(s["start"]["toolUse"]["toolUseId"].startswith("tooluse_") for s in starts)
    stops = [e["contentBlockStop"]["contentBlockIndex"] for e in events if "contentBlockStop" in e]
    assert stops == [0, 1, 2]
    assert next(e for e in events if "messageStop" in e)["messageStop"]["stopReason"] == "tool_use"
    body = json.loads(cassette["interactions"][0]["request"]["body"])
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["system"] == [{"text": "Be brief."}]


def test_azure_stream_chunks_validate_and_open_with_prompt_filter_results():
    cassette = derive_cassette(_source(_stream_body(tools=True), TOOL_STREAM), "azure", "s.yaml")
    response = cassette["interactions"][0]["response"]
    chunks, done = parse_sse(response["body"]["string"])
    assert done
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert parsed[0].choices == [] and parsed[0].model_extra["prompt_filter_results"]
    assert response["headers"]["content-type"] == ["text/event-stream; charset=utf-8"]


@pytest.mark.parametrize("backend", ["azure", "bedrock"])
@pytest.mark.parametrize("stream", ["text", "tools"])
def test_derived_streams_replay_through_the_adapters(tmp_path, backend, stream):
    body, text = (_stream_body(["world"]), TEXT_STREAM) if stream == "text" else (_stream_body(tools=True), TOOL_STREAM)
    path = tmp_path / "cassette.yaml"
    path.write_text(render(derive_cassette(_source(body, text), backend, "s.yaml")), encoding="utf-8")
    spec = get_backend(backend)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
    with block_network(), make_vcr("replay").use_cassette(str(path)):
        model = spec.load()(**spec.settings(Target(mode="replay")))
        if stream == "text":
            deltas = list(model.generate_stream(messages, stop_sequences=["world"]))
        else:
            deltas = list(model.generate_stream(messages, tools_to_call_from=[WEATHER_TOOL]))
    message = agglomerate_stream_deltas(deltas)
    assert message.token_usage.input_tokens == 33 and message.token_usage.output_tokens == 7
    if stream == "text":
        assert message.content == "Hello there, welcome to my "
    else:
        assert message.content == "Checking."
        assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
            ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]


def test_error_responses_become_each_services_errors():
    error = json.dumps({"error": {"message": "bad request", "type": "invalid_request_error"}})
    source = _source({"messages": [{"role": "user", "content": "x"}], "model": "m"}, error, "application/json", 400)
    bedrock = derive_cassette(source, "bedrock", "s.yaml")["interactions"][0]
    _, parsed = _parse_converse(bedrock)
    assert parsed["Error"]["Code"] == "ValidationException" and parsed["Error"]["Message"] == "bad request"
    azure = derive_cassette(source, "azure", "s.yaml")["interactions"][0]
    assert azure["response"]["status"]["code"] == 400 and json.loads(azure["response"]["body"]["string"]) == json.loads(
        error)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"messages": [], "seed": 1}, "seed"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool traffic"),
        ({"messages": [], "response_format": {"type": "json_object"}}, "json_object"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
         "data-URL"),
    ],
)
def test_what_converse_cannot_express_is_a_clear_error(body, match):
    with pytest.raises(DerivationError, match=match):
        converse_body(body)


def test_converse_body_maps_the_openai_parameters():
    body = converse_body({
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                     {"role": "system", "content": "later"}, {"role": "assistant", "content": "A"}],
        "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "stop": "END",
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
    })
    assert body["system"] == [{"text": "S"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "U"}, {"text": "later"}]},
                                {"role": "assistant", "content": [{"text": "A"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 5, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
    assert body["outputConfig"]["textFormat"]["structure"]["jsonSchema"] == {"schema": '{"type": "object"}',
                                                                             "name": "n"}


def test_a_non_chat_call_cannot_be_derived():
    source = _source({"messages": []}, "{}", "application/json")
    source["interactions"][0]["request"]["uri"] = "http://127.0.0.1:8000/v1/embeddings"
    with pytest.raises(DerivationError, match="embeddings"):
        derive_cassette(source, "bedrock", "s.yaml")


# -- the command -------------------------------------------------------------------------------


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "cassettes"
    for name in ("test_a", "test_b"):
        path = root / "vllm-serve" / "openai" / "suite" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(_source(_stream_body(["world"]), TEXT_STREAM)), encoding="utf-8")
    return root


def test_command_writes_then_reports_up_to_date(tmp_path, capsys):
    root = _tree(tmp_path)
    assert main(["derive-cassettes", "--cassette-dir", str(root)]) == 0
    assert "4 written" in capsys.readouterr().out
    assert main(["derive-cassettes", "--cassette-dir", str(root), "--check"]) == 0
    assert "4 up" in capsys.readouterr().out
    (root / "vllm-serve" / "openai" / "suite" / "test_a.yaml").write_text(
        yaml.safe_dump(_source(_stream_body(["there"]), TEXT_STREAM)), encoding="utf-8")
    assert main(["derive-cassettes", "--cassette-dir", str(root), "--check"]) == 1
    assert DERIVE_COMMAND in capsys.readouterr().err


def test_command_keeps_real_recordings_and_removes_orphans(tmp_path):
    root = _tree(tmp_path)
    derive_all(root)
    real = root / "vllm-serve" / "azure" / "suite" / "test_a.yaml"
    real.write_text(yaml.safe_dump({"interactions": [], "provenance": {"kind": "recorded"}}), encoding="utf-8")
    (root / "vllm-serve" / "openai" / "suite" / "test_b.yaml").unlink()
    outcomes = dict(derive_all(root))
    assert outcomes[real].startswith("kept") and read_provenance(real)["kind"] == "recorded"
    assert not (root / "vllm-serve" / "bedrock" / "suite" / "test_b.yaml").exists()
    assert outcomes[root / "vllm-serve" / "azure" / "suite" / "test_b.yaml"].startswith("removed")
    derive_all(root, force=True)
    assert read_provenance(real)["kind"] == "derived"


def test_command_rejects_an_unknown_target(tmp_path, capsys):
    assert main(["derive-cassettes", "--cassette-dir", str(_tree(tmp_path)), "--backend", "azur"]) == 2
    assert "Valid targets are: azure, bedrock" in capsys.readouterr().err


def test_model_id_in_the_path_is_url_encoded_as_botocore_does():
    cassette = derive_cassette(_source(_stream_body(), TEXT_STREAM), "bedrock", "s.yaml")
    path = urlsplit(cassette["interactions"][0]["request"]["uri"]).path
    assert "%3A" in path and unquote(path.split("/")[2]) == BEDROCK_MODEL_ID


def test_a_later_bedrock_request_carries_the_tool_use_ids_the_derived_answers_gave():
    source_path = "cassettes/transformers-serve/openai/agents/test_tool_calling_agent_reaches_the_final_answer.yaml"
    source = yaml.safe_load((Path(__file__).resolve().parent.parent / source_path).read_text(encoding="utf-8"))
    derived = derive_cassette(source, "bedrock", source_path)
    first = json.loads(derived["interactions"][0]["response"]["body"]["string"])
    tool_use_id = first["output"]["message"]["content"][0]["toolUse"]["toolUseId"]
    recorded_id = json.loads(source["interactions"][0]["response"]["body"]["string"])["choices"][0]["message"][
        "tool_calls"][0]["id"]
    later = derived["interactions"][1]["request"]["body"]
    assert recorded_id in source["interactions"][1]["request"]["body"]
    assert tool_use_id in later and recorded_id not in later
