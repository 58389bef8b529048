"""Local models on the real ``vllm`` engine (offline ``LLM.generate``); vllm is imported when a model is built."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from adapters._local import LocalModel
from harness.contract.model import Request
from harness.contract.types import ChatMessage, ChatMessageStreamDelta, MessageRole, TokenUsage

_STREAM_IDS = itertools.count()

# vllm's own default temperature is 1.0; the documented behaviour (and smolagents') is greedy.
DEFAULT_SAMPLING: dict[str, Any] = {"temperature": 0.0, "max_tokens": 2048}


def structured_output_options(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """vllm's structured-output options for an OpenAI-style ``response_format`` (None: unconstrained text)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"json_object": True}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return {"json": schema}
        raise ValueError(
            f"response_format of type 'json_schema' needs json_schema.schema as a dict, got {response_format!r}"
        )
    raise ValueError(
        f"response_format must be a dict whose type is 'json_schema', 'json_object' or 'text', got {response_format!r}"
    )


def _structured_outputs(options: dict[str, Any]) -> tuple[str, Any]:
    """The SamplingParams field and value that make vllm decode what ``options`` describe."""
    try:  # vllm >= 0.11
        from vllm.sampling_params import StructuredOutputsParams

        return "structured_outputs", StructuredOutputsParams(**options)
    except ImportError:  # older releases call it guided decoding
        from vllm.sampling_params import GuidedDecodingParams

        return "guided_decoding", GuidedDecodingParams(**options)


class VLLMModel(LocalModel):
    """A model served in-process by vllm: stop sequences are the engine's own, JSON output is guided."""

    backend_name = "vllm"
    supports_response_format = True
    can_stream = True
    _exported = ("model_kwargs", "apply_chat_template_kwargs")

    def __init__(
        self,
        model_id: str,
        model_kwargs: dict[str, Any] | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id=model_id, apply_chat_template_kwargs=apply_chat_template_kwargs, **kwargs)
        from vllm import LLM

        self.model_kwargs = dict(model_kwargs or {})
        self.model = LLM(model=model_id, **self.model_kwargs)
        self.tokenizer = self.model.get_tokenizer()

    def sampling_params(self, request: Request) -> Any:
        """The vllm SamplingParams of one call: defaults, then the model's and the call's kwargs, then stops."""
        from vllm import SamplingParams

        params: dict[str, Any] = {**DEFAULT_SAMPLING, **request.kwargs}
        if request.stop_sequences:
            params["stop"] = list(request.stop_sequences)
            # vllm cuts at the first stop *in list order* found in the new text; keeping the stop in the output
            # lets _finish cut at the one that completed first (e.g. "Tues" before "esday" inside " Tuesday")
            params["include_stop_str_in_output"] = True
        options = structured_output_options(request.response_format)
        if options is not None:
            field, value = _structured_outputs(options)
            params[field] = value
        return SamplingParams(**params)

    def prepare_request(self, *args: Any, **kwargs: Any) -> Request:
        request = super().prepare_request(*args, **kwargs)
        structured_output_options(request.response_format)  # a bad response_format fails before any work
        return request

    def _prompt_ids(self, request: Request) -> list[int]:
        prompt = self.tokenizer.apply_chat_template(
            request.messages,
            tools=request.tools,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
            **self.apply_chat_template_kwargs,
        )
        return list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)

    def _generate(self, request: Request) -> ChatMessage:
        prompt_ids = self._prompt_ids(request)
        # token ids, not text: the template already placed every special token, vllm must not add a BOS
        outputs = self.model.generate({"prompt_token_ids": prompt_ids}, self.sampling_params(request), use_tqdm=False)
        output = outputs[0]
        completion = output.outputs[0]
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=completion.text,
            raw={"finish_reason": completion.finish_reason, "stop_reason": completion.stop_reason},
            token_usage=TokenUsage(input_tokens=len(prompt_ids), output_tokens=len(completion.token_ids)),
        )

    def _generate_stream(self, request: Request) -> Iterator[ChatMessageStreamDelta]:
        """Each engine step's new text, from the engine the offline ``LLM`` wraps; usage last."""
        from vllm.sampling_params import RequestOutputKind

        prompt_ids = self._prompt_ids(request)
        params = self.sampling_params(request)
        params.output_kind = RequestOutputKind.DELTA
        engine = self.model.llm_engine
        request_id = f"model-conformance-stream-{next(_STREAM_IDS)}"
        engine.add_request(request_id, {"prompt_token_ids": prompt_ids}, params)
        generated, finished = 0, False
        try:
            while not finished and engine.has_unfinished_requests():
                for output in engine.step():
                    if output.request_id != request_id:
                        continue
                    completion = output.outputs[0]
                    generated += len(completion.token_ids)
                    finished = output.finished
                    if completion.text:
                        yield ChatMessageStreamDelta(content=completion.text)
            yield ChatMessageStreamDelta(token_usage=TokenUsage(input_tokens=len(prompt_ids), output_tokens=generated))
        finally:
            if not finished:  # a consumer that stops reading also stops the engine
                engine.abort_request([request_id])
