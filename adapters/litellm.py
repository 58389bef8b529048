"""Any LiteLLM provider on the real ``litellm.completion``, and groups of them on ``litellm.Router``."""

from __future__ import annotations

import os

# litellm fetches its cost map from the internet at import unless told otherwise
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import re  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterator, Mapping, Sequence  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import litellm  # noqa: E402
import openai  # noqa: E402

from adapters._openai_wire import (  # noqa: E402
    completion_kwargs,
    deltas_from_chunks,
    message_from_completion,
    request_id_of,
)
from adapters.openai import translate_openai_error  # noqa: E402
from harness.contract.errors import (
    BackendError,
    http_error,
    provider_message,
    transport_error,
)  # noqa: E402
from harness.contract.model import ApiModel, Request, close_stream, supports_stop_parameter  # noqa: E402
from harness.contract.secrets import is_secret_name  # noqa: E402
from harness.contract.types import ChatMessage, ChatMessageStreamDelta  # noqa: E402

# providers whose chat endpoints take text only, so parts are flattened by default
FLATTEN_BY_DEFAULT = ("ollama", "groq", "cerebras")
# the model smolagents' class falls back to when model_id is left out (with a FutureWarning: 2.0 will require it)
DEFAULT_MODEL_ID = "anthropic/claude-3-5-sonnet-20240620"
_RETRY_OPTIONS = ("max_retries", "num_retries")


