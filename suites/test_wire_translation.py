"""The translation between the contract and a backend's wire, judged on any implementation.

What a model is given (its own keyword arguments, a call's, REMOVE_PARAMETER, stop sequences, the
model family it serves, an Azure api_version) is judged on the request its real SDK sends; what
the wire answers (token usage, tool-call fragments by index, a content filter's finish reason) is
judged on the message it returns. HTTP backends are answered by the recorded-reply responder
(conftest.responder), so every request the check needs can be sent. Expected requests are written
down here per wire format (the OpenAI chat-completions and Bedrock Converse references), never
computed by the code under test.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from responder import Reply, ToolCallSpec

from conftest import text_of
from harness.backends.registry import Target
from oracles import cut_at_first_stop, exact_diff

# every check here builds its models with sampling settings of its own and judges them itself
pytestmark = [pytest.mark.no_cassette, pytest.mark.free_fields("max_tokens", "temperature", "top_p")]

HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris and Rome?"}]

# Per wire format: the model's own generation settings, a call's, the request fields they travel in,
# and the parameter a REMOVE_PARAMETER test takes out. The values are of several JSON types on
# purpose (a float, an int, an int where a float is also allowed, an object), so that a value
# converted on the way (37 -> 37.0, 1 -> 1.0) shows.
GENERATION: dict[str, dict[str, Any]] = {
    "openai": {
        "model": {"temperature": 0.25, "max_tokens": 37},
        "call": {"temperature": 0.9, "top_p": 1, "seed": 7},
        "fields": ("temperature", "max_tokens", "top_p", "seed", "stop"),
        "remove": "temperature",
    },
    # Converse: sampling settings inside inferenceConfig, model-specific ones in additionalModelRequestFields
    "bedrock": {
        "model": {"inferenceConfig": {"temperature": 0.25, "maxTokens": 37}},
        "call": {"inferenceConfig": {"temperature": 0.9}, "additionalModelRequestFields": {"top_k": 5, "seed": 7}},
        "fields": ("inferenceConfig", "additionalModelRequestFields"),
        "remove": "inferenceConfig",
    },
}


def _generation(backend: Any) -> dict[str, Any]:
    table = GENERATION.get(backend.wire_format)
    if table is None:
        pytest.skip(f"{backend.name}: no generation settings written down for the {backend.wire_format!r} wire")
    return table


def _sent_fields(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: body[name] for name in fields if name in body}


def _with_stops(wire_format: str, expected: dict[str, Any], stops: list[str]) -> dict[str, Any]:
    """``expected`` request fields with the stop sequences added where the wire carries them."""
    if wire_format == "bedrock":
        return {**expected, "inferenceConfig": {**expected.get("inferenceConfig", {}), "stopSequences": stops}}
    return {**expected, "stop": stops}


def _assert_sent(sent: dict[str, Any], expected: dict[str, Any]) -> None:
    diff = exact_diff(sent, expected, "body")
    assert not diff, "the request's generation fields differ from what the model was given:\n  " + "\n  ".join(diff)


def _stream(model: Any, contract: Any, messages: Any, **kwargs: Any) -> Any:
    return contract.agglomerate_stream_deltas(list(model.generate_stream(messages, **kwargs)))


# -- keyword arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("model.kwargs-at-instantiation")
def test_model_kwargs_reach_every_call(backend, model_factory, contract, wire, responder, streamed):
    """A model's own generation settings go out with each call, generate and stream alike."""
    table = _generation(backend)
    model = model_factory(**table["model"])
    responder.reply = Reply(text="Hello.")
    message = _stream(model, contract, HELLO) if streamed else model(HELLO)
    assert text_of(message) == "Hello."
    sent = _sent_fields(wire.last().raw, table["fields"])
    assert sent == table["model"], f"sent {sent!r}, the model was built with {table['model']!r}"


