"""What the suites know about each wire, one lens per wire name, written here from the wire's reference.

A backend's registration names the wire it speaks (``wire_format``: ``openai`` for OpenAI chat
completions, ``bedrock`` for Bedrock Converse); the suites hold the lens of each wire and never
branch on a backend's name. A lens reads a request into the contract's terms (``read``), builds a
reply and a stream for the recorded-reply responder, and the ok and error bodies the fault suite's
stand-in answers with. A backend on a wire the suites do not know names its own lens in its
registration (``wire_lens="module:object"``, a :class:`WireLens`), as it names its own request
reader; everything else in the suites then runs on it unchanged.

Expected values here come from the wire's reference (the OpenAI chat-completions and Bedrock
Converse documentation), never from ``harness`` or ``adapters``: only the framing codecs
(AWS event-stream, SSE lines) and the stand-in's ``Reply`` come from the harness's tools.
"""

from __future__ import annotations

import base64
import copy
import importlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.recording.fault_injector import Reply as StandInReply
from harness.recording.fault_injector import sse
from harness.wire.eventstream import decode_event_stream, encode_event_message
from oracles import SentRequest, read_converse, read_openai

# What a fault's bodies carry, so that the fault suite can find them in the error raised.
PROVIDER_MESSAGE = "fault-injected provider message"
REQUEST_ID = "req-fault-0001"
STAND_IN_KEY = "fault-key-0123456789"  # the credential the fault suite builds every model with
# the backends on litellm, whose SDK refuses some answers itself and keeps no header or id of them
LITELLM = ("litellm", "litellm-router")
ANSWER = "Hello there."
ANSWER_PIECES = ("Hel", "lo there.")


@dataclass
class ToolCallSpec:
    """One tool call a reply carries."""

    id: str
    name: str
    arguments: Any  # dict (sent as JSON) or an exact JSON string


@dataclass
class Reply:
    """What the responder's next reply carries, and how a stream is cut into pieces."""

    text: str | None = None
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    # character offsets where content deltas are cut (and, in a Converse answer, where its text blocks end)
    text_pieces: Sequence[int] = ()
    argument_pieces: Sequence[int] = ()  # character offsets where tool-call argument deltas are cut
    # a stream: each call's arguments open with an empty fragment (OpenAI: arguments "" beside the call's name,
    # Converse: a toolUse delta whose input is "")
    empty_argument_piece: bool = False
    byte_cuts: Sequence[int] = ()  # byte offsets where the transport delivers the body in chunks
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None  # (input, output) tokens reported, in place of the recorded usage
    # OpenAI wire: the tool calls' fragments sent round-robin, the last call's first (arrival order is not index order)
    interleaved: bool = False
    # OpenAI wire (Azure's form): categories the content filter marks filtered in the choice's content_filter_results
    filtered: Sequence[str] = ()
    recorded: bool = False  # a stream: the recorded stream's body itself, as it was recorded (cut by byte_cuts)
    # OpenAI wire, a stream: the line break ending each SSE line ("\r\n" and "\r" are SSE's others), and the
    # first piece of text sent in the first event, beside the role (as some servers send it)
    line_break: str = "\n"
    text_with_role: bool = False
    # OpenAI wire, a stream: each call's first fragment carries no `arguments` (its type has them optional)
    head_without_arguments: bool = False
    # OpenAI wire, a stream: each tool call opens with a fragment of its id and type alone (no `function`, which
    # the chunk's type has optional), its name and arguments in the fragments after it
    call_opened_alone: bool = False


# Azure's content_filter_results: categories rated by severity (each given its own here, so that a severity
# read from the wrong category shows), categories only detected (no severity), and a blocklist match
FILTER_SEVERITIES = {"hate": "medium", "self_harm": "safe", "sexual": "low", "violence": "high"}
FILTER_DETECTIONS = ("protected_material_code", "protected_material_text")


def _filter_results(filtered: Sequence[str]) -> dict[str, Any]:
    results: dict[str, Any] = {category: {"filtered": category in filtered, "severity": severity}
                               for category, severity in FILTER_SEVERITIES.items()}
    results.update({category: {"filtered": category in filtered, "detected": category in filtered}
                    for category in FILTER_DETECTIONS})
    results["custom_blocklists"] = {"filtered": "custom_blocklists" in filtered,
                                    "details": [{"filtered": True, "id": "conformance-list"}]
                                    if "custom_blocklists" in filtered else []}
    return results


def cut(text: str, offsets: Sequence[int]) -> list[str]:
    """``text`` cut at ``offsets`` (clamped, deduplicated); never an empty list."""
    bounds = sorted({0, len(text), *(min(max(o, 0), len(text)) for o in offsets)})
    return [text[a:b] for a, b in zip(bounds, bounds[1:])] or [""]


def _openai_usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _converse_usage(usage: tuple[int, int]) -> dict[str, int]:
    given, produced = usage
    return {"inputTokens": given, "outputTokens": produced, "totalTokens": given + produced}


def arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


# the sampling parameters the contract names (model-level kwargs that reach every generation call)
SAMPLING = ("max_tokens", "temperature", "top_p")
CONVERSE_SAMPLING = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP"}


