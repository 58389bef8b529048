"""OpenAI-compatible servers on the real ``openai`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import openai

from adapters._openai_wire import (
    completion_kwargs,
    deltas_from_chunks,
    message_from_completion,
    retry_after_seconds,
)
from harness.errors import BackendError
from harness.model import ApiModel, Request
from harness.types import ChatMessage, ChatMessageStreamDelta


def translate_openai_error(exc: Exception, backend: str) -> BackendError | None:
    """An openai SDK exception as a BackendError naming status and request id (never the key)."""
    if isinstance(exc, openai.APITimeoutError):
        return BackendError("the request timed out", backend=backend, kind="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return BackendError(f"connection failed: {type(exc.__cause__ or exc).__name__}", backend=backend,
                            kind="connection")
    if isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
        retry_after = retry_after_seconds(headers.get("retry-after"))
        body = exc.body if isinstance(exc.body, dict) else {}
        code = (body.get("error") or body).get("code") if isinstance(body.get("error") or body, dict) else None
        kind = "content_filter" if code == "content_filter" else "http"
        from harness.errors import ContentFilterError

        cls = ContentFilterError if kind == "content_filter" else BackendError
        return cls(
            f"HTTP {exc.status_code}: {type(exc).__name__}",
            backend=backend,
            status=exc.status_code,
            request_id=exc.request_id or headers.get("x-request-id") or headers.get("apim-request-id"),
            retry_after=retry_after,
            kind=kind,
        )
    if isinstance(exc, openai.APIError):
        return BackendError(f"malformed response: {exc.message}", backend=backend, kind="malformed")
    return None


class OpenAIServerModel(ApiModel):
    """Any OpenAI-compatible chat-completions server (``api_base`` points at it)."""

    backend_name = "openai"
    can_stream = True
    _exported: ClassVar[tuple[str, ...]] = ("requests_per_minute", "api_base", "organization", "project",
                                            "client_kwargs")

    def __init__(
        self,
        model_id: str,
        api_base: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool = False,
        requests_per_minute: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.api_base = api_base
        self.api_key = api_key
        self.organization = organization
        self.project = project
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            requests_per_minute=requests_per_minute,
            **kwargs,
        )

    def create_client(self) -> Any:
        # our bounded retry honours Retry-After; the SDK's own retries would multiply it
        options = {"max_retries": 0, **self.client_kwargs}
        return openai.OpenAI(
            base_url=self.api_base, api_key=self.api_key, organization=self.organization, project=self.project,
            **options,
        )

    def _translate_error(self, exc: Exception) -> BackendError | None:
        return super()._translate_error(exc) or translate_openai_error(exc, self.backend_name)

    def _body(self, request: Request) -> dict[str, Any]:
        return completion_kwargs(request, self.model_id)

    def _generate(self, request: Request) -> ChatMessage:
        response = self._call(lambda: self.client.chat.completions.create(**self._body(request)))
        return message_from_completion(response, self.backend_name)

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        body = {**self._body(request), "stream": True, "stream_options": {"include_usage": True}}
        stream = self._call(lambda: self.client.chat.completions.create(**body))
        yield from deltas_from_chunks(self._translated(stream), self.backend_name)


OpenAIModel = OpenAIServerModel
