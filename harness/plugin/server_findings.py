"""What a local server gets wrong that no adapter can correct: its checks fail there, as strict expected failures.

The suites keep the list (``suites/server_findings.yaml``, handed over by their conftest), one entry
per check and server with the reason, read from the server's own answers:

    mlx-lm-serve:
      - check: test_stop_sequences.py::test_earliest_stop_wins_whatever_the_order
        reason: the server deletes a stop word from the text and keeps generating

Against that server and its recordings the check runs as ``xfail(strict=True, raises=...)``: it must
fail, on an assertion (``expect: assertion``, the default) or on the adapter's typed error for an
HTTP error reply (``expect: http-error``; a missing cassette or any other error is still a plain
failure), and a pass (the server fixed, or re-recorded from a release that honours the contract)
fails the run until the entry goes. A recording of such a check is kept as a passed check's is
(error replies included where no cassette had none): it holds the server's real answer, which replay
fails on again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from harness.contract.errors import BackendError, HarnessError
from harness.recording.cassettes import LOCAL_SERVERS

EXPECT = {"assertion": AssertionError, "http-error": BackendError}
Finding = tuple[str, "frozenset[str] | None", str]  # reason, backends (None: all), expect
FINDINGS = pytest.StashKey[dict[str, dict[str, Finding]]]()


def load_findings(path: str | Path) -> dict[str, dict[str, Finding]]:
    """``{server: {"file.py::test": (reason, backends or None for all, expect)}}`` from the YAML file at ``path``."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise HarnessError(f"{path}: the top level must map server names to lists of findings")
    findings: dict[str, dict[str, Finding]] = {}
    for server, entries in data.items():
        if server not in LOCAL_SERVERS:
            raise HarnessError(f"{path}: {server!r} is not a local server. Valid servers are: "
                               f"{', '.join(LOCAL_SERVERS)}")
        findings[server] = {}
        for entry in entries or []:
            check, reason = (entry or {}).get("check"), (entry or {}).get("reason")
            if not isinstance(check, str) or "::" not in check or not isinstance(reason, str) or not reason.strip():
                raise HarnessError(f"{path}: {server}: each finding needs 'check: <file>::<test>' and a 'reason', "
                                   f"got {entry!r}")
            backends, expect = entry.get("backends"), entry.get("expect", "assertion")
            if expect not in EXPECT:
                raise HarnessError(f"{path}: {server}: {check}: {expect!r} is not a valid expect. Valid values are: "
                                   f"{', '.join(EXPECT)}")
            findings[server][check] = (reason.strip(), frozenset(backends) if backends else None, expect)
    return findings


def use_server_findings(config: pytest.Config, path: str | Path) -> None:
    """Run the checks listed at ``path`` as expected failures on their servers (called by a conftest)."""
    try:
        config.stash[FINDINGS] = load_findings(path)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None


def expected_failure(config: pytest.Config, server: str | None, check: str, backend: str) -> Finding | None:
    """The finding by which ``check`` (``file.py::test``) fails for ``backend`` on ``server``, or None."""
    finding = config.stash.get(FINDINGS, {}).get(server or "", {}).get(check)
    if finding is None or (finding[1] is not None and backend not in finding[1]):
        return None
    return finding


def mark_expected_failures(items: Iterable[tuple[pytest.Item, str | None, str, str]]) -> None:
    """Give each (item, server, check, backend) listed as a finding its strict expected-failure marker."""
    for item, server, check, backend in items:
        finding = expected_failure(item.config, server, check, backend)
        if finding is not None:
            item.add_marker(pytest.mark.xfail(reason=f"{server}: {finding[0]}", strict=True,
                                              raises=EXPECT[finding[2]]))
