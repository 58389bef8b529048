"""TransformersModel loads a vision-language model as smolagents does and sends image parts to its processor.

The model is a tiny, randomly initialised LLaVA built here (a 1-layer CLIP vision tower and a
1-layer Llama), saved with its processor to a temporary directory: offline, nothing from a hub.
Its output is noise; what is checked is the loading path and what reaches the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
PIL_Image = pytest.importorskip("PIL.Image")

from transformers import (  # noqa: E402
    AutoTokenizer,
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from harness.servers.embedded import embedded_model  # noqa: E402

IMAGE_SIDE, PATCH = 32, 16
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}"
    "{% if p.type == 'image' %}<image>{% else %}{{ p.text }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaVA and its processor, saved locally."""
    directory = tmp_path_factory.mktemp("tiny-llava")
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model().model_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=IMAGE_SIDE, patch_size=PATCH,
                                       projection_dim=16),
        text_config=LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                num_key_value_heads=1, vocab_size=len(tokenizer)),
        image_token_index=image_token,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": IMAGE_SIDE},
                                           crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}),
        tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1,
    )
    processor.save_pretrained(directory)
    return directory


def test_a_vision_language_model_loads_and_gets_the_image(tiny_vlm_dir: Path):
    from adapters.transformers import TransformersModel

    model = TransformersModel(model_id=str(tiny_vlm_dir), max_new_tokens=3, do_sample=False)
    assert model.is_vlm and type(model.model).__name__ == "LlavaForConditionalGeneration"
    assert model.flatten_messages_as_text is False
    seen: dict[str, Any] = {}
    generate = model.model.generate

    def spy(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return generate(**kwargs)

    model.model.generate = spy
    image = PIL_Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), color=(200, 30, 30))
    message = model([{"role": "user", "content": [{"type": "image", "image": image},
                                                  {"type": "text", "text": "What colour is this?"}]}])
    pixels = seen.get("pixel_values")
    assert pixels is not None, f"no pixel_values reached generate: {sorted(seen)}"
    assert tuple(pixels.shape) == (1, 3, IMAGE_SIDE, IMAGE_SIDE)
    image_token = model.tokenizer.convert_tokens_to_ids("<image>")
    assert int((seen["input_ids"] == image_token).sum()) == (IMAGE_SIDE // PATCH) ** 2
    assert isinstance(message.content, str)
    assert message.token_usage is not None and message.token_usage.output_tokens > 0


def test_a_causal_lm_still_loads_as_one():
    from adapters.transformers import TransformersModel

    model = TransformersModel(model_id=str(embedded_model().model_dir), max_new_tokens=2, do_sample=False)
    assert not model.is_vlm and model.flatten_messages_as_text is True
