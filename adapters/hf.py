"""Hugging Face Inference Providers, Inference Endpoints and OpenAI-compatible URLs on the real
``huggingface_hub.InferenceClient``."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, TextGenerationError

from adapters._openai_wire import (
    completion_kwargs,
    deltas_from_chunks,
    message_from_completion,
    translate_transport_error,
)
from harness.contract.errors import BackendError, http_error, transport_error
from harness.contract.model import ApiModel, Request, supports_stop_parameter
from harness.contract.types import ChatMessage, ChatMessageStreamDelta

TOKEN_ENV = "HF_TOKEN"
# smolagents' documented default, "which may change in the future"
DEFAULT_MODEL_ID = "Qwen/Qwen3-Next-80B-A3B-Thinking"

# chat_completion() takes these by name; any other API parameter travels in extra_body
_CHAT_COMPLETION_PARAMETERS = frozenset(inspect.signature(InferenceClient.chat_completion).parameters) - {"self"}


def _is_url(value: str | None) -> bool:
    return bool(value) and str(value).startswith(("http://", "https://"))


def _sse_lines(chunks: Iterator[str]) -> Iterator[str]:
    """The lines of an event stream, split only where SSE splits them (CRLF, LF, CR).

    httpx's ``iter_lines`` splits like ``str.splitlines``, also at U+0085, U+2028, U+2029 (and
    other separators) that JSON carries unescaped inside a string, cutting one ``data:`` line
    in two; huggingface_hub then fails on half a JSON object.
    """
    pending = ""
    for chunk in chunks:
        pending += chunk
        *lines, pending = re.split(r"\r\n|\n|\r(?!$)", pending)  # a final CR may begin a CRLF
        yield from lines
    if pending:
        yield pending.rstrip("\r")


# the x-request-id header of the last answer this context's client received: InferenceClient returns the body
# (or its lines) alone, and a malformed or cut answer's error names its request by it
_ANSWER_REQUEST_ID: ContextVar[str | None] = ContextVar("answer_request_id", default=None)


def _keeping_unicode_line_breaks(inner_post: Any) -> Any:
    """``InferenceClient._inner_post`` whose streamed lines are read by :func:`_sse_lines` from the response,
    and whose answer's x-request-id header is kept in :data:`_ANSWER_REQUEST_ID`."""
    stack = getattr(getattr(inner_post, "__self__", None), "exit_stack", None)

    def post(*args: Any, **kwargs: Any) -> Any:
        _ANSWER_REQUEST_ID.set(None)
        entered: list[Any] = []
        if stack is not None:  # the client enters the HTTP response in its exit stack: see it there
            enter = stack.enter_context

            def entering(cm: Any) -> Any:
                entered.append(enter(cm))
                return entered[-1]

            stack.enter_context = entering
        try:
            result = inner_post(*args, **kwargs)
        finally:
            if stack is not None:
                del stack.enter_context
        headers = getattr(entered[-1], "headers", None) if entered else None
        _ANSWER_REQUEST_ID.set(headers.get("x-request-id") if headers is not None else None)
        # a stream is the response's own iter_lines generator, not started yet: its frame holds the
        # response, whose text is read instead (anything else is returned as it came)
        frame = getattr(result, "gi_frame", None)
        response = frame.f_locals.get("self") if frame is not None else None
        if response is None or not hasattr(response, "iter_text"):
            return result
        result.close()
        return _sse_lines(response.iter_text())

    return post


def translate_hf_error(exc: Exception, backend: str) -> BackendError | None:
    """A huggingface_hub or httpx exception as the harness's typed error."""
    if isinstance(exc, InferenceTimeoutError):
        return transport_error(backend, "timeout", exc)
    if isinstance(exc, HfHubHTTPError):
        response = exc.response
        body = None
        try:
            body = response.content
        except Exception:  # noqa: BLE001 - a streamed body not read
            body = None
        return http_error(backend, response.status_code, headers=response.headers, body=body or None,
                          message=getattr(exc, "server_message", None) or None, request_id=exc.request_id)
    if isinstance(exc, TextGenerationError):
        # an error event inside a stream: the server said why
        return http_error(backend, None, message=str(exc))
    return translate_transport_error(exc, backend)


