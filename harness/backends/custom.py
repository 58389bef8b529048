"""Any model certifiable: ``pytest suites --backend=custom --model-factory=pkg.module:attr``.

``attr`` may be

- a ``Model`` subclass (this project's, smolagents', or any class whose instances have
  ``generate``), built with no arguments, or with the suite's keyword arguments when a test asks
  for some;
- a model instance (anything with ``generate``);
- a factory: a callable that takes no required argument and returns one of the above, or a
  plain callable;
- a plain callable of the documented form ``custom_model(messages, stop_sequences=None)`` that
  returns an object with ``.content`` (or a string), optionally taking ``grammar``. It is wrapped
  in :class:`CallableModel`, which normalises the messages and validates the stop sequences as
  every adapter does, passes both to the callable, and returns what it answered unchanged: the
  callable's own output is what the suites judge (a stop it did not honour fails).

What the suites may ask of it is its ``capabilities`` (an attribute of the model or its class, an
iterable of names such as ``tools``, ``native_tools``, ``text_tools``, ``stream``,
``token_usage``, ``stop_parameter``); without one they are inferred (see
:func:`custom_capabilities`), and a test that needs more skips with the reason.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from harness.contract.errors import HarnessError
from harness.contract.model import Model, Request
from harness.contract.types import ChatMessage, MessageRole, TokenUsage

CUSTOM = "custom"
FORMS = (
    "a Model subclass, a model instance (with generate), a factory returning one, or a plain callable "
    "custom_model(messages, stop_sequences=None) returning an object with .content"
)
# Why a plain callable cannot do what a suite test needs; printed as the test's skip reason.
CALLABLE_LACKS = {
    "stream": "a plain callable custom_model(messages, stop_sequences) returns one answer and cannot stream",
    "tools": "a plain callable custom_model(messages, stop_sequences) is given no tools",
    "native_tools": "a plain callable custom_model(messages, stop_sequences) is given no tools",
    "text_tools": "a plain callable custom_model(messages, stop_sequences) is given no tools",
    "token_usage": "a plain callable custom_model(messages, stop_sequences) returns only .content, no token usage",
    "structured_output": "the plain callable takes no grammar argument",
}


def load_model_factory(value: str) -> Any:
    """The object ``pkg.module:attr`` names, or a HarnessError saying which part is wrong."""
    module_name, sep, attr = value.partition(":")
    if not sep or not module_name or not attr:
        raise HarnessError(f"--model-factory={value!r} is not of the form pkg.module:attr; it names {FORMS}")
    try:
        module = _import(module_name)
    except ImportError as exc:
        raise HarnessError(
            f"--model-factory={value!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
            "is its directory on sys.path (the current directory, PYTHONPATH, or an installed package)?"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_"))
            raise HarnessError(
                f"--model-factory={value!r}: module {module_name!r} has no attribute {attr!r}. "
                f"It defines: {', '.join(names) or 'nothing public'}"
            )
        obj = getattr(obj, part)
    if not callable(obj) and not hasattr(obj, "generate"):
        raise HarnessError(
            f"--model-factory={value!r} is {obj!r} of type {type(obj).__name__}, which is neither callable nor a "
            f"model; expected {FORMS}"
        )
    return obj


def _import(module_name: str) -> Any:
    """Import ``module_name``; a module of the directory pytest runs in is found too, as ``python -m`` would."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != module_name.split(".")[0] or here in sys.path:
            raise
        sys.path.insert(0, here)
        return importlib.import_module(module_name)


