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
from wires import lens_of

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


# Per wire format: the request field a call's stop sequences travel in (Converse: inferenceConfig.stopSequences)
STOP_FIELD = {"openai": "stop", "bedrock": "inferenceConfig"}


@pytest.mark.parametrize("sentinel", ["contract", "smolagents"])
@pytest.mark.clause("model.remove-parameter", "stop.trimmed-client-side")
def test_remove_parameter_takes_out_the_field_stop_sequences_travel_in(backend, model_factory, contract, wire,
                                                                       responder, sentinel):
    """The field a call's stop sequences would go out in, set to REMOVE_PARAMETER on the model, stays out of the
    request although the call gives stop sequences; the answer is still cut at the first stop."""
    field = STOP_FIELD.get(backend.wire_format)
    if field is None:
        pytest.skip(f"{backend.name}: no stop field written down for the {backend.wire_format!r} wire")
    remove = contract.REMOVE_PARAMETER if sentinel == "contract" else pytest.importorskip(
        "smolagents.models").REMOVE_PARAMETER
    model = model_factory(**{field: remove})
    responder.reply = Reply(text="Monday, Tuesday, END Wednesday")
    message = model(HELLO, stop_sequences=["END"])
    sent = wire.last().raw
    assert field not in sent, f"{field} set to REMOVE_PARAMETER went out as {sent[field]!r}"
    assert text_of(message) == "Monday, Tuesday, ", f"the answer {text_of(message)!r} is not cut at the stop 'END'"
@pytest.mark.requires("native_tools")
@pytest.mark.clause("model.remove-parameter")
def test_remove_parameter_takes_out_what_the_call_itself_writes(backend, model_factory, contract, wire, responder,
                                                                weather_tool):
    """REMOVE_PARAMETER among the model's kwargs also takes out a field the call itself writes: `tools`, sent
    for tools_to_call_from, goes out no more."""
    if backend.wire_format != "openai":
        pytest.skip(f"{backend.wire_format}: the tools go out in the wire's own field, not `tools`")
    model = model_factory(tools=contract.REMOVE_PARAMETER)
    responder.reply = Reply(text="Hello.")
    model(WEATHER, tools_to_call_from=[weather_tool])
    sent = wire.last().raw
    assert "tools" not in sent, f"tools sent {sent.get('tools')!r} although the model's kwargs removed it"
    assert sent.get("messages"), "the messages did not go out"


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


# Per wire format where the model's settings can hold stop sequences of their own beside the call's stop_sequences
# (Converse: inferenceConfig.stopSequences): the model's settings, and the stop sequences that must go out.
OWN_STOPS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "bedrock": ({"inferenceConfig": {"maxTokens": 37, "stopSequences": ["HALT", "STOP"]}}, ["END", "HALT", "STOP"]),
}


@pytest.mark.clause("stop.sent-beside-settings", "stop.before-stop-sequence")
def test_stops_go_out_beside_the_stops_of_the_models_settings(backend, model_factory, wire, responder):
    """Where the model's own settings hold stop sequences, a call's stop_sequences go out with them, each once:
    neither replaces the other."""
    if backend.wire_format not in OWN_STOPS:
        pytest.skip(f"the {backend.wire_format} wire carries stop sequences in one parameter only")
    settings, expected = OWN_STOPS[backend.wire_format]
    model = model_factory(**settings)
    responder.reply = Reply(text="Monday, Tuesday, END Wednesday")
    message = model(HELLO, stop_sequences=["END", "STOP"])
    config = wire.last().raw.get("inferenceConfig") or {}
    stops = config.get("stopSequences") or []
    assert sorted(stops) == expected, f"stopSequences sent {stops!r}, expected {expected} (each once)"
    assert config.get("maxTokens") == 37, f"inferenceConfig sent {config!r}: the model's maxTokens is lost"
    assert text_of(message) == "Monday, Tuesday, "


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


# A structured-output request whose schema has a description (OpenAI json_schema.description, Converse
# outputConfig.textFormat.structure.jsonSchema.description: what the output is for, read by the model).
DESCRIBED_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                    "additionalProperties": False}
DESCRIBED_FORMAT = {"type": "json_schema", "json_schema": {
    "name": "city", "description": "The city the user asks about.", "schema": DESCRIBED_SCHEMA, "strict": True}}


