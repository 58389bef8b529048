"""Bad input is refused before any network call, naming the argument and the bad value: inputs x adapters."""

from __future__ import annotations

import pytest

from harness.backends.registry import Target, get_backend
from harness.contract.errors import BackendError, UnknownBackendError
from harness.recording.cassettes import block_network, hub_clients_online

HTTP_BACKENDS = ["openai", "azure", "inference-client", "litellm", "litellm-router", "bedrock"]
USER = [{"role": "user", "content": "hi"}]

# input -> (generate keyword arguments, error type, what the message must name)
BAD_INPUTS = {
    "messages=None": ({"messages": None}, TypeError, "messages must be a list"),
    "messages is a str": ({"messages": "hello"}, TypeError, "got str"),
    "messages=[42]": ({"messages": [42]}, TypeError, "messages[0] must be a dict"),
    "messages=[]": ({"messages": []}, ValueError, "messages is empty"),
    "message without role": ({"messages": [{"content": "x"}]}, ValueError, "messages[0] has no 'role'"),
    "unknown role": ({"messages": [{"role": "wizard", "content": "x"}]}, ValueError, "'wizard'"),
    "content=5": ({"messages": [{"role": "user", "content": 5}]}, TypeError, "messages[0].content"),
    "text part with text=5": ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
                              ValueError, "messages[0].content[0]"),
    "unknown part type": ({"messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]},
                          ValueError, "'video'"),
    "part that is not a dict": ({"messages": [{"role": "user", "content": ["hi"]}]}, TypeError,
                                "messages[0].content[0] must be a dict part"),
    "stop_sequences=5": ({"messages": USER, "stop_sequences": 5}, TypeError, "stop_sequences must be a list"),
    "stop_sequences=['a', 3]": ({"messages": USER, "stop_sequences": ["a", 3]}, ValueError, "stop_sequences[1]"),
    "stop_sequences=['']": ({"messages": USER, "stop_sequences": [""]}, ValueError, "stop_sequences[0]"),
    "tools_to_call_from=5": ({"messages": USER, "tools_to_call_from": 5}, TypeError, "tools_to_call_from"),
    "tools_to_call_from=[42]": ({"messages": USER, "tools_to_call_from": [42]}, TypeError, "tool 42"),
    "tool dict without name": ({"messages": USER, "tools_to_call_from": [{"x": 1}]}, ValueError, "{'x': 1}"),
    "response_format='json'": ({"messages": USER, "response_format": "json"}, TypeError, "response_format"),
    "response_format type bogus": ({"messages": USER, "response_format": {"type": "bogus"}}, ValueError,
                                   "'bogus'"),
    "json_schema without schema": ({"messages": USER, "response_format": {"type": "json_schema"}}, ValueError,
                                   "needs a 'json_schema'"),
}
# Inputs one wire forbids and the others accept.
WIRE_ONLY = {
    "empty user turn": ({"messages": [{"role": "user", "content": ""}]}, ValueError, "messages[0] is a user turn",
                        ("bedrock",)),
}
CASES = [(b, name, *spec) for b in HTTP_BACKENDS for name, spec in BAD_INPUTS.items()]
CASES += [(b, name, kw, err, says) for name, (kw, err, says, only) in WIRE_ONLY.items() for b in only]


@pytest.mark.parametrize(("backend", "name", "kwargs", "error", "says"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input_is_refused_before_the_network(backend, name, kwargs, error, says):
    spec = get_backend(backend)
    model = spec.load()(**spec.settings(Target(mode="replay")))
    with hub_clients_online(), block_network(), pytest.raises(Exception) as info:
        model.generate(**kwargs)
    # a BackendError here would mean the request went out (the network is blocked) instead of being refused
    assert not isinstance(info.value, BackendError), f"{name}: sent instead of refused: {info.value}"
    assert isinstance(info.value, error), f"{name}: {type(info.value).__name__}: {info.value}"
    assert says in str(info.value), f"{name}: {info.value}"


def test_conflicting_token_and_api_key_are_refused():
    from adapters import InferenceClientModel

    with pytest.raises(ValueError, match="token.*api_key|api_key.*token"):
        InferenceClientModel(model_id="http://127.0.0.1:9/v1", token="tok-123456789", api_key="key-987654321")


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(UnknownBackendError, match="'azur' is not a backend. Known: .*azure"):
        get_backend("azur")


def test_missing_aws_credentials_are_a_typed_error_tried_once(no_configured_secrets, monkeypatch, tmp_path):
    from adapters import AmazonBedrockServerModel

    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    model = AmazonBedrockServerModel("example.model-v1:0", client_kwargs={"region_name": "us-east-1"})
    waits: list[float] = []
    model._sleep = waits.append
    with block_network(), pytest.raises(BackendError, match="no usable AWS credentials") as info:
        model.generate(USER)
    assert info.value.kind == "auth" and not info.value.retryable and waits == []
