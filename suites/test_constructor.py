"""Constructor parity: every parameter of smolagents' class of the same name is taken, and has its effect.

The parameters are read from the installed smolagents (``inspect.signature``), so a release that adds
one is a finding until ``constructor_parameters.yaml`` says how its effect is checked. The effects are
watched where they land (the SDK client's constructor, the engine's loader, the SDK call a generation
makes) by ``parity.py``; no model is loaded and nothing is sent, except by the rate-limit check, which
the recorded-reply responder answers.
"""

from __future__ import annotations

import time
from typing import Any

import parity
import pytest

from harness.backends.registry import load_smolagents_class
from harness.plugin.answers import declare


@pytest.fixture
def reference(backend: Any) -> tuple[str, type]:
    """(name, class) of smolagents' class of the same name: the parameters every subject must take."""
    try:
        name = parity.class_for_backend(backend.name)
    except KeyError:
        pytest.skip(f"{backend.name}: no smolagents class of the same name to compare with")
    pytest.importorskip("smolagents", reason="the reference signatures are smolagents' own")
    return name, load_smolagents_class(backend)


@pytest.fixture
def under_test(request: pytest.FixtureRequest, backend: Any, subject: str, reference: tuple[str, type]) -> type:
    """The class under test: this project's adapter, or smolagents' class with ``--subject smolagents``."""
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(f"{backend.name}: {reason}")
    declare(request.node, "none")
    return reference[1] if subject == "smolagents" else backend.load()


@pytest.mark.clause("constructor.parameters-listed")
def test_every_parameter_is_listed(reference: tuple[str, type]) -> None:
    name, cls = reference
    listed = parity.load_table()[name]["parameters"]
    taken = dict(parity.smolagents_parameters(cls))
    missing = [f"{p} (from {where})" for p, where in taken.items() if p not in listed]
    gone = [p for p in listed if p not in taken]
    assert not missing, (f"smolagents' {name} takes parameters that suites/constructor_parameters.yaml does not "
                         f"list: {', '.join(missing)}; add each with how its effect is checked")
    assert not gone, f"suites/constructor_parameters.yaml lists {', '.join(gone)} for {name}, which it no longer takes"


@pytest.mark.clause("constructor.accepts-parameters")
def test_accepts_every_parameter(reference: tuple[str, type], under_test: type) -> None:
    import inspect

    name, cls = reference
    signature = inspect.signature(under_test)
    refused = []
    for parameter, _ in parity.smolagents_parameters(cls):
        try:
            signature.bind_partial(**{parameter: None})
        except TypeError:
            refused.append(parameter)
    assert not refused, f"{under_test.__qualname__} does not take {', '.join(refused)} ({name} does)"
    expected = parity.positional_names(cls)
    bound = parity.positional_names(under_test)[: len(expected)]
    assert bound == expected, (f"{under_test.__qualname__}'s positional parameters are {bound}; {name}'s are "
                               f"{expected}, so a positional call means something else")


@pytest.mark.clause("constructor.same-effect")
def test_every_parameter_has_its_effect(reference: tuple[str, type], under_test: type) -> None:
    name, _ = reference
    failures = []
    checked = 0
    for parameter in parity.load_table()[name]["parameters"]:
        outcome = parity.check_parameter(under_test, name, parameter)
        if outcome is None:
            continue
        checked += 1
        if not outcome.ok:
            failures.append(f"{parameter}: {outcome.detail}")
    assert checked, f"no parameter of {name} has an in-process check"
    assert not failures, f"{under_test.__qualname__} built as {name} would be:\n  " + "\n  ".join(failures)


@pytest.mark.clause("constructor.same-effect")
def test_defaults_and_environment(reference: tuple[str, type], under_test: type) -> None:
    """A parameter left out takes smolagents' documented default, and a setting read from the environment (smolagents'
    documented fallback) lands where the parameter would, also beside a client passed in, which is taken."""
    name, _ = reference
    found = parity.further_checks(under_test, name)
    if not found:
        pytest.skip(f"{name}: the table lists no default or environment variable to check")
    failures = [f"{what}: {outcome.detail}" for what, outcome in found if not outcome.ok]
    assert not failures, f"{under_test.__qualname__} built as {name} would be:\n  " + "\n  ".join(failures)


