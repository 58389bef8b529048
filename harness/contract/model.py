"""The Model contract: one request pipeline shared by every adapter.

An adapter implements ``_generate`` (and ``_generate_stream`` if it can stream) on its SDK or
engine. Everything else (message normalisation, stop validation and trimming, tool-call
parsing, rate limiting, bounded retries) happens here, once.
"""

from __future__ import annotations

import copy
import inspect
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from harness.contract.errors import BackendError, ToolCallParseError, generic_error, redact_chain, replay_error
from harness.contract.messages import get_clean_message_list, role_conversions
from harness.contract.secrets import is_secret_name, register_secret
from harness.contract.stop_sequences import StopScanner, trim_at_stop, validate_stop_sequences
from harness.contract.tool_calls import (
    ensure_unique_ids,
    merge_tool_call_deltas,
    parse_arguments,
    tool_call_from_text,
)
from harness.contract.types import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)

T = TypeVar("T")



class _ParameterRemove:
    """Sentinel: a model kwarg set to it removes that parameter from the request."""

    def __repr__(self) -> str:
        return "REMOVE_PARAMETER"


REMOVE_PARAMETER = _ParameterRemove()


def is_remove_parameter(value: Any) -> bool:
    """Whether ``value`` is this project's REMOVE_PARAMETER or smolagents' own (``smolagents.models``)."""
    if value is REMOVE_PARAMETER:
        return True
    kind = type(value)
    return kind.__name__ == "_ParameterRemove" and kind.__module__.split(".")[0] == "smolagents"


_NO_STOP_OPENAI = r"(o3(?:$|[-.].*)|o4(?:$|[-.].*)|gpt-5.*)"
_NO_STOP_GROK = r"([A-Za-z][A-Za-z0-9_-]*\.)?grok-[A-Za-z0-9][A-Za-z0-9_.-]*"
_NO_STOP = re.compile(rf"^({_NO_STOP_OPENAI}|{_NO_STOP_GROK})$")


def supports_stop_parameter(model_id: str | None) -> bool:
    """smolagents' rule: ``stop`` is rejected by o3 and o3-* (not o3-mini), o4*, gpt-5* and grok-*,
    also behind a provider prefix (``openai/o3``, ``xai/grok-4``)."""
    name = (model_id or "").split("/")[-1]
    if name == "o3-mini":
        return True
    return not _NO_STOP.match(name)


def tool_json_schema(tool: Any) -> dict[str, Any]:
    """An OpenAI function schema from a smolagents-style tool object or a schema dict."""
    if isinstance(tool, Mapping):
        if tool.get("type") == "function" and "function" in tool:
            return copy.deepcopy(dict(tool))
        if "name" in tool:  # the function object alone, or the Responses API's flat tool ({"type": "function", ...})
            return {"type": "function", "function": copy.deepcopy({k: v for k, v in tool.items() if k != "type"})}
        raise ValueError(f"tool schema must have 'name' or be {{'type': 'function', ...}}, got {dict(tool)!r}")
    for attr in ("name", "description", "inputs"):
        if not hasattr(tool, attr):
            raise TypeError(f"tool {tool!r} of type {type(tool).__name__} has no {attr!r}")
    properties = copy.deepcopy(dict(tool.inputs))
    required = []
    for key, spec in properties.items():
        if spec.get("type") == "any":
            spec["type"] = "string"
        if not spec.get("nullable"):
            required.append(key)
        if "anyOf" in spec:  # smolagents' Tool inputs from Optional/Union type hints
            types, enum = [], None
            for option in spec.pop("anyOf"):
                if option.get("type") == "null":
                    spec["nullable"] = True
                    continue
                types.append("string" if option.get("type") == "any" else option.get("type"))
                enum = option.get("enum", enum)
            spec["type"] = types if len(types) > 1 else types[0]
            if enum is not None:
                spec["enum"] = enum
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_PART_TYPES = ("text", "image", "image_url")
_RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")


