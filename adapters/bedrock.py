"""Amazon Bedrock on boto3's ``bedrock-runtime`` Converse and ConverseStream APIs."""

from __future__ import annotations

import base64
import copy
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import boto3
import botocore.eventstream
import botocore.exceptions
import botocore.parsers
import urllib3
from botocore.config import Config

from adapters._openai_wire import raise_if_cut_tool_call
from harness.contract.errors import BackendError, http_error, redact_chain, transport_error
from harness.contract.model import ApiModel, Request, close_stream
from harness.contract.secrets import is_secret_name
from harness.contract.tool_calls import ensure_unique_ids, make_tool_call
from harness.contract.types import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)
from harness.wire.converse import content_blocks, converse_turns, output_config, tool_config

# What each Converse ``stopReason`` makes of the reply: "complete" and "truncated" give the
# ChatMessage (a truncated one as OpenAI's finish_reason "length" does), "content_filter" the
# ChatMessage too (a guardrail's replacement text, possibly empty) with ``finish_reason`` set to the
# stopReason, "malformed" a BackendError; never a half-filled message. Only an HTTP error is a
# ContentFilterError.
STOP_REASONS: dict[str, str] = {
    "end_turn": "complete",
    "tool_use": "complete",
    # Bedrock leaves the stop sequence out of the text; the stop contract is applied again anyway
    "stop_sequence": "complete",
    "max_tokens": "truncated",
    "model_context_window_exceeded": "truncated",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "malformed",
    "malformed_tool_use": "malformed",
}


_IMAGE_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpeg"), (b"GIF8", "gif"))


# -- request ---------------------------------------------------------------------------------

def _image_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if hasattr(value, "save"):  # a PIL image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            raise ValueError("Bedrock Converse takes image bytes, not URLs; pass the image itself")
        return base64.b64decode(value.split(",", 1)[1] if value.startswith("data:") else value)
    raise TypeError(f"image part must hold bytes, a PIL image or a base64 string, got {type(value).__name__}")


def _image_block(data: bytes) -> dict[str, Any]:
    fmt = next((f for magic, f in _IMAGE_MAGIC if data.startswith(magic)), None)
    if fmt is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "webp"
    if fmt is None:
        raise ValueError("image is not PNG, JPEG, GIF or WebP, the formats Bedrock Converse accepts")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _image_url_block(part: Mapping[str, Any]) -> dict[str, Any]:
    url = part.get("image_url")
    return _image_block(_image_bytes(url.get("url") if isinstance(url, Mapping) else url))


def _blocks(content: Any, index: int) -> list[dict[str, Any]]:
    return content_blocks(
        content, index,
        {"image": lambda part: _image_block(_image_bytes(part.get("image"))), "image_url": _image_url_block},
        lambda kind: ValueError(f"messages[{index}] has a {kind!r} part, which Bedrock Converse cannot take"))