@pytest.mark.requires("structured_output")
@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("structured.on-the-wire")
def test_a_response_formats_description_goes_out(backend, model, contract, wire, responder, streamed):
    """The description of a json_schema response_format reaches the wire's structured-output request, with its
    name and schema, from generate and from a stream alike."""
    responder.reply = Reply(text='{"city": "Paris"}')
    message = (_stream(model, contract, WEATHER, response_format=DESCRIBED_FORMAT) if streamed
               else model(WEATHER, response_format=DESCRIBED_FORMAT))
    sent = wire.last().raw
    if (sent.get("response_format") or {}).get("type") == "json_object":
        pytest.skip(f"{backend.name}'s SDK sends TGI's grammar form of a json_schema, which has no description")
    lens = lens_of(backend)
    assert lens.response_schema(sent) == ("city", DESCRIBED_SCHEMA)
    assert lens.response_description(sent) == "The city the user asks about.", (
        f"description sent {lens.response_description(sent)!r}")
    assert text_of(message) == '{"city": "Paris"}'


# Per wire format: the request field a structured-output request travels in.
STRUCTURED_FIELD = {"openai": "response_format", "bedrock": "outputConfig"}


@pytest.mark.requires("structured_output")
@pytest.mark.clause("structured.on-the-wire", "model.kwargs-at-instantiation")
def test_a_models_response_format_goes_out_with_every_call(backend, model_factory, wire, responder):
    """A response_format the model was built with is the structured-output request of each call, in the wire's
    form, as one given to the call is."""
    model = model_factory(response_format=DESCRIBED_FORMAT)
    responder.reply = Reply(text='{"city": "Paris"}')
    message = model(WEATHER)
    sent = wire.last().raw
    if (sent.get("response_format") or {}).get("type") == "json_object":
        pytest.skip(f"{backend.name}'s SDK sends TGI's grammar form of a json_schema, which has no description")
    lens = lens_of(backend)
    assert lens.response_schema(sent) == ("city", DESCRIBED_SCHEMA), f"sent {sent!r}"
    assert lens.response_description(sent) == "The city the user asks about."
    assert "response_format" not in sent or backend.wire_format == "openai", (
        f"a raw response_format field went out beside the {backend.wire_format} wire's own: {sent!r}")
    assert text_of(message) == '{"city": "Paris"}'


@pytest.mark.requires("structured_output")
@pytest.mark.parametrize("sentinel", ["contract", "smolagents"])
@pytest.mark.clause("model.remove-parameter")
def test_remove_parameter_takes_the_response_format_out(backend, model_factory, contract, wire, responder,
                                                        sentinel):
    """A model built with response_format=REMOVE_PARAMETER sends no structured-output request, also when a call
    asks for one."""
    field = STRUCTURED_FIELD.get(backend.wire_format)
    if field is None:
        pytest.skip(f"{backend.name}: no structured-output field written down for the {backend.wire_format!r} wire")
    remove = contract.REMOVE_PARAMETER if sentinel == "contract" else pytest.importorskip(
        "smolagents.models").REMOVE_PARAMETER
    model = model_factory(response_format=remove)
    responder.reply = Reply(text='{"city": "Paris"}')
    message = model(WEATHER, response_format=DESCRIBED_FORMAT)
    sent = wire.last().raw
    assert field not in sent and "response_format" not in sent, f"a structured-output request went out: {sent!r}"
    assert text_of(message) == '{"city": "Paris"}'


# Per wire format: the parameters through which a model's REMOVE_PARAMETER keeps a call's stop sequences off the
# wire (the stop parameter itself; on Converse also inferenceConfig, the field the stop sequences travel in), with
# the fields that must then be absent from the request.
REMOVE_STOP: dict[str, dict[str, tuple[str, ...]]] = {
    "openai": {"stop": ("stop",)},
    "bedrock": {"stop": ("stopSequences",), "inferenceConfig": ("inferenceConfig",)},
}


