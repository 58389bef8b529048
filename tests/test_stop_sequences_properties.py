"""Laws of the one stop trimmer: ``trim_at_stop``, ``StopScanner`` and ``validate_stop_sequences``."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters._local import GeneratedText
from harness.contract.stop_sequences import StopScanner, find_stop, trim_at_stop, validate_stop_sequences

# A small alphabet, so that stop sequences actually occur in the text.
ALPHABET = "ab c"
texts = st.text(alphabet=ALPHABET, max_size=30)
stops = st.text(alphabet=ALPHABET, min_size=1, max_size=4)
stop_lists = st.lists(stops, min_size=1, max_size=4)


def reference_trim(text: str, stop_sequences: list[str]) -> str:
    """The definition, literally: the first end position where a stop is complete; at a tie the longest."""
    for end in range(1, len(text) + 1):
        complete = [s for s in stop_sequences if text[:end].endswith(s)]
        if complete:
            return text[: end - max(len(s) for s in complete)]
    return text


@st.composite
def text_and_stops(draw: st.DrawFn, min_stops: int = 1) -> tuple[str, list[str]]:
    """A text and stops that occur in it, overlap, and sit inside or at the end of one another."""
    text = draw(texts)
    stop_sequences: list[str] = []
    for _ in range(draw(st.integers(min_stops, 4))):
        sources = ["free"] + (["text"] if text else []) + (["stop"] if any(len(s) > 1 for s in stop_sequences) else [])
        source = draw(st.sampled_from(sources))
        if source == "free":
            stop_sequences.append(draw(stops))
            continue
        base = text if source == "text" else draw(st.sampled_from([s for s in stop_sequences if len(s) > 1]))
        start = draw(st.integers(0, len(base) - 1))
        end = draw(st.integers(start + 1, min(len(base), start + 5)))
        stop_sequences.append(base[start:end])
    return text, stop_sequences


def _chunks(text: str, cuts: list[int]) -> list[str]:
    """``text`` split at ``cuts`` (empty chunks included, as streams deliver them)."""
    bounds = [0, *sorted(min(c, len(text)) for c in cuts), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


cuts = st.lists(st.integers(0, 30), max_size=8)


@given(text_and_stops())
def test_trim_matches_the_reference_definition(case):
    text, stop_sequences = case
    assert trim_at_stop(text, stop_sequences) == reference_trim(text, stop_sequences)


@given(texts, stop_lists)
def test_trim_matches_the_reference_for_unrelated_stops(text, stop_sequences):
    assert trim_at_stop(text, stop_sequences) == reference_trim(text, stop_sequences)


@given(text_and_stops())
def test_no_complete_stop_is_left_in_the_output(case):
    text, stop_sequences = case
    out = trim_at_stop(text, stop_sequences)
    for stop in stop_sequences:
        assert stop not in out


@given(text_and_stops(min_stops=0))
def test_output_is_a_prefix_of_the_input(case):
    text, stop_sequences = case
    assert text.startswith(trim_at_stop(text, stop_sequences))


@given(text_and_stops(), st.data())
def test_result_does_not_depend_on_the_order_of_the_stops(case, data):
    text, stop_sequences = case
    shuffled = data.draw(st.permutations(stop_sequences))
    assert trim_at_stop(text, shuffled) == trim_at_stop(text, stop_sequences)


def _none_inside_another(case: tuple[str, list[str]]) -> bool:
    stop_sequences = case[1]
    return not any(s != o and s in o for s in stop_sequences for o in stop_sequences)


@given(text_and_stops().filter(_none_inside_another))
def test_stops_not_inside_one_another_cut_at_the_earliest_occurrence(case):
    text, stop_sequences = case
    found = [text.find(s) for s in stop_sequences if s in text]
    assert trim_at_stop(text, stop_sequences) == (text[: min(found)] if found else text)


@given(text_and_stops(min_stops=0), cuts)
def test_streaming_equals_non_streaming(case, cut_points):
    text, stop_sequences = case
    scanner = StopScanner(stop_sequences)
    emitted = "".join(scanner.feed(chunk) for chunk in _chunks(text, cut_points)) + scanner.flush()
    assert emitted == trim_at_stop(text, stop_sequences)


@given(text_and_stops(), cuts)
def test_streaming_never_emits_a_stop_and_stops_for_good(case, cut_points):
    text, stop_sequences = case
    scanner = StopScanner(stop_sequences)
    emitted = ""
    for chunk in _chunks(text, cut_points):
        emitted += scanner.feed(chunk)
        for stop in stop_sequences:
            assert stop not in emitted
    if trim_at_stop(text, stop_sequences) != text:  # stopped: nothing more comes out
        assert scanner.feed("a b c") == ""
        assert scanner.flush() == ""


@given(st.lists(stops, max_size=4), st.integers(0, 4), st.sampled_from(["", 0, None, b"a", 1.5]))
def test_validate_rejects_empty_and_non_string_stops_by_name(good, position, bad):
    sequence = [*good[:position], bad, *good[position:]]
    with pytest.raises(ValueError, match=r"stop_sequences\[") as info:
        validate_stop_sequences(sequence)
    assert f"stop_sequences[{min(position, len(good))}]" in str(info.value)
    if bad != "":
        assert type(bad).__name__ in str(info.value)


@given(st.lists(stops, max_size=6))
def test_validate_keeps_the_first_of_each_stop_in_order(stop_sequences):
    assert validate_stop_sequences(stop_sequences) == list(dict.fromkeys(stop_sequences))


def test_validate_accepts_none_and_a_single_string():
    assert validate_stop_sequences(None) == []
    assert validate_stop_sequences("Observation:") == ["Observation:"]
    with pytest.raises(ValueError, match="stop_sequences"):
        validate_stop_sequences("")


@pytest.mark.parametrize(
    ("text", "stop_sequences", "expected"),
    [
        ("Thought: x\nObservation: y", ["Observation:"], "Thought: x\n"),
        ("one two three", ["three", "two"], "one "),  # earliest, whatever the order
        ("abcd", ["abcd", "bc"], "a"),  # "bc" completes first although "abcd" starts first
        ("xab", ["b", "ab"], "x"),  # tie at the same end: cut before the longest
        ("no stop here", ["zzz"], "no stop here"),
        ("", ["a"], ""),
    ],
)
def test_trim_examples(text, stop_sequences, expected):
    assert trim_at_stop(text, stop_sequences) == expected


@given(text_and_stops(min_stops=0), cuts)
def test_streaming_holds_back_less_than_the_longest_stop(case, cut_points):
    # what makes the scan linear: each chunk is scanned with at most this much of what came before
    text, stop_sequences = case
    scanner = StopScanner(stop_sequences)
    longest = max((len(s) for s in stop_sequences), default=1)
    for chunk in _chunks(text, cut_points):
        scanner.feed(chunk)
        assert len(scanner.held) < longest


@given(text_and_stops(min_stops=0), cuts)
def test_engine_text_stops_on_the_piece_that_completes_a_stop(case, cut_points):
    # GeneratedText (the in-engine stop) scans each new piece with a short tail of the text before it
    text, stop_sequences = case
    pieces = [p for p in _chunks(text, cut_points) if p]
    generated = GeneratedText(lambda ids: "".join(pieces[i] for i in ids), stop_sequences)
    so_far = ""
    for i, piece in enumerate(pieces):
        generated.add([i])
        so_far += piece
        assert generated.stopped == (find_stop(so_far, stop_sequences) is not None)
