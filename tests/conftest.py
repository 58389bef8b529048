"""Fixtures and hypothesis profiles for the harness's own tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from harness.recording.scan import redacting_example_database

pytest_plugins = ["pytester"]

# Built from hypothesis' own defaults, not from whatever profile is current (hypothesis loads
# its built-in "ci" profile by itself when CI is set).
# Every profile that stores examples stores them through the redaction (harness.contract.secrets).
_DEFAULT = settings(settings.get_profile("default"), database=redacting_example_database())
# ci: reproducible (derandomized) and bounded; dev: hypothesis' defaults; nightly: a long hunt.
settings.register_profile("ci", parent=_DEFAULT, derandomize=True, max_examples=200, deadline=None, print_blob=True)
settings.register_profile("dev", parent=_DEFAULT)
settings.register_profile("nightly", parent=_DEFAULT, max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def no_configured_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """This machine's own credentials (environment, AWS and Hugging Face files) are invisible to the test."""
    import harness.contract.secrets
    from harness.contract.secrets import _SECRET_ENV_NAME, SECRET_ENV

    monkeypatch.setattr(harness.contract.secrets, "_registered", set())  # keys that models of earlier tests registered
    monkeypatch.setattr(harness.contract.secrets, "_registered_kinds", {})

    for name in list(os.environ):
        if name in SECRET_ENV or _SECRET_ENV_NAME.search(name):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("no-credentials")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "aws-config"))
    monkeypatch.setenv("HF_TOKEN_PATH", str(empty / "hf-token"))
    monkeypatch.setenv("HF_HOME", str(empty / "hf-home"))
