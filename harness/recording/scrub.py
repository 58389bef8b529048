"""What a recording loses before it is written: secrets, secret query parameters, the recording host and the
cloud account's identifiers, in every body encoding (compressed, event stream, chunked server-sent events)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# What counts as a secret is defined once, in harness.contract.secrets.
from harness.contract.secrets import (
    KIND_SET_BY_RESPONSE,
    content_encodings,
    decode_content,
    is_secret_name,
    register_secret,
    scrub_query,
    values_set_by_response,
)
from harness.contract.secrets import scrub_bytes as _scrub_secret_bytes
from harness.contract.secrets import scrub_text as _scrub_secret_text
from harness.recording.placeholders import AZURE_RESOURCE_PLACEHOLDER
from harness.recording.sse_chunks import take_sse_chunks
from harness.wire import sse
from harness.wire.eventstream import CONTENT_TYPE as EVENT_STREAM_CONTENT_TYPE
from harness.wire.eventstream import decode_event_stream, encode_event_message

_ACCOUNT_ID = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


# Cloud identifiers that say whose account recorded a cassette: the Azure resource (the host
# name) and the AWS account id inside ARNs, plain or URL-encoded as in a Bedrock model path.
AWS_ACCOUNT_PLACEHOLDER = "000000000000"


_AZURE_HOST = re.compile(
    r"(?<![A-Za-z0-9.-])[A-Za-z0-9][A-Za-z0-9-]*\.(openai\.azure\.com|cognitiveservices\.azure\.com"
    r"|services\.ai\.azure\.com)(?![A-Za-z0-9-])",
    re.IGNORECASE,
)


_SEP = r"(?::|%3A)"


_ARN_ACCOUNT = re.compile(rf"(arn{_SEP}aws[a-z-]*{_SEP}[a-z0-9-]+{_SEP}[a-z0-9-]*{_SEP})[0-9]{{12}}(?={_SEP}|/|%2F)",
                          re.IGNORECASE)


def _scrub_identifiers(text: str, hosts: Mapping[str, str] | None) -> str:
    for host, replacement in (hosts or {}).items():
        text = text.replace(host, replacement)
    text = _AZURE_HOST.sub(lambda m: f"{AZURE_RESOURCE_PLACEHOLDER}.{m.group(1)}", text)
    return _ARN_ACCOUNT.sub(rf"\g<1>{AWS_ACCOUNT_PLACEHOLDER}", text)


def scrub_text(text: str, hosts: Mapping[str, str] | None = None) -> str:
    """Secrets, secret query parameters, the recording host and account identifiers, replaced."""
    return _scrub_identifiers(scrub_query(_scrub_secret_text(text)), hosts)


def _scrub_bytes(body: bytes, hosts: Mapping[str, str] | None) -> bytes:
    """:func:`scrub_text` on a body of any encoding: secrets are replaced before vcrpy encodes it."""
    body = _scrub_secret_bytes(body)
    try:
        return scrub_text(body.decode("utf-8"), hosts).encode("utf-8")
    except UnicodeDecodeError:
        return _scrub_identifiers(scrub_query(body.decode("latin-1")), hosts).encode("latin-1")


def _scrub_event_stream(body: bytes, hosts: Mapping[str, str] | None) -> bytes:
    out = b""
    for headers, payload in decode_event_stream(body):
        clean = [(n, k, _scrub_bytes(v, hosts) if k == 7 else v) for n, k, v in headers]
        out += encode_event_message(clean, _scrub_bytes(payload, hosts))
    return out


def _decode_declared_encoding(response: dict[str, Any]) -> bool:
    """Undo every Content-Encoding of a recorded body (any case, stacked, x-gzip, several header lines),
    as the SDK would, so that it is scrubbed and checked as read; the headers then say it is plain."""
    headers = response.get("headers", {})
    names = [k for k in headers if k.lower() == "content-encoding"]
    encodings = content_encodings(v for k in names for v in _header_values(headers[k]))
    if not encodings:
        return False
    body = decode_content(response["body"]["string"], encodings)
    for k in names:
        headers.pop(k)
    for k in [k for k in headers if k.lower() == "content-length"]:
        headers[k] = [str(len(body))]
    response["body"]["string"] = body
    return True


def _header_values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def scrub_request(hosts: Mapping[str, str]) -> Any:
    def before_record_request(request: Any) -> Any:
        request.uri = scrub_text(request.uri, hosts)
        for name in list(request.headers):
            if is_secret_name(name):
                del request.headers[name]
            else:
                request.headers[name] = scrub_text(str(request.headers[name]), hosts)
        if isinstance(request.body, bytes):
            request.body = _scrub_bytes(request.body, hosts)
        elif isinstance(request.body, str):
            request.body = scrub_text(request.body, hosts)
        return request

    return before_record_request


def scrub_response(hosts: Mapping[str, str]) -> Any:
    def before_record_response(response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers", {})
        for value in values_set_by_response(headers):  # a later hop of a redirect chain may carry it back
            register_secret(value, KIND_SET_BY_RESPONSE)
        for name in list(headers):
            if is_secret_name(name):
                headers.pop(name)
            else:  # a Location or Link header may carry a token in its URL
                headers[name] = [scrub_text(str(v), hosts) for v in headers[name]]
        if isinstance(response.get("url"), str):
            response["url"] = scrub_text(response["url"], hosts)
        body = response.get("body", {}).get("string")
        content_type = " ".join(str(v) for k, v in headers.items() if k.lower() == "content-type")
        chunks = take_sse_chunks(body) if sse.CONTENT_TYPE in content_type else None
        if isinstance(body, bytes) and _decode_declared_encoding(response):
            body, chunks = response["body"]["string"], None  # the noted chunks were of the encoded bytes
        if isinstance(body, str):
            response["body"]["string"] = scrub_text(body, hosts)
        elif isinstance(body, bytes) and chunks:
            response["body"]["string"], response["body"]["chunks"] = scrub_chunks(body, chunks, hosts)
        elif isinstance(body, bytes) and EVENT_STREAM_CONTENT_TYPE in content_type:
            response["body"]["string"] = _scrub_event_stream(body, hosts)
        elif isinstance(body, bytes):
            response["body"]["string"] = _scrub_bytes(body, hosts)
        return response

    return before_record_response


def scrub_chunks(body: bytes, chunks: list[bytes], hosts: Mapping[str, str] | None) -> tuple[bytes, list[int]]:
    """The scrubbed body and its chunk lengths; a boundary inside a scrubbed value is dropped."""
    whole = _scrub_bytes(body, hosts)
    if whole == body:
        return body, [len(c) for c in chunks]
    parts: list[bytes] = []
    done, start, at = b"", 0, 0
    for chunk in chunks[:-1]:
        at += len(chunk)
        head = _scrub_bytes(body[start:at], hosts)
        if done + head + _scrub_bytes(body[at:], hosts) == whole:  # cutting here changes nothing
            parts.append(head)
            done += head
            start = at
    parts.append(_scrub_bytes(body[start:], hosts))
    if b"".join(parts) != whole:
        return whole, [len(whole)]
    return whole, [len(p) for p in parts]
