"""What the in-process engines share: incremental decoding, the in-engine stop, the constructor's common part.

A stop sequence can end inside a token (``Tues`` of `` Tuesday``) or span several; a check on the
last token's text alone misses both. :class:`GeneratedText` decodes the generated tokens a few at
a time and looks for a completed stop with the one :func:`~harness.contract.stop_sequences.find_stop`, so an
engine loop can stop on the very token that completes a stop sequence, whatever the token boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from harness.contract.model import Model, Request
from harness.contract.stop_sequences import find_stop

# Decodes token ids to text (special tokens skipped).
Decode = Callable[[Sequence[int]], str]

# Keyword arguments that configure the Model itself, never the engine's generate call.
MODEL_SETTINGS = ("flatten_messages_as_text", "tool_name_key", "tool_arguments_key", "custom_role_conversions")

def hf_decode(tokenizer: Any) -> Decode:
    """A :data:`Decode` for a Hugging Face tokenizer (or a wrapper that forwards ``decode``)."""

    def decode(ids: Sequence[int]) -> str:
        return str(tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False))

    return decode


class IncrementalDecoder:
    """The text of a growing token sequence, decoding only a short window per token (as vLLM does).

    Text is released once it no longer ends in an incomplete UTF-8 character, so the pieces
    joined equal the decoding of all the tokens at once.
    """

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self.tokens: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # tokens whose text has been released

    def add(self, token_ids: Iterable[int]) -> str:
        """Append tokens; return the text they complete ('' while a character is still partial)."""
        self.tokens.extend(token_ids)
        return self._advance(final=False)

    def flush(self) -> str:
        """Release whatever is left, partial characters included."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        if self._read == len(self.tokens):
            return ""
        before = self._decode(self.tokens[self._prefix : self._read])
        after = self._decode(self.tokens[self._prefix :])
        if not final and (len(after) <= len(before) or after.endswith("\ufffd")):
            return ""
        # the released tokens become the next window's left context
        self._prefix, self._read = self._read, len(self.tokens)
        return after[len(before) :]


class GeneratedText:
    """Generated tokens as text, and whether a stop sequence has completed in it.

    Engines call :meth:`add` after every step; once :attr:`stopped` is true the engine stops, so it
    never runs past the token that completed the stop. The text kept is everything decoded (the
    stop included): the contract's trimming happens once, in ``Model._finish``.
    """

    def __init__(self, decode: Decode, stop_sequences: Sequence[str] = ()) -> None:
        self._decoder = IncrementalDecoder(decode)
        self._stop_sequences = list(stop_sequences)
        # a stop completed by a new piece starts at most its length minus one before it
        self._context = max((len(s) for s in self._stop_sequences), default=1) - 1
        self._tail = ""  # the last characters decoded, as many as a stop can reach back
        self._stopped = False
        self.pieces: list[str] = []

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def token_ids(self) -> list[int]:
        return list(self._decoder.tokens)

    @property
    def token_count(self) -> int:
        return len(self._decoder.tokens)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def add(self, token_ids: Iterable[int]) -> str:
        """Take newly generated tokens; return their text (possibly '')."""
        return self._take(self._decoder.add(token_ids))

    def finish(self) -> str:
        """The text still held back at the end of generation."""
        return self._take(self._decoder.flush())

    def _take(self, piece: str) -> str:
        if piece:
            self.pieces.append(piece)
            # only the new piece and the tail before it are scanned: time per token, not per text
            window = self._tail + piece
            self._stopped = self._stopped or find_stop(window, self._stop_sequences) is not None
            self._tail = window[-self._context :] if self._context else ""
        return piece


def unsupported_response_format(engine: str, response_format: Any) -> ValueError:
    """The error for a ``response_format`` an engine cannot enforce, raised before generating."""
    kind = response_format.get("type") if isinstance(response_format, dict) else type(response_format).__name__
    return ValueError(
        f"{engine} cannot honour response_format (type {kind!r}): it has no constrained decoding, "
        "and unconstrained text would not be guaranteed to match the schema. Omit response_format, "
        "or use VLLMModel (guided JSON)."
    )


class LocalModel(Model):
    """An engine running in this process; messages go through the tokenizer's chat template."""

    # whether the engine can constrain decoding to a JSON schema
    supports_response_format: ClassVar[bool] = False
    # text-only engines: parts are joined, since many chat templates expect string content
    default_flatten: ClassVar[bool] = True

    def __init__(
        self,
        model_id: str | None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not model_id:
            raise ValueError(
                f"{type(self).__name__} needs model_id (a Hugging Face repo id or a local model directory), "
                f"got {model_id!r}"
            )
        self.apply_chat_template_kwargs = dict(apply_chat_template_kwargs or {})
        settings = {k: kwargs.pop(k) for k in MODEL_SETTINGS if k in kwargs}
        settings.setdefault("flatten_messages_as_text", self.default_flatten)
        super().__init__(model_id=model_id, **settings, **kwargs)

    def prepare_request(self, *args: Any, **kwargs: Any) -> Request:
        request = super().prepare_request(*args, **kwargs)
        constrained = request.response_format is not None and not (
            isinstance(request.response_format, dict) and request.response_format.get("type") == "text"
        )
        if constrained and not self.supports_response_format:
            raise unsupported_response_format(type(self).__name__, request.response_format)
        return request