class WireLens:
    """One wire as the suites see it. Subclass it for a wire of your own and name it in ``wire_lens``."""

    name = ""
    stream_content_type = "text/event-stream"
    has_system_turn = True  # the wire carries a system turn as a message (else apart from the messages)
    has_string_content = True  # a message's content may be one string (else a list of blocks only)
    blank_text_allowed = True  # an empty text part may be sent (Converse rejects a blank text block)
    # the reasons the contract speaks of ("stop", "length", "tool_calls") as this wire writes them
    finish_reasons: dict[str, str] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
    # the stand-in truncates a tool call in a stream (else in a plain reply)
    truncated_tool_call_streams = False

    # -- requests ----------------------------------------------------------------------------

    def read(self, body: Any) -> SentRequest | None:
        """One request body in the contract's terms (None: not a model call)."""
        raise NotImplementedError

    def is_stream(self, url: str, body: Any) -> bool:
        """Whether a request asks for a stream."""
        return isinstance(body, dict) and bool(body.get("stream"))

    def tool_parameters(self, body: Any, n: int = 0) -> Any:
        """The JSON schema of the n-th tool's parameters, as a request carries it (None: none sent)."""
        raise NotImplementedError

    # a tool's parameters must be sent, even for a tool that takes none (else a function may leave them out)
    parameters_required = False
    # the fields the wire's tool definition has (a field beside them is refused or ignored by its API)
    tool_fields: frozenset[str] = frozenset()

    def tool_definition(self, body: Any, n: int = 0) -> dict[str, Any]:
        """The n-th tool's definition as a request carries it (its name, description and parameters)."""
        raise NotImplementedError

    # the contract's tool_choice values ("auto", "none", "required", a named tool) as this wire
    # writes them; None: the wire has no such value and the tools are not offered at all
    tool_choices: dict[str, Any] = {}
    arguments_as_text = True  # tool-call arguments travel as a JSON string (else as an object only)

    def tool_choice(self, body: Any) -> Any:
        """The tool choice a request carries (None: none)."""
        raise NotImplementedError

    def sampling(self, body: Any) -> dict[str, Any]:
        """The sampling parameters a request body carries, named as the contract names them (``max_tokens``,
        ``temperature``, ``top_p``). The constructor's keyword arguments of a backend on this wire read the
        same way, so the two compare."""
        raise NotImplementedError

    def response_schema(self, body: Any) -> tuple[str | None, Any]:
        """(name, JSON schema) of the structured output a request asks for."""
        raise NotImplementedError

    def response_description(self, body: Any) -> Any:
        """The description of the structured output a request asks for (None: none sent)."""
        raise NotImplementedError

    def finish_reason(self, raw: Any) -> Any:
        """The finish reason of a reply as the backend returned it (its raw response)."""
        raise NotImplementedError

    # -- messages and images on the wire ---------------------------------------------------------

    alternating_turns = False  # user and assistant turns must alternate
    takes_image_urls = True  # an image may travel as an http(s) URL (else: a clear error, nothing sent)
    names_image_format = False  # an image block names the image's format (its own, not a fixed one)

    def part_kinds(self, content: Any) -> list[tuple[str, Any]]:
        """(kind, text) per part of a sent message's content: ``text`` with its text, ``image``, or ``other``."""
        raise NotImplementedError

    def wire_turns(self, turns: list[tuple[str, list]], flatten: bool) -> list[tuple[str, list]] | None:
        """The contract's turns (role, [(kind, text)]) as this wire must carry them (None: the backend must
        refuse the conversation before sending)."""
        return turns

    def sent_image(self, part: Any) -> tuple[str, bytes]:
        """(format, bytes) of an image part sent inline."""
        raise NotImplementedError

    def sent_image_url(self, part: Any) -> str:
        """The URL of an image part sent as a URL."""
        raise NotImplementedError

    # -- the responder's replies, built from a recorded reply of the same backend --------------

    def plain_body(self, recorded: Any, reply: Reply) -> bytes:
        raise NotImplementedError

    def stream_body(self, recorded: Any, reply: Reply) -> bytes:
        raise NotImplementedError

    def finish(self, reply: Reply) -> str:
        if reply.finish_reason:
            return reply.finish_reason
        return self.finish_reasons["tool_calls" if reply.tool_calls else "stop"]

    # -- the fault stand-in's answers ----------------------------------------------------------

    def ok(self) -> StandInReply:
        """A complete answer of ``ANSWER``."""
        raise NotImplementedError

    def stream(self, complete: bool = True, then: str = "end") -> StandInReply:
        """A stream of ``ANSWER``; ``complete=False``: only its first piece, without the end of the stream."""
        raise NotImplementedError

    def error(self, status: int, code: str | None, headers: dict[str, str] | None = None) -> StandInReply:
        """An error answer carrying ``PROVIDER_MESSAGE`` and ``REQUEST_ID``; ``code`` in the wire's words."""
        raise NotImplementedError

    def broken_stream(self, then: str = "end") -> StandInReply:
        """A stream of the first piece of ``ANSWER``, then an event no reader of the wire can read."""
        raise NotImplementedError

    # the error codes of the faults every wire has, in this wire's words
    throttled_code: str | None = None
    server_code: str | None = None
    auth_status = 401
    auth_code: str | None = None

    def empty_output(self) -> StandInReply:
        """A 200 answer without any output."""
        raise NotImplementedError

    def truncated_tool_call(self) -> StandInReply:
        """A ``get_weather`` call cut short by the token limit."""
        raise NotImplementedError

    def content_filter_error(self) -> StandInReply | None:
        """The wire's refusal by its content filter as an HTTP error (None: the wire has none)."""
        return None

    def own_faults(self) -> dict[str, dict[str, Any]]:
        """Faults only this wire has: name -> the keywords of the fault suite's ``Fault``, ``replies`` a
        function that builds the answers (the suites run those of the wires in ``WIRES``; every other
        fault runs on every wire)."""
        return {}


