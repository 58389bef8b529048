"""Two models of a user's own, each certified by the conformance suites.

    python -m pytest suites --backend=custom --model-factory=examples.custom_models:custom_model
    python -m pytest suites --backend=custom --model-factory=examples.custom_models:EmbeddedChatModel

Both really generate: transformers runs the embedded model (SmolLM2-135M-Instruct, fetched by
``harness fetch-model``) greedily, in this process. ``custom_model`` is the plain callable the
smolagents docs describe, ``custom_model(messages, stop_sequences=None)`` returning an object with
``.content``; ``EmbeddedChatModel`` is a ``Model`` subclass that implements ``_generate`` and
``_generate_stream`` and lets the base class do the rest (messages, stops, tool-call parsing).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness import ChatMessage, ChatMessageStreamDelta, MessageRole, Model, Request, TokenUsage

MAX_NEW_TOKENS = 48
_LOADED: dict[str, Any] = {}
_LOCK = threading.Lock()


def _engine() -> tuple[Any, Any]:
    """The embedded model's tokenizer and weights, loaded once."""
    with _LOCK:
        if not _LOADED:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from harness.servers.embedded import embedded_model

            path = str(embedded_model().model_dir)
            _LOADED["tokenizer"] = AutoTokenizer.from_pretrained(path)
            _LOADED["model"] = AutoModelForCausalLM.from_pretrained(path)
    return _LOADED["tokenizer"], _LOADED["model"]


def _prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: Any = None) -> Any:
    # the chat template expects string content: join a message's text parts
    flat = [{"role": str(m["role"]), "content": m["content"] if isinstance(m["content"], str) else
             "\n".join(p.get("text", "") for p in m["content"] if p.get("type") == "text")} for m in messages]
    return tokenizer.apply_chat_template(flat, tools=tools, add_generation_prompt=True, tokenize=True,
                                         return_dict=True, return_tensors="pt")


def _cut_at_first_stop(text: str, stop_sequences: list[str] | None) -> str:
    """The text before the stop sequence that completes first (ends earliest), as the contract says."""
    best: tuple[int, int] | None = None  # (end, start) of the earliest-completing stop
    for stop in stop_sequences or []:
        start = text.find(stop)
        while start != -1:
            end = start + len(stop)
            if best is None or (end, start) < best:
                best = (end, start)
            start = text.find(stop, start + 1)
    return text if best is None else text[: best[1]]


@dataclass
class Reply:
    """What the plain callable returns: an object with ``.content``."""

    content: str


def custom_model(messages: list[dict[str, Any]], stop_sequences: list[str] | None = None) -> Reply:
    """The documented plain-callable form: messages in, an object with ``.content`` out, stopped before a stop."""
    tokenizer, model = _engine()
    inputs = _prompt(tokenizer, messages)
    output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return Reply(content=_cut_at_first_stop(text, stop_sequences))


class EmbeddedChatModel(Model):
    """A Model subclass of a user's own: the embedded model through transformers, streaming included."""

    capabilities = ("tools", "text_tools", "stream", "token_usage")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_id="SmolLM2-135M-Instruct", **kwargs)
        self.tokenizer, self.model = _engine()

    @staticmethod
    def _refuse_unsupported(request: Request) -> None:
        # greedy decoding here has no constrained mode: silently ignoring the schema would be wrong
        if request.response_format is not None:
            raise ValueError(f"EmbeddedChatModel cannot honour response_format={request.response_format!r}")

    def _generate(self, request: Request) -> ChatMessage:
        self._refuse_unsupported(request)
        inputs = _prompt(self.tokenizer, request.messages, request.tools)
        prompt_length = int(inputs["input_ids"].shape[1])
        output = self.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        new_tokens = output[0, prompt_length:]
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=self.tokenizer.decode(new_tokens, skip_special_tokens=True),  # the base class cuts at a stop
            token_usage=TokenUsage(input_tokens=prompt_length, output_tokens=len(new_tokens)),
        )

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        from transformers import TextIteratorStreamer

        self._refuse_unsupported(request)
        inputs = _prompt(self.tokenizer, request.messages, request.tools)
        prompt_length = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        counted: list[int] = []

        def run() -> None:
            output = self.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, streamer=streamer)
            counted.append(int(output.shape[1]) - prompt_length)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield ChatMessageStreamDelta(content=piece)
        worker.join()
        yield ChatMessageStreamDelta(token_usage=TokenUsage(input_tokens=prompt_length, output_tokens=counted[0]))