@pytest.mark.parametrize("removed", ["stop", "inferenceConfig"])
@pytest.mark.clause("model.remove-parameter", "stop.before-stop-sequence")
def test_remove_parameter_keeps_a_calls_stops_off_the_wire(backend, model_factory, contract, wire, responder,
                                                           removed):
    """A model built with REMOVE_PARAMETER for the parameter a call's stop sequences travel in sends none of
    them; the text is still cut before the first stop sequence."""
    if "stop_parameter" not in backend.capabilities:
        pytest.skip(f"{backend.name} stops inside the engine: no stop parameter goes out")
    absent = REMOVE_STOP.get(backend.wire_format, {}).get(removed)
    if absent is None:
        pytest.skip(f"the {backend.wire_format} wire carries its stop sequences in no {removed!r} field")
    model = model_factory(**{removed: contract.REMOVE_PARAMETER})
    text = "Monday, Tuesday, END Wednesday"
    responder.reply = Reply(text=text)
    message = model(HELLO, stop_sequences=["END"])
    sent = wire.last()
    assert sent.stop is None, f"stop sequences on the wire: {sent.stop!r}, the model removes {removed!r}"
    present = [name for name in absent if name in sent.raw or name in (sent.raw.get("inferenceConfig") or {})]
    assert not present, f"the request carries {present} although the model removes {removed!r}: {sent.raw!r}"
    assert text_of(message) == cut_at_first_stop(text, ["END"])


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


@pytest.mark.parametrize("family,accepts_stop", [("o3", False), ("gpt-4o", True)], ids=["o3", "gpt-4o"])
@pytest.mark.clause("stop.not-sent-where-rejected", "stop.before-stop-sequence")
def test_stop_rule_of_a_model_id_beside_base_url(backend, model_factory, wire, responder, family, accepts_stop):
    """An endpoint given as ``base_url`` and the model as ``model_id``, no ``model`` setting (the form
    InferenceClientModel documents beside an endpoint URL as model_id): the family rule reads model_id."""
    if "stop_parameter" not in backend.capabilities:
        pytest.skip(f"{backend.name} stops inside the engine: no stop parameter goes out")
    settings = _serving(backend, family)
    endpoint = settings.get("model_id")
    if settings.get("model") != family or not str(endpoint).startswith(("http://", "https://")):
        pytest.skip(f"{backend.name} is not built as an endpoint URL with the served model beside it")
    # model=None: no `model` setting (the factory lays these over the backend's own, which name one)
    model = model_factory(**{**settings, "model_id": family, "base_url": endpoint, "model": None})
    text = "Monday, Tuesday, END Wednesday"
    responder.reply = Reply(text=text)
    message = model(HELLO, stop_sequences=["END"])
    sent = wire.last()
    assert sent.stop == (["END"] if accepts_stop else None), (
        f"model_id {family!r} beside base_url: stop on the wire {sent.stop!r}, expected "
        f"{'[END]' if accepts_stop else 'none'}")
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


# (prompt, completion) counts on the wire: told apart (123 and 7), and 0 read as 0, not a default of the reader's own
USAGES = {"told-apart": (123, 7), "zero": (0, 0)}


@pytest.mark.requires("token_usage")
@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("counts", list(USAGES))
@pytest.mark.clause("usage.mapped-from-wire", "usage.token-usage")
def test_usage_is_read_from_the_wires_fields(model, contract, responder, counts, streamed):
    """input_tokens is the wire's prompt count, output_tokens its completion count; a count of 0 is 0."""
    prompt, completion = USAGES[counts]
    responder.reply = Reply(text="Hello.", usage=(prompt, completion))
    message = _stream(model, contract, HELLO) if streamed else model(HELLO)
    usage = message.token_usage
    assert usage is not None, "token_usage is None although the wire reported usage"
    assert (usage.input_tokens, usage.output_tokens) == (prompt, completion), (
        f"token_usage input={usage.input_tokens} output={usage.output_tokens}; the wire said input {prompt}, "
        f"output {completion}")
    assert usage.total_tokens == prompt + completion


# Answers whose text the wire carries in pieces (Converse: several text blocks, a stream: several deltas) or not
# at all (an empty answer), and the content each must give: a string, the pieces joined as they are.
TEXTS = {"pieces": (Reply(text="Monday, Tuesday, Friday", text_pieces=[7, 16]), "Monday, Tuesday, Friday"),
         "empty": (Reply(text=""), "")}


