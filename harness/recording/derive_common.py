"""What the derivation of cloud cassettes (``harness derive-cassettes``) shares: reading a recorded
interaction, ids derived from it, compact JSON, the error every refusal raises."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from harness.contract.errors import HarnessError
from harness.wire import sse

_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/model-conformance/derive")


class DerivationError(HarnessError):
    """A recorded interaction the derivation cannot express in the target's wire format."""


def stable_uuid(*parts: Any) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "|".join(str(p) for p in parts)))


def header_value(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


def body_text(body: Any) -> str:
    if isinstance(body, Mapping):
        body = body.get("string")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body).decode("utf-8")
    return body or ""


def compact_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def sse_events(chunks: Iterable[Any], done: bool) -> list[str]:
    return sse.encode((compact_json(c) for c in chunks), done)


def is_stream(request_body: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    content_type = header_value(response.get("headers") or {}, "content-type") or ""
    return bool(request_body.get("stream")) or sse.CONTENT_TYPE in content_type


def source_parts(interaction: Mapping[str, Any]) -> tuple[dict[str, Any], Mapping[str, Any]]:
    request = interaction["request"]
    path = urlsplit(request["uri"]).path
    if request["method"] != "POST" or not path.endswith("/chat/completions"):
        raise DerivationError(f"only chat-completions calls can be derived, got {request['method']} {path}")
    return json.loads(body_text(request["body"])), interaction["response"]


def error_message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip() or "error"
    error = data.get("error", data) if isinstance(data, Mapping) else data
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("detail") or compact_json(error))
    return str(error)


def recorded_libraries(source: Mapping[str, Any]) -> dict[str, str]:
    return dict((source.get("provenance") or {}).get("libraries") or {})
