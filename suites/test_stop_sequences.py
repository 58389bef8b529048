"""Stop sequences: cut before the stop that completes first, whatever the list order.

Each test first asks without stops for a reference answer (greedy, so the same text the stopped
call produces up to the stop), derives stop sequences from it, then checks the stopped call's
text against the suite's own reference definition (``oracles.cut_at_first_stop``), and the
request: the stops sent as given where the backend takes a ``stop`` parameter, none sent
otherwise, the conversation unchanged.
"""

from __future__ import annotations

import pytest

from conftest import STORY_PROMPT, WEEK_PROMPT, assert_stop_on_wire, distinct_words, raw_text, text_of
from oracles import cut_at_first_stop


def _reference(model, wire, backend, prompt):
    text = text_of(model([{"role": "user", "content": prompt}]))
    assert text.strip(), "reference answer is empty"
    sent = wire.last()
    assert (sent.roles, sent.texts) == (["user"], [prompt])
    assert_stop_on_wire(backend, sent, [])
    return text


def _check(model, wire, backend, prompt, reference, stops, observe, expected=None):
    """The stopped call returns ``expected`` (the reference definition's cut) and sent the stops."""
    if expected is None:
        expected = cut_at_first_stop(reference, stops)
    assert expected != reference, f"none of {stops!r} occurs in the reference {reference!r}"
    message = model([{"role": "user", "content": prompt}], stop_sequences=stops)
    content = text_of(message)
    raw = raw_text(message)
    if raw is not None and raw != expected:
        observe(f"returned {raw!r} for stop_sequences={stops!r}; the contract's text is {expected!r}")
    for stop in stops:
        assert stop not in content, f"stop {stop!r} left in output {content!r}"
    assert content == expected, f"stops {stops!r}: got {content!r}, expected {expected!r}"
    sent = wire.last()
    assert (sent.roles, sent.texts) == (["user"], [prompt]), f"conversation sent: {sent.messages!r}"
    assert_stop_on_wire(backend, sent, stops)
    return message


@pytest.mark.clause("stop.before-stop-sequence", "stop.trimmed-client-side")
def test_earliest_stop_wins_whatever_the_order(model, wire, backend, observe):
    reference = _reference(model, wire, backend, STORY_PROMPT)
    words = distinct_words(reference)
    assert len(words) >= 3, f"reference too short: {reference!r}"
    early, late = words[1], words[2]
    stops = [late, early]  # listed in the opposite order to their appearance
    # written down: the text ends right before the first occurrence of the earlier word
    _check(model, wire, backend, STORY_PROMPT, reference, stops, observe,
           expected=reference[: reference.index(early)])


@pytest.mark.clause("stop.before-stop-sequence", "stop.trimmed-client-side")
def test_stop_ending_inside_a_token(model, wire, backend, observe):
    reference = _reference(model, wire, backend, WEEK_PROMPT)
    word = next((w for w in distinct_words(reference, min_len=6)), None)
    assert word, f"no long word in {reference!r}"
    stop = word[:4]  # e.g. "Tues" of "Tuesday"
    _check(model, wire, backend, WEEK_PROMPT, reference, [stop], observe, expected=reference[: reference.index(stop)])


@pytest.mark.clause("stop.earliest-completing")
def test_overlapping_stops_inside_one_word(model, wire, backend, observe):
    """Two stops overlap in one word; the one that *completes* first wins even though the other starts first.

    ``[word[1:5], word[:6]]``, like ``["uesd", "Tuesda"]``: "uesd" starts one character later but
    completes one character earlier, so the text is cut before it, keeping the word's first letter.
    """
    reference = _reference(model, wire, backend, WEEK_PROMPT)
    word = next((w for w in distinct_words(reference, min_len=7)), None)
    assert word, f"no long word in {reference!r}"
    at = reference.index(word)
    stops = [word[1:5], word[:6]]
    assert reference.find(word[1:5]) == at + 1, f"{word[1:5]!r} occurs before {word!r} in {reference!r}"
    _check(model, wire, backend, WEEK_PROMPT, reference, stops, observe, expected=reference[: at + 1])


@pytest.mark.clause("stop.before-stop-sequence", "stop.trimmed-client-side")
def test_stop_ending_in_a_space(model, wire, backend, observe):
    reference = _reference(model, wire, backend, STORY_PROMPT)
    words = [w for w in distinct_words(reference, min_len=3) if w + " " in reference]
    assert words, f"no word followed by a space in {reference!r}"
    stop = words[min(1, len(words) - 1)] + " "
    _check(model, wire, backend, STORY_PROMPT, reference, [stop], observe, expected=reference[: reference.index(stop)])


@pytest.mark.clause("stop.before-stop-sequence")
def test_absent_stop_leaves_text_whole(model, wire, backend):
    reference = _reference(model, wire, backend, WEEK_PROMPT)
    message = model([{"role": "user", "content": WEEK_PROMPT}], stop_sequences=["\u2603\u2603"])
    assert text_of(message) == reference
    sent = wire.last()
    assert (sent.roles, sent.texts) == (["user"], [WEEK_PROMPT])
    assert_stop_on_wire(backend, sent, ["\u2603\u2603"])


@pytest.mark.no_cassette
@pytest.mark.clause("stop.bad-value-is-clear-error")
def test_empty_stop_is_a_value_error(model, wire):
    """Reply side: a ValueError naming the parameter; wire side: nothing was sent."""
    with pytest.raises(ValueError, match=r"stop_sequences\[1\]"):
        model([{"role": "user", "content": "Say hello."}], stop_sequences=["ok", ""])
    assert wire.calls() == [], "a request was sent for invalid input"


@pytest.mark.no_cassette
@pytest.mark.clause("stop.bad-value-is-clear-error")
def test_non_string_stop_is_a_clear_error(model, wire):
    """Reply side: a ValueError naming the stop and its type; wire side: nothing was sent."""
    with pytest.raises(ValueError, match=r"stop_sequences\[1\].*int"):
        model([{"role": "user", "content": "Say hello."}], stop_sequences=["ok", 3])
    assert wire.calls() == [], "a request was sent for invalid input"


@pytest.mark.no_cassette
@pytest.mark.clause("stop.bad-value-is-clear-error")
def test_stop_sequences_not_a_list_is_a_clear_error(model, wire):
    """Reply side: a TypeError naming the parameter and the type given; wire side: nothing was sent."""
    with pytest.raises(TypeError, match=r"stop_sequences.*\bint\b"):
        model([{"role": "user", "content": "Say hello."}], stop_sequences=42)
    assert wire.calls() == [], "a request was sent for invalid input"
