"""Every local server the harness can start, by name: the catalogue the CLI, the plugin and the benchmarks use.

A module of its own so that the servers defined in modules of their own (llama_cpp, mlx_lm) build on
``local`` and this module builds on all of them: no import runs in a circle.
"""

from __future__ import annotations

from harness.servers.llama_cpp import LlamaCppServer
from harness.servers.local import LocalOpenAIServer, VLLMServer
from harness.servers.mlx_lm import MlxLmServer


def server_classes() -> dict[str, type[LocalOpenAIServer]]:
    """Every local server by name, in the order of ``harness.recording.cassettes.LOCAL_SERVERS``."""
    return {cls.name: cls for cls in (LocalOpenAIServer, VLLMServer, LlamaCppServer, MlxLmServer)}


def make_server(name: str, **kwargs: object) -> LocalOpenAIServer:
    """The local server called ``name`` (transformers-serve, vllm-serve, ...), not started."""
    classes = server_classes()
    try:
        cls = classes[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a local server. Valid servers are: {', '.join(classes)}") from None
    return cls(**kwargs)  # type: ignore[arg-type]
