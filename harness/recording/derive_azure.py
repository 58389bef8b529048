"""Azure OpenAI interactions derived from recorded OpenAI-wire ones, and their check with the openai types."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from harness.recording.derive_common import (
    body_text,
    compact_json,
    header_value,
    is_stream,
    source_parts,
    sse_events,
    stable_uuid,
)
from harness.recording.placeholders import (
    AZURE_API_VERSION,
    AZURE_DEPLOYMENT,
    AZURE_ENDPOINT,
    AZURE_REGION,
    AZURE_RESOURCE_PLACEHOLDER,
)
from harness.wire import sse

# The placeholders the derived cassettes carry live in harness.recording.placeholders (replay settings read them).
AZURE_RESOURCE = AZURE_RESOURCE_PLACEHOLDER


_SAFE = {"filtered": False, "severity": "safe"}


_NOT_DETECTED = {"filtered": False, "detected": False}


PROMPT_FILTER_RESULTS = {"hate": _SAFE, "jailbreak": _NOT_DETECTED, "self_harm": _SAFE, "sexual": _SAFE,
                         "violence": _SAFE}


COMPLETION_FILTER_RESULTS = {"hate": _SAFE, "protected_material_code": _NOT_DETECTED,
                             "protected_material_text": _NOT_DETECTED, "self_harm": _SAFE, "sexual": _SAFE,
                             "violence": _SAFE}


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


def azure_interaction(interaction: Mapping[str, Any], key: str, libraries: Mapping[str, str]) -> dict[str, Any]:
    body, response = source_parts(interaction)
    body = dict(body)
    if "model" in body:
        body["model"] = AZURE_DEPLOYMENT  # the openai SDK names the deployment in the path and the body
    request_body = compact_json(body)
    headers = {k: list(v) if isinstance(v, list) else [v] for k, v in interaction["request"]["headers"].items()
               if k.lower() not in ("host", "content-length", "user-agent")}
    headers["host"] = [urlsplit(AZURE_ENDPOINT).netloc]
    headers["content-length"] = [str(len(request_body.encode("utf-8")))]
    headers["user-agent"] = [f"AzureOpenAI/Python {libraries.get('openai', '')}".strip()]
    status = response["status"]
    source_text = body_text(response["body"])
    network_chunks: list[int] | None = None
    if status["code"] != 200:
        content_type, text = "application/json", source_text
    elif is_stream(body, response):
        chunks, done = sse.decode(source_text)
        events = sse_events(_azure_chunks(chunks), done)
        content_type, text = f"{sse.CONTENT_TYPE}; charset=utf-8", "".join(events)
        if response["body"].get("chunks"):
            # the recording kept how the stream arrived (one event per chunk): so does the derivation
            network_chunks = [len(e.encode("utf-8")) for e in events]
    else:
        content_type, text = "application/json", compact_json(_azure_completion(json.loads(source_text)))
    response_headers = {
        "content-length": [str(len(text.encode("utf-8")))],
        "content-type": [content_type],
        "apim-request-id": [stable_uuid("apim", key)],
        "strict-transport-security": ["max-age=31536000; includeSubDomains; preload"],
        "x-content-type-options": ["nosniff"],
        "x-ms-deployment-name": [AZURE_DEPLOYMENT],
        "x-ms-rai-invoked": ["true"],
        "x-ms-region": [AZURE_REGION],
        "x-request-id": [stable_uuid("request", key)],
    }
    date = header_value(response.get("headers") or {}, "date")
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


def validate_azure(interaction: Mapping[str, Any]) -> None:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    response = interaction["response"]
    if response["status"]["code"] != 200:
        return
    text = body_text(response["body"])
    if sse.CONTENT_TYPE in (header_value(response["headers"], "content-type") or ""):
        chunks, _ = sse.decode(text)
        for chunk in chunks:
            ChatCompletionChunk.model_validate(chunk)
    else:
        ChatCompletion.model_validate(json.loads(text))