def validate_call(messages: Any, response_format: Any, tools: Any) -> None:
    """Refuse, before anything is sent, a call no wire accepts; the error names the argument and the value."""
    if isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)) and len(messages) == 0:
        raise ValueError("messages is empty: a call needs at least one message")
    if isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)):
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
            if isinstance(content, (list, tuple)):
                for j, part in enumerate(content):
                    if not isinstance(part, Mapping):
                        raise TypeError(f"messages[{i}].content[{j}] must be a dict part such as "
                                        f"{{'type': 'text', 'text': ...}}, got {part!r} of type {type(part).__name__}")
                    if part.get("type") not in _PART_TYPES:
                        raise ValueError(f"messages[{i}].content[{j}] has type {part.get('type')!r}; valid part "
                                         f"types are {list(_PART_TYPES)}")
    if response_format is not None:
        if not isinstance(response_format, Mapping):
            raise TypeError(f"response_format must be a dict such as {{'type': 'json_schema', 'json_schema': "
                            f"{{...}}}}, got {response_format!r} of type {type(response_format).__name__}")
        kind = response_format.get("type")
        if kind not in _RESPONSE_FORMAT_TYPES:
            raise ValueError(f"response_format has type {kind!r}; valid types are {list(_RESPONSE_FORMAT_TYPES)}")
        spec = response_format.get("json_schema")
        if kind == "json_schema" and not (isinstance(spec, Mapping) and isinstance(spec.get("name"), str)):
            raise ValueError(f"response_format of type 'json_schema' needs a 'json_schema' dict with a 'name', "
                             f"got {response_format!r}")
    if tools is not None and (isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence)):
        raise TypeError(f"tools_to_call_from must be a list of tools, got {tools!r} of type {type(tools).__name__}")


@dataclass
class Request:
    """A call, validated and normalised, before it is translated for one backend."""

    messages: list[dict[str, Any]]
    stop_sequences: list[str] = field(default_factory=list)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    # parameters a model kwarg set to REMOVE_PARAMETER takes out of the wire request
    removed: frozenset[str] = frozenset()
    # whether ``stop`` may be sent (the model's rule or its per-instance switch)
    send_stop: bool = True


def agglomerate_stream_deltas(
    stream_deltas: Sequence[ChatMessageStreamDelta], role: MessageRole = MessageRole.ASSISTANT
) -> ChatMessage:
    """The message a stream amounts to: content joined, tool calls merged by index, usage summed."""
    content = "".join(d.content or "" for d in stream_deltas)
    tool_deltas: list[ChatMessageToolCallStreamDelta] = [tc for d in stream_deltas for tc in (d.tool_calls or [])]
    usages = [d.token_usage for d in stream_deltas if d.token_usage is not None]
    usage = None
    if usages:
        usage = TokenUsage(
            input_tokens=sum(u.input_tokens for u in usages), output_tokens=sum(u.output_tokens for u in usages)
        )
    return ChatMessage(
        role=role,
        content=content,
        tool_calls=merge_tool_call_deltas(tool_deltas) if tool_deltas else None,
        token_usage=usage,
    )



def _without_secrets(value: Any) -> Any:
    """``value`` with every key that names a credential left out, at any depth (a token in client_kwargs too)."""
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not (isinstance(k, str) and is_secret_name(k))}
    if type(value) in (list, tuple):
        return type(value)(_without_secrets(v) for v in value)
    return value