def _judge_table_entries(name: str, under_test: type, entry: str, listed: str, check: Any, label: Any) -> None:
    """``check`` on each item of the parity table's ``entry`` for ``name`` (a list's items, or a mapping's (key,
    value) pairs); skips where the table lists none (``listed`` says what), and fails naming every item whose outcome
    is not ok (``label`` words the item)."""
    items = parity.load_table()[name].get(entry)
    if not items:
        pytest.skip(f"{name}: the table lists no {listed}")
    failures = []
    for item in items.items() if isinstance(items, dict) else items:
        outcome = check(item)
        if not outcome.ok:
            failures.append(f"{label(item)}: {outcome.detail}")
    assert not failures, f"{under_test.__qualname__}:\n  " + "\n  ".join(failures)


@pytest.mark.clause("constructor.ignored-is-error")
def test_conflicting_arguments_are_an_error(reference: tuple[str, type], under_test: type) -> None:
    """Arguments of which one would be ignored beside the other (a token and its alias api_key, a URL as
    model_id and a base_url, an Azure endpoint and a deployment's URL) are a ValueError naming each of them as the
    caller spelt it."""
    name, _ = reference
    _judge_table_entries(name, under_test, "conflicting", "arguments that conflict",
                         lambda given: parity.check_conflicting(under_test, name, given),
                         lambda given: " and ".join(given))


@pytest.mark.clause("constructor.client-kwargs-kept")
def test_client_kwargs_are_kept(reference: tuple[str, type], under_test: type) -> None:
    """A client setting given inside client_kwargs (an API key, a base URL, an organization or project, an Azure
    endpoint or API version), its own parameter left out, reaches the SDK client as given."""
    name, _ = reference
    _judge_table_entries(name, under_test, "client_kwargs_kept", "client setting to give inside client_kwargs",
                         lambda item: parity.check_client_kwargs_kept(under_test, name, *item),
                         lambda item: f"client_kwargs={{{item[0]!r}: ...}}")


@pytest.mark.clause("constructor.missing-setting-named")
def test_a_missing_setting_is_named(reference: tuple[str, type], under_test: type) -> None:
    """A setting the model cannot work without (an endpoint, an API version, a credential), given neither as its
    parameter nor in its environment variable, is refused when the model is built, with an error naming both."""
    name, _ = reference
    _judge_table_entries(name, under_test, "missing", "setting the model cannot be built without",
                         lambda item: parity.check_missing(under_test, name, *item),
                         lambda item: f"{item[0]} missing")


@pytest.mark.clause("constructor.ignored-is-error")
def test_ignored_argument_is_an_error(reference: tuple[str, type], under_test: type) -> None:
    name, _ = reference
    settings = parity.load_table()[name].get("ignored_with_client")
    if not settings:
        pytest.skip(f"{name}: none of its settings is used only to build a client")
    failures = []
    for parameter in settings:
        outcome = parity.check_ignored_with_client(under_test, name, parameter)
        if not outcome.ok:
            failures.append(f"{parameter}: {outcome.detail}")
    assert not failures, f"{under_test.__qualname__} with client=... given:\n  " + "\n  ".join(failures)


