"""Backends register here through one entry-point group; nothing here imports an SDK."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import TYPE_CHECKING, Any

from harness.contract.errors import HarnessError, MissingDependencyError, UnknownBackendError

if TYPE_CHECKING:
    from harness.contract.model import Model
    from harness.recording.capture import CapturedRequest, WireCall

# How the suites read a backend's outgoing requests when it brings no reader of its own.
BUILTIN_WIRE_FORMATS = ("openai", "bedrock", "chat_template")
# Distributions every report and cassette names, whatever the backend.
CORE_LIBRARIES = ("model-conformance", "smolagents", "vcrpy")

ENTRY_POINT_GROUP = "model_conformance.backends"
DISTRIBUTION = "model-conformance"


@dataclass
class Target:
    """Where a suite's model points: the local server, the embedded model, or replay placeholders."""

    mode: str
    base_url: str = "http://127.0.0.1:8000/v1"
    served_model_id: str = "SmolLM2-135M-Instruct"
    api_key: str = "replay-key"
    model_dir: str | None = None


@dataclass
class BackendSpec:
    """One backend: how to load its class lazily and how the suites build and observe it."""

    name: str
    loader: Callable[[], type[Model]]
    extra: str
    modules: tuple[str, ...]
    smolagents_class: str | None  # None: smolagents has no such class; --subject smolagents skips
    kind: str  # "http" (cassettes) or "local" (runs the embedded model in-process)
    # "openai", "bedrock", "chat_template", or the backend's own name for a wire it reads with request_reader
    wire_format: str
    settings: Callable[[Target], dict[str, Any]]
    capabilities: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    unavailable: Callable[[], str | None] | None = None  # why it cannot run on this machine, if it cannot
    # "local_server": record/live against the embedded model's local server; "cloud": against the
    # real service, with the user's credentials from the environment
    live_target: str = "local_server"
    # "module:Class" of an in-process engine that takes a minute to load: the suites build it once
    # per set of arguments and hand the same instance to every model built with them
    shared_engine: str | None = None
    # reads one captured HTTP request as the suites see it (None: not a model call); built-in formats need none
    request_reader: Callable[[CapturedRequest], WireCall | None] | None = None
    # distributions whose versions cassettes' provenance and reports name (the SDK or engine)
    libraries: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        return self.unavailable() if self.unavailable else None

    def missing_modules(self) -> list[str]:
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def require(self) -> None:
        """Raise MissingDependencyError naming the extra when the SDK is not installed."""
        missing = self.missing_modules()
        if missing:
            raise MissingDependencyError(
                f"backend {self.name!r} requires optional dependencies ({', '.join(missing)}). "
                f"Install with: pip install '{DISTRIBUTION}[{self.extra}]'"
            )

    def load(self) -> type[Model]:
        self.require()
        return self.loader()


_BACKENDS: dict[str, BackendSpec] = {}
_loaded = False


def backend(
    name: str,
    *,
    extra: str,
    modules: Iterable[str],
    kind: str,
    wire_format: str,
    settings: Callable[[Target], dict[str, Any]],
    smolagents_class: str | None = None,
    capabilities: Iterable[str] = (),
    description: str = "",
    unavailable: Callable[[], str | None] | None = None,
    live_target: str = "local_server",
    shared_engine: str | None = None,
    request_reader: Callable[[CapturedRequest], WireCall | None] | None = None,
    libraries: Iterable[str] = (),
) -> Callable[[Callable[[], type[Model]]], Callable[[], type[Model]]]:
    """Register a backend; the decorated function imports and returns its Model class.

    A backend whose requests are not in a built-in wire format (``openai``, ``bedrock``,
    ``chat_template``) names its own format and passes ``request_reader``, which turns one
    captured HTTP request into the :class:`~harness.recording.capture.WireCall` the suites check.
    """
    if kind not in ("http", "local"):
        raise HarnessError(f"backend {name!r}: kind must be 'http' or 'local', got {kind!r}")
    if wire_format not in BUILTIN_WIRE_FORMATS and request_reader is None:
        raise HarnessError(
            f"backend {name!r}: wire_format {wire_format!r} is not built in ({', '.join(BUILTIN_WIRE_FORMATS)}); "
            "pass request_reader= to read its requests"
        )
    if wire_format == "chat_template" and request_reader is not None:
        raise HarnessError(f"backend {name!r}: chat_template requests are read by the harness; drop request_reader")

    def decorate(loader: Callable[[], type[Model]]) -> Callable[[], type[Model]]:
        register(BackendSpec(
            name=name,
            loader=loader,
            extra=extra,
            modules=tuple(modules),
            smolagents_class=smolagents_class,
            kind=kind,
            wire_format=wire_format,
            settings=settings,
            capabilities=frozenset(capabilities),
            description=description,
            unavailable=unavailable,
            live_target=live_target,
            shared_engine=shared_engine,
            request_reader=request_reader,
            libraries=tuple(libraries),
        ))
        return loader

    return decorate


def register(spec: BackendSpec) -> None:
    """Add (or replace) one backend."""
    _BACKENDS[spec.name] = spec


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # the value is a module whose import runs its @backend registrations
        importlib.import_module(ep.value.split(":")[0])


def backend_names() -> list[str]:
    """Every registered backend, in registration order."""
    _load_entry_points()
    return list(_BACKENDS)


def get_backend(name: str) -> BackendSpec:
    _load_entry_points()
    try:
        return _BACKENDS[name]
    except KeyError:
        raise UnknownBackendError(
            f"{name!r} is not a backend. Known: {', '.join(backend_names())}, all"
        ) from None


def resolve_backends(value: str | None, require_installed: bool = True) -> list[str]:
    """Backend names from a comma list or ``all``; unknown names and missing SDKs fail here, once."""
    names = [v.strip() for v in (value or "all").split(",") if v.strip()]
    if not names:
        raise UnknownBackendError(f"--backend is empty. Known: {', '.join(backend_names())}, all")
    if "all" in names:
        return backend_names()
    unknown = [n for n in names if n not in backend_names()]
    if unknown:
        raise UnknownBackendError(
            f"{', '.join(repr(n) for n in unknown)} {'is not a backend' if len(unknown) == 1 else 'are not backends'}. "
            f"Known: {', '.join(backend_names())}, all"
        )
    if require_installed:
        for n in names:
            get_backend(n).require()
    return list(dict.fromkeys(names))


def library_versions(backends: Iterable[str] | None = None) -> dict[str, str]:
    """Installed versions of the core distributions and of the named backends' (default: every backend's)."""
    names = backend_names() if backends is None else list(backends)
    dists = list(CORE_LIBRARIES)
    for name in names:
        spec = _BACKENDS.get(name)
        dists += list(spec.libraries) if spec else []
    return distribution_versions(dists)


def distribution_versions(dists: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution that is installed."""
    out = {}
    for dist in dict.fromkeys(dists):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def load_smolagents_class(spec: BackendSpec) -> type[Any]:
    """The smolagents class that implements the same backend, for ``--subject smolagents``."""
    if spec.smolagents_class is None:
        raise MissingDependencyError(f"smolagents has no class for backend {spec.name!r} (none registered)")
    if importlib.util.find_spec("smolagents") is None:
        raise MissingDependencyError(
            f"--subject smolagents requires smolagents. Install with: pip install '{DISTRIBUTION}[test]'"
        )
    module = importlib.import_module("smolagents")
    return getattr(module, spec.smolagents_class)
