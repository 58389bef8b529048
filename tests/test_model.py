"""The Model pipeline on tiny in-process fakes: stops, streaming, settings, retries, rate limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.contract.errors import BackendError
from harness.contract.model import ApiModel, Model, RateLimiter, Request, agglomerate_stream_deltas
from harness.contract.secrets import is_secret_name
from harness.contract.stop_sequences import trim_at_stop
from harness.contract.types import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)

USER = [{"role": "user", "content": "Hi"}]


class FakeTextModel(Model):
    """Answers every call with ``text``; streams it in ``chunks`` (default: one character each)."""

    backend_name = "fake-text"
    can_stream = True

    def __init__(self, text: str = "", chunks: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.chunks = chunks
        self.requests: list[Request] = []

    def _generate(self, request: Request) -> ChatMessage:
        self.requests.append(request)
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.text, token_usage=TokenUsage(3, 5))

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        self.requests.append(request)
        for chunk in self.chunks if self.chunks is not None else list(self.text):
            yield ChatMessageStreamDelta(content=chunk)
        yield ChatMessageStreamDelta(token_usage=TokenUsage(3, 5))


def _stream(model: Model, stop_sequences: list[str] | None) -> ChatMessage:
    return agglomerate_stream_deltas(list(model.generate_stream(USER, stop_sequences=stop_sequences)))


# -- stop sequences ----------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["generate", "__call__"])
def test_generate_and_call_trim_at_the_stop_that_completes_first(call):
    model = FakeTextModel("Thought: look it up\nObservation: Paris\nFinal")
    message = getattr(model, call)(USER, stop_sequences=["Final", "Observation:"])
    assert message.content == "Thought: look it up\n"
    assert model.requests[0].stop_sequences == ["Final", "Observation:"]
    assert message.token_usage is not None and message.token_usage.total_tokens == 8


def test_generate_without_stops_returns_the_text_unchanged():
    assert FakeTextModel("a b c").generate(USER).content == "a b c"


@pytest.mark.parametrize(
    ("chunks", "stop_sequences"),
    [
        (["Thought: x\nObser", "vation: y"], ["Observation:"]),  # stop split across two chunks
        (["Thought: x\nO", "b", "s", "ervation:", " y"], ["Observation:"]),  # across many
        (["one tw", "o three"], ["three", "two"]),  # order of the list does not matter
        (["ab", "cd"], ["abcd", "bc"]),  # the stop completing first wins
        (["no stop ", "here"], ["zzz"]),
        (["Observation", ""], ["Observation:"]),  # a held-back prefix that never completes
    ],
)
def test_stream_agglomerates_to_what_generate_returns(chunks, stop_sequences):
    model = FakeTextModel("".join(chunks), chunks=chunks)
    streamed = _stream(model, stop_sequences)
    generated = model.generate(USER, stop_sequences=stop_sequences)
    assert streamed.content == generated.content == trim_at_stop("".join(chunks), stop_sequences)
    assert streamed.token_usage is not None and streamed.token_usage.total_tokens == 8


@given(st.text(alphabet="ab c", max_size=20), st.lists(st.integers(0, 20), max_size=6),
       st.lists(st.text(alphabet="ab c", min_size=1, max_size=3), max_size=3))
def test_stream_equals_generate_for_any_chunking(text, cuts, stop_sequences):
    bounds = [0, *sorted(min(c, len(text)) for c in cuts), len(text)]
    model = FakeTextModel(text, chunks=[text[a:b] for a, b in pairwise(bounds)])
    assert _stream(model, stop_sequences).content == model.generate(USER, stop_sequences=stop_sequences).content


def test_stream_keeps_tool_call_deltas_and_merges_them():
    class FakeToolStreamModel(FakeTextModel):
        def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
            for piece_index, piece in enumerate(['{"city": ', '"Paris"}']):
                yield ChatMessageStreamDelta(tool_calls=[ChatMessageToolCallStreamDelta(
                    index=0, id="call_1" if piece_index == 0 else None,
                    function=ChatMessageToolCallFunction(name="get_weather" if piece_index == 0 else None,  # type: ignore[arg-type]
                                                         arguments=piece))])

    message = _stream(FakeToolStreamModel(), None)
    assert message.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"})
    ]


@pytest.mark.parametrize("stops", [[""], ["ok", ""], [None], [3]])
def test_bad_stop_is_a_value_error_before_the_backend_is_called(stops):
    model = FakeTextModel("text")
    with pytest.raises(ValueError, match="stop_sequences"):
        model.generate(USER, stop_sequences=stops)
    with pytest.raises(ValueError, match="stop_sequences"):
        model(USER, stop_sequences=stops)
    with pytest.raises(ValueError, match="stop_sequences"):
        next(model.generate_stream(USER, stop_sequences=stops))
    assert model.requests == []


def test_request_is_normalised_before_the_backend_sees_it():
    model = FakeTextModel("x", custom_role_conversions={"system": "user"}, flatten_messages_as_text=True)
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    model.generate(messages)
    assert model.requests[0].messages == [{"role": "user", "content": "Be terse.\nHi"}]
    assert messages[1]["content"] == [{"type": "text", "text": "Hi"}]


# -- settings ----------------------------------------------------------------------------------


SECRET_KEY = "sk-fakefakefakefakefakefake0123"
SECRET_TOKEN = "hf_fakefakefakefakefakefake0123"


def test_to_dict_from_dict_round_trip_without_secrets():
    model = FakeTextModel(
        model_id="fake-model",
        flatten_messages_as_text=True,
        tool_name_key="tool",
        tool_arguments_key="args",
        custom_role_conversions={"system": "user"},
        api_key=SECRET_KEY,
        token=SECRET_TOKEN,
        temperature=0.2,
        max_tokens=16,
    )
    data = model.to_dict()
    assert data == {
        "model_id": "fake-model",
        "flatten_messages_as_text": True,
        "tool_name_key": "tool",
        "tool_arguments_key": "args",
        "custom_role_conversions": {"system": "user"},
        "temperature": 0.2,
        "max_tokens": 16,
    }
    assert not [k for k in data if is_secret_name(k)]
    assert SECRET_KEY not in json.dumps(data) and SECRET_TOKEN not in json.dumps(data)
    rebuilt = FakeTextModel.from_dict(data)
    assert isinstance(rebuilt, FakeTextModel)
    assert rebuilt.to_dict() == data


class FakeApiModel(ApiModel):
    """An API model whose client is a stand-in: ``_generate`` calls ``client.complete`` under ``_call``."""

    backend_name = "fake-api"

    def create_client(self) -> Any:
        return FakeClient([])

    def _generate(self, request: Request) -> ChatMessage:
        return ChatMessage(role=MessageRole.ASSISTANT, content=self._call(self.client.complete))


class FakeClient:
    """Raises or returns the scripted outcomes in order, counting calls."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def complete(self) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class FakeSleep:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _api_model(outcomes: list[Any], **kwargs: Any) -> tuple[FakeApiModel, FakeClient, FakeSleep]:
    client = FakeClient(outcomes)
    model = FakeApiModel(model_id="fake-api-model", client=client, **kwargs)
    sleep = FakeSleep()
    model._sleep = sleep
    return model, client, sleep


