"""Typed errors: every failure names what was wrong."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class UnknownBackendError(HarnessError, ValueError):
    """A backend name that no installed adapter registers."""


class MissingDependencyError(HarnessError, ImportError):
    """A backend whose SDK or engine is not installed."""


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
        kind: str = "error",
    ) -> None:
        self.backend = backend
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.kind = kind
        from harness.secrets import scrub_text  # a provider may echo the key it refused

        message = scrub_text(message)
        super().__init__(
            f"{backend}: {message} (kind={kind}, status={status if status is not None else '-'}, "
            f"request_id={request_id or '-'})"
        )

    @property
    def retryable(self) -> bool:
        """429 and 5xx, timeouts and resets are worth another try; the rest are not."""
        if self.kind in ("timeout", "connection", "throttled"):
            return True
        return self.status is not None and (self.status == 429 or self.status >= 500)


class ContentFilterError(BackendError):
    """The provider refused or cut the answer for its content policy."""
