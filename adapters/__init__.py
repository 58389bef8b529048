"""Backend registrations only: no SDK is imported until a backend is loaded.

The ``model_conformance.backends`` entry-point group names this module; importing it runs the
registrations below, so the harness lists every backend without importing any SDK. Each
``settings`` function gives the constructor arguments the suites use for a target (the local
server or replay placeholders for HTTP backends, the embedded model's copy for local engines).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from harness.model import Model
from harness.registry import Target, backend

# Greedy and short: recordings are reproducible and live runs on two CPU cores stay quick.
API_GENERATION: dict[str, Any] = {"max_tokens": 48, "temperature": 0.0}
HTTP_CAPABILITIES = ("tools", "native_tools", "stream", "stop_parameter")


# -- OpenAI wire ------------------------------------------------------------------------------

def _openai_settings(target: Target) -> dict[str, Any]:
    return {"model_id": target.served_model_id, "api_base": target.base_url, "api_key": target.api_key,
            **API_GENERATION}


@backend(
    "openai",
    extra="openai",
    modules=("openai",),
    smolagents_class="OpenAIServerModel",
    kind="http",
    wire_format="openai",
    settings=_openai_settings,
    capabilities=HTTP_CAPABILITIES,
    description="OpenAI-compatible server (openai SDK); recorded against the local server",
)
def load_openai() -> type[Model]:
    from adapters.openai import OpenAIServerModel

    return OpenAIServerModel