def test_api_model_round_trip_exports_rate_and_retry_but_no_key():
    model = FakeApiModel(model_id="m", requests_per_minute=30, retry=False, api_key=SECRET_KEY)
    data = model.to_dict()
    assert data == {"model_id": "m", "flatten_messages_as_text": False, "tool_name_key": "name",
                    "tool_arguments_key": "arguments", "requests_per_minute": 30, "retry": False}
    rebuilt = FakeApiModel.from_dict(data)
    assert rebuilt.to_dict() == data
    assert rebuilt.rate_limiter.requests_per_minute == 30 and rebuilt.retry is False


def _rate_limited(status: int = 429, retry_after: float | None = 2) -> BackendError:
    return BackendError("slow down", backend="fake-api", status=status, request_id="req-1", retry_after=retry_after)


def test_429_is_retried_after_retry_after():
    model, client, sleep = _api_model([_rate_limited(), _rate_limited(), "done"])
    assert model.generate(USER).content == "done"
    assert client.calls == 3
    assert sleep.waits == [2, 2]


def test_a_retry_after_beyond_the_budget_of_one_call_ends_it_at_once():
    model, client, sleep = _api_model([_rate_limited(retry_after=3600), "done"])
    with pytest.raises(BackendError, match="not retried: waiting 3600 s more would pass the 30 s retry budget"):
        model.generate(USER)
    assert client.calls == 1 and sleep.waits == []