class InferenceClientModel(ApiModel):
    """A model behind ``huggingface_hub.InferenceClient``: a Hub id with a provider, or an endpoint URL.

    ``model_id`` is a Hub id or the URL of a deployed endpoint. With ``base_url``, requests go to
    that URL and ``model_id`` (if given) is sent as the payload's ``model``.
    """

    backend_name = "inference-client"
    can_stream = True
    _exported = ("requests_per_minute", "provider", "timeout", "client_kwargs", "bill_to", "base_url")
    _client_settings = ("provider", "token", "timeout", "client_kwargs", "bill_to")

    def __init__(
        self,
        model_id: str | None = None,
        provider: str | None = None,
        token: str | None = None,
        timeout: float | None = 120,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        api_key: str | None = None,
        bill_to: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if token is not None and api_key is not None:
            raise ValueError("InferenceClientModel got both `token` and `api_key`; pass one (api_key is an alias)")
        if base_url is not None and _is_url(model_id):
            raise ValueError(
                f"InferenceClientModel got a URL as model_id ({model_id!r}) and base_url ({base_url!r}); pass one"
            )
        self.token = token if token is not None else api_key
        if self.token is None and kwargs.get("client") is None:  # a ready client has its own token
            self.token = os.environ.get(TOKEN_ENV) or None
        self.provider = provider
        self.timeout = timeout
        self.bill_to = bill_to
        self.base_url = base_url
        self.client_kwargs = dict(client_kwargs or {})
        if model_id is None and base_url is None:
            model_id = DEFAULT_MODEL_ID
        # the payload's `model`: the URL or the client's own model otherwise decides it
        self._payload_model = model_id if base_url is not None else None
        super().__init__(
            model_id=model_id,  # type: ignore[arg-type]
            custom_role_conversions=custom_role_conversions,
            **kwargs,
        )

    def _stop_rule(self) -> bool:
        # the model family is the model the request names: a `model` kwarg beside an endpoint URL
        named = self.kwargs.get("model")
        return supports_stop_parameter(named if isinstance(named, str) else self.model_id)

    def create_client(self) -> Any:
        options: dict[str, Any] = {"provider": self.provider, "token": self.token, "timeout": self.timeout,
                                   "bill_to": self.bill_to, **self.client_kwargs}
        if self.base_url is not None:
            options["base_url"] = self.base_url
        else:
            options["model"] = self.model_id
        client = InferenceClient(**options)
        client._inner_post = _keeping_unicode_line_breaks(client._inner_post)  # type: ignore[method-assign]
        return client

    def _translate_error(self, exc: Exception) -> BackendError | None:
        return super()._translate_error(exc) or translate_hf_error(exc, self.backend_name)

    def _body(self, request: Request) -> dict[str, Any]:
        body = completion_kwargs(request, self._payload_model)
        extra = {key: body.pop(key) for key in [k for k in body if k not in _CHAT_COMPLETION_PARAMETERS]}
        if extra:
            body["extra_body"] = {**extra, **(body.get("extra_body") or {})}
        return body

    def _generate(self, request: Request) -> ChatMessage:
        body = self._body(request)
        response = self._call(lambda: self.client.chat_completion(**body))
        return message_from_completion(response, self.backend_name, _ANSWER_REQUEST_ID.get())

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        body = {**self._body(request), "stream": True, "stream_options": {"include_usage": True}}
        stream = self._call(lambda: self.client.chat_completion(**body))
        yield from deltas_from_chunks(self._translated(stream), self.backend_name, _ANSWER_REQUEST_ID.get())


HfApiModel = InferenceClientModel
