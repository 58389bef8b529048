"""Stop sequences: cut before the stop that completes first, whatever the list order.

Each test first asks without stops for a reference answer (greedy, so the same text the stopped
call produces up to the stop), derives stop sequences from it, then checks the stopped call
against the one definition in harness.stop_sequences.
"""

from __future__ import annotations

import pytest

from conftest import STORY_PROMPT, WEEK_PROMPT, distinct_words, raw_text, text_of
from harness.stop_sequences import trim_at_stop


def _reference(model, prompt):
    text = text_of(model([{"role": "user", "content": prompt}]))
    assert text.strip(), "reference answer is empty"
    return text


def _check(model, wire, prompt, reference, stops, observe):
    expected = trim_at_stop(reference, stops)
    assert expected != reference, f"none of {stops!r} occurs in the reference {reference!r}"
    message = model([{"role": "user", "content": prompt}], stop_sequences=stops)
    content = text_of(message)
    raw = raw_text(message)
    if raw is not None and raw != expected:
        observe(f"returned {raw!r} for stop_sequences={stops!r}; the contract's text is {expected!r}")
    for stop in stops:
        assert stop not in content, f"stop {stop!r} left in output {content!r}"
    assert content == expected, f"stops {stops!r}: got {content!r}, expected {expected!r}"
    return message


def _assert_stop_sent(backend, wire, stops):
    if "stop_parameter" in backend.capabilities:
        sent = wire.last().stop
        assert sent is not None and sorted(sent) == sorted(stops), f"stop sent as {sent!r}"


def test_earliest_stop_wins_whatever_the_order(model, wire, backend, observe):
    reference = _reference(model, STORY_PROMPT)
    words = distinct_words(reference)
    assert len(words) >= 3, f"reference too short: {reference!r}"
    early, late = words[1], words[2]
    stops = [late, early]  # listed in the opposite order to their appearance
    _check(model, wire, STORY_PROMPT, reference, stops, observe)
    _assert_stop_sent(backend, wire, stops)


def test_stop_ending_inside_a_token(model, wire, observe):
    reference = _reference(model, WEEK_PROMPT)
    word = next((w for w in distinct_words(reference, min_len=6)), None)
    assert word, f"no long word in {reference!r}"
    _check(model, wire, WEEK_PROMPT, reference, [word[:4]], observe)  # e.g. "Tues" of "Tuesday"


def test_overlapping_stops_inside_one_word(model, wire, observe):
    reference = _reference(model, WEEK_PROMPT)
    word = next((w for w in distinct_words(reference, min_len=7)), None)
    assert word, f"no long word in {reference!r}"
    stops = [word[3:], word[:4]]  # like ["esday", "Tues"]: the second completes first
    _check(model, wire, WEEK_PROMPT, reference, stops, observe)


def test_stop_ending_in_a_space(model, wire, observe):
    reference = _reference(model, STORY_PROMPT)
    words = [w for w in distinct_words(reference, min_len=3) if w + " " in reference]
    assert words, f"no word followed by a space in {reference!r}"
    _check(model, wire, STORY_PROMPT, reference, [words[min(1, len(words) - 1)] + " "], observe)


def test_absent_stop_leaves_text_whole(model):
    reference = _reference(model, WEEK_PROMPT)
    message = model([{"role": "user", "content": WEEK_PROMPT}], stop_sequences=["\u2603\u2603"])
    assert text_of(message) == reference


@pytest.mark.no_cassette
def test_empty_stop_is_a_value_error(model, wire):
    with pytest.raises(ValueError, match="stop_sequences"):
        model([{"role": "user", "content": "Say hello."}], stop_sequences=["ok", ""])
    assert wire.calls() == [], "a request was sent for invalid input"
