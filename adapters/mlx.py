"""Local models on the real ``mlx-lm`` (Apple Metal, or Linux CPU with ``mlx[cpu]``)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import mlx_lm
from mlx_lm.sample_utils import make_sampler

from adapters._local import GeneratedText, LocalModel, hf_decode
from harness.contract.model import Request
from harness.contract.types import ChatMessage, ChatMessageStreamDelta, MessageRole, TokenUsage

# OpenAI-style sampling names accepted for convenience; stream_generate itself takes a sampler.
_SAMPLING = {"temperature": "temp", "temp": "temp", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p"}


class MLXModel(LocalModel):
    """A model loaded by ``mlx_lm.load`` and run by ``mlx_lm.stream_generate``; stops end the token loop."""

    backend_name = "mlx"
    can_stream = True
    _exported = ("trust_remote_code", "load_kwargs", "apply_chat_template_kwargs")

    def __init__(
        self,
        model_id: str,
        tool_name_key: str = "name",
        tool_arguments_key: str = "arguments",
        trust_remote_code: bool = False,
        load_kwargs: dict[str, Any] | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        template_kwargs = {"add_generation_prompt": True, **(apply_chat_template_kwargs or {})}
        super().__init__(
            model_id=model_id,
            apply_chat_template_kwargs=template_kwargs,
            tool_name_key=tool_name_key,
            tool_arguments_key=tool_arguments_key,
            **kwargs,
        )
        self.trust_remote_code = trust_remote_code
        self.load_kwargs = dict(load_kwargs or {})
        load = dict(self.load_kwargs)
        load["tokenizer_config"] = {"trust_remote_code": trust_remote_code, **(load.get("tokenizer_config") or {})}
        if "trust_remote_code" in inspect.signature(mlx_lm.load).parameters:  # mlx-lm >= 0.29 also gates model code
            load.setdefault("trust_remote_code", trust_remote_code)
        loaded = mlx_lm.load(model_id, **load)
        self.model: Any = loaded[0]
        self.tokenizer: Any = loaded[1]

    def _generate_kwargs(self, request: Request) -> dict[str, Any]:
        kwargs = dict(request.kwargs)
        sampling = {_SAMPLING[k]: kwargs.pop(k) for k in list(kwargs) if k in _SAMPLING}
        if sampling and "sampler" not in kwargs:
            kwargs["sampler"] = make_sampler(**sampling)
        return kwargs

    def _start(self, request: Request) -> tuple[list[int], GeneratedText]:
        prompt = list(
            self.tokenizer.apply_chat_template(request.messages, tools=request.tools, **self.apply_chat_template_kwargs)
        )
        return prompt, GeneratedText(hf_decode(self.tokenizer), request.stop_sequences)

    def _pieces(self, request: Request, prompt: list[int], generated: GeneratedText) -> Iterator[str]:
        """The text of each engine step (one token, end-of-sequence included), up to the token that completes a stop."""
        steps = mlx_lm.stream_generate(self.model, self.tokenizer, prompt, **self._generate_kwargs(request))
        with contextlib.closing(steps):  # closing it ends mlx-lm's token loop at once
            for response in steps:
                yield generated.add([response.token])
                if generated.stopped:
                    return

    def _generate(self, request: Request) -> ChatMessage:
        prompt, generated = self._start(request)
        for _ in self._pieces(request, prompt, generated):
            pass
        generated.finish()
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=generated.text,
            raw={"token_ids": generated.token_ids},
            token_usage=TokenUsage(input_tokens=len(prompt), output_tokens=generated.token_count),
        )

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        prompt, generated = self._start(request)
        for piece in self._pieces(request, prompt, generated):
            if piece:
                yield ChatMessageStreamDelta(content=piece)
        tail = generated.finish()
        if tail:
            yield ChatMessageStreamDelta(content=tail)
        yield ChatMessageStreamDelta(
            token_usage=TokenUsage(input_tokens=len(prompt), output_tokens=generated.token_count)
        )
