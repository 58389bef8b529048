"""The local engines' in-engine stop, checked with the embedded model's real tokenizer across token boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters._local import GeneratedText, IncrementalDecoder, LocalModel, hf_decode
from harness.backends.registry import get_backend
from harness.contract.stop_sequences import find_stop, trim_at_stop

WEEK = "Monday to Sunday: Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday."


@pytest.fixture(scope="module")
def model_dir() -> str:
    """The embedded model's local copy; these tests skip where it has not been fetched."""
    from harness.servers.embedded import embedded_model

    try:
        return str(embedded_model(fetch=False).model_dir)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tokenizer(model_dir: str):
    """The embedded model's tokenizer (no weights loaded)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _stop_token(tokenizer, text: str, stops: list[str]) -> int | None:
    """Index of the token on which GeneratedText stops (fed one token at a time)."""
    generated = GeneratedText(hf_decode(tokenizer), stops)
    for i, token in enumerate(_ids(tokenizer, text)):
        generated.add([token])
        if generated.stopped:
            return i
    return None


def _first_complete(tokenizer, text: str, stops: list[str]) -> int | None:
    """Index of the first token whose prefix of the text contains a complete stop (by full decoding)."""
    ids = _ids(tokenizer, text)
    decode = hf_decode(tokenizer)
    for k in range(1, len(ids) + 1):
        if find_stop(decode(ids[:k]), stops) is not None:
            return k - 1
    return None


def test_stop_ending_inside_a_token(tokenizer):
    tokens = [tokenizer.decode([t]) for t in _ids(tokenizer, WEEK)]
    assert " Tuesday" in tokens, f"tokenization changed: {tokens}"
    stopped_at = _stop_token(tokenizer, WEEK, ["Tues"])
    assert stopped_at is not None and tokens[stopped_at] == " Tuesday"


def test_stop_spanning_several_tokens(tokenizer):
    tokens = [tokenizer.decode([t]) for t in _ids(tokenizer, WEEK)]
    stopped_at = _stop_token(tokenizer, WEEK, ["day, Wed"])
    assert stopped_at is not None and tokens[stopped_at] == " Wednesday"


def test_stop_ending_in_a_space_completes_with_the_next_token(tokenizer):
    tokens = [tokenizer.decode([t]) for t in _ids(tokenizer, WEEK)]
    stopped_at = _stop_token(tokenizer, WEEK, ["Tuesday, "])
    # the space is the first character of the next word's token: that token completes the stop
    assert stopped_at is not None and tokens[stopped_at] == " Wednesday"


@pytest.mark.parametrize("stops", [["Wednesday", "Tuesday"], ["esday", "Tues"]], ids=["reversed", "overlapping"])
def test_two_stops_stop_at_the_first_completed(tokenizer, stops):
    tokens = [tokenizer.decode([t]) for t in _ids(tokenizer, WEEK)]
    generated = GeneratedText(hf_decode(tokenizer), stops)
    for token in _ids(tokenizer, WEEK):
        generated.add([token])
        if generated.stopped:
            break
    assert generated.text.endswith(" Tuesday") and tokens[generated.token_count - 1] == " Tuesday"
    assert trim_at_stop(generated.text, stops) == "Monday to Sunday: Monday, "


def test_decoder_pieces_join_to_the_full_decoding(tokenizer):
    text = "Café – naïve 日本語 🙂 done.\n  indented\ttab"
    ids = _ids(tokenizer, text)
    decoder = IncrementalDecoder(hf_decode(tokenizer))
    pieces = [decoder.add([t]) for t in ids] + [decoder.flush()]
    assert "".join(pieces) == hf_decode(tokenizer)(ids) == text
    assert all("\ufffd" not in p for p in pieces), f"a partial character was released: {pieces}"


def test_special_tokens_have_no_text(tokenizer):
    generated = GeneratedText(hf_decode(tokenizer), ["im_end"])
    generated.add(_ids(tokenizer, "Hello") + [tokenizer.eos_token_id])
    generated.finish()
    assert generated.text == "Hello" and not generated.stopped and generated.token_count == 2


_WORDS = st.sampled_from(["Mon", "day", " Tues", "day", ",", " ", "Wed", "nes", "é", "🙂", "\n", "ab", "c"])


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(_WORDS, min_size=1, max_size=12), data=st.data())
def test_stops_on_the_token_that_completes_the_first_stop(tokenizer, parts, data):
    text = "".join(parts)
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    stops = [text[start:end]]
    if data.draw(st.booleans()):
        other_start = data.draw(st.integers(0, len(text) - 1))
        stops.append(text[other_start : data.draw(st.integers(other_start + 1, len(text)))])
    assert _stop_token(tokenizer, text, stops) == _first_complete(tokenizer, text, stops)


def test_missing_model_id_is_a_value_error():
    pytest.importorskip("transformers")
    from adapters.transformers import TransformersModel

    with pytest.raises(ValueError, match="model_id"):
        TransformersModel()
    with pytest.raises(ValueError, match="model_id"):
        TransformersModel(model_id="")


class _NoEngine(LocalModel):
    """A local model whose engine must never be reached."""

    def _generate(self, request):
        raise AssertionError("generation started")


def test_response_format_refused_before_generation():
    model = _NoEngine(model_id="nothing")
    with pytest.raises(ValueError, match="response_format"):
        model([{"role": "user", "content": "hi"}], response_format={"type": "json_object"})


def test_plain_text_response_format_accepted():
    model = _NoEngine(model_id="nothing")
    with pytest.raises(AssertionError, match="generation started"):
        model([{"role": "user", "content": "hi"}], response_format={"type": "text"})


def test_vllm_structured_output_options():
    from adapters.vllm import structured_output_options

    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert structured_output_options({"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}) == {
        "json": schema
    }
    assert structured_output_options({"type": "json_object"}) == {"json_object": True}
    assert structured_output_options({"type": "text"}) is None and structured_output_options(None) is None
    with pytest.raises(ValueError, match="json_schema"):
        structured_output_options({"type": "json_schema", "json_schema": {"name": "w"}})
    with pytest.raises(ValueError, match="'xml'"):
        structured_output_options({"type": "xml"})


def test_local_settings_split_from_engine_kwargs():
    model = _NoEngine(model_id="m", tool_name_key="tool", custom_role_conversions={"system": "user"}, max_tokens=8)
    assert model.tool_name_key == "tool" and model.flatten_messages_as_text is True
    assert model.kwargs == {"max_tokens": 8}
    assert model.to_dict()["custom_role_conversions"] == {"system": "user"}


def test_vllm_reports_why_it_cannot_run(monkeypatch):
    import importlib.util
    import sys

    spec = get_backend("vllm")
    if sys.platform != "darwin":
        assert (spec.unavailable_reason() is None) == (importlib.util.find_spec("vllm") is not None)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    monkeypatch.setattr(sys, "platform", "linux")
    assert "pip install 'model-conformance[vllm]'" in spec.unavailable_reason()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert spec.unavailable_reason().startswith("vllm has no macOS wheel")


def _generate_past_stop(model, stops: list[str]) -> tuple[str, int]:
    message = model([{"role": "user", "content": "Name the days of the week, from Monday to Sunday."}],
                    stop_sequences=stops)
    return message.content, message.token_usage.output_tokens


@pytest.mark.parametrize("engine", ["transformers", "mlx"])
def test_engine_stops_on_the_completing_token(model_dir, engine):
    spec = get_backend(engine)
    if spec.missing_modules():
        pytest.skip(f"{engine} not installed")
    from harness.backends.registry import Target

    settings = spec.settings(Target(mode="live", model_dir=model_dir))
    for budget in ("max_new_tokens", "max_tokens"):  # a dozen tokens reach "Tuesday"
        if budget in settings:
            settings[budget] = 12
    model = spec.load()(**settings)
    reference = model([{"role": "user", "content": "Name the days of the week, from Monday to Sunday."}])
    ids = reference.raw["token_ids"]
    text = reference.content
    word = next(w for w in ("Tuesday", "Wednesday", "Thursday") if w in text)
    stops = [word[3:], word[:4]]  # overlapping, listed in the opposite order to their completion
    decode = hf_decode(model.tokenizer)
    needed = next(k for k in range(1, len(ids) + 1) if find_stop(decode(ids[:k]), stops))
    content, generated = _generate_past_stop(model, stops)
    assert content == trim_at_stop(text, stops)
    assert generated == needed, f"generated {generated} tokens, the stop completed at token {needed}"


def test_mlx_builds_the_embedded_model_with_transformers_rope_base(model_dir):
    """mlx-lm reads the RoPE base under its pre-transformers-5 key; the copy must state it there too."""
    pytest.importorskip("mlx_lm")
    from pathlib import Path

    from mlx_lm.utils import load_model
    from transformers import AutoConfig

    expected = AutoConfig.from_pretrained(model_dir).rope_parameters["rope_theta"]
    model, _ = load_model(Path(model_dir), lazy=True)  # weights stay unread
    assert {layer.self_attn.rope.base for layer in model.model.layers} == {expected}


@pytest.mark.parametrize(("config", "missing"), [
    ({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}, {"rope_theta": 100000.0}),
    ({"rope_parameters": {"rope_theta": 100000.0}, "rope_theta": 100000.0}, {}),
    ({"rope_theta": 500000.0}, {}),
    ({}, {}),
])
def test_legacy_rope_keys_name_what_the_config_lacks(config, missing):
    from harness.servers.embedded import _legacy_rope_keys

    assert _legacy_rope_keys(config) == missing
