"""Azure OpenAI deployments on the real ``openai.AzureOpenAI`` client."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import openai

from adapters._openai_wire import message_from_completion
from adapters.openai import OpenAIServerModel
from harness.contract.errors import BackendError, ContentFilterError, provider_message
from harness.contract.model import Request
from harness.contract.types import ChatMessage

ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
API_KEY_ENV = "AZURE_OPENAI_API_KEY"
# the openai SDK's own name for it, without an AZURE_ prefix
API_VERSION_ENV = "OPENAI_API_VERSION"
AD_TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"
# client_kwargs that authenticate instead of an api key (Entra ID)
_KEYLESS_AUTH = ("azure_ad_token", "azure_ad_token_provider", "workload_identity")


def _from_env(value: str | None, parameter: str, variable: str) -> str:
    value = value or os.environ.get(variable) or None
    if not value:
        raise ValueError(
            f"AzureOpenAIServerModel needs `{parameter}`: pass {parameter}=... or set the {variable} "
            "environment variable"
        )
    return value


def filtered_categories(results: Any) -> list[str]:
    """The categories an Azure content-filter result (a choice's ``content_filter_results``, an error's
    ``innererror.content_filter_result``: one object, category -> verdict) marks as filtered, e.g.
    ``['violence (high)']``; nothing for anything else."""
    if not isinstance(results, Mapping):
        return []
    out = []
    for category, verdict in results.items():
        if isinstance(verdict, Mapping) and verdict.get("filtered"):
            detail = verdict.get("severity") or ("detected" if verdict.get("detected") else None)
            out.append(f"{category} ({detail})" if detail else str(category))
    return out


def _filter_message(where: str, categories: list[str]) -> str:
    named = f": {', '.join(categories)}" if categories else ""
    return f"Azure's content filter {where}{named}"


class AzureOpenAIServerModel(OpenAIServerModel):
    """A deployment on Azure OpenAI; ``model_id`` is the deployment name.

    Whether ``stop`` is sent follows smolagents' rule on the deployment name (``supports_stop_parameter``
    overrides it); the stop contract is kept client-side either way.
    """

    backend_name = "azure"
    _exported: ClassVar[tuple[str, ...]] = ("requests_per_minute", "azure_endpoint", "api_base", "api_version",
                                            "organization", "project", "client_kwargs")
    _client_settings: ClassVar[tuple[str, ...]] = ("azure_endpoint", "api_base", "api_key", "api_version",
                                                   "organization", "project", "client_kwargs")

    def __init__(
        self,
        model_id: str,
        azure_endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        client_kwargs = dict(client_kwargs or {})
        azure_endpoint = self._lift_client_setting(client_kwargs, "azure_endpoint", azure_endpoint)
        api_version = self._lift_client_setting(client_kwargs, "api_version", api_version)
        api_key = self._lift_client_setting(client_kwargs, "api_key", api_key)
        # api_base (OpenAIServerModel's parameter, as smolagents passes it on) is the client's base_url: a
        # deployment's full URL instead of the resource endpoint
        api_base = kwargs.get("api_base")
        if api_base and azure_endpoint:
            raise ValueError(f"AzureOpenAIServerModel got azure_endpoint ({azure_endpoint!r}) and api_base "
                             f"({api_base!r}); pass one (api_base is the deployment's full URL)")
        if kwargs.get("client") is None:  # a ready client has its own endpoint, version and credentials
            if not api_base:
                azure_endpoint = _from_env(azure_endpoint, "azure_endpoint", ENDPOINT_ENV)
            api_version = _from_env(api_version, "api_version", API_VERSION_ENV)
            api_key = api_key or os.environ.get(API_KEY_ENV) or None
            keyless = any(client_kwargs.get(k) for k in _KEYLESS_AUTH) or os.environ.get(AD_TOKEN_ENV)
            if api_key is None and not keyless:
                raise ValueError(
                    f"AzureOpenAIServerModel needs credentials: pass api_key=... or set the {API_KEY_ENV} environment "
                    f"variable (or use Entra ID: client_kwargs={{'azure_ad_token_provider': ...}} or {AD_TOKEN_ENV})"
                )
        self.azure_endpoint = azure_endpoint
        self.api_version = api_version
        super().__init__(
            model_id=model_id,
            api_key=api_key,
            client_kwargs=client_kwargs,
            custom_role_conversions=custom_role_conversions,
            **kwargs,
        )

    def create_client(self) -> Any:
        # our bounded retry honours Retry-After; the SDK's own retries would multiply it
        # organization and project as smolagents passes them (OpenAIServerModel's parameters)
        options: dict[str, Any] = {
            "azure_endpoint": self.azure_endpoint, "base_url": self.api_base, "api_version": self.api_version,
            "api_key": self.api_key, "organization": self.organization, "project": self.project,
            "max_retries": 0, **self.client_kwargs,
        }
        return openai.AzureOpenAI(**options)

    def _translate_error(self, exc: Exception) -> BackendError | None:
        error = super()._translate_error(exc)
        if isinstance(error, ContentFilterError) and isinstance(exc, openai.APIStatusError):
            body: Mapping[str, Any] = exc.body if isinstance(exc.body, Mapping) else {}
            inner = body.get("innererror")
            inner = inner if isinstance(inner, Mapping) else {}
            # a chat call's refusal: one verdict per category under content_filter_result (singular; the plural
            # belongs to an answer's choices)
            categories = filtered_categories(inner.get("content_filter_result"))
            said, _ = provider_message(exc.body)
            return ContentFilterError(
                _filter_message("refused the prompt", categories) + (f" (the service said: {said})" if said else ""),
                backend=self.backend_name, status=error.status, request_id=error.request_id, kind="content_filter",
            )
        return error  # a deployment refusing `stop`: harness.contract.errors.http_error says so for every backend

    def _generate(self, request: Request) -> ChatMessage:
        response = self._call(lambda: self.client.chat.completions.create(**self._body(request)))
        message = message_from_completion(response, self.backend_name)
        choices = getattr(response, "choices", None) or []
        if message.finish_reason == "content_filter" and choices:
            # an HTTP 200 answer the filter cut: returned, with the filtered categories as the reason
            extra = choices[0].model_extra or {}
            categories = filtered_categories(extra.get("content_filter_results"))
            message.finish_reason = "content_filter" + (f": {', '.join(categories)}" if categories else "")
        return message


AzureOpenAIModel = AzureOpenAIServerModel

__all__ = ["AzureOpenAIModel", "AzureOpenAIServerModel", "filtered_categories"]
