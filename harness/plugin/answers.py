"""Who answered a check: the target itself, a recorded cassette, or one of the harness's stand-ins.

Each fixture that puts something in front of the model under test declares it on the test's node
(``declare``); the plugin writes it into the check's row as ``answered_by``, with the ``target`` the
run pointed at. A stand-in outranks the target: a check whose model was built for the endpoint but
whose requests the recorded-reply responder answered was answered by the responder.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

# answered_by value -> what answered
SOURCES: dict[str, str] = {
    "target": "the target itself: the endpoint, the local server or the in-process engine under test",
    "cassette": "a recorded cassette of the target, replayed",
    "responder": "the suites' recorded-reply responder (a stand-in answering at the transport)",
    "fault-injector": "harness.recording.fault_injector.FaultInjector (a stand-in server injecting transport faults)",
    "fake": "a fake written for the check (named by the check)",
    "none": "nothing: the check sends no request",
}
# what the target answered (its verdict); everything else is a client-side check of the model under test
TARGET_SOURCES = frozenset({"target", "cassette"})
_RANK = {"none": 0, "target": 1, "cassette": 1, "fake": 2, "responder": 2, "fault-injector": 2}

ANSWERED_BY = pytest.StashKey[str]()


def declare(node: pytest.Item, source: str) -> None:
    """Note on the test's node what answers its model's requests (a stand-in outranks the target)."""
    if source not in SOURCES:
        raise ValueError(f"{source!r} is not an answer source. Valid sources are: {', '.join(SOURCES)}")
    current = node.stash.get(ANSWERED_BY, None)
    if current is None or _RANK[source] >= _RANK[current]:
        node.stash[ANSWERED_BY] = source


def answered_by(node: pytest.Item) -> str | None:
    """What answered this test's requests, or None where no fixture declared it (e.g. skipped at setup)."""
    return node.stash.get(ANSWERED_BY, None)


def client_side(source: str | None) -> bool:
    """True for a check the target did not answer (a stand-in or nothing did)."""
    return source is not None and source not in TARGET_SOURCES


def public_url(url: str | None) -> str | None:
    """The URL without user info, query or fragment: what a row or a message may show of an endpoint."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


__all__ = ["SOURCES", "TARGET_SOURCES", "answered_by", "client_side", "declare", "public_url"]
