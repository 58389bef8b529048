"""Fail fast, once: ``--mode live`` and ``--mode record`` check every backend's settings and make one cheap
request to each endpoint at session start, before any check runs: ``GET <base>/models`` for the
OpenAI wire (Azure: ``GET <endpoint>/openai/models``), a one-token Converse call for Bedrock.

A missing variable, an authentication failure or an unreachable URL stops the session within seconds with
one message naming the backends, the URL and what is missing; no check repeats it, and a refused connection
is not retried. The local server the harness starts itself is not probed here (its start reports its log).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.contract.errors import HarnessError, MissingSettingsError
from harness.plugin.answers import public_url

TIMEOUT_S = 5.0  # the cheap request's whole budget: connect and answer


@dataclass
class Probe:
    """One cheap request to one endpoint, shared by every backend that uses it."""

    url: str
    headers: dict[str, str]
    backends: list[str] = field(default_factory=list)
    # a request other than GET url with headers (Bedrock's signed Converse call): what is wrong, or None
    check: Callable[[], str | None] | None = None

    def run(self) -> str | None:
        return self.check() if self.check is not None else check_endpoint(self.url, self.headers)


def check_endpoint(url: str, headers: dict[str, str], timeout: float = TIMEOUT_S) -> str | None:
    """What is wrong with the endpoint at GET ``url`` (None: reachable, key not refused), in a few words."""
    request = urllib.request.Request(url, headers=headers, method="GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}) if _loopback(url) else
                                         urllib.request.ProxyHandler())
    try:
        with opener.open(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        detail = _provider_message(exc)
        if exc.code in (401, 403):
            return f"authentication failed: GET {public_url(url)} answered HTTP {exc.code}{detail}"
        if exc.code == 404:
            return (f"GET {public_url(url)} answered HTTP 404{detail}: is the base URL right "
                    "(an OpenAI-compatible one ends in /v1)?")
        return None  # it answered (transformers serve answers 500 here): reachable, and the key was not refused
    except urllib.error.URLError as exc:
        return f"cannot reach {public_url(url)}: {_reason(exc.reason)}"
    except TimeoutError:
        return f"cannot reach {public_url(url)}: no answer within {timeout:g} s"
    except OSError as exc:
        return f"cannot reach {public_url(url)}: {_reason(exc)}"


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def _reason(reason: Any) -> str:
    cause, seen = reason, 0
    while isinstance(cause, BaseException) and seen < 8:  # urllib3 wraps the socket's error (botocore)
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror)):
            reason = cause
            break
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, TimeoutError):
        return f"no answer within {TIMEOUT_S:g} s"
    return str(getattr(reason, "strerror", None) or reason)


def _provider_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(2000) or b"{}")
    except (ValueError, OSError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    return f" ({str(message)[:200]})" if message else ""


def plan(config: pytest.Config) -> tuple[list[str], list[Probe]]:
    """The settings problems (one line each) and the requests to make, for this session's backends."""
    from harness.backends.registry import Target, get_backend
    from harness.plugin.options import BACKENDS, ENDPOINT, _endpoint_target, server_of
    from harness.recording.cassettes import CLOUD_SERVER

    mode = str(config.getoption("--mode"))
    problems: list[str] = []
    probes: dict[tuple[str, tuple[tuple[str, str], ...]], Probe] = {}
    endpoint = config.stash.get(ENDPOINT, None)
    for name in config.stash.get(BACKENDS, []):
        spec = get_backend(name)
        if spec.kind != "http" or spec.missing_modules():
            continue  # in-process engines need no endpoint; a backend not installed is skipped by its checks
        option = config.getoption("--server")
        server = server_of(spec, mode, option)
        if option and option != server:
            continue  # every check of this backend skips, naming why (see the plugin's _http_factory)
        if server == CLOUD_SERVER:
            try:
                settings = spec.settings(Target(mode=mode, api_key=""))
            except MissingSettingsError as exc:
                problems.append(f"{name}: {exc.detail}")  # the backend, the URL and every missing setting
                continue
            except HarnessError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if spec.wire_format == "bedrock":
                bedrock = _bedrock_probe(settings)
                probes.setdefault((bedrock.url, ()), bedrock).backends.append(name)
                continue
            probe = _cloud_probe(settings)
            if probe is None:
                continue  # no cheap request known for this service: its settings are checked
            url, headers = probe
        elif mode == "live" and endpoint is not None:
            target = _endpoint_target(endpoint, spec)
            url = f"{endpoint.base_url}/models"
            headers = {"Authorization": f"Bearer {target.api_key}"}
        else:
            continue  # the local server, started by the harness
        key = (url, tuple(sorted(headers.items())))
        probes.setdefault(key, Probe(url, headers)).backends.append(name)
    return problems, list(probes.values())


