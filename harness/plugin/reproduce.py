"""One-line reproductions of a failed check of smolagents' own classes (``--subject smolagents``).

While a check runs, the smolagents model it built notes how it was built and every call made to it
(``generate``, ``generate_stream``; ``model(...)`` goes through ``generate``). A failed check's row then
carries two lines that replay the case without the suites:

- a ``python -c`` line that builds smolagents' class with the same settings and repeats the last call,
  when everything it needs is a literal (an HTTP backend's line reaches the endpoint of its settings, so
  it reproduces without a server only what fails before the request);
- the ``pytest`` line that runs this one case again (offline too: it replays the cassette).
"""

from __future__ import annotations

import ast
import copy
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_WATCHED = "_model_conformance_watched"


@dataclass
class Built:
    """One smolagents model as a check built it: its class, its settings and the calls made to it."""

    class_name: str
    settings: dict[str, Any]
    calls: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)


_built: list[Built] = []  # the models of the running check (one check at a time per process)


def start_check() -> None:
    """Forget the previous check's models (the plugin calls this when a check is set up)."""
    _built.clear()


def watch(model: Any, class_name: str, settings: Mapping[str, Any]) -> Any:
    """Note how ``model`` was built and, from now on, every generate/generate_stream call made to it."""
    built = Built(class_name, dict(settings))
    if getattr(model, _WATCHED, None) is None:  # an engine shared by several checks is wrapped once
        for method in ("generate", "generate_stream"):
            original = getattr(model, method, None)
            if callable(original):
                setattr(model, method, _noting(model, method, original))
    try:
        setattr(model, _WATCHED, built)
    except AttributeError:  # a class with __slots__: nothing noted, the pytest line still reproduces
        return model
    _built.append(built)
    return model


def _noting(model: Any, method: str, original: Any) -> Any:
    def call(messages: Any, *args: Any, **kwargs: Any) -> Any:
        built = getattr(model, _WATCHED, None)
        if built is not None:
            try:
                noted = copy.deepcopy(messages), copy.deepcopy(dict(kwargs, **_positional(args)))
            except Exception:  # noqa: BLE001 - an argument that cannot be copied: noted as it is
                noted = messages, dict(kwargs, **_positional(args))
            built.calls.append((method, *noted))
        return original(messages, *args, **kwargs)

    return call


def _positional(args: Sequence[Any]) -> dict[str, Any]:
    # smolagents' generate(messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs)
    names = ("stop_sequences", "response_format", "tools_to_call_from")
    return dict(zip(names, args))


def _literal(value: Any) -> str | None:
    """``repr(value)`` when it reads back as the same value (a literal), else None."""
    text = repr(value)
    try:
        return text if ast.literal_eval(text) == value else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def python_line() -> str | None:
    """``python -c`` building the last model of the running check and repeating its last call, if possible."""
    if not _built:
        return None
    built = _built[-1]
    settings = _literal(built.settings)
    if settings is None:
        return None
    code = f"from smolagents import {built.class_name} as M; m = M(**{settings})"
    if built.calls:
        method, messages, kwargs = built.calls[-1]
        shown_messages, shown_kwargs = _literal(messages), _literal(kwargs)
        if shown_messages is None or shown_kwargs is None:
            return None
        if method == "generate_stream":
            code += f"; print(repr(''.join(d.content or '' for d in m.generate_stream({shown_messages}, "
            code += f"**{shown_kwargs}))))"
        else:
            code += f"; r = m.generate({shown_messages}, **{shown_kwargs}); print(repr(r.content), r.tool_calls)"
    return "python -c " + _double_quoted(code)


def _double_quoted(code: str) -> str:
    """``code`` as one shell word in double quotes (the reprs inside use single quotes)."""
    for char in ("\\", '"', "$", "`"):
        code = code.replace(char, "\\" + char)
    return f'"{code}"'


def pytest_line(nodeid: str, options: Sequence[str]) -> str:
    """The command that runs this one case again, against smolagents' class."""
    return " ".join(["pytest", shlex.quote(nodeid), *(shlex.quote(o) for o in options)])


__all__ = ["Built", "pytest_line", "python_line", "start_check", "watch"]
