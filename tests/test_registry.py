"""The backend registry: unknown names and missing SDKs fail once, clearly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.backends import registry
from harness.backends.registry import BackendSpec, backend, backend_names, get_backend, resolve_backends
from harness.contract.errors import MissingDependencyError, UnknownBackendError

FAKE_NAME = "fake-missing-sdk"


@pytest.fixture
def fake_backend_with_missing_sdk() -> Iterator[str]:
    """A throwaway backend whose SDK module does not exist; removed from the registry afterwards."""
    backend_names()  # load the real registrations first, so the fake cannot shadow them

    @backend(
        FAKE_NAME,
        extra="fake-extra",
        modules=("json", "no_such_sdk_module_for_tests"),
        smolagents_class="FakeModel",
        kind="http",
        wire_format="openai",
        settings=lambda target: {},
    )
    def load() -> type:
        raise AssertionError("the loader must not run when the SDK is missing")

    try:
        yield FAKE_NAME
    finally:
        registry._BACKENDS.pop(FAKE_NAME, None)


def test_builtin_backends_are_registered():
    names = backend_names()
    assert "openai" in names
    assert "all" not in names
    assert isinstance(get_backend("openai"), BackendSpec)


@pytest.mark.parametrize("value", ["azur", "openai,azur", "bogus"])
def test_unknown_backend_lists_known_names_and_all(value):
    with pytest.raises(UnknownBackendError) as info:
        resolve_backends(value)
    message = str(info.value)
    assert "'azur'" in message or "'bogus'" in message
    assert f"Known: {', '.join(backend_names())}, all" in message
    assert isinstance(info.value, ValueError)


def test_get_backend_unknown_name():
    with pytest.raises(UnknownBackendError, match=r"'nope' is not a backend\. Known: .*openai.*, all"):
        get_backend("nope")


def test_several_unknown_backends_are_named_together():
    with pytest.raises(UnknownBackendError, match="'x', 'y' are not backends"):
        resolve_backends("x,openai,y")


def test_resolve_all_and_comma_lists():
    assert resolve_backends("all", require_installed=False) == backend_names()
    assert resolve_backends(None, require_installed=False) == backend_names()
    assert resolve_backends(" openai , openai ", require_installed=False) == ["openai"]
    with pytest.raises(UnknownBackendError, match="empty"):
        resolve_backends(" , ")


def test_missing_sdk_names_the_extra(fake_backend_with_missing_sdk):
    spec = get_backend(fake_backend_with_missing_sdk)
    assert spec.missing_modules() == ["no_such_sdk_module_for_tests"]
    for attempt in (spec.require, spec.load, lambda: resolve_backends(fake_backend_with_missing_sdk)):
        with pytest.raises(MissingDependencyError) as info:
            attempt()
        message = str(info.value)
        assert "no_such_sdk_module_for_tests" in message
        assert "pip install 'model-conformance[fake-extra]'" in message
        assert isinstance(info.value, ImportError)


def test_missing_sdk_is_not_checked_when_not_required(fake_backend_with_missing_sdk):
    assert resolve_backends(fake_backend_with_missing_sdk, require_installed=False) == [FAKE_NAME]


def test_fake_backend_is_gone_afterwards():
    assert FAKE_NAME not in backend_names()