@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("model.call-kwargs-forwarded", "model.kwargs-precedence", "model.argument-types-kept")
def test_call_kwargs_are_forwarded_and_the_models_own_win(backend, model_factory, contract, wire, responder,
                                                          streamed):
    """A call's keyword arguments go out; where the model has its own value for one, the model's is sent."""
    table = _generation(backend)
    model = model_factory(**table["model"])
    responder.reply = Reply(text="Hello.")
    _stream(model, contract, HELLO, **table["call"]) if streamed else model(HELLO, **table["call"])
    expected = {**table["call"], **table["model"]}  # smolagents' priority: the model's kwargs, then the call's
    _assert_sent(_sent_fields(wire.last().raw, table["fields"]), expected)


@pytest.mark.parametrize("sentinel", ["contract", "smolagents"])
@pytest.mark.clause("model.remove-parameter", "model.argument-types-kept")
def test_remove_parameter_takes_the_parameter_out(backend, model_factory, contract, wire, responder, sentinel):
    """A model kwarg set to REMOVE_PARAMETER (the subject's own, or smolagents') removes that parameter,
    also when the call gives it."""
    table = _generation(backend)
    removed = table["remove"]
    remove = contract.REMOVE_PARAMETER if sentinel == "contract" else pytest.importorskip(
        "smolagents.models").REMOVE_PARAMETER
    model = model_factory(**{**table["model"], removed: remove})
    responder.reply = Reply(text="Hello.")
    model(HELLO, **table["call"])
    expected = {k: v for k, v in {**table["call"], **table["model"]}.items() if k != removed}
    _assert_sent(_sent_fields(wire.last().raw, table["fields"]), expected)


@pytest.mark.clause("stop.sent-beside-settings", "stop.before-stop-sequence")
def test_stops_go_out_beside_the_models_settings(backend, model_factory, wire, responder):
    """Stop sequences and the model's generation settings go out together, neither replacing the other."""
    table = _generation(backend)
    model = model_factory(**table["model"])
    responder.reply = Reply(text="Monday, Tuesday, END Wednesday")
    message = model(HELLO, stop_sequences=["END", "Sunday"])
    _assert_sent(_sent_fields(wire.last().raw, table["fields"]),
                 _with_stops(backend.wire_format, table["model"], ["END", "Sunday"]))
    assert text_of(message) == cut_at_first_stop("Monday, Tuesday, END Wednesday", ["END", "Sunday"])


# Request fields of the OpenAI chat-completions reference that an SDK need not name as a parameter of its own
# (huggingface_hub's chat_completion names none of these): they still go out, as given.
WIRE_ONLY_PARAMETERS: dict[str, dict[str, Any]] = {"openai": {"prompt_cache_key": "conformance-7", "store": False}}
# `extra_body`, the OpenAI SDK's (and huggingface_hub's, litellm's) keyword for request fields it does not name:
# its fields go out top-level, together with a wire field given by name beside it
EXTRA_BODY: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "openai": ({"prompt_cache_key": "conformance-7"}, {"store": False})}


@pytest.mark.clause("model.wire-parameters-forwarded")
def test_a_wire_parameter_the_sdk_does_not_name_goes_out(backend, model_factory, wire, responder):
    """A model's or a call's keyword argument that the wire defines reaches the request, top-level and as given,
    also through an SDK without a parameter of that name; so do the fields of an extra_body given beside one."""
    given = WIRE_ONLY_PARAMETERS.get(backend.wire_format)
    if given is None:
        pytest.skip(f"{backend.name}: its {backend.wire_format!r} wire carries model-specific fields in a field of "
                    "its own (judged by test_call_kwargs_are_forwarded_and_the_models_own_win)")
    responder.reply = Reply(text="Hello.")
    cases = [("a model's", model_factory(**given), {}), ("a call's", model_factory(), given)]
    if backend.wire_format in EXTRA_BODY:
        in_extra_body, by_name = EXTRA_BODY[backend.wire_format]
        cases.append(("a model's extra_body and a call's", model_factory(extra_body=in_extra_body), by_name))
    for how, model, call in cases:
        model(HELLO, **call)
        sent = _sent_fields(wire.last().raw, tuple(given))
        assert sent == given, f"{how} keyword arguments {given!r}: the request carried {sent!r}"


# -- the stop rule per model family -------------------------------------------------------------