@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.parametrize("case", list(TEXTS))
@pytest.mark.clause("model.returns-content", "stream.agglomerates-to-generate")
def test_the_answers_text_is_its_pieces_joined(model, contract, responder, case, streamed):
    """content is the answer's text as one string: its pieces joined with nothing between them, "" when empty."""
    reply, expected = TEXTS[case]
    responder.reply = Reply(**reply.__dict__)
    message = _stream(model, contract, HELLO) if streamed else model(HELLO)
    assert message.content == expected, f"content {message.content!r}; the answer's text was {expected!r}"


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


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("tools.complete-calls-at-token-limit", "tools.parallel-calls")
def test_complete_tool_calls_stopped_by_the_token_limit_come_back(model, contract, weather_tool, responder, streamed):
    """An answer the token limit stopped (OpenAI finish_reason length, Converse stopReason max_tokens) after two
    whole calls, their arguments sent in fragments (an empty one first), gives the two calls: only a call cut inside
    its arguments is an error."""
    cities = ["Paris", "Rome"]
    calls = [ToolCallSpec(f"call_{i}", "get_weather", {"city": c}) for i, c in enumerate(cities)]
    responder.reply = Reply(tool_calls=calls, argument_pieces=[3, 9], empty_argument_piece=True,
                            finish_reason=responder.lens.finish_reasons["length"])
    kwargs = {"tools_to_call_from": [weather_tool]}
    message = _stream(model, contract, WEATHER, **kwargs) if streamed else model(WEATHER, **kwargs)
    surfaced = [(c.id, c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]
    assert surfaced == [(f"call_{i}", "get_weather", {"city": c}) for i, c in enumerate(cities)], surfaced


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
@pytest.mark.clause("model.returns-content", "tools.native-calls-surface")
def test_an_answer_with_text_and_a_tool_call_gives_both(model, contract, weather_tool, responder, streamed):
    """The text an answer carries beside a tool call (a model saying what it is about to do) stays its content."""
    text = "Let me look that up."
    responder.reply = Reply(text=text, tool_calls=[ToolCallSpec("call_0", "get_weather", {"city": "Paris"})])
    kwargs = {"tools_to_call_from": [weather_tool]}
    message = _stream(model, contract, WEATHER, **kwargs) if streamed else model(WEATHER, **kwargs)
    assert message.content == text, f"content {message.content!r}; the answer's text was {text!r}"
    surfaced = [(c.id, c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]
    assert surfaced == [("call_0", "get_weather", {"city": "Paris"})], surfaced


@pytest.mark.requires("native_tools", "stream")
@pytest.mark.clause("stream.tool-call-deltas-by-index")
def test_a_tool_call_head_without_arguments_merges(backend, model, contract, weather_tool, responder):
    """A call's first streamed fragment (id, name) may carry no `arguments` (the chunk's type has them optional):
    the call's arguments are its later fragments alone."""
    if backend.wire_format != "openai":
        pytest.skip(f"{backend.wire_format}: a tool call's first event carries no arguments by the wire's own form")
    calls = [ToolCallSpec("call_0", "get_weather", {"city": "Paris"}), ToolCallSpec("call_1", "get_weather",
                                                                                  {"city": "Rome"})]
    responder.reply = Reply(tool_calls=calls, argument_pieces=[4], head_without_arguments=True)
    message = _stream(model, contract, WEATHER, tools_to_call_from=[weather_tool])
    surfaced = [(c.id, c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]
    assert surfaced == [("call_0", "get_weather", {"city": "Paris"}), ("call_1", "get_weather", {"city": "Rome"})], \
        surfaced


@pytest.mark.requires("native_tools")
@pytest.mark.parametrize("streamed", [False, pytest.param(True, marks=pytest.mark.requires("stream"))],
                         ids=["generate", "stream"])
@pytest.mark.clause("tools.complete-calls-at-token-limit", "tools.arguments-decoded")
def test_a_call_with_empty_arguments_at_the_token_limit_comes_back(backend, model, contract, weather_tool,
                                                                   responder, streamed):
    """An answer the token limit stopped after a call whose arguments are an empty string (a tool without inputs)
    gives that call, its arguments {}: an empty string is no JSON cut short."""
    if backend.wire_format != "openai":
        pytest.skip(f"{backend.wire_format}: a tool call's input is a JSON object on the wire, never an empty string")
    responder.reply = Reply(tool_calls=[ToolCallSpec("call_0", "get_weather", "")],
                            finish_reason=responder.lens.finish_reasons["length"])
    kwargs = {"tools_to_call_from": [weather_tool]}
    message = _stream(model, contract, WEATHER, **kwargs) if streamed else model(WEATHER, **kwargs)
    surfaced = [(c.id, c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]
    assert surfaced == [("call_0", "get_weather", {})], surfaced


@pytest.mark.requires("native_tools", "stream")
@pytest.mark.parametrize("finish", ["tool_calls", "length"], ids=["finished", "at-token-limit"])
@pytest.mark.clause("stream.tool-call-deltas-by-index", "tools.complete-calls-at-token-limit")
def test_a_tool_call_opened_without_its_function_merges(backend, model, contract, weather_tool, responder, finish):
    """A call's first streamed fragment may carry its id and type alone, no `function` (the chunk's type has it
    optional): the call is its name and arguments from the fragments after, whole also at the token limit."""
    if backend.wire_format != "openai":
        pytest.skip(f"{backend.wire_format}: a tool call's first event names its tool by the wire's own form")
    calls = [ToolCallSpec("call_0", "get_weather", {"city": "Paris"}), ToolCallSpec("call_1", "get_weather",
                                                                                  {"city": "Rome"})]
    responder.reply = Reply(tool_calls=calls, argument_pieces=[4], call_opened_alone=True, finish_reason=finish)
    message = _stream(model, contract, WEATHER, tools_to_call_from=[weather_tool])
    parsed = model.parse_tool_calls(message).tool_calls
    surfaced = [(c.function.name, c.function.arguments) for c in parsed]
    assert surfaced == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})], surfaced
    ids = [c.id for c in parsed]
    if ids != ["call_0", "call_1"] and backend.name.startswith("litellm"):
        pytest.skip(f"{backend.name}: litellm's stream parser rejects a fragment without `function` (its "
                    f"ChatCompletionDeltaToolCall requires one) and makes up the calls' ids {ids}")
    assert ids == ["call_0", "call_1"], f"the calls' ids {ids}; the wire sent call_0 and call_1"


# The finish reason a content filter answers with, per wire format.
FILTER_REASONS = {"openai": ["content_filter"], "bedrock": ["content_filtered", "guardrail_intervened"]}


# What the content_filter_results of an Azure answer mark filtered (suites/wires.py writes them): categories
# with the severity the wire rates each at, a detection (`detected` where the wire gives no severity), and a
# blocklist match, which the wire gives neither.
FILTERED = {"hate": "medium", "violence": "high", "protected_material_text": "detected", "custom_blocklists": None}


@pytest.mark.parametrize("which,filtered", [(0, FILTERED), (1, FILTERED), (0, {}), (None, {})],
                         ids=["filter", "guardrail", "filter-unnamed", "unfiltered"])
@pytest.mark.clause("response.content-filter-answered")
def test_a_content_filter_answer_is_an_answer_with_its_reason(backend, model, responder, which, filtered):
    """An HTTP-200 answer a filter cut comes back with the text it has and the filter's reason on the message;
    an Azure deployment's reason names the categories its content_filter_results mark filtered, each with what
    the wire says of it (its severity, or detected), and is the wire's reason alone where none is marked. An
    answer no filter cut carries no filter's reason."""
    reasons = FILTER_REASONS.get(backend.wire_format, [])
    if which is None:
        responder.reply = Reply(text="Hello.")
        on_message = getattr(model(HELLO), "finish_reason", None)
        claimed = [r for r in reasons if isinstance(on_message, str) and on_message.startswith(r)]
        assert not claimed, f"message.finish_reason is {on_message!r} for an answer the wire ended with its plain stop"
        return
    if which >= len(reasons):
        pytest.skip(f"the {backend.wire_format} wire has one content-filter finish reason")
    reason = reasons[which]
    responder.reply = Reply(text="The first part of the answer", finish_reason=reason, filtered=list(filtered))
    message = model(HELLO)
    assert text_of(message) == "The first part of the answer"
    on_message = getattr(message, "finish_reason", None)
    assert isinstance(on_message, str) and on_message.split(":")[0] == reason, (
        f"message.finish_reason is {on_message!r}; the wire's finish reason was {reason!r}")
    if not filtered:
        assert on_message == reason, f"message.finish_reason is {on_message!r}; the wire's finish reason was " \
                                     f"{reason!r}, with no category marked filtered"
    elif "azure_endpoint" in backend.settings(Target(mode="replay")):
        items = [c.strip() for c in on_message.partition(":")[2].split(",") if c.strip()]  # "hate (medium)"
        named = {item.split()[0]: item for item in items}
        assert set(named) == set(filtered), f"message.finish_reason {on_message!r} names {sorted(named)}, expected " \
                                            f"the categories content_filter_results marks filtered: {sorted(filtered)}"
        for category, severity in filtered.items():
            assert severity is None or severity in named[category], (
                f"message.finish_reason {on_message!r}: {category} is filtered as {severity!r}")
            assert severity is not None or "detected" not in named[category], (
                f"message.finish_reason {on_message!r}: {category} is said detected; the wire says no such thing")
        assert "None" not in on_message, f"message.finish_reason {on_message!r} writes out a missing value"


@pytest.mark.parametrize("calls", [False, pytest.param(True, marks=pytest.mark.requires("native_tools"))],
                         ids=["without-text", "with-tool-calls"])
@pytest.mark.clause("response.content-filter-answered", "usage.mapped-from-wire")
def test_a_content_filter_answer_keeps_its_calls_and_usage(backend, model, responder, weather_tool, calls):
    """A filtered answer without text comes back with no text (nothing made up in its place), its tool calls
    and its token usage as the wire sent them; one the filter emptied reports the 0 output tokens it made."""
    reasons = FILTER_REASONS.get(backend.wire_format)
    if not reasons:
        pytest.skip(f"no content-filter finish reason written down for the {backend.wire_format!r} wire")
    sent = [ToolCallSpec("call_0", "get_weather", {"city": "Paris"})] if calls else []
    usage = (123, 7) if calls else (123, 0)
    responder.reply = Reply(text=None, tool_calls=sent, finish_reason=reasons[0], usage=usage)
    message = model(WEATHER, tools_to_call_from=[weather_tool])
    assert text_of(message) == "", f"message.content is {message.content!r}; the filtered answer carried no text"
    if calls:
        assert message.tool_calls, "the tool calls of the filtered answer were dropped"
        surfaced = [(c.id, c.function.name, c.function.arguments) for c in model.parse_tool_calls(message).tool_calls]
        assert surfaced == [("call_0", "get_weather", {"city": "Paris"})], surfaced
    got = message.token_usage
    assert got is not None, f"token_usage is None; the filtered answer reported usage {usage}"
    assert (got.input_tokens, got.output_tokens) == usage, (
        f"token_usage input={got.input_tokens} output={got.output_tokens}; the wire said {usage}")
    on_message = getattr(message, "finish_reason", None)
    assert isinstance(on_message, str) and on_message.split(":")[0] == reasons[0], (
        f"message.finish_reason is {on_message!r}; the wire's finish reason was {reasons[0]!r}")
@pytest.mark.clause("response.content-filter-answered", "response.finish-reason-visible")
def test_a_content_filter_answer_is_the_assistants_with_its_raw_response(backend, model, responder):
    """A filtered answer is the assistant's message like any other: its role is assistant and its raw response is
    the wire's answer, whose finish reason stays readable there."""
    reasons = FILTER_REASONS.get(backend.wire_format)
    if not reasons:
        pytest.skip(f"no content-filter finish reason written down for the {backend.wire_format!r} wire")
    responder.reply = Reply(text="Partial.", finish_reason=reasons[0])
    message = model(HELLO)
    assert message.role == "assistant", f"message.role is {message.role!r}"
    assert message.raw is not None, "message.raw is None; the filtered answer's raw response was dropped"
    assert lens_of(backend).finish_reason(message.raw) == reasons[0], (
        f"the raw response's finish reason is {lens_of(backend).finish_reason(message.raw)!r}, sent {reasons[0]!r}")


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


# smolagents' AzureOpenAIServerModel: what a deployment built without these settings reads instead
AZURE_ENVIRONMENT = {"AZURE_OPENAI_ENDPOINT": "azure_endpoint", "OPENAI_API_VERSION": "api_version",
                     "AZURE_OPENAI_API_KEY": "api_key"}


@pytest.mark.clause("azure.environment-settings", "azure.deployment-url")
def test_an_azure_deployment_reads_its_settings_from_the_environment(backend, model_factory, capture, responder,
                                                                     monkeypatch):
    """Built without azure_endpoint, api_version and api_key, a deployment is called at the endpoint, with the
    api-version and the key the environment names."""
    settings = backend.settings(Target(mode="replay"))
    if "api_version" not in settings or "azure_endpoint" not in settings:
        pytest.skip(f"{backend.name} is not built with an azure_endpoint and an api_version")
    values = {"AZURE_OPENAI_ENDPOINT": settings["azure_endpoint"], "OPENAI_API_VERSION": "2024-10-21",
              "AZURE_OPENAI_API_KEY": "key-from-the-environment"}
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    model = model_factory(**dict.fromkeys(AZURE_ENVIRONMENT.values()))
    responder.reply = Reply(text="Hello.")
    assert text_of(model(HELLO)) == "Hello."
    sent = capture.http[-1]
    url = urlsplit(sent.url)
    assert url.netloc == urlsplit(settings["azure_endpoint"]).netloc, f"sent to {sent.url}"
    assert url.path == f"/openai/deployments/{settings['model_id']}/chat/completions", url.path
    assert parse_qs(url.query) == {"api-version": ["2024-10-21"]}, url.query
    assert "api-key" in sent.header_names, f"no api-key header: {sent.header_names}"


@pytest.mark.parametrize("given", ["token_provider", "environment"])
@pytest.mark.clause("azure.entra-id")
def test_an_azure_deployment_authenticates_with_entra_id_without_a_key(backend, model_factory, capture, responder,
                                                                      monkeypatch, given):
    """Built without an api key, with an Entra ID token (client_kwargs' azure_ad_token_provider, or the
    AZURE_OPENAI_AD_TOKEN environment variable), a deployment answers and sends the token, not a key."""
    settings = backend.settings(Target(mode="replay"))
    if "api_version" not in settings or "azure_endpoint" not in settings:
        pytest.skip(f"{backend.name} is not built with an azure_endpoint and an api_version")
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    if given == "environment":
        monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "entra-token-from-the-environment")
        model = model_factory(api_key=None)
    else:
        monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
        model = model_factory(api_key=None, client_kwargs={"azure_ad_token_provider": lambda: "entra-token"})
    responder.reply = Reply(text="Hello.")
    assert text_of(model(HELLO)) == "Hello."
    names = capture.http[-1].header_names
    assert "authorization" in names and "api-key" not in names, f"sent headers {names}: expected a bearer token"