def _required_positional(fn: Callable[..., Any]) -> list[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return ["messages"]  # a builtin without a signature: take it for a model callable
    return [
        p.name for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind == p.VAR_KEYWORD for p in parameters)


class UnsupportedSettings(HarnessError):
    """The custom model cannot be built with the keyword arguments a test asks for (the test skips)."""


def build_custom_model(obj: Any, overrides: dict[str, Any], origin: str) -> Any:
    """The model ``obj`` stands for, built with ``overrides`` (the suite's keyword arguments)."""
    if isinstance(obj, type):
        if overrides and all(_accepts(obj, k) for k in overrides):
            return obj(**overrides)  # it takes these arguments: what it raises is its own verdict on their values
        try:
            return obj(**overrides)
        except TypeError as exc:
            detail = f" with {overrides!r}" if overrides else " with no arguments"
            raise HarnessError(
                f"{origin}: class {obj.__name__} cannot be built{detail} ({exc}); name a factory that builds it"
            ) from None
    if hasattr(obj, "generate"):
        if overrides:
            raise UnsupportedSettings(f"{origin} is a model instance; this test builds the model with {overrides!r}")
        return obj
    if not callable(obj):
        raise HarnessError(f"{origin} gave {obj!r} of type {type(obj).__name__}; expected {FORMS}")
    if not _required_positional(obj):  # a factory
        if overrides and not all(_accepts(obj, k) for k in overrides):
            raise UnsupportedSettings(f"the factory {origin} takes no {', '.join(overrides)} argument")
        built = obj(**overrides)
        if isinstance(built, type) or (not hasattr(built, "generate") and not callable(built)):
            raise HarnessError(f"the factory {origin} returned {built!r} of type {type(built).__name__}; "
                               f"expected a model instance or a plain callable")
        return build_custom_model(built, {}, origin) if hasattr(built, "generate") else CallableModel(built)
    return CallableModel(obj, **overrides)


def custom_capabilities(model: Any) -> frozenset[str]:
    """What the suites may ask of ``model``: its declared ``capabilities``, else inferred."""
    declared = getattr(model, "capabilities", None)
    if declared is not None and not isinstance(declared, (str, bytes)) and isinstance(declared, Iterable):
        return frozenset(str(c) for c in declared)
    if isinstance(model, CallableModel):
        return frozenset({"stop_parameter"} | ({"structured_output"} if model.takes_grammar else set()))
    inferred = {"tools", "token_usage"}
    if _streams(model):
        inferred.add("stream")
    tokenizer = getattr(model, "tokenizer", None) or getattr(model, "processor", None)
    if tokenizer is not None and hasattr(tokenizer, "apply_chat_template"):
        inferred.add("text_tools")
    return frozenset(inferred)


def _streams(model: Any) -> bool:
    if isinstance(model, Model):
        return type(model)._generate_stream is not Model._generate_stream or (
            type(model).generate_stream is not Model.generate_stream
        )
    method = getattr(type(model), "generate_stream", None)
    if method is None:
        return False
    for base in type(model).__mro__[1:]:  # smolagents' Model.generate_stream only raises
        if base.__dict__.get("generate_stream") is method and base.__module__.startswith("smolagents"):
            return False
    return True


def missing_reason(model: Any, capability: str) -> str:
    """Why ``model`` cannot run a test that needs ``capability``."""
    if isinstance(model, CallableModel):
        return CALLABLE_LACKS.get(capability, f"a plain callable does not declare {capability!r}")
    return (f"{type(model).__name__} does not declare {capability!r} (set its `capabilities` attribute "
            f"to claim it; found {sorted(custom_capabilities(model))})")


class CallableModel(Model):
    """A plain ``custom_model(messages, stop_sequences=None[, grammar])`` as a Model the suites can judge.

    Messages are normalised (roles converted, same-role messages merged) and stop sequences
    validated as for every adapter, then handed to the callable. Its answer is returned as it
    came: unlike the adapters, nothing is cut at a stop client-side, since stopping is the
    callable's part of the documented contract.
    """

    backend_name = CUSTOM

    def __init__(self, function: Callable[..., Any], **kwargs: Any) -> None:
        if not callable(function):
            raise TypeError(f"CallableModel needs a callable, got {function!r} of type {type(function).__name__}")
        if not _accepts(function, "stop_sequences"):
            raise HarnessError(
                f"{getattr(function, '__name__', function)!r} takes no stop_sequences argument; the documented "
                "form is custom_model(messages, stop_sequences=None)"
            )
        super().__init__(**kwargs)
        self.function = function
        self.takes_grammar = _accepts(function, "grammar")

    def _generate(self, request: Request) -> ChatMessage:
        if request.tools:
            raise TypeError(CALLABLE_LACKS["tools"])
        call: dict[str, Any] = {"stop_sequences": list(request.stop_sequences) or None}
        grammar = request.kwargs.pop("grammar", None) or request.response_format
        if grammar is not None:
            if not self.takes_grammar:
                raise ValueError(f"{getattr(self.function, '__name__', 'the callable')} takes no grammar argument; "
                                 f"cannot honour response_format/grammar {grammar!r}")
            call["grammar"] = grammar
        if request.kwargs:
            unknown = ", ".join(sorted(request.kwargs))
            raise TypeError(f"a plain callable custom_model(messages, stop_sequences) takes no {unknown}")
        answer = self.function(request.messages, **call)
        return _as_message(answer, self.function)

    def _finish(self, message: ChatMessage, request: Request) -> ChatMessage:
        return message  # the callable's answer as it came: stopping is its own part of the contract

    def _generate_stream(self, request: Request) -> Iterator[Any]:
        raise NotImplementedError(CALLABLE_LACKS["stream"])


def _as_message(answer: Any, function: Any) -> ChatMessage:
    if isinstance(answer, str):
        return ChatMessage(role=MessageRole.ASSISTANT, content=answer, raw=answer)
    if not hasattr(answer, "content"):
        raise TypeError(
            f"{getattr(function, '__name__', function)!r} returned {answer!r} of type {type(answer).__name__}, "
            "which has no .content; the documented form returns an object with a .content attribute"
        )
    usage = getattr(answer, "token_usage", None)
    if usage is not None and not isinstance(usage, TokenUsage):
        usage = TokenUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    return ChatMessage(role=MessageRole.ASSISTANT, content=answer.content, raw=answer, token_usage=usage)