# -- OpenAI chat completions ------------------------------------------------------------------------

def _completion(content: str | None = ANSWER, finish: str = "stop", tool_calls: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def _without_id(event: dict[str, Any]) -> dict[str, Any]:
    """A completion or chunk that carries no id of its own."""
    return {k: v for k, v in event.items() if k != "id"}


def _chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class OpenAIChatLens(WireLens):
    """OpenAI chat completions: ``POST .../chat/completions``, JSON or server-sent events."""

    name = "openai"
    throttled_code = "rate_limit_exceeded"

    tool_choices = {"auto": "auto", "none": "none", "required": "required",
                    "named": {"type": "function", "function": {"name": "get_weather"}}}

    def read(self, body: Any) -> SentRequest | None:
        return read_openai(body)

    def tool_parameters(self, body: Any, n: int = 0) -> Any:
        # OpenAI chat-completions reference: "Omitting parameters defines a function with an empty parameter list"
        return self.tool_definition(body, n).get("parameters")

    # OpenAI chat-completions reference: a function tool's `function` (FunctionDefinition)
    tool_fields = frozenset({"name", "description", "parameters", "strict"})

    def tool_definition(self, body: Any, n: int = 0) -> dict[str, Any]:
        return dict(body["tools"][n]["function"])

    def tool_choice(self, body: Any) -> Any:
        return body.get("tool_choice")

    def sampling(self, body: Any) -> dict[str, Any]:
        return {k: body[k] for k in SAMPLING if k in body}

    def response_schema(self, body: Any) -> tuple[str | None, Any]:
        form = body["response_format"]
        inner = form.get("json_schema") or {}
        # a strict json_schema and nothing else (a description where one was given: response_description)
        described = {"description": inner["description"]} if "description" in inner else {}
        assert form == {"type": "json_schema", "json_schema": {"name": inner.get("name"), "schema": inner.get(
            "schema"), "strict": True, **described}}, form
        return inner["name"], inner["schema"]

    def response_description(self, body: Any) -> Any:
        return (body["response_format"].get("json_schema") or {}).get("description")

    def finish_reason(self, raw: Any) -> Any:
        choice = raw["choices"][0] if isinstance(raw, dict) else raw.choices[0]
        return choice["finish_reason"] if isinstance(choice, dict) else choice.finish_reason

    def part_kinds(self, content: Any) -> list[tuple[str, Any]]:
        if isinstance(content, str):
            return [("text", content)]
        pieces: list[tuple[str, Any]] = []
        for part in content or []:
            if part.get("type") == "text":
                pieces.append(("text", part["text"]))
            elif part.get("type") in ("image_url", "image"):
                pieces.append(("image", None))
            else:
                pieces.append(("other", part))
        return pieces

    def sent_image_url(self, part: Any) -> str:
        url = (part.get("image_url") or {}).get("url")
        assert part == {"type": "image_url", "image_url": {"url": url}}, f"image sent as {part!r}"
        return str(url)

    def sent_image(self, part: Any) -> tuple[str, bytes]:
        url = self.sent_image_url(part)
        head, _, data = url.partition(",")
        assert head.startswith("data:image/") and head.endswith(";base64"), f"image sent as {url[:40]!r}"
        return head[len("data:image/"):-len(";base64")], base64.b64decode(data)

    def plain_body(self, recorded: Any, reply: Reply) -> bytes:
        body = json.loads(recorded["body"]["string"])
        choice = body["choices"][0]
        choice["message"]["content"] = reply.text
        choice["message"]["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": arguments_text(c.arguments)}}
            for c in reply.tool_calls
        ] or None
        choice["finish_reason"] = self.finish(reply)
        if reply.filtered:
            choice["content_filter_results"] = _filter_results(reply.filtered)
        if reply.usage is not None:
            body["usage"] = _openai_usage(reply.usage)
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def stream_body(self, recorded: Any, reply: Reply) -> bytes:
        raw = recorded["body"]["string"]
        if reply.recorded:
            return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        raw = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        events = [json.loads(line[len("data: "):]) for line in raw.splitlines() if line.startswith("data: {")]
        first, last = events[0], events[-1]

        def chunk(delta: dict[str, Any]) -> dict[str, Any]:
            event = copy.deepcopy(first)
            event["choices"] = [{"delta": delta, "index": 0}]
            return event

        out = [first]
        if reply.text:
            pieces = cut(reply.text, reply.text_pieces)
            if reply.text_with_role and first["choices"]:
                out = [copy.deepcopy(first)]
                out[0]["choices"][0]["delta"]["content"] = pieces.pop(0)
            elif reply.text_with_role:  # Azure's first event carries only the prompt's filter results
                out.append(chunk({"role": "assistant", "content": pieces.pop(0)}))
            out += [chunk({"content": piece}) for piece in pieces]
        fragments: list[list[dict[str, Any]]] = []
        for index, call in enumerate(reply.tool_calls):
            pieces = [""] * reply.empty_argument_piece + cut(arguments_text(call.arguments), reply.argument_pieces)
            head = {"index": index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": pieces[0]}}
            rest = pieces[1:]
            if reply.head_without_arguments:
                head["function"].pop("arguments")
                rest = pieces
            fragments.append([head] + [{"index": index, "function": {"arguments": p}} for p in rest])
            if reply.call_opened_alone:  # a first fragment of the call's id and type alone, no `function`
                fragments[-1].insert(0, {"index": index, "id": head.pop("id"), "type": head.pop("type")})
        if reply.interleaved:
            # round-robin over the calls, the last call first: a call's fragments stay in order, the calls mix
            ordered = [f for row in itertools.zip_longest(*reversed(fragments)) for f in row if f is not None]
        else:
            ordered = [f for call_fragments in fragments for f in call_fragments]
        out += [chunk({"tool_calls": [fragment]}) for fragment in ordered]
        end = copy.deepcopy(last)
        end["choices"] = [{"delta": {}, "finish_reason": self.finish(reply), "index": 0}]
        if reply.filtered:
            end["choices"][0]["content_filter_results"] = _filter_results(reply.filtered)
        if reply.usage is not None:
            end.pop("usage", None)
        out.append(end)
        if reply.usage is not None:
            # as a server asked for stream_options.include_usage sends it: a last chunk with no choices
            tail = copy.deepcopy(last)
            tail["choices"] = []
            tail["usage"] = _openai_usage(reply.usage)
            out.append(tail)
        end_of_event = reply.line_break * 2
        text = "".join(f"data: {json.dumps(e, ensure_ascii=False)}{end_of_event}" for e in out)
        return (text + f"data: [DONE]{end_of_event}").encode("utf-8")

    def ok(self) -> StandInReply:
        return StandInReply.json(_completion(), headers={"x-request-id": REQUEST_ID})

    def stream(self, complete: bool = True, then: str = "end") -> StandInReply:
        events = [_chunk(p) for p in ANSWER_PIECES] + [_chunk(None, "stop")] if complete else [_chunk(ANSWER_PIECES[0])]
        return StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                            sse(events, complete), then=then)

    def broken_stream(self, then: str = "end") -> StandInReply:
        not_a_chunk = {**_chunk(None), "choices": {"index": 0, "delta": {"content": ANSWER_PIECES[-1]}}}
        return StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                            sse([_chunk(ANSWER_PIECES[0]), not_a_chunk], False), then=then)

    def error(self, status: int, code: str | None, headers: dict[str, str] | None = None) -> StandInReply:
        body = {"error": {"message": PROVIDER_MESSAGE, "type": "invalid_request_error", "code": code}}
        return StandInReply.json(body, status, {"x-request-id": REQUEST_ID, "apim-request-id": REQUEST_ID,
                                                **(headers or {})})

    def empty_output(self) -> StandInReply:
        return StandInReply.json({**_completion(), "choices": []})

    def truncated_tool_call(self) -> StandInReply:
        call = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Pa'}}
        return StandInReply.json(_completion(None, "length", [call]), headers={"x-request-id": REQUEST_ID})

    def content_filter_error(self) -> StandInReply | None:
        return self.error(400, "content_filter")

    def own_faults(self) -> dict[str, dict[str, Any]]:
        # Azure's refusal of a prompt: code content_filter, the verdict per category in innererror (Azure OpenAI
        # content filtering reference: severity-rated categories, and detections such as jailbreak)
        verdicts = {"hate": {"filtered": True, "severity": "medium"},
                    "jailbreak": {"filtered": True, "detected": True},
                    "sexual": {"filtered": False, "severity": "safe"},
                    "violence": {"filtered": False, "severity": "low"}}
        refused = {"error": {"message": PROVIDER_MESSAGE, "type": None, "param": "prompt", "code": "content_filter",
                             "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                           "content_filter_result": verdicts}}}
        # a model that takes no stop parameter (OpenAI's o3, gpt-5; an Azure deployment of one) refuses the request
        refused_stop = {"error": {"message": PROVIDER_MESSAGE, "type": "invalid_request_error", "param": "stop",
                                  "code": "unsupported_parameter"}}
        headers = {"x-request-id": REQUEST_ID, "apim-request-id": REQUEST_ID}
        # a stream that ends as a complete one does ([DONE]) but without a chunk carrying a finish_reason
        unfinished = StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                                  sse([_chunk(p) for p in ANSWER_PIECES], True))
        cut_call = {**_chunk(None), "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Pa'}}]}}]}
        without_message = {**_completion(), "choices": [{"index": 0, "finish_reason": "stop"}]}
        # a server that fails after the stream began sends an error event in place of the next chunk
        # (the OpenAI SDK raises on a chunk carrying `error`; vLLM and TGI send one)
        error_event = {"error": {"message": PROVIDER_MESSAGE, "type": "server_error", "code": None}}
        not_a_chunk = {**_chunk(None), "choices": {"index": 0, "delta": {"content": ANSWER_PIECES[-1]}}}
        return {
            "stream-without-finish-reason": dict(
                replies=lambda: [unfinished], stream=True, kind="truncated", status=200, attempts=1, request_id=True,
                clauses=("errors.request-id",)),
            # a get_weather call cut short by the token limit, in a stream (length-truncated-tool-call: in a reply)
            "stream-truncated-tool-call": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                                              sse([cut_call, _chunk(None, "length")], True))],
                stream=True, tools=True, kind="truncated", status=200, attempts=1, request_id=True,
                clauses=("errors.request-id",)),
            "stream-without-chunks": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                                              sse([], True))], stream=True, kind="truncated", status=200, attempts=1,
                request_id=True, clauses=("errors.request-id",)),
            # a first choice without its message: malformed, whatever else the answer holds
            "choice-without-message": dict(
                replies=lambda: [StandInReply.json(without_message, headers={"x-request-id": REQUEST_ID})],
                # named by its request id, but on litellm, which keeps no header of a 200 it cannot convert
                kind="malformed", status=200, attempts=1, request_id=True, id_lost_by=LITELLM,
                clauses=("errors.request-id",)),
            # an answer without choices names its request by its x-request-id header (not the completion's id) ...
            "no-choices-named-by-its-header": dict(
                replies=lambda: [StandInReply.json({**_completion(), "choices": []},
                                                   headers={"x-request-id": REQUEST_ID})],
                kind="malformed", status=200, attempts=1, request_id=True, clauses=("errors.request-id",)),
            # ... and by the completion's own id where no such header came
            "no-choices-named-by-its-id": dict(
                replies=lambda: [StandInReply.json({**_completion(), "choices": [], "id": REQUEST_ID})],
                kind="malformed", status=200, attempts=1, request_id=True, clauses=("errors.request-id",)),
            "prompt-filtered-400": dict(
                replies=lambda: [StandInReply.json(refused, 400, headers)], kind="content_filter", status=400,
                attempts=1, provider_message=True, azure_names=("hate", "medium", "jailbreak", "detected"),
                clauses=("errors.content-filter-categories",)),
            "stop-refused-400": dict(
                replies=lambda: [StandInReply.json(refused_stop, 400, headers)], kind="unsupported_parameter",
                status=400, attempts=1, provider_message=True, names=("stop", "supports_stop_parameter=False"),
                stop_sequences=["END"], clauses=("errors.stop-refused",)),
            "openai-stream-error-event": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                                              sse([_chunk(ANSWER_PIECES[0]), error_event]))],
                # the event comes after the 200's headers and carries no status: the SDKs type it as they can (the
                # OpenAI SDK an APIError without status, litellm a 500 or a refused call), without a request id
                stream=True, kind="server", attempts=1, provider_message=True, request_id=False,
                kinds={"openai": ("server", "error", "client")}),
            # an event that is no chunk of the wire (`choices` an object, not a list) after a first good one
            "openai-stream-event-not-a-chunk": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                                              sse([_chunk(ANSWER_PIECES[0]), not_a_chunk, _chunk(None, "stop")],
                                                  True))],
                # litellm raises on it as a synthetic 500 (litellm.completion) or an error of its own (the Router);
                # typed malformed, it keeps the status its stream was answered with
                stream=True, kind="malformed", attempts=1, kinds={"openai": ("malformed", "server", "client")},
                status_of_kind={"malformed": 200}),
            # an event that is no chunk, in a stream without an x-request-id header: its chunks' own id names it
            # (but on litellm, which raises on that event itself, keeping neither)
            "openai-stream-event-not-a-chunk-named-by-its-id": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream"},
                                              sse([{**_chunk(ANSWER_PIECES[0]), "id": REQUEST_ID},
                                                   {**not_a_chunk, "id": REQUEST_ID},
                                                   {**_chunk(None, "stop"), "id": REQUEST_ID}], True))],
                stream=True, kind="malformed", attempts=1, kinds={"openai": ("malformed", "server", "client")},
                status_of_kind={"malformed": 200}, request_id=True, id_lost_by=LITELLM,
                clauses=("errors.request-id",)),
            # a stream without an x-request-id header (a server behind no gateway): its chunks' own id names the
            # request in the error of a stream cut without a finish_reason, or by the token limit inside a call
            "stream-without-finish-reason-named-by-its-id": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream"},
                                              sse([{**_chunk(p), "id": REQUEST_ID} for p in ANSWER_PIECES], True))],
                stream=True, kind="truncated", status=200, attempts=1, request_id=True,
                clauses=("errors.request-id",)),
            # ... and by nothing where neither came: the error still typed, naming no request
            "stream-without-finish-reason-named-by-nothing": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream"},
                                              sse([_without_id(_chunk(p)) for p in ANSWER_PIECES], True))],
                stream=True, kind="truncated", status=200, attempts=1, request_id=False, unnamed=True,
                clauses=("errors.request-id",)),
            "stream-truncated-tool-call-named-by-nothing": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream"},
                                              sse([_without_id(cut_call), _without_id(_chunk(None, "length"))],
                                                  True))],
                stream=True, tools=True, kind="truncated", status=200, attempts=1, request_id=False, unnamed=True,
                clauses=("errors.request-id",)),
            "no-choices-named-by-nothing": dict(
                replies=lambda: [StandInReply.json(_without_id({**_completion(), "choices": []}))],
                # litellm gives a completion without an id one of its own ("chatcmpl-" and a uuid), keeping no word
                # of it (its stream chunks keep the id received: an adapter names a stream by that one alone)
                kind="malformed", status=200, attempts=1, request_id=False, unnamed=True, id_made_up_by=LITELLM,
                clauses=("errors.request-id",)),
            "stream-truncated-tool-call-named-by-its-id": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream"},
                                              sse([{**cut_call, "id": REQUEST_ID},
                                                   {**_chunk(None, "length"), "id": REQUEST_ID}], True))],
                stream=True, tools=True, kind="truncated", status=200, attempts=1, request_id=True,
                clauses=("errors.request-id",)),
            # a client built to check each answer against the SDK's types (the openai SDK's private option
            # _strict_response_validation, given in client_kwargs) refuses one whose choice's message is no
            # object, a chunk whose choices are no list, and an answer that is not JSON: each a malformed answer,
            # named by its status, its request id and the field that does not match (or the content type sent)
            "strict-client-message-not-an-object": dict(
                replies=lambda: [StandInReply.json(
                    {**_completion(), "choices": [{"index": 0, "finish_reason": "stop", "message": ANSWER}]},
                    headers={"x-request-id": REQUEST_ID})],
                client_kwargs={"_strict_response_validation": True}, backends=("openai", "azure"),
                kind="malformed", status=200, attempts=1, request_id=True, names=("choices", "message"),
                clauses=("errors.request-id",)),
            "strict-client-stream-event-not-a-chunk": dict(
                replies=lambda: [StandInReply(200, {"Content-Type": "text/event-stream", "x-request-id": REQUEST_ID},
                                              sse([_chunk(ANSWER_PIECES[0]), not_a_chunk, _chunk(None, "stop")],
                                                  True))],
                client_kwargs={"_strict_response_validation": True}, backends=("openai", "azure"),
                stream=True, kind="malformed", status=200, attempts=1, request_id=True, names=("choices",),
                clauses=("errors.request-id",)),
            "strict-client-answer-not-json": dict(
                replies=lambda: [StandInReply.raw(ANSWER.encode(), content_type="text/plain",
                                                  headers={"x-request-id": REQUEST_ID})],
                client_kwargs={"_strict_response_validation": True}, backends=("openai", "azure"),
                kind="malformed", status=200, attempts=1, request_id=True, names=("text/plain",),
                clauses=("errors.request-id",)),
        }