# -- text-only providers ------------------------------------------------------------------------

# smolagents' LiteLLMModel and LiteLLMRouterModel: flatten_messages_as_text defaults to True for these providers
TEXT_ONLY_PROVIDERS = ("ollama", "groq", "cerebras")


def _as_provider(settings: dict[str, Any], provider: str) -> dict[str, Any] | None:
    """The settings with every model id that names its provider as LiteLLM does (``openai/<model>``) naming
    ``provider`` instead (a Router group keeps its name); None: no model id names a provider so."""
    def renamed(model_id: Any) -> Any:
        named = isinstance(model_id, str) and model_id.startswith("openai/")
        return f"{provider}/{model_id.split('/', 1)[1]}" if named else model_id

    out = {**settings, "model_id": renamed(settings.get("model_id"))}
    if "model_list" in settings:
        out["model_list"] = [{**e, "litellm_params": {**e["litellm_params"], "model": renamed(
            e["litellm_params"].get("model"))}} for e in settings["model_list"]]
    return out if repr(out) != repr(settings) else None


# cerebras: a text-only provider whose chat endpoint speaks the OpenAI wire (LiteLLM sends it there unchanged)
@pytest.mark.parametrize("provider", ["cerebras", "openai"], ids=["text-only", "parts"])
@pytest.mark.clause("messages.flatten-default")
def test_a_text_only_provider_gets_text_by_default(backend, model_factory, wire, responder, provider):
    """Built without flatten_messages_as_text, a model of a text-only provider (a Router group: by its
    deployments) sends each message's content as one string; a model of another provider keeps the parts."""
    settings = _as_provider(backend.settings(Target(mode="replay")), provider)
    if settings is None and provider in TEXT_ONLY_PROVIDERS:
        pytest.skip(f"{backend.name}: its model ids do not name a provider (LiteLLM's <provider>/<model>)")
    model = model_factory(**(settings or {}))
    responder.reply = Reply(text="Hello.")
    parts = [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello."}]
    model([{"role": "user", "content": parts}])
    content = wire.last().messages[-1]["content"]
    if provider in TEXT_ONLY_PROVIDERS:
        assert isinstance(content, str) and "Say" in content and "hello." in content, (
            f"a {provider} model sent content {content!r}, expected one string (flatten_messages_as_text by default)")
    else:
        assert not isinstance(content, str), f"a {provider} model sent its parts flattened: {content!r}"
