"""Azure OpenAI and Amazon Bedrock cassettes derived from real recordings of the local server.

Without an Azure or AWS account the cloud cassettes cannot be recorded, so each recorded
cassette of ``cassettes/<server>/openai`` (a local OpenAI-compatible server on the embedded
model: ``transformers-serve`` or ``vllm-serve``) is rewritten into the wire format each service
documents, into ``cassettes/<server>/<service>``, by ``harness derive-cassettes``:

- **azure**: ``POST https://<resource>.openai.azure.com/openai/deployments/<deployment>/chat/completions
  ?api-version=<v>``; the request body as sent, ``model`` naming the deployment; the response
  body with Azure's ``prompt_filter_results`` and per-choice ``content_filter_results``, and
  Azure's response headers (``apim-request-id``, ``x-request-id``, ``x-ms-region``, ...). Azure
  opens a stream with a chunk holding only ``prompt_filter_results`` and empty ``id``,
  ``object`` and ``model``; the openai types reject an empty ``object``, so the derived chunk
  carries the stream's own.
- **bedrock**: ``POST https://bedrock-runtime.<region>.amazonaws.com/model/<modelId>/converse``
  (``converse-stream`` for a stream) with the Converse request translated from the OpenAI one,
  and a Converse response: ``output.message.content`` text and ``toolUse`` blocks,
  ``stopReason``, ``usage``, ``metrics``; a stream becomes AWS event-stream frames.

What the model said is never edited: text, tool calls and token counts are the recording's.
What the recording cannot tell is labelled in each cassette's provenance: the filter verdicts
are Azure's shape with nothing filtered (no filter ran), ``metrics.latencyMs`` is 0 (the
recording holds no timing), ids are derived from the recording's ids. The function is pure:
the same source gives the same bytes, so re-running the command after a re-recording is all
it takes. A cassette recorded from the real service (provenance ``kind: recorded``) is kept.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from harness.contract.errors import HarnessError
from harness.recording.cassettes import EVENT_STREAM_CONTENT_TYPE, LOCAL_SERVERS, content_digest
from harness.recording.placeholders import (
    AZURE_API_VERSION,
    AZURE_DEPLOYMENT,
    AZURE_ENDPOINT,
    AZURE_REGION,
    AZURE_RESOURCE_PLACEHOLDER,
    BEDROCK_MODEL_ID,
    BEDROCK_REGION,
)
from harness.wire.converse import converse_turns, output_config, tool_config
from harness.wire.eventstream import encode_event_message

DERIVE_COMMAND = "harness derive-cassettes"
SOURCE_BACKEND = "openai"
TARGETS = ("azure", "bedrock")

# The placeholders the derived cassettes carry live in harness.recording.placeholders (replay settings read them).
AZURE_RESOURCE = AZURE_RESOURCE_PLACEHOLDER

_SAFE = {"filtered": False, "severity": "safe"}
_NOT_DETECTED = {"filtered": False, "detected": False}
PROMPT_FILTER_RESULTS = {"hate": _SAFE, "jailbreak": _NOT_DETECTED, "self_harm": _SAFE, "sexual": _SAFE,
                         "violence": _SAFE}
COMPLETION_FILTER_RESULTS = {"hate": _SAFE, "protected_material_code": _NOT_DETECTED,
                             "protected_material_text": _NOT_DETECTED, "self_harm": _SAFE, "sexual": _SAFE,
                             "violence": _SAFE}

# Bedrock's error code for an HTTP status the source server answered with.
_BEDROCK_ERRORS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
                   408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
                   500: "InternalServerException", 503: "ServiceUnavailableException"}
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/model-conformance/derive")


class DerivationError(HarnessError):
    """A recorded interaction the derivation cannot express in the target's wire format."""


# -- small helpers ---------------------------------------------------------------------------

def _stable_uuid(*parts: Any) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "|".join(str(p) for p in parts)))


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


def _text(body: Any) -> str:
    if isinstance(body, Mapping):
        body = body.get("string")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body).decode("utf-8")
    return body or ""


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def parse_sse(text: str) -> tuple[list[dict[str, Any]], bool]:
    """The JSON chunks of a server-sent-events body, and whether it ended with ``[DONE]``."""
    chunks, done = [], False
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if not data:
            continue
        if data.strip() == "[DONE]":
            done = True
        else:
            chunks.append(json.loads(data))
    return chunks, done


