"""Amazon Bedrock Converse interactions derived from recorded OpenAI-wire ones (the request translated,
the answer as Converse or ConverseStream event-stream frames), and their check with botocore's service model."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from harness.recording.derive_common import (
    DerivationError,
    body_text,
    compact_json,
    error_message,
    header_value,
    is_stream,
    source_parts,
    stable_uuid,
)
from harness.recording.placeholders import BEDROCK_MODEL_ID, BEDROCK_REGION
from harness.wire import sse
from harness.wire.converse import content_blocks, converse_turns, output_config, tool_config
from harness.wire.eventstream import CONTENT_TYPE as EVENT_STREAM_CONTENT_TYPE
from harness.wire.eventstream import encode_event_message

# Bedrock's error code for an HTTP status the source server answered with.
_BEDROCK_ERRORS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
                   408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
                   500: "InternalServerException", 503: "ServiceUnavailableException"}


def _converse_blocks(content: Any, index: int) -> list[dict[str, Any]]:
    def image(part: Mapping[str, Any]) -> dict[str, Any]:
        url = part["image_url"]["url"] if isinstance(part["image_url"], Mapping) else part["image_url"]
        header, _, data = url.partition(",")
        if not header.startswith("data:image/") or ";base64" not in header:
            raise DerivationError(f"messages[{index}]: only base64 data-URL images can be derived")
        fmt = header[len("data:image/") :].split(";")[0].replace("jpg", "jpeg")
        return {"image": {"format": fmt, "source": {"bytes": data}}}  # blobs travel as base64

    return content_blocks(content, index, {"image_url": image}, lambda kind: DerivationError(
        f"messages[{index}] has a {kind!r} part, which Converse cannot take"))


def converse_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Converse (or ConverseStream) request body for an OpenAI chat-completions body."""
    known = {"messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "tools",
             "tool_choice", "response_format", "stream", "stream_options"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise DerivationError(f"no Converse equivalent for {', '.join(unknown)}")
    for i, message in enumerate(body.get("messages") or []):
        if message.get("tool_calls") or message["role"] not in ("system", "user", "assistant"):
            raise DerivationError(f"messages[{i}] (role {message['role']!r}) holds tool traffic, not derivable")
    system, messages = converse_turns(body.get("messages") or [], _converse_blocks)
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = system
    inference: dict[str, Any] = {}
    for source, target in (("max_tokens", "maxTokens"), ("max_completion_tokens", "maxTokens"),
                           ("temperature", "temperature"), ("top_p", "topP")):
        if body.get(source) is not None:
            inference[target] = body[source]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        out["inferenceConfig"] = inference
    try:
        if body.get("tools") and body.get("tool_choice") != "none":
            out["toolConfig"] = tool_config(body["tools"], body.get("tool_choice"))
        if body.get("response_format") is not None:
            out["outputConfig"] = output_config(body["response_format"])
    except ValueError as exc:
        raise DerivationError(str(exc)) from None
    return out


def _tool_use_id(source_id: Any, key: str, index: int) -> str:
    digest = hashlib.sha256(f"{key}|{source_id}|{index}".encode()).digest()
    return "tooluse_" + base64.urlsafe_b64encode(digest).decode()[:22]


def _stop_reason(finish_reason: Any, stops: Sequence[str], text: str) -> str:
    """Converse's stopReason for an OpenAI finish_reason.

    ``stop`` is ``stop_sequence`` when the request had stop sequences and the text holds one
    (the local server stops at a stop sequence but leaves it in the text), else ``end_turn``.
    """
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason == "tool_calls":
        return "tool_use"
    if finish_reason == "content_filter":
        return "content_filtered"
    if finish_reason == "stop" and any(s in text for s in stops):
        return "stop_sequence"
    if finish_reason in ("stop", None):
        return "end_turn"
    raise DerivationError(f"finish_reason {finish_reason!r} has no Converse stopReason")


def _converse_usage(usage: Any) -> dict[str, int]:
    if not isinstance(usage, Mapping):
        raise DerivationError("the recorded response has no usage; Converse always reports it")
    inputs, outputs = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": inputs + outputs}


def _stops(body: Mapping[str, Any]) -> list[str]:
    stop = body.get("stop")
    return [stop] if isinstance(stop, str) else list(stop or [])


def derived_tool_use_ids(interaction: Mapping[str, Any], key: str) -> dict[str, str]:
    """The recorded tool-call ids of one interaction's answer, each with the toolUseId derived for it."""
    body, response = source_parts(interaction)
    if response["status"]["code"] != 200:
        return {}
    text = body_text(response["body"])
    ids: dict[str, str] = {}
    if is_stream(body, response):
        chunks, _ = sse.decode(text)
        for chunk in chunks:
            for choice in chunk.get("choices") or []:
                for call in (choice.get("delta") or {}).get("tool_calls") or []:
                    if call.get("id") and call["id"] not in ids:
                        ids[call["id"]] = _tool_use_id(call["id"], key, call.get("index", 0))
        return ids
    choices = json.loads(text).get("choices") or []
    for i, call in enumerate(((choices[0].get("message") or {}).get("tool_calls") or []) if choices else []):
        if call.get("id"):
            ids[call["id"]] = _tool_use_id(call["id"], key, i)
    return ids


def with_ids_renamed(interaction: Mapping[str, Any], renamed: Mapping[str, str]) -> Mapping[str, Any]:
    """``interaction`` with every recorded tool-call id in its request replaced by its derived toolUseId."""
    text = body_text(interaction["request"]["body"])
    for recorded, derived in renamed.items():
        text = text.replace(recorded, derived)
    return {**interaction, "request": {**interaction["request"], "body": text}}


def converse_response(data: Mapping[str, Any], request_body: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A Converse response for an OpenAI chat completion (text and tool calls as recorded)."""
    choices = data.get("choices") or []
    if not choices:
        raise DerivationError("the recorded response has no choices")
    message = choices[0].get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"text": message["content"]})
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        arguments = function.get("arguments")
        content.append({"toolUse": {
            "input": json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else (arguments or {}),
            "name": function["name"],
            "toolUseId": _tool_use_id(call.get("id"), key, i),
        }})
    return {
        "metrics": {"latencyMs": 0},
        "output": {"message": {"content": content, "role": "assistant"}},
        "stopReason": _stop_reason(choices[0].get("finish_reason"), _stops(request_body), message.get("content") or ""),
        "usage": _converse_usage(data.get("usage")),
    }


def converse_stream_events(
    chunks: Sequence[Mapping[str, Any]], request_body: Mapping[str, Any], key: str
) -> list[tuple[str, dict[str, Any]]]:
    """ConverseStream events (type, payload) for the chunks of an OpenAI stream."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    current: Any = None  # ("text",) or ("tool", openai index) of the open content block
    block = -1
    text, finish, usage = "", None, None

    def close() -> None:
        if current is not None:
            events.append(("contentBlockStop", {"contentBlockIndex": block}))

    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if current != ("text",):
                    close()
                    current, block = ("text",), block + 1
                text += delta["content"]
                events.append(("contentBlockDelta", {"contentBlockIndex": block, "delta": {"text": delta["content"]}}))
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                function = call.get("function") or {}
                if current != ("tool", index):
                    close()
                    current, block = ("tool", index), block + 1
                    events.append(("contentBlockStart", {"contentBlockIndex": block, "start": {"toolUse": {
                        "name": function.get("name") or "", "toolUseId": _tool_use_id(call.get("id"), key, index)}}}))
                if function.get("arguments"):
                    events.append(("contentBlockDelta", {"contentBlockIndex": block,
                                                         "delta": {"toolUse": {"input": function["arguments"]}}}))
    close()
    events.append(("messageStop", {"stopReason": _stop_reason(finish, _stops(request_body), text)}))
    events.append(("metadata", {"metrics": {"latencyMs": 0}, "usage": _converse_usage(usage)}))
    return events


def encode_events(events: Iterable[tuple[str, Mapping[str, Any]]]) -> bytes:
    """An event-stream body: one frame per event, as Bedrock sends them."""
    return b"".join(
        encode_event_message(
            {":event-type": name, ":content-type": "application/json", ":message-type": "event"},
            compact_json(payload).encode("utf-8"),
        )
        for name, payload in events
    )


def _bedrock_user_agent(libraries: Mapping[str, str], python: str | None) -> str:
    boto3, botocore = libraries.get("boto3", ""), libraries.get("botocore", libraries.get("boto3", ""))
    parts = [f"Boto3/{boto3}", f"md/Botocore#{botocore}", "ua/2.1", "os/linux"]
    if python:
        parts.append(f"lang/python#{python}")
    parts += ["md/pyimpl#CPython", "cfg/retry-mode#standard", f"Botocore/{botocore}"]
    return " ".join(parts)


def bedrock_interaction(interaction: Mapping[str, Any], key: str, libraries: Mapping[str, str]) -> dict[str, Any]:
    body, response = source_parts(interaction)
    stream = is_stream(body, response)
    # botocore's rest-json serializer writes the body with json.dumps' defaults
    request_body = json.dumps(converse_body(body))
    operation = "converse-stream" if stream else "converse"
    python = header_value(interaction["request"].get("headers") or {}, "x-stainless-runtime-version")
    status = dict(response["status"])
    request_id = stable_uuid("x-amzn-RequestId", key)
    source_text = body_text(response["body"])
    headers: dict[str, list[str]] = {}
    payload: str | bytes
    if status["code"] != 200:
        code = _BEDROCK_ERRORS.get(status["code"], "InternalServerException" if status["code"] >= 500
                                   else "ValidationException")
        payload = compact_json({"message": error_message(source_text)})
        headers["Content-Type"] = ["application/json"]
        headers["x-amzn-ErrorType"] = [f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"]
        status["message"] = {429: "Too Many Requests"}.get(status["code"], status.get("message", ""))
    elif stream:
        chunks, _ = sse.decode(source_text)
        payload = encode_events(converse_stream_events(chunks, body, key))
        headers["Content-Type"] = [EVENT_STREAM_CONTENT_TYPE]
    else:
        payload = compact_json(converse_response(json.loads(source_text), body, key))
        headers["Content-Type"] = ["application/json"]
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8"))
    headers = {
        "Date": [header_value(response.get("headers") or {}, "date") or ""],
        **headers,
        "Content-Length": [str(size)],
        "Connection": ["keep-alive"],
        "x-amzn-RequestId": [request_id],
    }
    if not headers["Date"][0]:
        del headers["Date"]
    return {
        "request": {
            "body": request_body,
            "headers": {
                "Content-Type": ["application/json"],
                "User-Agent": [_bedrock_user_agent(libraries, python)],
                "amz-sdk-request": ["attempt=1; max=1"],
                "Content-Length": [str(len(request_body.encode("utf-8")))],
            },
            "method": "POST",
            "uri": f"https://bedrock-runtime.{BEDROCK_REGION}.amazonaws.com/model/{quote(BEDROCK_MODEL_ID, safe='')}"
                   f"/{operation}",
        },
        "response": {"body": {"string": payload}, "headers": headers, "status": status},
    }


def bedrock_operation(uri: str) -> tuple[Any, str]:
    """The botocore operation model a Bedrock cassette URI calls, and the model id in its path."""
    from urllib.parse import unquote

    import botocore.session

    path = urlsplit(uri).path
    _, model, model_id, action = path.split("/", 3)
    if model != "model" or action not in ("converse", "converse-stream"):
        raise DerivationError(f"{path} is not a Converse path")
    service = botocore.session.get_session().get_service_model("bedrock-runtime")
    return service.operation_model("ConverseStream" if action == "converse-stream" else "Converse"), unquote(model_id)


def validate_bedrock(interaction: Mapping[str, Any]) -> None:
    import botocore.parsers
    import botocore.validate
    from botocore.awsrequest import HeadersDict
    from botocore.eventstream import EventStream

    operation, model_id = bedrock_operation(interaction["request"]["uri"])
    params = {"modelId": model_id, **json.loads(body_text(interaction["request"]["body"]))}
    botocore.validate.validate_parameters(params, operation.input_shape)
    response = interaction["response"]
    headers = HeadersDict({k: v[0] for k, v in response["headers"].items()})
    body = response["body"]["string"]
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    parser = botocore.parsers.create_parser("rest-json")
    if response["status"]["code"] != 200:
        parsed = parser.parse({"status_code": response["status"]["code"], "headers": headers, "body": raw},
                              operation.output_shape)
        if not parsed.get("Error", {}).get("Code"):
            raise DerivationError("the error response names no error code")
        return
    if operation.name == "ConverseStream":
        stream_shape = operation.output_shape.members["stream"]
        parser_ = botocore.parsers.EventStreamJSONParser()
        events = list(EventStream(_RawStream(raw), stream_shape, parser_, operation.name))
        if not events or "messageStop" not in {k for e in events for k in e}:
            raise DerivationError("the event stream has no messageStop")
        return
    parsed = parser.parse({"status_code": 200, "headers": headers, "body": raw}, operation.output_shape)
    if "output" not in parsed or "stopReason" not in parsed:
        raise DerivationError("the Converse response has no output or stopReason")


@dataclass
class _RawStream:
    """The urllib3-like body botocore's EventStream reads."""

    data: bytes

    def stream(self, amt: int = 1024) -> Iterable[bytes]:
        for at in range(0, len(self.data), amt):
            yield self.data[at : at + amt]

    def close(self) -> None:
        pass