def _serving(backend: Any, family: str) -> dict[str, Any]:
    """The backend's replay settings with ``family`` as the model served.

    A backend whose settings do not name the served model (an Azure deployment, a Bedrock model id)
    gets it as ``model_id``. A Router group gets a name of its own, so that only its deployments say
    which model family answers.
    """
    settings = backend.settings(Target(mode="replay", served_model_id=family))
    if family not in repr(settings):  # no setting names the served model
        settings["model_id"] = family
    if "temperature" in settings:
        settings["temperature"] = 1  # reasoning families (o-series, gpt-5) take only 1; litellm refuses others
    if "model_list" in settings:
        group = "conformance-group"
        settings["model_list"] = [{**entry, "model_name": group} for entry in settings["model_list"]]
        settings["model_id"] = group
    return settings


# smolagents' supports_stop_parameter rule, written down: o3 and o3-* except o3-mini, o4*, gpt-5*, grok-*
STOP_FAMILIES = [("o3", False), ("gpt-5-mini", False), ("grok-4", False), ("o4-mini", False),
                 ("o3-mini", True), ("gpt-4o", True)]


@pytest.mark.parametrize("family,accepts_stop", STOP_FAMILIES, ids=[f for f, _ in STOP_FAMILIES])
@pytest.mark.clause("stop.not-sent-where-rejected", "stop.before-stop-sequence")
def test_stop_is_sent_only_to_families_that_accept_it(backend, model_factory, wire, responder, family,
                                                       accepts_stop):
    """stop goes out to a family that accepts it and not to one that rejects it; the text is cut either way."""
    if "stop_parameter" not in backend.capabilities:
        pytest.skip(f"{backend.name} stops inside the engine: no stop parameter goes out")
    model = model_factory(**_serving(backend, family))
    text = "Monday, Tuesday, END Wednesday"
    responder.reply = Reply(text=text)
    message = model(HELLO, stop_sequences=["END"])
    sent = wire.last().stop
    assert sent == (["END"] if accepts_stop else None), (
        f"model family {family!r}: stop on the wire {sent!r}, expected {'[END]' if accepts_stop else 'none'}")
    assert text_of(message) == cut_at_first_stop(text, ["END"])


@pytest.mark.parametrize("family,switch", [("gpt-4o", False), ("o3", True)], ids=["off", "on"])
@pytest.mark.clause("stop.parameter-switch", "stop.before-stop-sequence")
def test_supports_stop_parameter_overrides_the_family_rule(backend, model_factory, wire, responder, family, switch):
    """supports_stop_parameter=False keeps stop off the wire, True sends it; the text is cut either way."""
    if "stop_parameter" not in backend.capabilities:
        pytest.skip(f"{backend.name} stops inside the engine: no stop parameter goes out")
    model = model_factory(**_serving(backend, family), supports_stop_parameter=switch)
    text = "Monday, Tuesday, END Wednesday"
    responder.reply = Reply(text=text)
    message = model(HELLO, stop_sequences=["END"])
    assert wire.last().stop == (["END"] if switch else None), f"stop on the wire: {wire.last().stop!r}"
    assert text_of(message) == cut_at_first_stop(text, ["END"])


# -- what the wire answers ----------------------------------------------------------------------


@pytest.mark.requires("token_usage")
@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("usage.mapped-from-wire", "usage.token-usage")
def test_usage_is_read_from_the_wires_fields(model, contract, responder, streamed):
    """input_tokens is the wire's prompt count, output_tokens its completion count (told apart: 123 and 7)."""
    responder.reply = Reply(text="Hello.", usage=(123, 7))
    message = _stream(model, contract, HELLO) if streamed else model(HELLO)
    usage = message.token_usage
    assert usage is not None, "token_usage is None although the wire reported usage"
    assert (usage.input_tokens, usage.output_tokens) == (123, 7), (
        f"token_usage input={usage.input_tokens} output={usage.output_tokens}; the wire said input 123, output 7")
    assert usage.total_tokens == 130


