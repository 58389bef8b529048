"""OpenAI-compatible servers on the real ``openai`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import openai
import pydantic

from adapters._openai_wire import (
    completion_kwargs,
    deltas_from_chunks,
    message_from_completion,
    request_id_of,
    translate_transport_error,
)
from harness.contract.errors import BackendError, http_error, transport_error
from harness.contract.model import ApiModel, Request, close_stream
from harness.contract.types import ChatMessage, ChatMessageStreamDelta


def translate_openai_error(exc: Exception, backend: str) -> BackendError | None:
    """An openai SDK exception as the harness's typed error (status, request id, the provider's message)."""
    if isinstance(exc, openai.APITimeoutError):
        return transport_error(backend, "timeout", exc.__cause__ or exc)
    if isinstance(exc, openai.APIConnectionError):
        return transport_error(backend, "connection", exc.__cause__ or exc)
    if isinstance(exc, openai.APIStatusError):
        # the SDK's body is the answer's JSON, else its text (None only for a response closed unread, which has no
        # text either); http_error reads the request id from the headers, where the SDK reads it
        return http_error(backend, exc.status_code, headers=exc.response.headers, body=exc.body)
    if isinstance(exc, openai.APIResponseValidationError):
        # a client built with _strict_response_validation checks each answer (each chunk) against the SDK's types,
        # and that it is JSON at all: one that fails is malformed, named by its status, its request id and the
        # first field pydantic found wrong (else the SDK's words: a content type that is not JSON)
        if isinstance(exc.__cause__, pydantic.ValidationError):
            first = exc.__cause__.errors()[0]
            what = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
        else:
            what = exc.message
        return BackendError(f"the response does not match the API's types: {what}", backend=backend,
                            status=exc.status_code, request_id=request_id_of(exc), kind="malformed")
    if isinstance(exc, openai.APIError):  # an error event inside a stream: its body holds the message
        return http_error(backend, None, body=exc.body)
    return translate_transport_error(exc, backend)


class OpenAIServerModel(ApiModel):
    """Any OpenAI-compatible chat-completions server (``api_base`` points at it)."""

    backend_name = "openai"
    can_stream = True
    _exported: ClassVar[tuple[str, ...]] = ("requests_per_minute", "api_base", "organization", "project",
                                            "client_kwargs")
    _client_settings: ClassVar[tuple[str, ...]] = ("api_base", "api_key", "organization", "project", "client_kwargs")

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
        **kwargs: Any,
    ) -> None:
        # a client setting given inside client_kwargs stands for its parameter (smolagents' class overwrites it
        # with the parameter, even unset; passed on beside it, openai.OpenAI would get it twice)
        client_kwargs = dict(client_kwargs or {})
        self.api_base = self._lift_client_setting(client_kwargs, "api_base", api_base, key="base_url")
        self.api_key = self._lift_client_setting(client_kwargs, "api_key", api_key)
        self.organization = self._lift_client_setting(client_kwargs, "organization", organization)
        self.project = self._lift_client_setting(client_kwargs, "project", project)
        self.client_kwargs = client_kwargs
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )

    def _lift_client_setting(self, client_kwargs: dict[str, Any], parameter: str, value: Any,
                             key: str | None = None) -> Any:
        """``value`` (the parameter's), else the same setting given inside ``client_kwargs`` under ``key`` (the
        parameter's name unless the client names it otherwise), which is taken out of it so that the setting reaches
        the client once, where the parameter would; both given is a ValueError naming both."""
        key = key or parameter
        if key not in client_kwargs:
            return value
        inner = client_kwargs.pop(key)
        if value is None:
            return inner
        if inner is not None:
            raise ValueError(f"{type(self).__name__} got {parameter} and client_kwargs[{key!r}]; pass one")
        return value

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
        try:
            yield from deltas_from_chunks(self._translated(stream), self.backend_name, request_id_of(stream))
        finally:  # also when the chunks' reader failed, whose traceback keeps the chunks' iterator unclosed
            close_stream(stream)


OpenAIModel = OpenAIServerModel