def converse_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages) for Converse from normalised wire messages, images sent as bytes.

    Refused before anything is sent: an empty user turn (Converse forbids an empty text block, and
    dropping the turn would send another conversation) and a conversation with no turn at all.
    """
    return converse_turns(messages, _blocks, strict=True)


def converse_request(request: Request, model_id: str | None) -> dict[str, Any]:
    """The parameters of a Converse call for ``request`` (boto3 names; ``modelId`` included)."""
    system, messages = converse_messages(request.messages)
    params: dict[str, Any] = {"modelId": model_id, "messages": messages}
    if system:
        params["system"] = system
    extra = copy.deepcopy(request.kwargs)
    inference = dict(extra.pop("inferenceConfig", None) or {})
    if request.stop_sequences and request.send_stop:
        sent = list(inference.get("stopSequences") or [])
        inference["stopSequences"] = sent + [s for s in request.stop_sequences if s not in sent]
    if inference:
        params["inferenceConfig"] = inference
    if request.tools and request.tool_choice != "none":
        params["toolConfig"] = tool_config(request.tools, request.tool_choice)
        extra.pop("toolConfig", None)
    if request.response_format is not None:
        params["outputConfig"] = output_config(request.response_format)
    params.update(extra)
    for name in request.removed:
        params.pop(name, None)
    return params


# -- response --------------------------------------------------------------------------------

def _request_id(response: Mapping[str, Any]) -> str | None:
    meta = response.get("ResponseMetadata") or {}
    return meta.get("RequestId") or (meta.get("HTTPHeaders") or {}).get("x-amzn-requestid")


def _usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, Mapping):
        return None
    return TokenUsage(
        input_tokens=int(usage.get("inputTokens") or 0), output_tokens=int(usage.get("outputTokens") or 0)
    )


def check_stop_reason(stop_reason: Any, backend: str, request_id: str | None) -> str | None:
    """Raise the typed error a malformed ``stopReason`` stands for; return it if a filter or guardrail
    intervened (the answer still comes back, marked)."""
    outcome = STOP_REASONS.get(str(stop_reason))
    if outcome == "content_filter":
        return str(stop_reason)
    if outcome == "malformed":
        raise BackendError(f"the model's output was malformed (stopReason={stop_reason})", backend=backend,
                           status=200, request_id=request_id, kind=str(stop_reason))
    return None


def message_from_converse(response: Mapping[str, Any], backend: str = "bedrock") -> ChatMessage:
    """A ChatMessage from a Converse response: text blocks joined, toolUse blocks as tool calls."""
    request_id = _request_id(response)
    filtered = check_stop_reason(response.get("stopReason"), backend, request_id)
    message = (response.get("output") or {}).get("message")
    if not isinstance(message, Mapping) or not isinstance(message.get("content"), list):
        raise BackendError("the response has no output message", backend=backend, status=200,
                           request_id=request_id, kind="malformed")
    texts, calls = [], []
    for block in message["content"]:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(make_tool_call(use.get("name"), use.get("input"), use.get("toolUseId")))
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content="".join(texts) if texts or not calls else None,
        tool_calls=ensure_unique_ids(calls) if calls else None,
        raw=response,
        token_usage=_usage(response.get("usage")),
        finish_reason=filtered,
    )


def deltas_from_converse_stream(
    events: Iterable[Mapping[str, Any]], backend: str = "bedrock", request_id: str | None = None
) -> Iterator[ChatMessageStreamDelta]:
    """Stream deltas from ConverseStream events; a stream that never reaches messageStop is an error."""
    stopped = False
    tool_inputs: dict[Any, str] = {}
    for event in events:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if use:
                yield ChatMessageStreamDelta(tool_calls=[ChatMessageToolCallStreamDelta(
                    index=start.get("contentBlockIndex"), id=use.get("toolUseId"), type="function",
                    function=ChatMessageToolCallFunction(name=use.get("name") or "", arguments=""),
                )])
        elif "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta") or {}
            if delta.get("text"):
                yield ChatMessageStreamDelta(content=delta["text"])
            elif "toolUse" in delta:
                index = block.get("contentBlockIndex")
                tool_inputs[index] = tool_inputs.get(index, "") + (delta["toolUse"].get("input") or "")
                yield ChatMessageStreamDelta(tool_calls=[ChatMessageToolCallStreamDelta(
                    index=block.get("contentBlockIndex"),
                    function=ChatMessageToolCallFunction(name="", arguments=delta["toolUse"].get("input") or ""),
                )])
        elif "messageStop" in event:
            stopped = True
            stop_reason = event["messageStop"].get("stopReason")
            check_stop_reason(stop_reason, backend, request_id)
            if stop_reason in ("max_tokens", "model_context_window_exceeded"):
                raise_if_cut_tool_call(tool_inputs.values(), backend, request_id)
        elif "metadata" in event:
            usage = _usage(event["metadata"].get("usage"))
            if usage is not None:
                yield ChatMessageStreamDelta(token_usage=usage)
    if not stopped:
        raise BackendError("the stream ended before messageStop", backend=backend, status=200,
                           request_id=request_id, kind="truncated")


# -- errors ----------------------------------------------------------------------------------

def _status_of(code: str, service_model: Any) -> int | None:
    """The HTTP status the service model gives an error code (stream errors carry none)."""
    if service_model is None:
        return None
    try:
        shape = service_model.shape_for(code[:1].upper() + code[1:])
    except botocore.exceptions.NoShapeFoundError:
        return None
    return (shape.metadata.get("error") or {}).get("httpStatusCode")


def translate_bedrock_error(
    exc: Exception, backend: str = "bedrock", service_model: Any = None, request_id: str | None = None
) -> BackendError | None:
    """A botocore or urllib3 exception as the harness's typed error naming code, status and request id.

    ``request_id`` stands in when the error carries none (an exception event inside a stream).
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "Unknown")
        name = code[:1].upper() + code[1:]
        meta = exc.response.get("ResponseMetadata") or {}
        status = meta.get("HTTPStatusCode")
        if status in (None, 200):  # an exception event inside a stream
            status = _status_of(code, service_model)
        headers = meta.get("HTTPHeaders") or {}
        return http_error(backend, status, headers=headers, code=name,
                          message=error.get("Message") or error.get("message") or None,
                          request_id=meta.get("RequestId") or request_id)
    if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        # a retry cannot find credentials that are not there
        return BackendError(f"no usable AWS credentials: {exc} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                            "AWS_PROFILE or AWS_BEARER_TOKEN_BEDROCK, or pass client_kwargs)", backend=backend,
                            request_id=request_id, kind="auth")
    # urllib3's own timeout: a read that stalls inside a stream's body, after botocore handed the body over
    if isinstance(exc, (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError,
                        urllib3.exceptions.TimeoutError)):
        return transport_error(backend, "timeout", exc, request_id)
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError,
                        botocore.exceptions.ResponseStreamingError, botocore.exceptions.IncompleteReadError,
                        urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError)):
        return transport_error(backend, "connection", exc, request_id)
    if isinstance(exc, (botocore.parsers.ResponseParserError, botocore.exceptions.ChecksumError,
                        botocore.eventstream.ParserError, UnicodeDecodeError)):
        return transport_error(backend, "malformed", exc, request_id)
    return None