def _sse_events(chunks: Iterable[Any], done: bool) -> list[str]:
    return [f"data: {_compact(c)}\n\n" for c in chunks] + (["data: [DONE]\n\n"] if done else [])


def _is_stream(request_body: Mapping[str, Any], response: Mapping[str, Any]) -> bool:
    content_type = _header(response.get("headers") or {}, "content-type") or ""
    return bool(request_body.get("stream")) or "text/event-stream" in content_type


def _source_parts(interaction: Mapping[str, Any]) -> tuple[dict[str, Any], Mapping[str, Any]]:
    request = interaction["request"]
    path = urlsplit(request["uri"]).path
    if request["method"] != "POST" or not path.endswith("/chat/completions"):
        raise DerivationError(f"only chat-completions calls can be derived, got {request['method']} {path}")
    return json.loads(_text(request["body"])), interaction["response"]


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip() or "error"
    error = data.get("error", data) if isinstance(data, Mapping) else data
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("detail") or _compact(error))
    return str(error)


def _libraries(source: Mapping[str, Any]) -> dict[str, str]:
    return dict((source.get("provenance") or {}).get("libraries") or {})


# -- Azure OpenAI ----------------------------------------------------------------------------

def _azure_completion(data: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(data))
    out["choices"] = [dict(sorted({**c, "content_filter_results": COMPLETION_FILTER_RESULTS}.items()))
                      for c in out.get("choices") or []]
    out["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": PROMPT_FILTER_RESULTS}]
    return dict(sorted(out.items()))  # Azure answers with its keys in this order