def test_waits_of_one_call_stay_within_its_budget():
    model, client, sleep = _api_model([_rate_limited(retry_after=20), _rate_limited(retry_after=20), "done"])
    with pytest.raises(BackendError, match="retry budget"):
        model.generate(USER)
    assert client.calls == 2 and sleep.waits == [20]


def test_gives_up_after_max_retries_with_the_typed_error():
    model, client, sleep = _api_model([_rate_limited()])
    with pytest.raises(BackendError) as info:
        model.generate(USER)
    assert client.calls == model.max_retries + 1
    assert sleep.waits == [2] * model.max_retries
    assert (info.value.status, info.value.backend, info.value.request_id) == (429, "fake-api", "req-1")
    assert "status=429" in str(info.value) and "request_id=req-1" in str(info.value)


def test_typed_error_is_not_its_own_cause():
    model, _, _ = _api_model([_rate_limited()])
    with pytest.raises(BackendError) as info:
        model.generate(USER)
    assert info.value.__cause__ is not info.value


def test_server_errors_back_off_exponentially_without_retry_after():
    model, client, sleep = _api_model([_rate_limited(status=503, retry_after=None)] * 3 + ["done"])
    assert model.generate(USER).content == "done"
    assert len(sleep.waits) == 3
    for attempt, wait in enumerate(sleep.waits):
        base = model.retry_wait * 2**attempt
        assert base <= wait <= base * 1.25


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(status):
    model, client, sleep = _api_model([_rate_limited(status=status, retry_after=2), "never"])
    with pytest.raises(BackendError) as info:
        model.generate(USER)
    assert info.value.status == status
    assert client.calls == 1 and sleep.waits == []


def test_retry_false_makes_one_attempt():
    model, client, sleep = _api_model([_rate_limited(), "done"], retry=False)
    with pytest.raises(BackendError):
        model.generate(USER)
    assert client.calls == 1 and sleep.waits == []


def test_untranslated_exceptions_pass_through_unchanged_and_unretried():
    model, client, sleep = _api_model([KeyError("boom"), "done"])
    with pytest.raises(KeyError, match="boom"):
        model.generate(USER)
    assert client.calls == 1 and sleep.waits == []


@pytest.mark.parametrize("kind", ["timeout", "connection", "throttled"])
def test_transient_kinds_are_retryable(kind):
    assert BackendError("x", backend="b", kind=kind).retryable
    assert not BackendError("x", backend="b", status=400).retryable


# -- rate limit --------------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when something sleeps on it (or the test advances it)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_calls_evenly():
    clock = FakeClock()
    limiter = RateLimiter(30, clock=clock, sleep=clock.sleep)  # one call every 2 s
    for _ in range(3):
        limiter.throttle()
    assert clock.sleeps == [2.0, 2.0]
    clock.now += 10  # idle long enough: the next call goes at once
    limiter.throttle()
    assert clock.sleeps == [2.0, 2.0]
    limiter.throttle()
    assert clock.sleeps == [2.0, 2.0, 2.0]


@given(st.sampled_from([1, 6, 30, 60, 600]), st.lists(st.integers(0, 30), min_size=1, max_size=10))
def test_rate_limiter_starts_each_call_at_the_earliest_allowed_time(requests_per_minute, gaps):
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute, clock=clock, sleep=clock.sleep)
    interval = 60 / requests_per_minute
    previous = None
    for gap in gaps:
        clock.now += gap
        arrival = clock.now
        limiter.throttle()
        expected = arrival if previous is None else max(arrival, previous + interval)
        assert clock.now == pytest.approx(expected)
        previous = clock.now


def test_rate_limiter_off_and_invalid():
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.throttle()
    assert clock.sleeps == []
    for bad in (0, -1):
        with pytest.raises(ValueError, match="requests_per_minute"):
            RateLimiter(bad)


def test_api_model_throttles_every_attempt():
    model, client, sleep = _api_model([_rate_limited(retry_after=0), "done"], requests_per_minute=60)
    clock = FakeClock()
    model.rate_limiter = RateLimiter(60, clock=clock, sleep=clock.sleep)
    model.generate(USER)
    model.generate(USER)
    assert client.calls == 3
    assert clock.sleeps == [1.0, 1.0]
