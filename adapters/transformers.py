"""Local models on the real ``transformers`` engine (``AutoModelForCausalLM.generate``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
)

from adapters._local import GeneratedText, LocalModel, hf_decode
from harness.contract.model import Request
from harness.contract.types import ChatMessage, ChatMessageStreamDelta, MessageRole, TokenUsage

DEFAULT_MAX_NEW_TOKENS = 4096


class _StopInEngine(StoppingCriteria):
    """Decodes each new token as ``generate`` appends it and stops on the token that completes a stop."""

    def __init__(self, generated: GeneratedText, prompt_length: int, on_text: Any = None) -> None:
        self.generated = generated
        self.prompt_length = prompt_length
        self.on_text = on_text  # called with each piece of text, for streaming
        self.cancelled = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        seen = self.prompt_length + self.generated.token_count
        piece = self.generated.add(input_ids[0, seen:].tolist())
        if piece and self.on_text is not None:
            self.on_text(piece)
        done = self.generated.stopped or self.cancelled.is_set()
        flags = torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, flags)


class TransformersModel(LocalModel):
    """A Hugging Face model run in-process by ``transformers``; stop sequences stop the engine itself."""

    backend_name = "transformers"
    can_stream = True
    _exported = ("device_map", "torch_dtype", "trust_remote_code", "model_kwargs", "apply_chat_template_kwargs")

    def __init__(
        self,
        model_id: str | None = None,
        device_map: str | None = None,
        torch_dtype: str | None = None,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        max_tokens: int | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # max_tokens is the documented alias and wins when given
        kwargs["max_new_tokens"] = max_tokens if max_tokens is not None else max_new_tokens
        super().__init__(model_id=model_id, apply_chat_template_kwargs=apply_chat_template_kwargs, **kwargs)
        if device_map is None:
            device_map = "cuda" if torch.cuda.is_available() else "cpu"
        self.device_map = device_map
        self.torch_dtype = torch_dtype
        self.trust_remote_code = trust_remote_code
        self.model_kwargs = dict(model_kwargs or {})
        load = {"trust_remote_code": trust_remote_code}
        name = cast(str, model_id)  # LocalModel rejected a missing one
        options: dict[str, Any] = {"device_map": device_map, **load, **self.model_kwargs}
        if torch_dtype is not None:
            options["dtype"] = torch_dtype  # transformers 5 renamed torch_dtype to dtype
        # a vision-language model, as smolagents loads one: image-text-to-text when the causal-LM
        # auto class refuses the config; its processor then takes the messages, image parts included
        self.processor: Any = None
        try:
            self.model: Any = AutoModelForCausalLM.from_pretrained(name, **options)
        except ValueError as exc:
            if "Unrecognized configuration class" not in str(exc):
                raise
            self.model = AutoModelForImageTextToText.from_pretrained(name, **options)
            self.processor = AutoProcessor.from_pretrained(name, **load)
        self.tokenizer: Any = (
            self.processor.tokenizer if self.processor is not None else AutoTokenizer.from_pretrained(name, **load)
        )
        if self.processor is not None and "flatten_messages_as_text" not in kwargs:
            self.flatten_messages_as_text = False  # parts reach the processor, images included

    @property
    def is_vlm(self) -> bool:
        """Whether the model was loaded as a vision-language model (with a processor)."""
        return self.processor is not None

    def prepare_request(self, *args: Any, **kwargs: Any) -> Request:
        # images stay image parts (PIL images, URLs or base64) for the processor, never image_url dicts
        kwargs.setdefault("convert_images_to_image_urls", False)
        return super().prepare_request(*args, **kwargs)

    # -- the engine call ----------------------------------------------------------------------

    def _inputs(self, request: Request) -> dict[str, Any]:
        templater = self.processor if self.processor is not None else self.tokenizer
        encoded = templater.apply_chat_template(
            request.messages,
            tools=request.tools,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **self.apply_chat_template_kwargs,
        )
        if self.processor is None:
            encoded = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        return {k: v.to(self.model.device) for k, v in encoded.items()}

    def _generate_kwargs(self, request: Request) -> dict[str, Any]:
        kwargs = dict(request.kwargs)
        if "max_tokens" in kwargs:  # a call's max_tokens is the alias of max_new_tokens too
            kwargs["max_new_tokens"] = kwargs.pop("max_tokens")
        return kwargs

    def _criteria(self, kwargs: dict[str, Any], stop: _StopInEngine) -> StoppingCriteriaList:
        criteria = StoppingCriteriaList(kwargs.pop("stopping_criteria", None) or [])
        criteria.append(stop)
        return criteria

    def _generate(self, request: Request) -> ChatMessage:
        inputs = self._inputs(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        kwargs = self._generate_kwargs(request)
        generated = GeneratedText(hf_decode(self.tokenizer), request.stop_sequences)
        if request.stop_sequences:
            kwargs["stopping_criteria"] = self._criteria(kwargs, _StopInEngine(generated, prompt_length))
        output = self.model.generate(**inputs, **kwargs)
        new_tokens = output[0, prompt_length:].tolist()
        if not request.stop_sequences:
            generated.add(new_tokens)
        generated.finish()
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=generated.text,
            raw={"token_ids": new_tokens},
            token_usage=TokenUsage(input_tokens=prompt_length, output_tokens=len(new_tokens)),
        )

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        inputs = self._inputs(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        kwargs = self._generate_kwargs(request)
        pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        generated = GeneratedText(hf_decode(self.tokenizer), request.stop_sequences)
        stop = _StopInEngine(generated, prompt_length, on_text=pieces.put)
        kwargs["stopping_criteria"] = self._criteria(kwargs, stop)
        done = object()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.model.generate(**inputs, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consuming thread
                failure.append(exc)
            finally:
                pieces.put(done)

        worker = threading.Thread(target=run, name="transformers-generate", daemon=True)
        worker.start()
        try:
            while (piece := pieces.get()) is not done:
                yield ChatMessageStreamDelta(content=piece)
            worker.join()
            if failure:
                raise failure[0]
            tail = generated.finish()
            if tail:
                yield ChatMessageStreamDelta(content=tail)
            yield ChatMessageStreamDelta(
                token_usage=TokenUsage(input_tokens=prompt_length, output_tokens=generated.token_count)
            )
        finally:
            # a consumer that stops reading also stops the engine
            stop.cancelled.set()
            worker.join()
