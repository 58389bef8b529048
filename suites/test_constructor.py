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

from harness.answers import declare
from harness.registry import load_smolagents_class


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
    model([{"role": "user", "content": "Hello"}])
    monkeypatch.setattr(time, "sleep", waits.append)
    model([{"role": "user", "content": "Hello again"}])
    spacing = [w for w in waits if 0.5 < w <= 1.0]
    assert spacing, f"no wait of up to 1 s before the second call (waits seen: {waits})"