# -- the model -------------------------------------------------------------------------------

class AmazonBedrockServerModel(ApiModel):
    """A model on Amazon Bedrock through the Converse API (``model_id``: a model or inference-profile id)."""

    backend_name = "bedrock"
    can_stream = True
    _exported = ("requests_per_minute", "client_kwargs")
    _client_settings = ("client_kwargs",)

    def __init__(
        self,
        model_id: str,
        client: Any | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            client=client,
            **kwargs,
        )

    def create_client(self) -> Any:
        options = dict(self.client_kwargs)
        # our bounded retry; botocore's own would multiply it (a config the caller passes wins)
        single = Config(retries={"total_max_attempts": 1})
        options["config"] = single.merge(options["config"]) if options.get("config") else single
        return boto3.client("bedrock-runtime", **options)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["client_kwargs"] = {k: v for k, v in self.client_kwargs.items() if not is_secret_name(k)}
        return data

    def prepare_request(
        self,
        messages: Sequence[Any],
        stop_sequences: Sequence[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: Sequence[Any] | None = None,
        tool_choice: Any = "required",
        **kwargs: Any,
    ) -> Request:
        """As for every model, with images kept as bytes and a call's inferenceConfig merged with the model's
        (the model's own keys win, as every model kwarg does)."""
        kwargs.setdefault("convert_images_to_image_urls", False)
        request = super().prepare_request(messages, stop_sequences, response_format, tools_to_call_from,
                                          tool_choice, **kwargs)
        for key, default in self.kwargs.items():
            if isinstance(default, Mapping) and isinstance(kwargs.get(key), Mapping):
                request.kwargs[key] = {**kwargs[key], **default}
        return request

    def _translate_error(self, exc: Exception, request_id: str | None = None) -> BackendError | None:
        service_model = getattr(getattr(self.client, "meta", None), "service_model", None)
        return super()._translate_error(exc) or translate_bedrock_error(exc, self.backend_name, service_model,
                                                                        request_id)

    def _params(self, request: Request) -> dict[str, Any]:
        return converse_request(request, self.model_id)

    def _generate(self, request: Request) -> ChatMessage:
        params = self._params(request)
        response = self._call(lambda: self.client.converse(**params))
        return message_from_converse(response, self.backend_name)

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        params = self._params(request)
        response = self._call(lambda: self.client.converse_stream(**params))
        request_id = _request_id(response)
        try:
            yield from deltas_from_converse_stream(response["stream"], self.backend_name, request_id)
        except Exception as exc:
            error = self._translate_error(exc, request_id)
            if error is None or error is exc:
                raise
            redact_chain(exc)
            raise error from exc
        finally:
            close_stream(response["stream"])


AmazonBedrockModel = AmazonBedrockServerModel

__all__ = [
    "STOP_REASONS",
    "AmazonBedrockModel",
    "AmazonBedrockServerModel",
    "converse_request",
    "deltas_from_converse_stream",
    "message_from_converse",
    "translate_bedrock_error",
]
