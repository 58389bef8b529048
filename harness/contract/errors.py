"""Typed errors: every failure names what was wrong."""

from __future__ import annotations

from typing import Any


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class UnknownBackendError(HarnessError, ValueError):
    """A backend name that no installed adapter registers."""


class MissingDependencyError(HarnessError, ImportError):
    """A backend whose SDK or engine is not installed."""


class MissingSettingsError(HarnessError):
    """A backend's live or record settings lack something: it names the backend, the URL it would reach
    (or why that is not known yet) and every missing setting at once."""

    def __init__(self, backend: str, url: str | None, missing: list[str], *, no_url: str = "") -> None:
        self.backend = backend
        if url:  # no user info, query or fragment: an endpoint may carry a key there
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            url = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
        self.url = url
        self.missing = list(missing)
        where = url or f"URL unknown ({no_url or 'not set'})"
        self.detail = f"{where}; missing: {', '.join(self.missing)}"
        super().__init__(f"--backend={backend} in record/live mode reads the real service's settings from the "
                         f"environment: {self.detail}")


class ToolCallParseError(HarnessError, ValueError):
    """A tool call, or its arguments, that cannot be decoded."""


class BackendError(HarnessError):
    """A failed call to a backend, with what identifies it (never a secret)."""

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        kind: str | None = None,
    ) -> None:
        kind = kind or kind_of(status)  # a status alone says what kind of failure it is
        self.backend = backend
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.kind = kind
        from harness.contract.secrets import scrub_text  # a provider may echo the key it refused

        message = scrub_text(message)
        self.message = message
        super().__init__(
            f"{backend}: {message} (kind={kind}, status={status if status is not None else '-'}, "
            f"request_id={request_id or '-'})"
        )

    def naming_request(self, request_id: str | None) -> BackendError:
        """This error naming ``request_id`` where it names none (a stream broken after its headers named it)."""
        if self.request_id or not request_id:
            return self
        return type(self)(self.message, backend=self.backend, status=self.status, request_id=request_id,
                          retry_after=self.retry_after, kind=self.kind)

    @property
    def retryable(self) -> bool:
        """Throttling, server errors, timeouts and resets are worth another try; the rest never are."""
        return self.kind in RETRYABLE_KINDS


class ContentFilterError(BackendError):
    """The provider refused or cut the answer for its content policy."""


# -- the one error mapping ------------------------------------------------------------------------
# Adapters read what their SDK's exception carries (status, headers, body, error code) and hand it
# here; the kind, whether a retry can help, the request id and the provider's message are decided
# once, for every backend.

# Kinds a retry can cure; every other kind (auth, validation, content_filter, malformed, ...) is final.
RETRYABLE_KINDS = frozenset({"throttled", "server", "timeout", "connection"})

# Error codes that say more than their HTTP status (Bedrock's, Azure's content filter).
_CODE_KINDS = {
    "throttlingexception": "throttled",
    "modelnotreadyexception": "throttled",  # the model is loading: the documented cure is to retry
    "servicequotaexceededexception": "quota",
    "serviceunavailableexception": "server",
    "internalserverexception": "server",
    "modelerrorexception": "server",
    "modelstreamerrorexception": "server",
    "modeltimeoutexception": "timeout",
    "validationexception": "validation",
    "accessdeniedexception": "auth",
    "unrecognizedclientexception": "auth",
    "expiredtokenexception": "auth",
    "invalidsignatureexception": "auth",
    "resourcenotfoundexception": "not_found",
    "content_filter": "content_filter",
    "responsibleaipolicyviolation": "content_filter",
    "rate_limit_exceeded": "throttled",
}
_REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "x-amzn-requestid", "x-amz-request-id", "x-ms-request-id",
                       "request-id", "x-amzn-request-id")
_MESSAGE_LIMIT = 300


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or an HTTP date); None if
    absent or unreadable. The one Retry-After parser."""
    import email.utils
    import math
    import time

    def get(name: str) -> Any:
        if headers is None:
            return None
        for key in headers:
            if str(key).lower() == name:
                value = headers[key]
                return value[0] if isinstance(value, list) and value else value
        return None

    millis = get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
            if math.isfinite(value):
                return max(0.0, value)
        except (TypeError, ValueError):
            pass
    raw = get("retry-after")
    if raw is None:
        return None
    text = str(raw).strip()
    try:
        value = float(text)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def request_id_of(headers: Any) -> str | None:
    """The provider's request id from response headers, whichever name the provider uses."""
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in dict(headers).items()}
    for name in _REQUEST_ID_HEADERS:
        value = lowered.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return None


