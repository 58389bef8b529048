"""One definition of where output stops, shared by streaming, non-streaming and in-engine paths.

Scan the text from the start; at the first position where any stop sequence is complete, cut
before it. When several complete at that same position, cut before the longest. For stops that
do not contain one another this is the earliest occurrence, whatever their order in the list,
and it is what a streaming engine does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def validate_stop_sequences(stop_sequences: Iterable[str] | str | None) -> list[str]:
    """Return the stop sequences as a list; reject an empty or non-string one by name."""
    if stop_sequences is None:
        return []
    if isinstance(stop_sequences, str):
        stop_sequences = [stop_sequences]
    if not isinstance(stop_sequences, (list, tuple)):
        raise TypeError(f"stop_sequences must be a list of strings, got {stop_sequences!r} of type "
                        f"{type(stop_sequences).__name__}")
    out: list[str] = []
    for i, stop in enumerate(stop_sequences):
        if not isinstance(stop, str):
            raise ValueError(
                f"stop_sequences[{i}] must be a str, got {stop!r} of type {type(stop).__name__}"
            )
        if stop == "":
            raise ValueError(
                f"stop_sequences[{i}] is an empty string; every stop sequence needs at least one character"
            )
        if stop not in out:
            out.append(stop)
    return out


def find_stop(text: str, stop_sequences: Sequence[str]) -> tuple[int, int] | None:
    """(cut, end) of the first stop sequence completed in ``text``, or None."""
    # earliest completion wins; at a tie the longest stop, which starts first
    hits = [(at + len(stop), at) for stop in stop_sequences if (at := text.find(stop)) >= 0]
    if not hits:
        return None
    end, cut = min(hits)
    return cut, end


def trim_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
    """``text`` cut before the stop sequence that completes first (unchanged if none does)."""
    hit = find_stop(text, stop_sequences)
    return text if hit is None else text[: hit[0]]


def _held_back(text: str, stop_sequences: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that could still grow into a stop sequence."""
    longest = 0
    for stop in stop_sequences:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class StopScanner:
    """Incremental :func:`trim_at_stop`: feed chunks, get the text that is safe to emit.

    Text that might be the start of a stop sequence is held back until the next chunk shows
    whether it is; :meth:`flush` releases it at the end of the stream. Once a stop sequence has
    completed nothing more is released: a later chunk never completes one that ends earlier.

    Each chunk costs time in proportion to its own length: only the held-back text (shorter
    than the longest stop) and the new chunk are scanned. A stop cannot start in text already
    returned, since any suffix that could still grow into a stop was held back.
    """

    def __init__(self, stop_sequences: Sequence[str]) -> None:
        self.stop_sequences = list(stop_sequences)
        self.held = ""  # fed but not returned: a suffix that could still grow into a stop
        self.stopped = False  # a stop sequence has completed

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return the newly safe text ('' once stopped)."""
        if self.stopped:
            return ""
        pending = self.held + chunk
        hit = find_stop(pending, self.stop_sequences)
        if hit is not None:
            self.stopped, self.held = True, ""
            return pending[: hit[0]]
        cut = len(pending) - _held_back(pending, self.stop_sequences)
        self.held = pending[cut:]
        return pending[:cut]

    def flush(self) -> str:
        """Release whatever was held back (the stream ended without completing a stop)."""
        out, self.held = self.held, ""
        return out
