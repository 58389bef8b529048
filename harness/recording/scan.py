"""``harness scan``: secrets in files (cassettes, logs, JUnit XML, reports) and the hypothesis example
database that never stores one; what a secret is comes from the contract's one definition."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.contract.secrets import _find, _value_forms, decompressed, find_secret_bytes
from harness.wire.eventstream import decode_event_stream

# -- scanning files: cassettes, logs, JUnit XML, reports ----------------------------------------


def _event_stream_payloads(data: bytes) -> bytes | None:
    """The payloads of an event-stream body joined (a secret split across frames is whole again)."""
    try:
        messages = decode_event_stream(data)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError):
        return None
    return b"".join(v for headers, payload in messages for _, kind, v in headers if kind == 7) + b"".join(
        payload for _, payload in messages
    )


def _yaml_findings(text: str, forms: list[str]) -> list[tuple[int, str]]:
    """Secrets in the decoded values of a YAML document: escaped strings, ``!!binary`` bodies."""
    import yaml

    try:
        # builds nodes only: no tag is ever constructed; every document of a multi-document file (libyaml
        # where available: linear on large bodies)
        roots = list(yaml.compose_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError:
        return []
    findings: list[tuple[int, str]] = []
    stack = [root for root in roots if root is not None]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.ScalarNode):
            line = node.start_mark.line + 1
            found = None
            if node.tag == "tag:yaml.org,2002:binary":
                try:
                    data = base64.b64decode("".join(node.value.split()))
                except (binascii.Error, ValueError):
                    data = b""
                inner = decompressed(data)  # a compressed body is read as the SDK reads it
                data = data if inner is None else inner
                found = _find(data.decode("latin-1"), forms)
                joined = None if found else _event_stream_payloads(data)
                if joined:
                    found = _find(joined.decode("latin-1"), forms)
            elif isinstance(node.value, str):
                found = _find(node.value, forms)
            if found:
                findings.append((line, found))
    return findings


def scan_text(text: str, name: str = "", extra: Iterable[str | None] = ()) -> list[tuple[int, str]]:
    """Every (line, what) where ``text`` holds a secret: line by line, and for YAML by decoded value."""
    forms = _value_forms(extra)
    findings = {}
    whole = _find(text, forms)  # most files are clean: one pass over the whole text
    if whole:
        for number, line in enumerate(text.splitlines(), start=1):
            found = _find(line, forms)
            if found:
                findings[number] = found
    if name.endswith((".yaml", ".yml")):
        for number, found in _yaml_findings(text, forms):
            findings.setdefault(number, found)
    if whole and not findings:
        findings[1] = f"{whole} (across lines)"
    return sorted(findings.items())


def scan_paths(paths: Iterable[str | Path]) -> list[str]:
    """``file:line: what`` for every secret in the files (directories: every file below them)."""
    problems = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            problems.append(f"{root}: no such file or directory")
            continue
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            data = file.read_bytes()
            name = file.name
            inner = decompressed(data)  # a .gz log, a compressed body saved as a file
            if inner is not None:
                data, name = inner, name.removesuffix(".gz")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")  # a body of any encoding is scanned all the same
            for line, found in scan_text(text, name):
                problems.append(f"{file}:{line}: {found}")
    return problems


# -- the hypothesis example database: kept between runs (and cached by CI), so it is an artefact too --

def redacting_example_database(path: str | Path | None = None) -> Any:
    """Hypothesis' directory database that never stores an example holding a secret (a stored example
    is the raw bytes of the drawn values: it cannot be redacted, so it is left out, and found again
    by generation when the property still fails)."""
    from hypothesis.configuration import storage_directory
    from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

    class RedactingExampleDatabase(ExampleDatabase):
        def __init__(self) -> None:
            super().__init__()
            self._inner: ExampleDatabase | None = None

        @property
        def inner(self) -> ExampleDatabase:
            # opened on first use: hypothesis warns about storage touched while plugins load
            if self._inner is None:
                self._inner = DirectoryBasedExampleDatabase(str(path or storage_directory("examples")))
            return self._inner

        def __repr__(self) -> str:
            return f"RedactingExampleDatabase({str(path) if path else 'hypothesis storage/examples'})"

        def save(self, key: bytes, value: bytes) -> None:
            if find_secret_bytes(value) is None:
                self.inner.save(key, value)

        def fetch(self, key: bytes) -> Iterator[bytes]:
            return iter(self.inner.fetch(key))

        def delete(self, key: bytes, value: bytes) -> None:
            self.inner.delete(key, value)

        def move(self, src: bytes, dest: bytes, value: bytes) -> None:
            if find_secret_bytes(value) is None:
                self.inner.move(src, dest, value)
            else:
                self.inner.delete(src, value)

    return RedactingExampleDatabase()