def without_secrets(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` without credentials, nested mappings and lists included."""

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: clean(v) for k, v in value.items() if not is_secret_name(str(k))}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(dict(settings))


# litellm wraps every failure of a provider call in its own exceptions, network ones included, often
# as a synthetic HTTP 500; what really happened is in the exception's text.
_NETWORK_MARKERS = ("connection error", "peer closed", "connecterror", "readerror", "remoteprotocolerror",
                    "connection reset", "incomplete chunked read", "server disconnected")
_MALFORMED_MARKERS = ("received response - <apiresponse [2", "jsondecodeerror", "expecting value",
                      "unterminated string", "codec can't decode", "invalid \\escape", "extra data",
                      "invalid response object")  # litellm's own words for a 200 it cannot convert
# litellm 1.110 checks a stream itself and raises this (as a synthetic HTTP 500) when it ends without one
_TRUNCATED_MARKERS = ("stream ended before a finish_reason",)
_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+: )?(?:\w+: )?(?:\w+Exception - )?")


def _words(text: str) -> str:
    """litellm's text of an error without the class names it puts before the provider's words, cut at 300
    characters."""
    return _LITELLM_PREFIX.sub("", text)[:300]


def _text_of(response: Any) -> str | None:
    """The body of the provider's HTTP response an error carries, if it was read (litellm's own stand-in
    responses have none)."""
    try:
        return str(response.text) or None
    except Exception:  # noqa: BLE001 - a streamed body never read, or no httpx response at all
        return None


def translate_litellm_error(exc: Exception, backend: str) -> BackendError | None:
    """A litellm exception as the harness's typed error (status, request id, the provider's message)."""
    cooldown = getattr(exc, "cooldown_time", None)
    if isinstance(exc, ValueError) and cooldown is not None:  # litellm.types.router.RouterRateLimitError
        return BackendError(f"every deployment of the group is cooling down: {_words(str(exc))}", backend=backend,
                            status=429, retry_after=float(cooldown), kind="throttled")
    if not isinstance(exc, (litellm.APIError, litellm.APIConnectionError, litellm.Timeout, openai.APIError)):
        return translate_openai_error(exc, backend)
    text = str(getattr(exc, "message", None) or exc)
    lowered = text.lower()
    if isinstance(exc, litellm.Timeout) or "timed out" in lowered or "timeout" in type(exc).__name__.lower():
        return transport_error(backend, "timeout", exc)
    if "invalid response object" in lowered:  # an HTTP 200 litellm could not convert (it keeps no headers of it)
        return BackendError(f"the response could not be read: {_words(text)}",
                            backend=backend, status=200, kind="malformed")
    if any(marker in lowered for marker in _MALFORMED_MARKERS):
        return transport_error(backend, "malformed", exc)
    if any(marker in lowered for marker in _TRUNCATED_MARKERS):
        return BackendError(f"the stream ended without a finish_reason from the provider (truncated): "
                            f"{_words(text)}", backend=backend, status=200, kind="truncated")
    if any(marker in lowered for marker in _NETWORK_MARKERS):
        return transport_error(backend, "connection", exc)
    if isinstance(exc, litellm.APIConnectionError):
        # not the network: litellm's own client-side check (a parameter it cannot send, ...)
        return BackendError(f"litellm refused the call: {type(exc).__name__}: {_words(text)}", backend=backend,
                            kind="client")
    status = getattr(exc, "status_code", None)
    # litellm sets these on every exception it maps (exception_type), read from the provider's exception or, where
    # that has none of its own, from its response: reading exc.response's here too would find nothing more
    headers = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    body = getattr(exc, "body", None)
    if body is None and response is not None:  # a body that is no JSON: litellm 1.110 says only "Error code: 413"
        body = _text_of(response)
    said, _ = provider_message(body) if body else (None, None)
    return http_error(backend, status, headers=headers, body=body if isinstance(body, dict) else None,
                      message=said or _words(text) or None)


def _provider_stream(stream: Any) -> Any:
    """litellm's own stream wrapper under ``stream`` (the Router hides it in a generator), or None."""
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    generator = getattr(stream, "_sync_generator", None)
    if generator is not None:
        frame = getattr(generator, "gi_frame", None)
        inner = frame.f_locals.get("model_response") if frame is not None else None
        return inner if isinstance(inner, CustomStreamWrapper) else None
    return stream if isinstance(stream, CustomStreamWrapper) else None


class LiteLLMModel(ApiModel):
    """Any model LiteLLM reaches: ``model_id`` is ``<provider>/<model>`` (``openai/...`` with ``api_base``
    for an OpenAI-compatible server)."""

    backend_name = "litellm"
    can_stream = True
    _exported: ClassVar[tuple[str, ...]] = ("requests_per_minute", "api_base")

    def __init__(
        self,
        model_id: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if not model_id:
            warnings.warn(f"model_id left out, so {DEFAULT_MODEL_ID!r} is called, as smolagents' class does; pass "
                          f"model_id (smolagents 2.0 will require it)", FutureWarning, stacklevel=2)
            model_id = DEFAULT_MODEL_ID
        self.api_base = api_base
        self.api_key = api_key
        if flatten_messages_as_text is None:
            flatten_messages_as_text = self._flatten_by_default(model_id)
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )
        # our bounded retry honours Retry-After; litellm's own retries would multiply it
        self._call_options: dict[str, Any] = {} if any(k in kwargs for k in _RETRY_OPTIONS) else {"max_retries": 0}
        if api_base is not None:
            self._call_options["api_base"] = api_base
        if api_key is not None:
            self._call_options["api_key"] = api_key

    def _flatten_by_default(self, model_id: str) -> bool:
        return model_id.startswith(FLATTEN_BY_DEFAULT)

    def create_client(self) -> Any:
        return litellm

    def _translate_error(self, exc: Exception) -> BackendError | None:
        return super()._translate_error(exc) or translate_litellm_error(exc, self.backend_name)

    def _complete(self, body: dict[str, Any]) -> Any:
        return self.client.completion(**self._call_options, **body)

    def _generate(self, request: Request) -> ChatMessage:
        body = completion_kwargs(request, self.model_id)
        response = self._call(lambda: self._complete(body))
        return message_from_completion(response, self.backend_name)

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        body = {**completion_kwargs(request, self.model_id), "stream": True,
                "stream_options": {"include_usage": True}}
        stream = self._call(lambda: self._complete(body))
        provider: list[Any] = []
        named: list[str] = []  # the provider's own chunk id: it names the request where no header did

        def naming() -> str | None:  # the stream's x-request-id header, else its chunks' own id
            return request_id_of(stream) or (named[0] if named else None)

        def chunks() -> Iterator[Any]:
            for chunk in self._translated(stream):
                if not provider:
                    provider.append(_provider_stream(stream))
                # litellm keeps the id the provider sent as received_model_id; a chunk's `id` is one litellm makes
                # up where the provider sent none, which would name no request the provider knows
                received = (getattr(chunk, "_hidden_params", None) or {}).get("received_model_id")
                if not named and received:
                    named.append(received)
                if not received:  # so that the wire's reader never names a request by litellm's own id
                    chunk.id = None
                yield chunk

        try:
            yield from deltas_from_chunks(chunks(), self.backend_name, request_id_of(stream))
        except BackendError as exc:  # litellm 1.110 ends a cut-off stream with an error of its own, naming nothing
            named_error = exc.naming_request(naming())
            if named_error is exc:
                raise
            raise named_error from exc
        finally:  # the provider's own stream under litellm's wrapper, whose sync side has no close of its own
            close_stream(getattr(provider[0] if provider else _provider_stream(stream), "completion_stream", None))
        inner = provider[0] if provider else _provider_stream(stream)
        # litellm ends a cut-off stream with a finish_reason of its own: ask what the provider sent
        if inner is not None and not (inner.received_finish_reason or inner.intermittent_finish_reason):
            raise BackendError("the stream ended without a finish_reason from the provider (truncated)",
                               backend=self.backend_name, status=200,
                               request_id=naming(), kind="truncated")


class LiteLLMRouterModel(LiteLLMModel):
    """A model group of a ``litellm.Router``: ``model_id`` names the group, ``model_list`` its deployments,
    ``client_kwargs`` the rest of the Router's configuration (``routing_strategy``, ...)."""

    backend_name = "litellm-router"
    _exported = ("requests_per_minute", "model_list", "client_kwargs", "api_base")
    _client_settings = ("client_kwargs",)

    def __init__(
        self,
        model_id: str,
        model_list: list[dict[str, Any]],
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model_list, Sequence) or not model_list:
            raise ValueError(f"LiteLLMRouterModel needs a non-empty model_list, got {model_list!r}")
        self.model_list = [dict(entry) for entry in model_list]
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )
        # retries live in the Router's settings; an api_base or api_key given here goes with every call, as
        # smolagents' class sends them (the Router passes them on to the deployment)
        self._call_options = {k: v for k, v in self._call_options.items() if k in ("api_base", "api_key")}

    def _group_models(self, group: str | None) -> list[str]:
        """The models of the deployments of ``group`` (litellm's ``provider/model`` names)."""
        return [str((entry.get("litellm_params") or {}).get("model", "")) for entry in self.model_list
                if entry.get("model_name") == group]

    def _flatten_by_default(self, model_id: str) -> bool:
        # a group name says nothing about the provider; its deployments' models do
        models = self._group_models(model_id)
        return bool(models) and all(m.startswith(FLATTEN_BY_DEFAULT) for m in models)

    def _stop_rule(self) -> bool:
        # the group name, and every model of the group's deployments, must accept `stop`
        return super()._stop_rule() and all(supports_stop_parameter(m) for m in self._group_models(self.model_id))

    def _translate_error(self, exc: Exception) -> BackendError | None:
        error = super()._translate_error(exc)
        if error is None and isinstance(exc, ValueError) and str(exc).startswith("No deployments available"):
            # the Router's own refusal when its group's limits (rpm, tpm) leave no deployment: a rate limit
            return BackendError(f"no deployment of the group is available: {_words(str(exc))}",
                                backend=self.backend_name, status=429, kind="throttled")
        return error

    def create_client(self) -> Any:
        from litellm.router import Router

        # our bounded retry honours Retry-After; the Router's own retries would multiply it
        return Router(model_list=self.model_list, **{"num_retries": 0, **self.client_kwargs})

    def to_dict(self) -> dict[str, Any]:
        return without_secrets(super().to_dict())