def _cloud_probe(settings: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """Azure OpenAI: its models list, authenticated as the backend's settings say (bedrock: none)."""
    endpoint = settings.get("azure_endpoint")
    if not endpoint:
        return None
    version = settings.get("api_version") or ""
    key = settings.get("api_key")
    headers = {"api-key": key} if key else {"Authorization": f"Bearer {os.environ.get('AZURE_OPENAI_AD_TOKEN', '')}"}
    return f"{str(endpoint).rstrip('/')}/openai/models?api-version={version}", headers


def _bedrock_probe(settings: dict[str, Any]) -> Probe:
    """One Converse call of one output token, signed as the backend's client would sign it."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=TIMEOUT_S, read_timeout=BEDROCK_READ_TIMEOUT_S,
                    retries={"total_max_attempts": 1})  # a refused connection is not retried
    client = boto3.client("bedrock-runtime", **settings.get("client_kwargs", {}), config=config)
    model_id = str(settings["model_id"])
    url = f"{client.meta.endpoint_url}/model/{urllib.parse.quote(model_id, safe='')}/converse"
    return Probe(url, {}, check=lambda: check_bedrock(client, model_id, url))


BEDROCK_READ_TIMEOUT_S = 30.0  # one output token of a model that may be cold


def check_bedrock(client: Any, model_id: str, url: str) -> str | None:
    """What is wrong with Bedrock at ``url`` for ``model_id`` (None: it answered, or failed only on the request)."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    shown = public_url(url)
    try:
        client.converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": "Say OK."}]}],
                        inferenceConfig={"maxTokens": 1})
    except ConnectTimeoutError:
        return f"cannot reach {shown}: no connection within {TIMEOUT_S:g} s"
    except ReadTimeoutError:
        return f"cannot reach {shown}: no answer within {BEDROCK_READ_TIMEOUT_S:g} s"
    except EndpointConnectionError as exc:
        return f"cannot reach {shown}: {_reason(exc.kwargs.get('error'))}"
    except NoCredentialsError:
        return f"POST {shown}: no AWS credentials to sign the request with"
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        error = exc.response.get("Error", {})
        detail = f" ({error.get('Code', '')}: {str(error.get('Message', ''))[:200]})"
        if status in (401, 403):
            return f"authentication failed: POST {shown} answered HTTP {status}{detail}"
        if status == 404 or error.get("Code") == "ResourceNotFoundException" or (
                error.get("Code") == "ValidationException" and "model identifier" in str(error.get("Message"))):
            return f"POST {shown} answered HTTP {status}{detail}: is BEDROCK_MODEL_ID a model you can invoke?"
        return None  # it answered (throttled, or refused this small request): reachable, and signed in
    return None


def run(config: pytest.Config) -> str | None:
    """The one message that stops the session, or None when every backend can be reached."""
    problems, probes = plan(config)
    for probe in probes:
        wrong = probe.run()
        if wrong:
            problems.append(f"{', '.join(probe.backends)}: {wrong}")
    if not problems:
        return None
    mode = config.getoption("--mode")
    return (f"model-conformance: --mode {mode} cannot start, nothing was run:\n  " + "\n  ".join(problems))


@pytest.hookimpl(trylast=True)  # after the plugin has resolved the backends and the endpoint
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or config.getoption("--mode", "replay") not in ("live", "record"):
        return
    if config.getoption("collectonly", False) or config.getoption("help", False):
        return
    message = run(config)
    if message:
        raise pytest.UsageError(message)


__all__ = ["check_bedrock", "check_endpoint", "plan", "run"]
