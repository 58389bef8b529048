"""mlx-lm's OpenAI-compatible server (`mlx_lm server`) on the embedded model, on loopback only.

It serves the safetensors copy (Metal on Apple silicon, the CPU through ``mlx[cpu]`` elsewhere)
under the same path-free name as the other servers: the server resolves a request's ``model``
field as a path relative to its working directory, where the copy sits as
``SmolLM2-135M-Instruct/``, so requests carry only that name and no machine path reaches a
cassette.

Native tool calls: mlx-lm picks a tool-call parser from the tokenizer's ``tool_parser_type``
(or guesses one from the chat template, which for this copy's template it cannot). The copy's
template writes ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``, which is mlx-lm's
``json_tools`` format, so the server's copy of the model carries a ``tokenizer_config.json``
naming it: every other file is a link to the shared copy, which is left as it is. ``GET /health``
answers 200 once the model is loaded; ``GET /v1/models`` scans the HF hub cache, given an empty
one of its own as for transformers serve.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.servers.local import HOST, LocalOpenAIServer

TOOL_PARSER = "json_tools"  # mlx_lm.tool_parsers.json_tools: <tool_call>{json}</tool_call>


class MlxLmServer(LocalOpenAIServer):
    """`mlx_lm server` on the embedded model's safetensors copy, bound to 127.0.0.1."""

    name = "mlx-lm-serve"
    default_startup_timeout = 180.0

    @property
    def description(self) -> str:
        from importlib.metadata import version

        return f"mlx_lm.server (mlx-lm {version('mlx-lm')}, mlx {version('mlx')}) on 127.0.0.1"

    def command(self) -> list[str]:
        assert self.model is not None
        return [sys.executable, "-m", "mlx_lm", "server", "--model", self.model.name,
                "--host", HOST, "--port", str(self.port), "--log-level", "WARNING"]

    def place_model(self, workdir: Path) -> None:
        """A directory of links to the copy's files, with a tokenizer config that names the tool-call parser."""
        assert self.model is not None
        source = self.model.model_dir.resolve()
        target = workdir / self.model.name
        target.mkdir()
        for item in source.iterdir():
            if item.name != "tokenizer_config.json":
                (target / item.name).symlink_to(item, target_is_directory=item.is_dir())
        config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
        config["tool_parser_type"] = TOOL_PARSER
        (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