@pytest.mark.requires("stream")
@pytest.mark.clause("stream.usage-requested")
def test_a_stream_request_asks_for_usage(backend, model, contract, wire, responder):
    """On the OpenAI wire a stream only reports usage when asked: stream_options.include_usage is sent."""
    if backend.wire_format != "openai":
        pytest.skip(f"{backend.wire_format} streams report usage unasked (Converse: its metadata event)")
    responder.reply = Reply(text="Hello.", usage=(123, 7))
    _stream(model, contract, HELLO)
    body = wire.last().raw
    assert body.get("stream") is True, f"stream sent {body.get('stream')!r}"
    assert (body.get("stream_options") or {}).get("include_usage") is True, (
        f"stream_options sent {body.get('stream_options')!r}, expected include_usage: true")


@pytest.mark.requires("native_tools", "stream")
@pytest.mark.clause("stream.tool-call-deltas-by-index", "tools.parallel-calls")
def test_interleaved_tool_call_fragments_merge_by_index(model, contract, weather_tool, responder):
    """Fragments of three calls arriving mixed, the last call's first, merge by index into the three calls."""
    cities = ["Paris", "Rome", "Madrid"]
    calls = [ToolCallSpec(f"call_{i}", "get_weather", {"city": c}) for i, c in enumerate(cities)]
    responder.reply = Reply(tool_calls=calls, argument_pieces=[3, 9], interleaved=True)
    message = _stream(model, contract, WEATHER, tools_to_call_from=[weather_tool])
    surfaced = [(c.id, c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]
    assert surfaced == [(f"call_{i}", "get_weather", {"city": c}) for i, c in enumerate(cities)], surfaced


# The finish reason a content filter answers with, per wire format.
FILTER_REASONS = {"openai": ["content_filter"], "bedrock": ["content_filtered", "guardrail_intervened"]}


@pytest.mark.parametrize("which", [0, 1], ids=["filter", "guardrail"])
@pytest.mark.clause("response.content-filter-answered")
def test_a_content_filter_answer_is_an_answer_with_its_reason(backend, model, responder, which):
    """An HTTP-200 answer a filter cut comes back with the text it has and the filter's reason on the message;
    an Azure deployment's reason names the categories its content_filter_results mark filtered."""
    reasons = FILTER_REASONS.get(backend.wire_format, [])
    if which >= len(reasons):
        pytest.skip(f"the {backend.wire_format} wire has one content-filter finish reason")
    reason = reasons[which]
    responder.reply = Reply(text="The first part of the answer", finish_reason=reason, filtered=["hate", "violence"])
    message = model(HELLO)
    assert text_of(message) == "The first part of the answer"
    on_message = getattr(message, "finish_reason", None)
    assert isinstance(on_message, str) and on_message.split(":")[0] == reason, (
        f"message.finish_reason is {on_message!r}; the wire's finish reason was {reason!r}")
    if "azure_endpoint" in backend.settings(Target(mode="replay")):
        named = {c.split()[0] for c in on_message.partition(":")[2].split(",") if c.strip()}  # "hate (high)"
        assert named == {"hate", "violence"}, f"message.finish_reason {on_message!r} names {named}, expected the " \
                                              "categories content_filter_results marks filtered: hate, violence"


# -- the endpoint -------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("azure.deployment-url")
def test_an_azure_deployment_is_called_at_its_url_with_the_api_version(backend, model_factory, contract, capture,
                                                                      responder, streamed):
    """An Azure deployment is called at /openai/deployments/<deployment>/chat/completions?api-version=<given>."""
    settings = backend.settings(Target(mode="replay"))
    if "api_version" not in settings or "azure_endpoint" not in settings:
        pytest.skip(f"{backend.name} is not built with an azure_endpoint and an api_version")
    model = model_factory(api_version="2025-01-01-preview")
    responder.reply = Reply(text="Hello.")
    _stream(model, contract, HELLO) if streamed else model(HELLO)
    url = urlsplit(capture.http[-1].url)
    assert url.path == f"/openai/deployments/{settings['model_id']}/chat/completions", url.path
    assert parse_qs(url.query) == {"api-version": ["2025-01-01-preview"]}, url.query
