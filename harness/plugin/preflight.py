"""Fail fast, once: ``--mode live`` and ``--mode record`` check every backend's settings and make one cheap
request (``GET <base>/models``) to each endpoint at session start, before any check runs.

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
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.contract.errors import HarnessError
from harness.plugin.answers import public_url

TIMEOUT_S = 5.0  # the cheap request's whole budget: connect and answer


@dataclass
class Probe:
    """One cheap request to one endpoint, shared by every backend that uses it."""

    url: str
    headers: dict[str, str]
    backends: list[str] = field(default_factory=list)


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
            except HarnessError as exc:
                problems.append(f"{name}: {exc}")
                continue
            probe = _cloud_probe(settings)
            if probe is None:
                continue  # no cheap unauthenticated-free request for this service: its settings are checked
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


def run(config: pytest.Config) -> str | None:
    """The one message that stops the session, or None when every backend can be reached."""
    problems, probes = plan(config)
    for probe in probes:
        wrong = check_endpoint(probe.url, probe.headers)
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


__all__ = ["check_endpoint", "plan", "run"]