def _azure_chunks(chunks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not chunks:
        return []
    first = chunks[0]
    out: list[dict[str, Any]] = [{
        "choices": [], "created": first.get("created", 0), "id": first.get("id", ""),
        "model": first.get("model", ""), "object": "chat.completion.chunk",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": PROMPT_FILTER_RESULTS}],
    }]
    for chunk in chunks:
        copied = copy.deepcopy(dict(chunk))
        choices = []
        for choice in copied.get("choices") or []:
            has_text = bool((choice.get("delta") or {}).get("content"))
            choices.append(dict(sorted({**choice, "content_filter_results": COMPLETION_FILTER_RESULTS if has_text
                                        else {}}.items())))
        copied["choices"] = choices
        out.append(dict(sorted(copied.items())))
    return out


def _azure_interaction(interaction: Mapping[str, Any], key: str, libraries: Mapping[str, str]) -> dict[str, Any]:
    body, response = _source_parts(interaction)
    body = dict(body)
    if "model" in body:
        body["model"] = AZURE_DEPLOYMENT  # the openai SDK names the deployment in the path and the body
    request_body = _compact(body)
    headers = {k: list(v) if isinstance(v, list) else [v] for k, v in interaction["request"]["headers"].items()
               if k.lower() not in ("host", "content-length", "user-agent")}
    headers["host"] = [urlsplit(AZURE_ENDPOINT).netloc]
    headers["content-length"] = [str(len(request_body.encode("utf-8")))]
    headers["user-agent"] = [f"AzureOpenAI/Python {libraries.get('openai', '')}".strip()]
    status = response["status"]
    source_text = _text(response["body"])
    network_chunks: list[int] | None = None
    if status["code"] != 200:
        content_type, text = "application/json", source_text
    elif _is_stream(body, response):
        chunks, done = parse_sse(source_text)
        events = _sse_events(_azure_chunks(chunks), done)
        content_type, text = "text/event-stream; charset=utf-8", "".join(events)
        if response["body"].get("chunks"):
            # the recording kept how the stream arrived (one event per chunk): so does the derivation
            network_chunks = [len(e.encode("utf-8")) for e in events]
    else:
        content_type, text = "application/json", _compact(_azure_completion(json.loads(source_text)))
    response_headers = {
        "content-length": [str(len(text.encode("utf-8")))],
        "content-type": [content_type],
        "apim-request-id": [_stable_uuid("apim", key)],
        "strict-transport-security": ["max-age=31536000; includeSubDomains; preload"],
        "x-content-type-options": ["nosniff"],
        "x-ms-deployment-name": [AZURE_DEPLOYMENT],
        "x-ms-rai-invoked": ["true"],
        "x-ms-region": [AZURE_REGION],
        "x-request-id": [_stable_uuid("request", key)],
    }
    date = _header(response.get("headers") or {}, "date")
    if date:
        response_headers["date"] = [date]
    return {
        "request": {
            "body": request_body,
            "headers": headers,
            "method": "POST",
            "uri": f"{AZURE_ENDPOINT}/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions"
                   f"?api-version={AZURE_API_VERSION}",
        },
        "response": {"body": {"string": text, **({"chunks": network_chunks} if network_chunks else {})},
                     "headers": response_headers, "status": dict(status)},
    }


# -- Amazon Bedrock --------------------------------------------------------------------------

def _converse_blocks(content: Any, index: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks = []
    for part in content:
        if part.get("type") == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif part.get("type") == "image_url":
            url = part["image_url"]["url"] if isinstance(part["image_url"], Mapping) else part["image_url"]
            header, _, data = url.partition(",")
            if not header.startswith("data:image/") or ";base64" not in header:
                raise DerivationError(f"messages[{index}]: only base64 data-URL images can be derived")
            fmt = header[len("data:image/") :].split(";")[0].replace("jpg", "jpeg")
            blocks.append({"image": {"format": fmt, "source": {"bytes": data}}})  # blobs travel as base64
        else:
            raise DerivationError(f"messages[{index}] has a {part.get('type')!r} part, which Converse cannot take")
    return blocks


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


def _derived_tool_use_ids(interaction: Mapping[str, Any], key: str) -> dict[str, str]:
    """The recorded tool-call ids of one interaction's answer, each with the toolUseId derived for it."""
    body, response = _source_parts(interaction)
    if response["status"]["code"] != 200:
        return {}
    text = _text(response["body"])
    ids: dict[str, str] = {}
    if _is_stream(body, response):
        chunks, _ = parse_sse(text)
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


def _with_ids_renamed(interaction: Mapping[str, Any], renamed: Mapping[str, str]) -> Mapping[str, Any]:
    """``interaction`` with every recorded tool-call id in its request replaced by its derived toolUseId."""
    text = _text(interaction["request"]["body"])
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
            _compact(payload).encode("utf-8"),
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


def _bedrock_interaction(interaction: Mapping[str, Any], key: str, libraries: Mapping[str, str]) -> dict[str, Any]:
    body, response = _source_parts(interaction)
    stream = _is_stream(body, response)
    # botocore's rest-json serializer writes the body with json.dumps' defaults
    request_body = json.dumps(converse_body(body))
    operation = "converse-stream" if stream else "converse"
    python = _header(interaction["request"].get("headers") or {}, "x-stainless-runtime-version")
    status = dict(response["status"])
    request_id = _stable_uuid("x-amzn-RequestId", key)
    source_text = _text(response["body"])
    headers: dict[str, list[str]] = {}
    payload: str | bytes
    if status["code"] != 200:
        code = _BEDROCK_ERRORS.get(status["code"], "InternalServerException" if status["code"] >= 500
                                   else "ValidationException")
        payload = _compact({"message": _error_message(source_text)})
        headers["Content-Type"] = ["application/json"]
        headers["x-amzn-ErrorType"] = [f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"]
        status["message"] = {429: "Too Many Requests"}.get(status["code"], status.get("message", ""))
    elif stream:
        chunks, _ = parse_sse(source_text)
        payload = encode_events(converse_stream_events(chunks, body, key))
        headers["Content-Type"] = [EVENT_STREAM_CONTENT_TYPE]
    else:
        payload = _compact(converse_response(json.loads(source_text), body, key))
        headers["Content-Type"] = ["application/json"]
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8"))
    headers = {
        "Date": [_header(response.get("headers") or {}, "date") or ""],
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


# -- cassettes -------------------------------------------------------------------------------

_WIRE = {
    "azure": (
        f"Azure OpenAI chat completions, api-version {AZURE_API_VERSION}",
        {"azure_endpoint": AZURE_ENDPOINT, "deployment": AZURE_DEPLOYMENT, "api_version": AZURE_API_VERSION},
        "openai.types.chat.ChatCompletion / ChatCompletionChunk (tests/test_derive.py)",
        ["prompt_filter_results and content_filter_results: Azure's shape with nothing filtered; no filter ran",
         "apim-request-id, x-request-id and x-ms-region: placeholders derived from the recording"],
    ),
    "bedrock": (
        "Amazon Bedrock Runtime Converse / ConverseStream (rest-json; event-stream for streams)",
        {"region": BEDROCK_REGION, "model_id": BEDROCK_MODEL_ID},
        "botocore's bedrock-runtime service model: request serializer and validator, rest-json response parser, "
        "event-stream parser (tests/test_derive.py)",
        ["metrics.latencyMs is 0: the recording holds no timing",
         "stopReason from finish_reason; stop_sequence where the request had stops and the text holds one",
         "toolUseId and x-amzn-RequestId: derived from the recording's ids"],
    ),
}


def derive_cassette(
    source: Mapping[str, Any], target: str, source_path: str, source_sha256: str = ""
) -> dict[str, Any]:
    """The ``target`` (azure or bedrock) cassette for a recorded OpenAI-wire cassette; pure."""
    if target not in TARGETS:
        raise DerivationError(f"{target!r} is not a derivation target. Valid targets are: {', '.join(TARGETS)}")
    libraries = _libraries(source)
    build = _azure_interaction if target == "azure" else _bedrock_interaction
    interactions = []
    renamed: dict[str, str] = {}  # a recorded tool-call id -> the toolUseId the derived responses gave it
    for i, interaction in enumerate(source.get("interactions") or []):
        key = f"{source_path}#{i}"
        try:
            if target == "bedrock":
                # a later request repeats the ids of earlier answers (an agent's memory, its
                # "Calling tools:" text): it carries the ids the derived answers gave
                interaction = _with_ids_renamed(interaction, renamed)
                renamed.update(_derived_tool_use_ids(interaction, key))
            interactions.append(build(interaction, key, libraries))
        except DerivationError as exc:
            raise DerivationError(f"{source_path}, interaction {i}: {exc}") from None
    wire, placeholders, validated_with, not_recorded = _WIRE[target]
    source_provenance = dict(source.get("provenance") or {})
    provenance = {
        "kind": "derived",
        "backend": target,
        "wire": wire,
        "source": source_path,
        "source_sha256": source_sha256,
        "source_provenance": source_provenance,
        "model": source_provenance.get("model"),
        "placeholders": placeholders,
        "not_recorded": not_recorded,
        "validated_with": validated_with,
        "date": source_provenance.get("date"),
        "command": DERIVE_COMMAND,
        "content_digest": content_digest(interactions),  # replay trusts a derived cassette as a recorded one
    }
    return {"interactions": interactions, "version": source.get("version", 1), "provenance": provenance}


def render(cassette: Mapping[str, Any]) -> str:
    """A cassette as YAML, the way recorded ones are written."""
    return yaml.safe_dump(dict(cassette), sort_keys=False, allow_unicode=True, width=120)


# -- validation with the SDKs' own parsers (the SDKs are imported only here) ------------------

def validate_cassette(cassette: Mapping[str, Any], target: str) -> None:
    """Parse every body of a derived cassette with the SDK's own types; raise on the first failure."""
    check = _validate_azure if target == "azure" else _validate_bedrock
    for i, interaction in enumerate(cassette["interactions"]):
        try:
            check(interaction)
        except Exception as exc:  # noqa: BLE001 - every parser failure is reported the same way
            raise DerivationError(f"interaction {i} does not parse as {target}: {type(exc).__name__}: {exc}") from exc


def _validate_azure(interaction: Mapping[str, Any]) -> None:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    response = interaction["response"]
    if response["status"]["code"] != 200:
        return
    text = _text(response["body"])
    if "text/event-stream" in (_header(response["headers"], "content-type") or ""):
        chunks, _ = parse_sse(text)
        for chunk in chunks:
            ChatCompletionChunk.model_validate(chunk)
    else:
        ChatCompletion.model_validate(json.loads(text))


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


def _validate_bedrock(interaction: Mapping[str, Any]) -> None:
    import botocore.parsers
    import botocore.validate
    from botocore.awsrequest import HeadersDict
    from botocore.eventstream import EventStream

    operation, model_id = bedrock_operation(interaction["request"]["uri"])
    params = {"modelId": model_id, **json.loads(_text(interaction["request"]["body"]))}
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


# -- the command -----------------------------------------------------------------------------

def source_roots(root: Path) -> list[Path]:
    """The server folders under ``root`` that hold recorded openai cassettes to derive from."""
    return [root / server for server in LOCAL_SERVERS if (root / server / SOURCE_BACKEND).is_dir()]


def derive_all(
    root: Path, targets: Sequence[str] = TARGETS, check: bool = False, force: bool = False, validate: bool = True
) -> list[tuple[Path, str]]:
    """Derive every target cassette from ``root/<server>/openai`` into ``root/<server>/<target>``.

    Returns (path, what happened) per file. With ``check`` nothing is written and a differing
    file is reported ``stale``. A cassette recorded from the real service is kept unless
    ``force``; a derived one whose source is gone is removed.
    """
    outcomes: list[tuple[Path, str]] = []
    for server_root in source_roots(root):
        outcomes += _derive_server(root, server_root, targets, check, force, validate)
    return outcomes


def _derive_server(
    root: Path, server_root: Path, targets: Sequence[str], check: bool, force: bool, validate: bool
) -> list[tuple[Path, str]]:
    outcomes: list[tuple[Path, str]] = []
    expected: set[Path] = set()
    for source_file in sorted((server_root / SOURCE_BACKEND).glob("*/*.yaml")):
        raw = source_file.read_text(encoding="utf-8")
        source = yaml.safe_load(raw) or {}
        if (source.get("provenance") or {}).get("kind") != "recorded":
            continue
        relative = f"{root.name}/{source_file.relative_to(root).as_posix()}"
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
        for target in targets:
            out = server_root / target / source_file.parent.name / source_file.name
            expected.add(out)
            if out.exists() and not force and _kind(out) == "recorded":
                outcomes.append((out, "kept (recorded from the real service)"))
                continue
            cassette = derive_cassette(source, target, relative, digest)
            if validate:
                validate_cassette(cassette, target)
            text = render(cassette)
            if out.exists() and out.read_text(encoding="utf-8") == text:
                outcomes.append((out, "up to date"))
            elif check:
                outcomes.append((out, "stale"))
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text, encoding="utf-8")
                outcomes.append((out, "written"))
    for target in targets:
        for existing in sorted((server_root / target).glob("*/*.yaml")):
            if existing not in expected and _kind(existing) == "derived":
                if check:
                    outcomes.append((existing, "stale (its source is gone)"))
                else:
                    existing.unlink()
                    outcomes.append((existing, "removed (its source is gone)"))
    return outcomes


def _kind(path: Path) -> str | None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return (data.get("provenance") or {}).get("kind")


def _run(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.backend.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise DerivationError(f"{', '.join(map(repr, unknown))}: not a derivation target. "
                              f"Valid targets are: {', '.join(TARGETS)}")
    root = Path(args.cassette_dir)
    if not source_roots(root):
        raise DerivationError(f"no recorded {SOURCE_BACKEND} cassettes under {root}/<server> "
                              f"(servers: {', '.join(LOCAL_SERVERS)})")
    outcomes = derive_all(root, targets, check=args.check, force=args.force)
    for path, what in outcomes:
        if what != "up to date" or args.verbose:
            print(f"{what:12} {path}")
    counts: dict[str, int] = {}
    for _, what in outcomes:
        counts[what.split(" ")[0]] = counts.get(what.split(" ")[0], 0) + 1
    print(", ".join(f"{n} {w}" for w, n in sorted(counts.items())) or "nothing to derive")
    if args.check and any(w.startswith("stale") for _, w in outcomes):
        print(f"derived cassettes are stale; run: {DERIVE_COMMAND}", file=sys.stderr)
        return 1
    return 0


def add_derive_parser(sub: Any) -> None:
    """The ``harness derive-cassettes`` subcommand."""
    parser = sub.add_parser(
        "derive-cassettes",
        help="derive each server's azure and bedrock cassettes from its recorded openai ones (validated with the SDKs)",
    )
    parser.add_argument("--cassette-dir", default="cassettes", help="cassette root (default: cassettes)")
    parser.add_argument("--backend", default=",".join(TARGETS), help="targets, a comma list (default: azure,bedrock)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a derived cassette is stale")
    parser.add_argument("--force", action="store_true", help="also replace cassettes recorded from the real service")
    parser.add_argument("--verbose", action="store_true", help="list unchanged files too")
    parser.set_defaults(fn=_run)


__all__ = [
    "AZURE_API_VERSION",
    "AZURE_DEPLOYMENT",
    "AZURE_ENDPOINT",
    "BEDROCK_MODEL_ID",
    "BEDROCK_REGION",
    "DERIVE_COMMAND",
    "DerivationError",
    "add_derive_parser",
    "bedrock_operation",
    "converse_body",
    "converse_response",
    "converse_stream_events",
    "derive_all",
    "derive_cassette",
    "encode_events",
    "parse_sse",
    "render",
    "validate_cassette",
]