# -- Amazon Bedrock Converse ---------------------------------------------------------------------

EVENT_STREAM = "application/vnd.amazon.eventstream"


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_event_message(headers, json.dumps(payload).encode())


def _exception_event(kind: str, message: str = PROVIDER_MESSAGE) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return encode_event_message(headers, json.dumps({"message": message}).encode())


def _corrupt(message: bytes) -> bytes:
    """An event-stream message whose closing CRC-32 no longer matches its bytes (its last byte flipped)."""
    return message[:-1] + bytes([message[-1] ^ 0xFF])


def _converse(text: str = ANSWER) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}}


CONVERSE_START = [_event("messageStart", {"role": "assistant"}),
                  _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ANSWER_PIECES[0]}})]
CONVERSE_END = [_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ANSWER_PIECES[1]}}),
                _event("contentBlockStop", {"contentBlockIndex": 0}),
                _event("messageStop", {"stopReason": "end_turn"}),
                _event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
                                    "metrics": {"latencyMs": 1}})]


def _converse_stream(frames: list[bytes], then: str = "end") -> StandInReply:
    return StandInReply(200, {"Content-Type": EVENT_STREAM, "x-amzn-RequestId": REQUEST_ID}, frames, then=then)


class ConverseLens(WireLens):
    """Amazon Bedrock Converse: ``POST /model/<id>/converse`` (JSON) and ``/converse-stream`` (AWS event stream)."""

    name = "bedrock"
    stream_content_type = EVENT_STREAM
    has_system_turn = False  # Converse carries the system prompt apart, in ``system``
    has_string_content = False  # text blocks only
    blank_text_allowed = False
    finish_reasons = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
    truncated_tool_call_streams = True
    throttled_code = "ThrottlingException"
    server_code = "ServiceUnavailableException"
    auth_status = 403
    auth_code = "AccessDeniedException"

    # Converse: auto -> {"auto": {}}, required -> {"any": {}}, a named tool -> {"tool": {"name": ...}};
    # it has no "none": the tools are not offered at all
    tool_choices = {"auto": {"auto": {}}, "none": None, "required": {"any": {}},
                    "named": {"tool": {"name": "get_weather"}}}
    arguments_as_text = False  # toolUse.input is an object: no empty-string form exists

    def read(self, body: Any) -> SentRequest | None:
        return read_converse(body)

    def is_stream(self, url: str, body: Any) -> bool:
        return url.split("?")[0].endswith("/converse-stream")

    # Converse reference: a toolSpec's inputSchema is required
    parameters_required = True

    def tool_parameters(self, body: Any, n: int = 0) -> Any:
        return self.tool_definition(body, n)["inputSchema"]["json"]

    # Converse reference: ToolSpecification
    tool_fields = frozenset({"name", "description", "inputSchema", "strict"})

    def tool_definition(self, body: Any, n: int = 0) -> dict[str, Any]:
        return dict(body["toolConfig"]["tools"][n]["toolSpec"])

    def tool_choice(self, body: Any) -> Any:
        return (body.get("toolConfig") or {}).get("toolChoice")

    def sampling(self, body: Any) -> dict[str, Any]:
        config = body.get("inferenceConfig") or {}  # Converse: inferenceConfig {maxTokens, temperature, topP}
        return {name: config[key] for name, key in CONVERSE_SAMPLING.items() if key in config}

    def response_schema(self, body: Any) -> tuple[str | None, Any]:
        text_format = body["outputConfig"]["textFormat"]
        assert text_format["type"] == "json_schema", text_format
        structure = text_format["structure"]["jsonSchema"]
        return structure["name"], json.loads(structure["schema"])  # Converse carries the schema as a string

    def response_description(self, body: Any) -> Any:
        return body["outputConfig"]["textFormat"]["structure"]["jsonSchema"].get("description")

    def finish_reason(self, raw: Any) -> Any:
        return raw["stopReason"]

    alternating_turns = True
    takes_image_urls = False  # Converse takes image bytes only
    names_image_format = True  # image.format: png, jpeg, gif or webp

    def part_kinds(self, content: Any) -> list[tuple[str, Any]]:
        if isinstance(content, str):
            return [("text", content)]
        return [("text", part["text"]) if "text" in part else ("image", None) if "image" in part else ("other", part)
                for part in content or []]

    def wire_turns(self, turns: list[tuple[str, list]], flatten: bool) -> list[tuple[str, list]] | None:
        if flatten:  # a flattened turn is one string: its non-empty pieces joined by a line break
            turns = [(role, [("text", "\n".join(t for _, t in pieces if t))] if pieces else [])
                     for role, pieces in turns]
        # leading system turns go to `system`; a later one is a user turn; blank text blocks are not
        # allowed, an empty turn is not sent, and turns of one role are merged.
        out: list[tuple[str, list]] = []
        for role, pieces in turns:
            pieces = [p for p in pieces if p != ("text", "")]
            if role == "system" and not [t for t in out if t[0] != "system"]:
                if out:
                    out[0][1].extend(pieces)
                else:
                    out.append(("system", list(pieces)))
                continue
            role = "user" if role == "system" else role
            if not pieces and role == "user":
                return None  # Converse refuses empty text; dropping the turn would send another conversation
            if not pieces:
                continue
            if out and out[-1][0] == role:
                out[-1][1].extend(pieces)
            else:
                out.append((role, list(pieces)))
        if not [t for t in out if t[0] != "system"]:
            return None  # Converse needs one user or assistant turn with content
        return [t for t in out if t[0] != "system" or t[1]]

    def sent_image(self, part: Any) -> tuple[str, bytes]:
        block = part["image"]  # botocore sends blob bytes base64-encoded in the JSON body
        return block["format"], base64.b64decode(block["source"]["bytes"])

    def plain_body(self, recorded: Any, reply: Reply) -> bytes:
        body = json.loads(recorded["body"]["string"])
        # a Converse answer may hold its text in several text blocks: one per piece of text_pieces
        content: list[dict[str, Any]] = [{"text": piece} for piece in cut(reply.text, reply.text_pieces)] \
            if reply.text else []
        for call in reply.tool_calls:
            arguments = json.loads(call.arguments) if isinstance(call.arguments, str) else call.arguments
            content.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments}})
        body["output"]["message"]["content"] = content
        body["stopReason"] = self.finish(reply)
        if reply.usage is not None:
            body["usage"] = _converse_usage(reply.usage)
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def stream_body(self, recorded: Any, reply: Reply) -> bytes:
        if reply.recorded:
            raw = recorded["body"]["string"]
            return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        frames = decode_event_stream(recorded["body"]["string"])
        by_type = {}
        for headers, payload in frames:
            kind = next(v for n, _, v in headers if n == ":event-type").decode()
            by_type.setdefault(kind, (headers, payload))

        def frame(kind: str, payload: dict[str, Any]) -> bytes:
            template = by_type.get(kind) or by_type["messageStart"]
            headers = [(n, k, kind.encode() if n == ":event-type" else v) for n, k, v in template[0]]
            return encode_event_message(headers, json.dumps(payload, ensure_ascii=False).encode("utf-8"))

        out = [frame("messageStart", {"role": "assistant"})]
        block = 0
        if reply.text:
            for piece in cut(reply.text, reply.text_pieces):
                out.append(frame("contentBlockDelta", {"contentBlockIndex": block, "delta": {"text": piece}}))
            out.append(frame("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        for call in reply.tool_calls:
            start = {"toolUse": {"name": call.name, "toolUseId": call.id}}
            out.append(frame("contentBlockStart", {"contentBlockIndex": block, "start": start}))
            for piece in [""] * reply.empty_argument_piece + cut(arguments_text(call.arguments), reply.argument_pieces):
                out.append(frame("contentBlockDelta",
                                 {"contentBlockIndex": block, "delta": {"toolUse": {"input": piece}}}))
            out.append(frame("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        out.append(frame("messageStop", {"stopReason": self.finish(reply)}))
        metadata = json.loads(by_type["metadata"][1])
        if reply.usage is not None:
            metadata["usage"] = _converse_usage(reply.usage)
        out.append(frame("metadata", metadata))
        return b"".join(out)

    def ok(self) -> StandInReply:
        return StandInReply.json(_converse(), headers={"x-amzn-RequestId": REQUEST_ID})

    def stream(self, complete: bool = True, then: str = "end") -> StandInReply:
        return _converse_stream(CONVERSE_START + CONVERSE_END if complete else CONVERSE_START, then)

    def broken_stream(self, then: str = "end") -> StandInReply:
        return _converse_stream(CONVERSE_START + [_corrupt(CONVERSE_END[0])], then)

    def error(self, status: int, code: str | None, headers: dict[str, str] | None = None) -> StandInReply:
        return StandInReply.json({"message": PROVIDER_MESSAGE}, status, {
            "x-amzn-RequestId": REQUEST_ID, "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/",
            **(headers or {})})

    def empty_output(self) -> StandInReply:
        return StandInReply.json({"output": {}, "stopReason": "end_turn"})

    def truncated_tool_call(self) -> StandInReply:
        return _converse_stream([
            _event("messageStart", {"role": "assistant"}),
            _event("contentBlockStart", {"contentBlockIndex": 0, "start": {
                "toolUse": {"toolUseId": "t1", "name": "get_weather"}}}),
            _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"city": "Pa'}}}),
            _event("contentBlockStop", {"contentBlockIndex": 0}),
            _event("messageStop", {"stopReason": "max_tokens"})])

    def own_faults(self) -> dict[str, dict[str, Any]]:
        # Bedrock's documented exceptions (ConverseStream's error events included)
        return {
            "bedrock-ThrottlingException": dict(
                replies=lambda: [self.error(429, "ThrottlingException"), self.ok()], delays=lambda d: len(d) == 1,
                attempts=2),
            "bedrock-ModelNotReadyException": dict(
                replies=lambda: [self.error(429, "ModelNotReadyException"), self.ok()], delays=lambda d: len(d) == 1,
                attempts=2),
            "bedrock-ValidationException": dict(
                replies=lambda: [self.error(400, "ValidationException")], kind="validation", status=400, attempts=1,
                provider_message=True),
            "bedrock-ModelTimeoutException": dict(
                replies=lambda: [self.error(408, "ModelTimeoutException")], kind="timeout", status=408, attempts=4,
                provider_message=True),
            # the Bedrock reference gives ModelStreamErrorException HTTP status 424, also as a stream's error event
            "bedrock-stream-error-event": dict(
                replies=lambda: [_converse_stream(CONVERSE_START + [_exception_event("modelStreamErrorException")])],
                stream=True, kind="server", status=424, attempts=1, provider_message=True),
            # a provider's message may echo the credential a request was signed with: it reaches no error text
            "bedrock-stream-error-echoing-the-key": dict(
                replies=lambda: [_converse_stream(CONVERSE_START + [_exception_event(
                    "modelStreamErrorException", f"{PROVIDER_MESSAGE} (signed with {STAND_IN_KEY})")])],
                stream=True, kind="server", status=424, attempts=1, provider_message=True, credential_free=True),
            # an HTTP-200 answer whose stopReason says the model's output is malformed: an error naming that
            # stopReason (as its kind, or the kind "malformed"), never the half-made output as an answer
            "bedrock-malformed_model_output": dict(
                replies=lambda: [StandInReply.json({**_converse(), "stopReason": "malformed_model_output"},
                                                   headers={"x-amzn-RequestId": REQUEST_ID})],
                kind="malformed_model_output", kinds={"bedrock": ("malformed_model_output", "malformed")},
                status=200, attempts=1, request_id=True, names=("malformed_model_output",)),
            # an answer whose output message has no content (Converse requires its content blocks): malformed
            "bedrock-message-without-content": dict(
                replies=lambda: [StandInReply.json({**_converse(), "output": {"message": {"role": "assistant"}}},
                                                   headers={"x-amzn-RequestId": REQUEST_ID})],
                kind="malformed", status=200, attempts=1, request_id=True),
            # a stream the context window stopped (stopReason model_context_window_exceeded) inside a tool call's
            # input is cut as one the token limit stopped: an error carrying the stream's request id, not a call
            "bedrock-context-window-cut-tool-call": dict(
                replies=lambda: [_converse_stream(self.truncated_tool_call().chunks[:-1] + [
                    _event("messageStop", {"stopReason": "model_context_window_exceeded"})])],
                kind="truncated", attempts=1, tools=True, request_id=True,
                clauses=("tools.complete-calls-at-token-limit",)),
            # a stream event whose message checksum does not match its bytes (the CRC that ends each event-stream
            # message): a malformed answer, an error carrying the stream's request id
            "bedrock-stream-checksum-mismatch": dict(
                replies=lambda: [_converse_stream(CONVERSE_START + [_corrupt(CONVERSE_END[0])] + CONVERSE_END[1:])],
                stream=True, kind="malformed", attempts=1, request_id=True),
            "bedrock-malformed_tool_use-stream": dict(
                replies=lambda: [_converse_stream(CONVERSE_START + CONVERSE_END[:2] + [
                    _event("messageStop", {"stopReason": "malformed_tool_use"}), CONVERSE_END[3]])],
                stream=True, kind="malformed_tool_use", kinds={"bedrock": ("malformed_tool_use", "malformed")},
                status=200, attempts=1, request_id=True, names=("malformed_tool_use",)),
        }


WIRES: dict[str, WireLens] = {"openai": OpenAIChatLens(), "bedrock": ConverseLens()}
# what an in-process engine's chat template (or a custom model) receives: the chat-completions shape
INPUTS_READ_AS = {"chat_template": "openai", "custom": "openai"}


def lens_of(backend: Any) -> WireLens:
    """The lens of the wire ``backend`` speaks: its own (``wire_lens``) or the suites' for its wire name."""
    own = getattr(backend, "wire_lens", None)
    if own:
        module, _, name = own.partition(":")
        lens = getattr(importlib.import_module(module), name)
        return lens() if isinstance(lens, type) else lens
    try:
        return WIRES[INPUTS_READ_AS.get(backend.wire_format, backend.wire_format)]
    except KeyError:
        raise LookupError(
            f"backend {backend.name!r} speaks wire {backend.wire_format!r}, which the suites do not know "
            f"(known: {', '.join(WIRES)}); its registration names its lens with wire_lens='module:object'"
        ) from None
