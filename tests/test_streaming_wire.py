"""Streaming on the real SDKs against a scripted loopback SSE server, SSE chunk record/replay, and
the InferenceClient / LiteLLM adapters' settings and errors."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx  # noqa: E402
import yaml  # noqa: E402

from adapters._openai_wire import deltas_from_chunks  # noqa: E402
from harness.backends.registry import Target, get_backend  # noqa: E402
from harness.contract.errors import BackendError  # noqa: E402
from harness.contract.model import Request, agglomerate_stream_deltas  # noqa: E402
from harness.recording.cassettes import make_vcr  # noqa: E402
from harness.recording.network import block_network, hub_clients_online  # noqa: E402
from harness.recording.scrub import scrub_chunks  # noqa: E402
from harness.recording.sse_chunks import recorded_chunks  # noqa: E402
from harness.wire.transports import httpx_stacks  # noqa: E402

STREAMING_BACKENDS = ("openai", "inference-client", "litellm", "litellm-router")
USER = [{"role": "user", "content": "Weather in Paris and Rome?"}]


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, int] | None = None,
           choices: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "fake-model",
                            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []}
    if usage is not None:
        body["usage"] = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
    return body


def _call(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


# two tool calls whose argument text arrives interleaved, then usage in a chunk of its own
TOOL_CALL_STREAM = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk(_call(0, "", "call_a", "get_weather")),
    _chunk(_call(1, '{"city": ', "call_b", "get_weather")),
    _chunk(_call(0, '{"ci')),
    _chunk(_call(0, 'ty": "Paris"}')),
    _chunk(_call(1, '"Rome"}')),
    _chunk(finish="tool_calls"),
    _chunk(usage={"prompt_tokens": 11, "completion_tokens": 7}, choices=False),
    "[DONE]",
]
# the server ignores `stop`; the stop sequence is split across chunks
STOP_STREAM = [
    _chunk({"role": "assistant", "content": "Thought: x\nObser"}),
    _chunk({"content": "vation: y"}),
    _chunk({"content": " and more"}),
    _chunk(finish="length", usage={"prompt_tokens": 5, "completion_tokens": 6}),
    "[DONE]",
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        server: FakeServer = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append(body)
        if not body.get("stream"):
            data = json.dumps(server.completion).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if server.cut_body:  # the connection drops halfway through the announced body
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in server.events:
            data = f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(0.01)  # one event per network read, as a generating server sends them
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: Any) -> None:
        pass


class FakeServer(ThreadingHTTPServer):
    """A loopback chat-completions server that answers with scripted SSE events."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.events: list[Any] = []
        self.completion: dict[str, Any] = {}
        self.cut_body = False
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A scripted SSE server on 127.0.0.1."""
    fake = FakeServer()
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    try:
        with hub_clients_online():
            yield fake
    finally:
        fake.shutdown()
        fake.server_close()


def _model(name: str, server: FakeServer, **overrides: Any) -> Any:
    spec = get_backend(name)
    target = Target(mode="live", base_url=server.base_url, served_model_id="fake-model", api_key="test-key")
    return spec.load()(**{**spec.settings(target), **overrides})


# -- each SDK's stream through the contract ---------------------------------------------------


@pytest.mark.parametrize("name", STREAMING_BACKENDS)
def test_tool_call_fragments_merge_by_index_and_usage_counts_once(server, name, weather_tool_schema):
    server.events = TOOL_CALL_STREAM
    model = _model(name, server)
    deltas = list(model.generate_stream(USER, tools_to_call_from=[weather_tool_schema]))
    assert sum(1 for d in deltas if d.token_usage) == 1, deltas
    message = agglomerate_stream_deltas(deltas)
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", "get_weather", {"city": "Paris"}),
        ("call_b", "get_weather", {"city": "Rome"}),
    ]
    assert message.token_usage is not None
    assert (message.token_usage.input_tokens, message.token_usage.output_tokens) == (11, 7)
    sent = server.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("name", STREAMING_BACKENDS)
def test_stop_split_across_chunks_is_cut_even_when_the_server_ignores_it(server, name):
    server.events = STOP_STREAM
    model = _model(name, server)
    deltas = list(model.generate_stream(USER, stop_sequences=["Observation:"]))
    assert "".join(d.content or "" for d in deltas) == "Thought: x\n"
    assert server.requests[-1]["stop"] == ["Observation:"]
    usage = agglomerate_stream_deltas(deltas).token_usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (5, 6)


@pytest.mark.parametrize("name", ("openai", "inference-client"))
def test_a_stream_cut_before_its_finish_reason_is_an_error(server, name):
    server.events = STOP_STREAM[:2]  # no finish_reason, no [DONE]
    model = _model(name, server)
    with pytest.raises(BackendError, match="truncated") as caught:
        list(model.generate_stream(USER))
    assert caught.value.backend == name and caught.value.kind == "truncated"


@pytest.fixture
def hf_responses(monkeypatch) -> list[Any]:
    """Every HTTP response InferenceClient checks the status of, as it checks it (streamed or not)."""
    from huggingface_hub.inference import _client

    import adapters.hf  # noqa: F401 - its own check of the status goes in first, and stays after this fixture

    seen: list[Any] = []
    check = _client.hf_raise_for_status

    def checking(response: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(response)
        return check(response, *args, **kwargs)

    monkeypatch.setattr(_client, "hf_raise_for_status", checking)
    return seen


# A response left open stays in InferenceClient's exit stack until the garbage collector closes it, whenever it
# runs: inside the lock of huggingface_hub's shared connection pool, closing takes that lock again and the
# process hangs. So each is closed when the model is done with it.


def test_inference_client_closes_a_stream_that_fails(server, hf_responses):
    server.events = [_chunk({"role": "assistant", "content": "Hel"}),
                     {**_chunk(), "choices": {"index": 0, "delta": {"content": "lo"}}}, _chunk(finish="stop")]
    with pytest.raises(BackendError) as caught:
        list(_model("inference-client", server).generate_stream(USER))
    assert caught.value.kind == "malformed"
    assert len(hf_responses) == 1 and hf_responses[0].is_closed


def test_inference_client_closes_a_stream_left_unfinished(server, hf_responses):
    server.events = STOP_STREAM
    deltas = _model("inference-client", server).generate_stream(USER)
    assert next(deltas).content == "Thought: x\nObser"
    assert not hf_responses[0].is_closed  # still being read
    deltas.close()
    assert len(hf_responses) == 1 and hf_responses[0].is_closed


def test_inference_client_closes_an_answer_cut_short(server, hf_responses):
    server.completion = {"id": "x", "object": "chat.completion", "created": 1, "model": "fake-model",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "Hello " * 200}}]}
    server.cut_body = True
    with pytest.raises(BackendError) as caught:
        _model("inference-client", server, retry=False).generate(USER)
    assert caught.value.kind in ("connection", "truncated")
    assert len(hf_responses) == 1 and hf_responses[0].is_closed


# -- the shared chunk translation -------------------------------------------------------------


def test_running_usage_totals_count_once_at_the_end():
    chunks = [
        _chunk({"content": "a"}, usage={"prompt_tokens": 4, "completion_tokens": 1}),
        _chunk({"content": "b"}, usage={"prompt_tokens": 4, "completion_tokens": 2}),
        _chunk(finish="stop", usage={"prompt_tokens": 4, "completion_tokens": 3}),
    ]
    deltas = list(deltas_from_chunks(chunks, "fake"))
    assert [d.content for d in deltas[:-1]] == ["a", "b"]
    usage = agglomerate_stream_deltas(deltas).token_usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (4, 3)


def test_other_choices_are_not_mixed_into_the_first():
    chunk = _chunk({"content": "first"}, finish="stop")
    chunk["choices"].append({"index": 1, "delta": {"content": "second"}, "finish_reason": "stop"})
    assert [d.content for d in deltas_from_chunks([chunk], "fake")] == ["first"]


def test_content_filter_in_a_stream_ends_it_as_an_answer():
    deltas = list(deltas_from_chunks([_chunk({"content": "a"}), _chunk(finish="content_filter")], "fake"))
    assert [d.content for d in deltas] == ["a"]


# -- SSE bodies are recorded with their chunks and replayed in them ----------------------------


def _read_raw(base_url: str) -> tuple[list[bytes], str]:
    with httpx.Client() as client:
        with client.stream("POST", f"{base_url}/chat/completions", json={"stream": True}) as response:
            return list(response.iter_raw()), response.headers["content-type"]


def test_sse_chunks_are_recorded_and_replayed_as_they_arrived(server, tmp_path):
    server.events = STOP_STREAM
    path = tmp_path / "sse.yaml"
    with make_vcr("record").use_cassette(str(path)):
        whole, _ = _read_raw(server.base_url)  # vcrpy hands the recording client the body at once
    recorded = yaml.safe_load(path.read_text())["interactions"][0]["response"]
    sizes = recorded["body"]["chunks"]
    assert len(sizes) > 1, "the events arrived in separate reads, each noted"
    assert sum(sizes) == len(b"".join(whole))
    with make_vcr("replay").use_cassette(str(path)), block_network():
        replayed, content_type = _read_raw(server.base_url)
    assert [len(c) for c in replayed] == sizes
    assert b"".join(replayed) == b"".join(whole)
    assert content_type.startswith("text/event-stream")


def test_replayed_sse_reaches_the_sdk_chunk_by_chunk(server, tmp_path):
    server.events = TOOL_CALL_STREAM
    path = tmp_path / "sse.yaml"
    with make_vcr("record").use_cassette(str(path)):
        live = list(_model("openai", server).generate_stream(USER))
    seen: list[int] = []

    def noting(original: Any) -> Any:
        def iter_raw(self: Any, chunk_size: int | None = None) -> Iterator[bytes]:
            for chunk in original(self, chunk_size):
                seen.append(len(chunk))
                yield chunk

        return iter_raw

    with make_vcr("replay").use_cassette(str(path)), block_network(), pytest.MonkeyPatch.context() as mp:
        for stack in httpx_stacks():  # openai 3 reads through httpx2, openai 2 through httpx
            mp.setattr(stack.client.Response, "iter_raw", noting(stack.client.Response.iter_raw))
        replayed = list(_model("openai", server).generate_stream(USER))
    assert replayed == live
    assert seen == yaml.safe_load(path.read_text())["interactions"][0]["response"]["body"]["chunks"]


def test_a_json_body_keeps_its_single_chunk(server, tmp_path):
    server.completion = {"id": "x", "object": "chat.completion", "created": 1, "model": "fake-model",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "hi"}}]}
    path = tmp_path / "json.yaml"
    with make_vcr("record").use_cassette(str(path)):
        assert _model("openai", server)(USER).content == "hi"
    response = yaml.safe_load(path.read_text())["interactions"][0]["response"]
    assert "chunks" not in response["body"]
    assert recorded_chunks(response) is None


def test_scrubbing_keeps_chunk_lengths_consistent():
    chunks = [b"data: host 127.0.0.1:5", b"4321 caf\xc3", b"\xa9\n\n"]
    body, sizes = scrub_chunks(b"".join(chunks), chunks, {"127.0.0.1:54321": "127.0.0.1:8000"})
    assert body.decode() == "data: host 127.0.0.1:8000 café\n\n"
    assert sum(sizes) == len(body)
    unchanged = [b"data: a\n\n", b"data: b\n\n"]
    assert scrub_chunks(b"".join(unchanged), unchanged, {}) == (b"".join(unchanged), [9, 9])


def test_recorded_chunks_that_do_not_add_up_are_an_error():
    with pytest.raises(Exception, match="add up"):
        recorded_chunks({"body": {"string": "abc", "chunks": [1, 1]}})


# -- InferenceClientModel settings ------------------------------------------------------------


@pytest.fixture
def weather_tool_schema() -> dict[str, Any]:
    """An OpenAI function schema for get_weather(city)."""
    return {"name": "get_weather", "description": "Weather of a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_inference_client_token_and_api_key_together_is_a_value_error():
    from adapters.hf import InferenceClientModel

    with pytest.raises(ValueError, match="token"):
        InferenceClientModel("http://127.0.0.1:9/v1", token="a-token", api_key="a-key")


def test_inference_client_reads_hf_token_and_never_exports_it(monkeypatch):
    from adapters.hf import HfApiModel, InferenceClientModel

    monkeypatch.setenv("HF_TOKEN", "env-token-value")
    model = InferenceClientModel("http://127.0.0.1:9/v1", provider="hf-inference", timeout=5)
    assert model.token == "env-token-value" and model.client.token == "env-token-value"
    data = model.to_dict()
    assert "env-token-value" not in json.dumps(data)
    assert data["provider"] == "hf-inference" and data["timeout"] == 5
    assert HfApiModel is InferenceClientModel
    assert InferenceClientModel(model_id="http://127.0.0.1:9/v1", api_key="explicit").token == "explicit"


def test_inference_client_base_url_sends_model_id_as_the_payload_model():
    from adapters.hf import InferenceClientModel

    model = InferenceClientModel(model_id="org/model", base_url="http://127.0.0.1:9/v1", token="t")
    assert model.client.model == "http://127.0.0.1:9/v1"
    request = Request(messages=USER, kwargs={"max_tokens": 3, "top_k": 5})
    body = model._body(request)
    assert body["model"] == "org/model" and body["max_tokens"] == 3
    assert body["extra_body"] == {"top_k": 5}, "parameters chat_completion does not name travel in extra_body"
    with pytest.raises(ValueError, match="base_url"):
        InferenceClientModel(model_id="http://a:1/v1", base_url="http://b:2/v1")


def test_hf_http_errors_name_status_request_id_and_retry_after():
    from huggingface_hub.errors import HfHubHTTPError

    from adapters.hf import translate_hf_error

    response = httpx.Response(429, headers={"retry-after": "3", "x-request-id": "req-9"},
                              request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    error = translate_hf_error(HfHubHTTPError("429 Too Many Requests", response=response), "inference-client")
    assert error is not None and error.status == 429 and error.request_id == "req-9"
    assert error.retry_after == 3.0 and error.retryable


def test_hf_errors_give_the_providers_message_as_text():
    from huggingface_hub.errors import HfHubHTTPError, TextGenerationError

    from adapters.hf import translate_hf_error

    body = b'{"error": {"message": "the prompt is too long", "type": "invalid_request_error", "code": null}}'
    response = httpx.Response(400, content=body, headers={"x-request-id": "req-9"},
                              request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    http = translate_hf_error(HfHubHTTPError("400 Bad Request", response=response), "inference-client")
    # an OpenAI-wire stream's error event: huggingface_hub raises it with the str() of the event's error object
    event = translate_hf_error(TextGenerationError(str({"message": "the model crashed", "type": "server_error"})),
                               "inference-client")
    plain = translate_hf_error(TextGenerationError("overloaded, try again"), "inference-client")
    assert http is not None and "the prompt is too long" in str(http) and "'message'" not in str(http)
    assert event is not None and "the model crashed" in str(event) and "{" not in str(event)
    assert plain is not None and "overloaded, try again" in str(plain)


# -- LiteLLM settings -------------------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "flatten"), [("ollama/llama3", True), ("groq/llama", True),
                                                   ("cerebras/x", True), ("openai/gpt-4o-mini", False)])
def test_litellm_flattens_by_default_for_text_only_providers(model_id, flatten):
    from adapters.litellm import LiteLLMModel

    assert LiteLLMModel(model_id).flatten_messages_as_text is flatten
    assert LiteLLMModel(model_id, flatten_messages_as_text=not flatten).flatten_messages_as_text is (not flatten)


def test_litellm_router_exports_no_deployment_credentials():
    from adapters.litellm import LiteLLMRouterModel

    model_list = [{"model_name": "group", "litellm_params": {"model": "ollama/llama3", "api_key": "sk-secret-value",
                                                              "api_base": "http://127.0.0.1:9"}}]
    model = LiteLLMRouterModel("group", model_list, client_kwargs={"routing_strategy": "simple-shuffle"},
                               max_tokens=8)
    assert model.flatten_messages_as_text is True, "the group's deployments are all ollama"
    data = model.to_dict()
    assert "sk-secret-value" not in json.dumps(data)
    assert data["model_list"][0]["litellm_params"] == {"model": "ollama/llama3", "api_base": "http://127.0.0.1:9"}
    assert data["client_kwargs"] == {"routing_strategy": "simple-shuffle"} and data["max_tokens"] == 8
    rebuilt = LiteLLMRouterModel.from_dict(data)
    assert rebuilt.to_dict() == data


def test_litellm_router_cooldown_is_a_retryable_throttle():
    from litellm.types.router import RouterRateLimitError

    from adapters.litellm import translate_litellm_error

    error = translate_litellm_error(
        RouterRateLimitError(model="group", cooldown_time=5.0, enable_pre_call_checks=False, cooldown_list=[]),
        "litellm-router",
    )
    assert error is not None and error.retryable and error.retry_after == 5.0 and error.status == 429


def test_litellm_error_without_a_json_body_names_the_page_the_provider_sent():
    # litellm 1.110 raises its APIError for an HTML 413 with only "Error code: 413" as its message, the response
    # (read) beside it; litellm's stand-in responses carry no body at all
    import litellm

    from adapters.litellm import translate_litellm_error

    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    html = "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"
    page = httpx.Response(413, request=request, headers={"x-request-id": "req-413"}, text=html)
    raised = litellm.APIError(413, "Error code: 413", "openai", "m", request=request)
    raised.response = page  # as litellm 1.110 sets it (earlier releases take no `response` argument)
    raised.litellm_response_headers = page.headers  # as litellm's exception_type sets them on every error it maps
    error = translate_litellm_error(raised, "litellm")
    assert error is not None and error.status == 413 and error.request_id == "req-413"
    assert "413 Request Entity Too Large" in str(error) and "nginx" not in str(error)
    error = translate_litellm_error(litellm.APIError(413, "Error code: 413", "openai", "m", request=request), "litellm")
    assert error is not None and "Error code: 413" in str(error)
