"""llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`, llama-cpp-python) on the embedded GGUF.

It serves the embedded model's own GGUF file (Q4_1, as shipped) under the same path-free name as
the other servers (``--model_alias``; the file is linked into the server's working directory, so
no machine path reaches a request or a cassette). Tool calls: the ``chatml-function-calling``
chat format, llama-cpp-python's native function calling for ChatML models (the embedded model's
format): with ``tools`` offered it lets the model choose between a message and a call, and
constrains a call's arguments by grammar to the tool's JSON schema, answering OpenAI
``tool_calls``. Without tools it renders plain ChatML.

PyPI has only llama-cpp-python's sdist: it compiles llama.cpp at install (about 20 minutes on 2
cores), so it lives in an environment of its own, named by ``MODEL_CONFORMANCE_LLAMACPP_PYTHON``
(``make install-llamacpp`` builds ``.venv-llamacpp``; pip's cache keeps the built wheel), or in
this interpreter's. Replaying its cassettes needs none of it. The server has no ``/health``:
``GET /v1/models`` answers 200 once the model is loaded (the port opens only then).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.servers.local import HOST, LocalOpenAIServer, engine_python

CHAT_FORMAT = "chatml-function-calling"
PYTHON_VARIABLE = "MODEL_CONFORMANCE_LLAMACPP_PYTHON"
INSTALL_HINT = (
    "llama-cpp-serve needs llama-cpp-python[server]: `make install-llamacpp` builds it into .venv-llamacpp "
    f"(about 20 minutes, once), then set {PYTHON_VARIABLE}=.venv-llamacpp/bin/python; or "
    "pip install 'llama-cpp-python[server]==0.3.36' here"
)


def llama_cpp_python() -> str:
    """The interpreter whose environment has llama-cpp-python: MODEL_CONFORMANCE_LLAMACPP_PYTHON, else this one."""
    return engine_python(PYTHON_VARIABLE, "llama_cpp", INSTALL_HINT)


class LlamaCppServer(LocalOpenAIServer):
    """`python -m llama_cpp.server` on the embedded GGUF, bound to 127.0.0.1."""

    name = "llama-cpp-serve"
    default_startup_timeout = 180.0
    health_path = "/v1/models"
    # llama-cpp-python's server (0.3.36) answers HTTP 500 to a system or assistant message whose content
    # is a list of text parts (its request model takes only a string there), and chatml-function-calling
    # renders a user message's parts as a Python list literal: text content only, as smolagents lets one set
    model_settings = {"flatten_messages_as_text": True}

    @property
    def description(self) -> str:
        code = "from importlib.metadata import version; print(version('llama-cpp-python'))"
        done = subprocess.run([llama_cpp_python(), "-c", code], capture_output=True, text=True, check=True)
        return f"llama.cpp server (llama-cpp-python {done.stdout.strip()}, chat format {CHAT_FORMAT}) on 127.0.0.1"

    def gguf_name(self) -> str:
        assert self.model is not None
        return f"{self.model.name}.gguf"

    def command(self) -> list[str]:
        assert self.model is not None
        return [
            llama_cpp_python(), "-m", "llama_cpp.server", "--model", self.gguf_name(),
            "--model_alias", self.model.name, "--host", HOST, "--port", str(self.port),
            "--chat_format", CHAT_FORMAT, "--n_ctx", "2048", "--verbose", "False",
        ]

    def place_model(self, workdir: Path) -> None:
        assert self.model is not None
        (workdir / self.gguf_name()).symlink_to(self.model.gguf.resolve())