@pytest.mark.no_cassette
@pytest.mark.clause("constructor.same-effect")
def test_requests_per_minute_spaces_calls(responder: Any, model_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests_per_minute=60: the second of two calls in a row waits for what is left of its second."""
    from responder import Reply

    responder.reply = Reply(text="Hello.")
    model = model_factory(requests_per_minute=60)
    waits: list[float] = []
    model(parity.user_turn("Hello"))
    monkeypatch.setattr(time, "sleep", waits.append)
    model(parity.user_turn("Hello again"))
    spacing = [w for w in waits if 0.5 < w <= 1.0]
    assert spacing, f"no wait of up to 1 s before the second call (waits seen: {waits})"


# The loader of each local engine, and what it returned for the session's model (engine and tokenizer): a
# variant built with other settings gets the same loaded engine back instead of loading the model again.
# vllm needs none: the plugin already hands out one engine per set of LLM arguments.
_SESSION_ENGINE = {
    "transformers": ("transformers.AutoModelForCausalLM.from_pretrained", lambda m: m.model),
    "mlx": ("mlx_lm.load", lambda m: (m.model, m.tokenizer)),
}


@pytest.fixture
def engine_variant(request: pytest.FixtureRequest, backend: Any) -> Any:
    """Builds the local class under test with other settings, on the engine the session already loaded."""
    if backend.kind != "local":
        pytest.skip(f"{backend.name}: an API model's settings are checked in-process "
                    "(test_every_parameter_has_its_effect)")
    model = request.getfixturevalue("model")
    model_factory = request.getfixturevalue("model_factory")
    loader = _SESSION_ENGINE.get(backend.name)

    def build(**settings: Any) -> Any:
        if loader is None:
            return model_factory(**settings)
        loaded = loader[1](model)
        with parity.replaced(loader[0], lambda *args, **kwargs: loaded):
            return model_factory(**settings)

    return build


@pytest.mark.clause("constructor.same-effect")
def test_generation_limit_bounds_the_answer(backend: Any, engine_variant: Any, subject: str) -> None:
    """max_new_tokens=3, or max_tokens=3 beside the suite's max_new_tokens (the alias wins): at most 3 tokens."""
    from conftest import WEEK_PROMPT

    if backend.name != "transformers":
        pytest.skip(f"{backend.name}: max_new_tokens and max_tokens are TransformersModel's parameters")
    for settings in ({"max_new_tokens": 3}, {"max_tokens": 3, "max_new_tokens": 48}):
        message = engine_variant(**settings)(parity.user_turn(WEEK_PROMPT))
        usage = message.token_usage
        assert usage is not None and 0 < usage.output_tokens <= 3, (
            f"built with {settings}: {usage.output_tokens if usage else None} tokens generated ({message.content!r})")


@pytest.mark.clause("constructor.same-effect")
def test_chat_template_kwargs_reach_the_template(backend: Any, engine_variant: Any) -> None:
    """apply_chat_template_kwargs reach every call of the tokenizer's chat template, as given."""
    from conftest import one_new_token

    marker = {"model_conformance_marker": "constructor-parity"}
    model = engine_variant(apply_chat_template_kwargs=dict(marker), **one_new_token(backend))
    tokenizer = model.tokenizer
    seen: list[dict[str, Any]] = []
    original = tokenizer.apply_chat_template

    def apply_chat_template(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return original(*args, **kwargs)

    tokenizer.apply_chat_template = apply_chat_template
    try:
        model(parity.user_turn("Hello"))
    finally:
        tokenizer.apply_chat_template = original
    assert seen, "the chat template was never applied"
    assert all(call.get("model_conformance_marker") == "constructor-parity" for call in seen), (
        f"the template calls received {[sorted(call) for call in seen]}, without apply_chat_template_kwargs")


@pytest.mark.clause("constructor.same-effect", "tools.custom-keys")
def test_engine_tool_keys_read_text_tool_calls(engine_variant: Any, contract: Any) -> None:
    """A local class built with tool_name_key="tool", tool_arguments_key="params" reads a call written so."""
    model = engine_variant(tool_name_key="tool", tool_arguments_key="params")
    text = 'Calling {"tool": "get_weather", "params": {"city": "Paris"}} now.'
    parsed = model.parse_tool_calls(contract.ChatMessage(role=contract.MessageRole.ASSISTANT, content=text))
    assert [(c.function.name, c.function.arguments) for c in parsed.tool_calls] == [("get_weather", {"city": "Paris"})]


# The credential a model is built with here: it must appear nowhere in what to_dict exports.
CREDENTIAL = "conformance-credential-0123456789"


def _built_with_the_credential(request: pytest.FixtureRequest, backend: Any, subject: str,
                               why_not_http: str) -> tuple[Any, dict[str, Any]]:
    """The class under judgement and the backend's own settings for a loopback stand-in (nothing is called),
    with :data:`CREDENTIAL` where the backend takes it; skips a backend not reached over HTTP (``why_not_http``)
    or unavailable here."""
    from harness.backends.registry import Target

    if backend.kind != "http":
        pytest.skip(f"{backend.name} is not reached over HTTP: {why_not_http}")
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(f"{backend.name}: {reason}")
    declare(request.node, "none")
    cls = backend.load() if subject == "adapters" else load_smolagents_class(backend)
    settings = backend.settings(Target(mode="stand-in", base_url="http://127.0.0.1:9/v1", served_model_id="m",
                                       api_key=CREDENTIAL, timeout=5.0))
    return cls, settings


@pytest.mark.clause("model.to-dict-without-credentials")
def test_to_dict_leaves_the_credentials_out(request: pytest.FixtureRequest, backend: Any, subject: str) -> None:
    """to_dict exports the model's settings (its model_id) but not the credential it was built with (an API key, a
    token, an AWS secret key in client_kwargs), as smolagents' to_dict leaves out api_key and token."""
    cls, settings = _built_with_the_credential(request, backend, subject,
                                               "it is built without a credential")
    assert CREDENTIAL in repr(settings), f"{backend.name}'s stand-in settings carry no credential: {settings!r}"
    exported = cls(**settings).to_dict()
    assert exported.get("model_id") == settings["model_id"], f"to_dict exported model_id {exported.get('model_id')!r}"
    assert CREDENTIAL not in repr(exported), f"to_dict exported the credential: {exported!r}"
    if "azure_endpoint" in settings:
        # an Azure deployment authenticated with an Entra ID token given to the client (no API key)
        entra = {**{k: v for k, v in settings.items() if k != "api_key"},
                 "client_kwargs": {**(settings.get("client_kwargs") or {}), "azure_ad_token": CREDENTIAL}}
        exported = cls(**entra).to_dict()
        assert CREDENTIAL not in repr(exported), f"to_dict exported the Entra ID token in client_kwargs: {exported!r}"


# what a credential is called besides the stand-in's key itself: the AWS key id that names the secret key
_CREDENTIAL_NAMES = ("aws_access_key_id",)


def _settings_leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every setting inside ``value`` (mappings and lists walked), the credentials left out."""
    if isinstance(value, dict):
        return [leaf for key, inner in value.items() if key not in _CREDENTIAL_NAMES and inner != CREDENTIAL
                for leaf in _settings_leaves(inner, (*path, key))]
    if isinstance(value, list):
        return [leaf for index, inner in enumerate(value) for leaf in _settings_leaves(inner, (*path, index))]
    return [(path, value)]


def _at(exported: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        try:
            exported = exported[step]
        except (KeyError, IndexError, TypeError):
            return "<not exported>"
    return exported


@pytest.mark.clause("model.to-dict-round-trip")
def test_to_dict_exports_every_setting_but_the_credential(request: pytest.FixtureRequest, backend: Any,
                                                          subject: str) -> None:
    """to_dict exports each setting the model was built with (where it is reached: an api_base, an endpoint, a
    Router's deployments), at the same place and with the same value, so that from_dict rebuilds the same model
    once the credential is given again; only the credential is left out. Settings the stand-in's own never give
    (an OpenAI organization and project) are added from the parity table's ``round_trip``."""
    cls, settings = _built_with_the_credential(request, backend, subject, "its settings are an engine's")
    try:
        settings = {**settings, **(parity.load_table()[parity.class_for_backend(backend.name)].get("round_trip") or {})}
    except KeyError:  # no smolagents class of the same name: the backend's own settings alone
        pass
    exported = cls(**settings).to_dict()
    lost = {"/".join(map(str, path)): (value, _at(exported, path)) for path, value in _settings_leaves(settings)
            if _at(exported, path) != value}
    assert not lost, f"to_dict lost settings the model was built with (given, exported): {lost}; got {exported!r}"