class Model:
    """Base of every model: ``model(messages, stop_sequences=..., ...) -> ChatMessage``."""

    backend_name: ClassVar[str] = "model"
    can_stream: ClassVar[bool] = False
    supports_tools: ClassVar[bool] = True

    def __init__(
        self,
        flatten_messages_as_text: bool = False,
        tool_name_key: str = "name",
        tool_arguments_key: str = "arguments",
        model_id: str | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        supports_stop_parameter: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if supports_stop_parameter is not None and not isinstance(supports_stop_parameter, bool):
            raise TypeError(f"supports_stop_parameter must be True, False or None, got {supports_stop_parameter!r}")
        # None: smolagents' rule on model_id decides; True/False: this instance's own setting
        self.stop_parameter = supports_stop_parameter
        self.flatten_messages_as_text = flatten_messages_as_text
        self.tool_name_key = tool_name_key
        self.tool_arguments_key = tool_arguments_key
        self.model_id = model_id
        self.custom_role_conversions = dict(custom_role_conversions or {})
        self._role_conversions = role_conversions(self.custom_role_conversions)
        self.kwargs = kwargs

    # -- the contract -------------------------------------------------------------------------

    @property
    def supports_stop_parameter(self) -> bool:
        """Whether ``stop`` is sent to the backend; the output is trimmed client-side either way."""
        if self.stop_parameter is not None:
            return self.stop_parameter
        return self._stop_rule()

    def _stop_rule(self) -> bool:
        return supports_stop_parameter(self.model_id)

    def prepare_request(
        self,
        messages: Sequence[Any],
        stop_sequences: Sequence[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: Sequence[Any] | None = None,
        tool_choice: Any = "required",
        **kwargs: Any,
    ) -> Request:
        """Validate and normalise a call; nothing backend-specific happens here."""
        validate_call(messages, response_format, tools_to_call_from)
        stops = validate_stop_sequences(stop_sequences)
        flatten = kwargs.pop("flatten_messages_as_text", self.flatten_messages_as_text)
        convert_images = kwargs.pop("convert_images_to_image_urls", True)
        clean = get_clean_message_list(
            messages,
            role_conversions=self._role_conversions,
            convert_images_to_image_urls=convert_images,
            flatten_messages_as_text=flatten,
        )
        tools = [tool_json_schema(t) for t in tools_to_call_from] if tools_to_call_from else None
        # as smolagents' _prepare_completion_kwargs: the model's own kwargs win over a call's,
        # and a kwarg set to REMOVE_PARAMETER takes that parameter out of the request
        merged = {**kwargs, **self.kwargs}
        removed = frozenset(k for k, v in merged.items() if is_remove_parameter(v))
        if "tool_choice" in merged:
            tool_choice = merged.pop("tool_choice")
        if "response_format" in merged:
            response_format = merged.pop("response_format")
        return Request(
            messages=clean,
            stop_sequences=stops,
            response_format=None if is_remove_parameter(response_format) else response_format,
            tools=tools,
            tool_choice=tool_choice if tools and not is_remove_parameter(tool_choice) else None,
            kwargs={k: v for k, v in merged.items() if k not in removed},
            removed=removed,
            send_stop=self.supports_stop_parameter and "stop" not in removed,
        )

    def generate(
        self,
        messages: Sequence[Any],
        stop_sequences: Sequence[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        request = self.prepare_request(messages, stop_sequences, response_format, tools_to_call_from, **kwargs)
        message = self._generate(request)
        return self._finish(message, request)

    def __call__(self, *args: Any, **kwargs: Any) -> ChatMessage:
        return self.generate(*args, **kwargs)

    def generate_stream(
        self,
        messages: Sequence[Any],
        stop_sequences: Sequence[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatMessageStreamDelta]:
        """Deltas that agglomerate to what ``generate`` returns; stops enforced across chunks."""
        request = self.prepare_request(messages, stop_sequences, response_format, tools_to_call_from, **kwargs)
        scanner = StopScanner(request.stop_sequences)
        for delta in self._generate_stream(request):
            if delta.content:
                delta.content = scanner.feed(delta.content) or None
            if delta.content or delta.tool_calls or delta.token_usage:
                yield delta
        tail = scanner.flush()
        if tail:
            yield ChatMessageStreamDelta(content=tail)

    def parse_tool_calls(self, message: ChatMessage) -> ChatMessage:
        """Tool calls as objects with dict arguments, read from the text if none came natively."""
        message.role = MessageRole.ASSISTANT
        if not message.tool_calls:
            text = message.content if isinstance(message.content, str) else None
            if not text:
                raise ToolCallParseError("the message has neither tool calls nor text to read one from")
            message.tool_calls = [tool_call_from_text(text, self.tool_name_key, self.tool_arguments_key)]
        for call in message.tool_calls:
            if not isinstance(call.function.name, str) or not call.function.name:
                raise ToolCallParseError(f"a tool call has no function name: {call!r}")
            call.function.arguments = parse_arguments(call.function.arguments, call.function.name)
        ensure_unique_ids(message.tool_calls)
        return message

    # -- for adapters -------------------------------------------------------------------------

    def _generate(self, request: Request) -> ChatMessage:
        raise NotImplementedError(f"{type(self).__name__} must implement _generate")

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def _finish(self, message: ChatMessage, request: Request) -> ChatMessage:
        """Apply the stop contract to what the backend returned, whatever it honoured."""
        if isinstance(message.content, str):
            message.content = trim_at_stop(message.content, request.stop_sequences)
        if message.tool_calls:
            ensure_unique_ids(message.tool_calls)
        return message

    # -- settings -----------------------------------------------------------------------------

    _exported: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """Every non-secret setting, such that ``type(self).from_dict(d)`` rebuilds the model."""
        data: dict[str, Any] = {"model_id": self.model_id}
        for name in ("flatten_messages_as_text", "tool_name_key", "tool_arguments_key", *self._exported):
            if hasattr(self, name):
                data[name] = getattr(self, name)
        if self.stop_parameter is not None:
            data["supports_stop_parameter"] = self.stop_parameter
        if self.custom_role_conversions:
            data["custom_role_conversions"] = dict(self.custom_role_conversions)
        data.update(self.kwargs)
        return _without_secrets(data)

    @classmethod
    def from_dict(cls, model_dictionary: dict[str, Any]) -> Model:
        return cls(**model_dictionary)


class RateLimiter:
    """At most ``requests_per_minute`` calls, spaced evenly."""

    def __init__(self, requests_per_minute: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None) -> None:
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute!r}")
        self.requests_per_minute = requests_per_minute
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        # time.sleep looked up when waiting, as smolagents' limiter does, so a test can watch the waits
        self._clock, self._sleep = clock, sleep or (lambda seconds: time.sleep(seconds))
        self._next = 0.0
        self._lock = threading.Lock()

    def throttle(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
        if wait > 0:
            self._sleep(wait)


def close_stream(stream: Any) -> None:
    """Close an SDK's stream (the OpenAI SDK's Stream, botocore's EventStream, a generator), releasing its HTTP
    response now rather than when the garbage collector finds it; a stream without ``close`` is left as it is."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class ApiModel(Model):
    """A model behind an API: a client, a rate limit and a bounded retry on 429 and 5xx."""

    max_retries: int = 3
    retry_wait: float = 1.0
    # the most one call sleeps between its attempts, all waits together: a Retry-After beyond what
    # is left of it ends the call at once with the typed error instead of holding it
    max_total_wait: float = 30.0
    _exported: ClassVar[tuple[str, ...]] = ("requests_per_minute",)
    # constructor parameters (kept as attributes of the same name) that only configure the client
    # create_client() builds: given together with a ready client they would be ignored, so they are refused
    _client_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model_id: str,
        custom_role_conversions: dict[str, str] | None = None,
        client: Any | None = None,
        requests_per_minute: float | None = None,
        retry: bool = True,
        **kwargs: Any,
    ) -> None:
        if client is not None:
            self._refuse_client_settings()
        super().__init__(model_id=model_id, custom_role_conversions=custom_role_conversions, **kwargs)
        self.requests_per_minute = requests_per_minute
        self.rate_limiter = RateLimiter(requests_per_minute)
        self.retry = retry
        self._sleep: Callable[[float], None] = time.sleep
        self._register_secrets()
        self.client = client if client is not None else self.create_client()

    def _refuse_client_settings(self) -> None:
        """A ValueError naming each client setting given (other than its default) beside a ready client."""
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()}
        given = [name for name in self._client_settings
                 if getattr(self, name, None) not in (None, {}, defaults.get(name))]
        if given:
            raise ValueError(
                f"{type(self).__name__} got client=... and {', '.join(given)}: "
                f"{'these only configure' if len(given) > 1 else 'it only configures'} the client the model builds "
                f"when none is given, and would be ignored; set {'them' if len(given) > 1 else 'it'} on your "
                "client, or leave client out"
            )

    def _register_secrets(self) -> None:
        """Keys passed in code are secrets as much as those in the environment: never recorded or shown."""
        def walk(value: Any, name: str = "") -> None:
            if isinstance(value, str) and is_secret_name(name):
                register_secret(value)
            elif isinstance(value, Mapping):
                for key, item in value.items():
                    walk(item, str(key))
            elif isinstance(value, (list, tuple)):
                for item in value:
                    walk(item, name)

        walk({k: v for k, v in vars(self).items() if k != "client"})  # a Router's model_list included

    def create_client(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement create_client")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if not self.retry:
            data["retry"] = False
        return data

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one API call under the rate limit, retrying what is retryable a bounded number of times.

        Waits honour Retry-After (else back off exponentially) within ``max_total_wait`` per call.
        """
        attempts = self.max_retries + 1 if self.retry else 1
        waited = 0.0
        for attempt in range(1, attempts + 1):
            self.rate_limiter.throttle()
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - translated below, or re-raised unchanged
                replay = replay_error(exc)
                if replay is not None:  # a cassette that cannot answer never gets better: fail now
                    raise replay from exc
                error = self._translate_error(exc)
                if error is None:
                    raise
                if not error.retryable or attempt == attempts:
                    redact_chain(exc)
                    if error is exc:
                        raise
                    raise error from exc
                wait = error.retry_after
                if wait is None:
                    wait = self.retry_wait * (2 ** (attempt - 1)) * (1 + random.random() / 4)
                if waited + wait > self.max_total_wait:
                    error.args = (f"{error}; not retried: waiting {wait:g} s more would pass the "
                                  f"{self.max_total_wait:g} s retry budget of one call",)
                    redact_chain(exc)
                    if error is exc:
                        raise
                    raise error from exc
                waited += wait
                self._sleep(wait)
        raise AssertionError("unreachable")

    def _translated(self, stream: Iterable[T]) -> Iterator[T]:
        """Iterate a streamed response, its SDK's errors translated as :meth:`_call` translates them."""
        try:
            yield from stream
        except Exception as exc:
            replay = replay_error(exc)
            if replay is not None:
                raise replay from exc
            error = self._translate_error(exc)
            if error is None or error is exc:
                raise
            redact_chain(exc)
            raise error from exc

    def _translate_error(self, exc: Exception) -> BackendError | None:
        """The SDK's exception as a BackendError, or None to let it through unchanged."""
        return generic_error(self.backend_name, exc)
