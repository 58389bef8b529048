"""AzureOpenAIServerModel: documented parameters and environment fallbacks, content filter, stop."""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.azure import AzureOpenAIModel, AzureOpenAIServerModel
from harness.contract.errors import BackendError, ContentFilterError
from harness.contract.model import agglomerate_stream_deltas

ENDPOINT = "https://example-resource.openai.azure.com"
VERSION = "2024-10-21"
ENV = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION", "AZURE_OPENAI_AD_TOKEN")
SAFE = {"filtered": False, "severity": "safe"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the Azure variables it sets."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


class Server:
    """An httpx transport answering like Azure and keeping the requests."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)

    def body(self, i: int = -1) -> dict:
        return json.loads(self.requests[i].content)


def _completion(content: str, finish: str = "stop", filters: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content},
                     "content_filter_results": filters or {"hate": SAFE, "violence": SAFE}}],
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": SAFE}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def _reply(payload: dict, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload, headers={"apim-request-id": "apim-1", "x-request-id": "req-1"})


def _model(server: Server, **kwargs) -> AzureOpenAIServerModel:
    options = {"model_id": "my-deployment", "azure_endpoint": ENDPOINT, "api_key": "test-key",
               "api_version": VERSION, **kwargs}
    options["client_kwargs"] = {"http_client": httpx.Client(transport=httpx.MockTransport(server)),
                                **(kwargs.get("client_kwargs") or {})}
    model = AzureOpenAIServerModel(**options)
    model._sleep = lambda seconds: None
    return model


# -- parameters and environment ----------------------------------------------------------------


def test_environment_fallbacks(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_API_VERSION", VERSION)
    server = Server(_reply(_completion("Hi")))
    model = AzureOpenAIServerModel("my-deployment", client_kwargs={
        "http_client": httpx.Client(transport=httpx.MockTransport(server))})
    assert (model.azure_endpoint, model.api_version, model.api_key) == (ENDPOINT, VERSION, "env-key")
    model([{"role": "user", "content": "Hi"}])
    request = server.requests[0]
    assert str(request.url) == f"{ENDPOINT}/openai/deployments/my-deployment/chat/completions?api-version={VERSION}"
    assert request.headers["api-key"] == "env-key"
    assert json.loads(request.content)["model"] == "my-deployment"


def test_explicit_parameters_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://other.openai.azure.com")
    monkeypatch.setenv("OPENAI_API_VERSION", "2023-01-01")
    model = AzureOpenAIServerModel("d", azure_endpoint=ENDPOINT, api_key="k", api_version=VERSION)
    assert (model.azure_endpoint, model.api_version) == (ENDPOINT, VERSION)


@pytest.mark.parametrize(
    ("missing", "parameter", "variable"),
    [
        ("azure_endpoint", "azure_endpoint", "AZURE_OPENAI_ENDPOINT"),
        ("api_version", "api_version", "OPENAI_API_VERSION"),
    ],
)
def test_a_missing_endpoint_or_version_names_the_parameter_and_the_variable(missing, parameter, variable):
    options = {"azure_endpoint": ENDPOINT, "api_key": "k", "api_version": VERSION}
    del options[missing]
    with pytest.raises(ValueError) as info:
        AzureOpenAIServerModel("d", **options)
    assert parameter in str(info.value) and variable in str(info.value)
    assert "AZURE_OPENAI_API_VERSION" not in str(info.value)


def test_missing_credentials_name_the_variable():
    with pytest.raises(ValueError, match="AZURE_OPENAI_API_KEY"):
        AzureOpenAIServerModel("d", azure_endpoint=ENDPOINT, api_version=VERSION)


def test_entra_id_token_provider_needs_no_key():
    model = AzureOpenAIServerModel("d", azure_endpoint=ENDPOINT, api_version=VERSION,
                                   client_kwargs={"azure_ad_token_provider": lambda: "token"})
    assert model.api_key is None


def test_to_dict_round_trips_without_the_key():
    model = AzureOpenAIServerModel("d", azure_endpoint=ENDPOINT, api_key="secret-key-123", api_version=VERSION,
                                   requests_per_minute=60, supports_stop_parameter=False, max_tokens=10)
    data = model.to_dict()
    assert "secret-key-123" not in json.dumps(data, default=str) and "api_key" not in data
    # OpenAIServerModel's settings left unset are exported unset, as smolagents' to_dict does (an attribute it has)
    assert (data["api_base"], data["organization"], data["project"]) == (None, None, None)
    rebuilt = AzureOpenAIServerModel.from_dict({**data, "api_key": "k"})
    assert (rebuilt.azure_endpoint, rebuilt.api_version, rebuilt.supports_stop_parameter, rebuilt.kwargs) == (
        ENDPOINT, VERSION, False, {"max_tokens": 10})
    assert rebuilt.to_dict() == data  # none of them became a request parameter


def test_alias():
    assert AzureOpenAIModel is AzureOpenAIServerModel


# -- the call ----------------------------------------------------------------------------------


def test_reply_becomes_a_message_with_usage():
    server = Server(_reply(_completion("Hello.")))
    message = _model(server)([{"role": "user", "content": "Hi"}])
    assert message.content == "Hello." and message.token_usage.total_tokens == 8


def test_stop_is_sent_and_the_contract_holds():
    server = Server(_reply(_completion("one two three")))
    message = _model(server)([{"role": "user", "content": "Count"}], stop_sequences=["two"])
    assert server.body()["stop"] == ["two"]
    assert message.content == "one "


def test_a_deployment_that_cannot_take_stop_trims_client_side():
    server = Server(_reply(_completion("one two three")))
    model = _model(server, supports_stop_parameter=False)
    message = model([{"role": "user", "content": "Count"}], stop_sequences=["two"])
    assert "stop" not in server.body()
    assert message.content == "one "


def test_a_deployment_rejecting_stop_says_how_to_configure_it():
    error = {"error": {"message": "Unsupported parameter: 'stop' is not supported with this model.",
                       "type": "invalid_request_error", "param": "stop", "code": "unsupported_parameter"}}
    with pytest.raises(BackendError) as info:
        _model(Server(_reply(error, 400)))([{"role": "user", "content": "x"}], stop_sequences=["a"])
    assert "supports_stop_parameter=False" in str(info.value)
    assert info.value.status == 400 and info.value.request_id == "req-1"


# -- content filter ----------------------------------------------------------------------------


def test_content_filter_200_is_an_answer_marked_with_the_reason():
    filters = {"hate": SAFE, "violence": {"filtered": True, "severity": "high"}}
    server = Server(_reply(_completion("Partial", "content_filter", filters)))
    message = _model(server)([{"role": "user", "content": "x"}])
    assert message.content == "Partial"
    assert message.finish_reason == "content_filter: violence (high)"
    assert message.raw.choices[0].finish_reason == "content_filter"


def test_content_filter_200_with_nothing_left_is_an_empty_answer():
    filters = {"violence": {"filtered": True, "severity": "high"}}
    server = Server(_reply(_completion(None, "content_filter", filters)))
    message = _model(server)([{"role": "user", "content": "x"}])
    assert message.content == "" and message.tool_calls is None
    assert message.finish_reason is not None and message.finish_reason.startswith("content_filter")


def test_content_filter_400_is_a_content_filter_error():
    body = {"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
            "hate": SAFE, "jailbreak": {"filtered": True, "detected": True}, "self_harm": SAFE}},
    }}
    server = Server(_reply(body, 400))
    with pytest.raises(ContentFilterError) as info:
        _model(server)([{"role": "user", "content": "x"}])
    error = info.value
    assert (error.backend, error.status, error.request_id, error.kind) == ("azure", 400, "req-1", "content_filter")
    assert "jailbreak (detected)" in str(error) and "refused the prompt" in str(error)
    assert len(server.requests) == 1, "a content-filter refusal is not retried"


def test_content_filter_in_a_stream_ends_the_answer_without_raising():
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": SAFE}}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Part"}, "finish_reason": None}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                      "content_filter_results": {"violence": {"filtered": True, "severity": "medium"}}}]},
    ]
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    server = Server(httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"}))
    deltas = list(_model(server).generate_stream([{"role": "user", "content": "x"}]))
    assert "".join(d.content or "" for d in deltas) == "Part"


def test_a_stream_with_the_prompt_filter_chunk_agglomerates():
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": SAFE}}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "content_filter_results": {}}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}},
    ]
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    server = Server(httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"}))
    message = agglomerate_stream_deltas(list(_model(server).generate_stream([{"role": "user", "content": "x"}])))
    assert message.content == "Hello" and message.token_usage.total_tokens == 4
    assert server.body()["stream"] is True


# -- the suites' settings ----------------------------------------------------------------------


def test_replay_settings_match_the_derived_cassettes():
    from harness.backends.registry import Target, get_backend
    from harness.recording.placeholders import AZURE_API_VERSION, AZURE_DEPLOYMENT, AZURE_ENDPOINT

    settings = get_backend("azure").settings(Target(mode="replay"))
    assert (settings["model_id"], settings["azure_endpoint"], settings["api_version"]) == (
        AZURE_DEPLOYMENT, AZURE_ENDPOINT, AZURE_API_VERSION)


def test_record_settings_name_every_missing_variable(monkeypatch):
    from harness.backends.registry import Target, get_backend
    from harness.contract.errors import HarnessError

    monkeypatch.delenv("AZURE_OPENAI_DEPLOYMENT", raising=False)
    monkeypatch.setenv("OPENAI_API_VERSION", VERSION)
    with pytest.raises(HarnessError) as info:
        get_backend("azure").settings(Target(mode="record", api_key=""))
    assert "AZURE_OPENAI_ENDPOINT" in str(info.value) and "AZURE_OPENAI_DEPLOYMENT" in str(info.value)
    assert "OPENAI_API_VERSION" not in str(info.value).replace("AZURE_OPENAI", "")


def test_record_settings_read_the_environment(monkeypatch):
    from harness.backends.registry import Target, get_backend

    for name, value in (("AZURE_OPENAI_ENDPOINT", ENDPOINT), ("OPENAI_API_VERSION", VERSION),
                        ("AZURE_OPENAI_DEPLOYMENT", "prod"), ("AZURE_OPENAI_API_KEY", "live-key")):
        monkeypatch.setenv(name, value)
    settings = get_backend("azure").settings(Target(mode="live", api_key=""))
    assert (settings["model_id"], settings["azure_endpoint"], settings["api_key"], settings["api_version"]) == (
        "prod", ENDPOINT, "live-key", VERSION)
    assert AzureOpenAIServerModel(**settings).model_id == "prod"


# -- client settings given inside client_kwargs ------------------------------------------------------


def test_a_client_setting_inside_client_kwargs_stands_for_its_parameter():
    from adapters import OpenAIServerModel

    # openai.OpenAI got them twice before (a TypeError); now each reaches the client once, where its parameter would
    model = OpenAIServerModel("m", client_kwargs={"api_key": "key-inside", "base_url": "http://127.0.0.1:9/v1",
                                                  "organization": "org-inside", "timeout": 7.5})
    assert (model.api_key, model.api_base, model.organization, model.client_kwargs) == (
        "key-inside", "http://127.0.0.1:9/v1", "org-inside", {"timeout": 7.5})
    assert (model.client.api_key, str(model.client.base_url), model.client.organization) == (
        "key-inside", "http://127.0.0.1:9/v1/", "org-inside")
    assert "key-inside" not in json.dumps(model.to_dict(), default=str)  # lifted out of the exported client_kwargs
    azure = AzureOpenAIServerModel("d", client_kwargs={"azure_endpoint": ENDPOINT, "api_version": VERSION,
                                                       "api_key": "key-inside"})
    assert (azure.azure_endpoint, azure.api_version, azure.api_key, azure.client_kwargs) == (
        ENDPOINT, VERSION, "key-inside", {})


@pytest.mark.parametrize("parameter,key", [("api_key", "api_key"), ("azure_endpoint", "azure_endpoint"),
                                           ("api_version", "api_version"), ("api_base", "base_url")])
def test_a_setting_given_as_its_parameter_and_inside_client_kwargs_is_refused(parameter, key):
    arguments = {"model_id": "d", "api_key": "k", "api_version": VERSION, parameter: "https://a.example/v1"}
    if parameter != "api_base":
        arguments["azure_endpoint"] = arguments.get("azure_endpoint", ENDPOINT)
    with pytest.raises(ValueError, match=rf"got {parameter} and client_kwargs\['{key}'\]; pass one"):
        AzureOpenAIServerModel(**arguments, client_kwargs={key: "https://b.example/v1"})