def provider_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) the provider put in an error body: JSON of any common shape, HTML, or text."""
    import json
    import re

    data = body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            title = re.search(r"<title>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
            text = title.group(1) if title else re.sub(r"<[^>]+>", " ", body)
            text = " ".join(text.split())
            return (text[:_MESSAGE_LIMIT] or None), None
    if not isinstance(data, dict):
        return (str(data)[:_MESSAGE_LIMIT] if data not in (None, "") else None), None
    error = data.get("error", data)
    if isinstance(error, str):
        return error[:_MESSAGE_LIMIT], data.get("code") or data.get("type")
    if not isinstance(error, dict):
        error = data
    message = error.get("message") or error.get("Message") or error.get("detail") or data.get("message")
    code = error.get("code") or error.get("__type") or error.get("type")
    inner = error.get("innererror")
    if isinstance(inner, dict) and inner.get("code"):
        code = inner["code"] if str(inner["code"]).lower() in _CODE_KINDS else code
    return (str(message)[:_MESSAGE_LIMIT] if message else None), (str(code) if code else None)


def kind_of(status: int | None, code: str | None = None) -> str:
    """The kind of an HTTP error: its code when that says more, else its status."""
    if code:
        name = str(code).split(":")[0].split("#")[-1].lower()  # Bedrock's "ThrottlingException:http://..."
        if name in _CODE_KINDS:
            return _CODE_KINDS[name]
    if status is None:
        return "error"
    if status == 429:
        return "throttled"
    if status == 408:
        return "timeout"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status >= 500:
        return "server"
    if 400 <= status < 500:
        return "validation"
    return "error"


def http_error(
    backend: str,
    status: int | None,
    *,
    headers: Any = None,
    body: Any = None,
    code: str | None = None,
    message: str | None = None,
    request_id: str | None = None,
    fallback_message: str | None = None,
) -> BackendError:
    """The typed error for an HTTP error response: kind, retry-after, request id and the provider's message
    (``message``, else the body's, else ``fallback_message``: what an SDK kept from elsewhere, a header say)."""
    said, body_code = provider_message(body) if body is not None else (None, None)
    code = code or body_code or _header(headers, "x-amzn-errortype")
    said = message or said or fallback_message
    kind = kind_of(status, code)
    code_name = str(code).split(":")[0] if code else None
    text = f"HTTP {status if status is not None else '-'}"
    if code_name:
        text += f" {code_name}"
    text += f": {said or 'no message'}"
    if status == 400 and _refused_parameter(body) == "stop":
        # the model's configuration, not the request's content (OpenAI's o-series, a deployment of one)
        kind = "unsupported_parameter"
        text += ("; the model does not accept `stop`: construct it with supports_stop_parameter=False (stop "
                 "sequences are then applied client-side)")
    cls = ContentFilterError if kind == "content_filter" else BackendError
    return cls(text, backend=backend, status=status, request_id=request_id or request_id_of(headers),
               retry_after=parse_retry_after(headers), kind=kind)


def _refused_parameter(body: Any) -> str | None:
    """The request parameter an error body says was refused (OpenAI's ``error.param``), or None."""
    import json

    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) else None


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def transport_error(backend: str, kind: str, exc: BaseException, request_id: str | None = None) -> BackendError:
    """The typed error for a failure below HTTP: ``timeout``, ``connection``, ``truncated`` or ``malformed``."""
    what = {"timeout": "the request timed out", "connection": "the connection failed",
            "truncated": "the response was cut off", "malformed": "the response could not be read"}[kind]
    detail = str(exc).strip().splitlines()[0][:_MESSAGE_LIMIT] if str(exc).strip() else ""
    return BackendError(f"{what}: {type(exc).__name__}{': ' + detail if detail else ''}", backend=backend,
                        request_id=request_id, kind=kind)


def generic_error(backend: str, exc: BaseException, request_id: str | None = None) -> BackendError | None:
    """Python's own exceptions that any SDK lets through, typed; None for anything else."""
    import json

    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return transport_error(backend, "malformed", exc, request_id)
    if isinstance(exc, TimeoutError):
        return transport_error(backend, "timeout", exc, request_id)
    if isinstance(exc, ConnectionError):
        return transport_error(backend, "connection", exc, request_id)
    return None


class ReplayError(HarnessError):
    """Replay found no recorded interaction for a request, or a damaged cassette: never retried."""


_NO_MATCH = "CannotOverwriteExistingCassetteException"


def replay_error(exc: BaseException) -> ReplayError | None:
    """The replay failure inside ``exc`` (an SDK may wrap it as a connection error), named plainly; or None."""
    import re

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == _NO_MATCH:
            cassette = getattr(current, "cassette", None)
            request = getattr(current, "failed_request", None)
            path = getattr(cassette, "_path", None) or "the cassette"
            played = sum(getattr(cassette, "play_counts", {}).values()) if cassette is not None else 0
            total = len(getattr(cassette, "data", []) or []) if cassette is not None else 0
            reason = getattr(current, "reason", "no_match")
            failed = [f"{name}: {msg}" for _, _, fails in getattr(current, "similar_requests", [])[:1]
                      for name, msg in fails]
            what = f"{request.method} {request.uri}" if request is not None else "a request"
            detail = "; ".join(failed) if failed else {
                "already_played": "every matching interaction was already played",
                "nothing_similar": "nothing recorded resembles it",
                "cassette_not_found": "the cassette does not exist",
            }.get(str(reason), str(reason))
            return ReplayError(
                f"replay: {path} has no interaction for request #{played + 1} ({what}); "
                f"{played} of {total} recorded interactions played; {detail}. "
                "Re-record the cassette if the request changed on purpose."
            )
        text = str(current)
        if "Can't overwrite existing cassette" in text:  # wrapped by an SDK that kept only the text
            found = re.search(r"Can't overwrite existing cassette \(([^)]*)\)", text)
            return ReplayError(f"replay: {found.group(1) if found else 'the cassette'} has no interaction for a "
                               f"request: {text.strip().splitlines()[0][:400]}")
        current = current.__cause__ or current.__context__
    return None


def redact_chain(exc: BaseException) -> None:
    """Redact secrets from the text of ``exc`` and of every exception it was raised from.

    A typed error is raised ``from`` the SDK's exception, and a traceback (a JUnit report, a log)
    prints the whole chain: an SDK's message may quote the key a provider echoed back.
    """
    from harness.contract.secrets import scrub_text

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(isinstance(a, str) for a in current.args):
            try:
                current.args = tuple(scrub_text(a) if isinstance(a, str) else a for a in current.args)
            except (AttributeError, TypeError):
                pass
        current = current.__cause__ or current.__context__
