"""Fixtures and hypothesis profiles for the harness's own tests."""

from __future__ import annotations

import os

from hypothesis import settings

pytest_plugins = ["pytester"]

# Built from hypothesis' own defaults, not from whatever profile is current (hypothesis loads
# its built-in "ci" profile by itself when CI is set).
_DEFAULT = settings.get_profile("default")
# ci: reproducible (derandomized) and bounded; dev: hypothesis' defaults; nightly: a long hunt.
settings.register_profile("ci", parent=_DEFAULT, derandomize=True, max_examples=200, deadline=None, print_blob=True)
settings.register_profile("dev", parent=_DEFAULT)
settings.register_profile("nightly", parent=_DEFAULT, max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
