"""Hugging Face Inference Providers, Inference Endpoints and OpenAI-compatible URLs on the real
``huggingface_hub.InferenceClient``."""

from __future__ import annotations

import ast
import inspect
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, TextGenerationError
from huggingface_hub.inference import _client as _client_module

from adapters._openai_wire import (
    completion_kwargs,
    deltas_from_chunks,
    message_from_completion,
    translate_transport_error,
)
from harness.contract.errors import BackendError, http_error
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
# the HTTP responses of the call this context's client is making, seen as huggingface_hub checks their status
_RESPONSES: ContextVar[list[Any] | None] = ContextVar("hf_responses", default=None)
# the streamed responses a call of this context opened, for the model to close once it has read them: one left
# open stays in the client's exit stack and, once garbage, is closed by the collector whenever it runs, possibly
# inside the lock of the shared connection pool that closing takes again (a deadlock)
_STREAMED: ContextVar[list[Any] | None] = ContextVar("hf_streamed", default=None)


def _checked_status(response: Any, *args: Any, **kwargs: Any) -> Any:
    """huggingface_hub's ``hf_raise_for_status``, which first keeps the response in the list of the client call
    this context is making (:data:`_RESPONSES`); outside such a call it behaves exactly as before.

    InferenceClient checks every answer with it, streamed or not, before it returns the body or its lines."""
    seen = _RESPONSES.get()
    if seen is not None:
        seen.append(response)
    return _hf_raise_for_status(response, *args, **kwargs)


# installed once, at import, in place of the function huggingface_hub's client module calls (not twice on reload)
_hf_raise_for_status = getattr(_client_module.hf_raise_for_status, "checks_unseen", _client_module.hf_raise_for_status)
_checked_status.checks_unseen = _hf_raise_for_status  # type: ignore[attr-defined]
_client_module.hf_raise_for_status = _checked_status


class _InferenceClient(InferenceClient):
    """``InferenceClient`` whose streamed lines are read by :func:`_sse_lines` and whose answer's x-request-id
    header is kept in :data:`_ANSWER_REQUEST_ID`."""

    def _inner_post(self, request_parameters: Any, *, stream: bool = False) -> Any:  # type: ignore[override]
        seen: list[Any] = []
        token = _RESPONSES.set(seen)
        try:
            result = super()._inner_post(request_parameters, stream=stream)
        except BaseException:
            for response in seen:  # an error's body was read; a body cut short is closed now, not by the collector
                response.close()
            raise
        finally:
            _RESPONSES.reset(token)
        response = seen[-1] if seen else None  # an httpx response
        _ANSWER_REQUEST_ID.set(response.headers.get("x-request-id") if response is not None else None)
        if not stream or response is None:
            return result
        # the client's own lines (its iter_lines generator, not started) are dropped for the text read here
        streamed = _STREAMED.get()
        if streamed is not None:
            streamed.append(response)
        return _sse_lines(response.iter_text())


def _event_error(text: str) -> Any:
    """The error object of a stream's error event from the text huggingface_hub raised it with (the str() of a
    dict for an OpenAI-wire event), else the text itself."""
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return {"error": parsed} if isinstance(parsed, dict) else text


def translate_hf_error(exc: Exception, backend: str) -> BackendError | None:
    """A huggingface_hub or httpx exception as the harness's typed error. Python's own kinds are typed before it
    is asked (``generic_error``): huggingface_hub's ``InferenceTimeoutError`` is a ``TimeoutError``."""
    if isinstance(exc, HfHubHTTPError):
        response = exc.response
        body = None
        try:
            body = response.content
        except Exception:  # noqa: BLE001 - a streamed body not read
            body = None
        # the provider's message as the body gives it; huggingface_hub's server_message only where the body has none
        # (it holds the str() of an OpenAI-wire error object, or Hugging Face's own X-Error-Message header)
        return http_error(backend, response.status_code, headers=response.headers, body=body or None,
                          fallback_message=getattr(exc, "server_message", None) or None, request_id=exc.request_id)
    if isinstance(exc, TextGenerationError):
        # an error event inside a stream: the server said why (huggingface_hub gives the str() of the event's error
        # object when it is one: its message is read out of it)
        return http_error(backend, None, body=_event_error(str(exc)))
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
            raise ValueError(f"{type(self).__name__} got both `token` and `api_key`; pass one (api_key is an alias)")
        if base_url is not None and _is_url(model_id):
            raise ValueError(
                f"{type(self).__name__} got a URL as model_id ({model_id!r}) and base_url ({base_url!r}); pass one"
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
        return _InferenceClient(**options)

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
        streamed: list[Any] = []
        token = _STREAMED.set(streamed)
        try:
            stream = self._call(lambda: self.client.chat_completion(**body))
        finally:
            _STREAMED.reset(token)
        try:
            yield from deltas_from_chunks(self._translated(stream), self.backend_name, _ANSWER_REQUEST_ID.get())
        finally:  # closed here, in the reading thread, when the stream ends, fails or is closed
            for response in streamed:
                response.close()


HfApiModel = InferenceClientModel
