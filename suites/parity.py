"""Constructor parity with smolagents' classes: the checks of ``constructor_parameters.yaml``.

Each check builds the class under test (this project's adapter or smolagents' own class) and watches
where a constructor argument lands: the SDK client's constructor, the engine's loader, or the SDK call
a generation makes. The watched callable is the real one: it is called through, or the build stops
right there (:class:`CallReached`) where going on would load a model or send a request. Nothing is
faked; what is expected comes from the table, never from the code under test.

Used by ``suites/test_constructor.py`` (the verdicts) and ``tools/parameters.py`` (docs/parameters.md).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib
import inspect
import json
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from oracles import names

TABLE = Path(__file__).with_name("constructor_parameters.yaml")
KINDS = ("reach", "client", "suite", "differs", "unchecked")
# a causal LM's config alone: enough for transformers to pick its auto class, nothing to load
CAUSAL_LM_CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
                    "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": 128}


class CallReached(BaseException):  # noqa: N818 - not an error: the watched call happened, the build ends here
    """Raised by a watched callable with ``stop``: it was called; going on would load a model or send a request.

    A BaseException, so that no ``except Exception`` of the code under test turns it into another error.
    """


@dataclass
class Outcome:
    """What one check found: whether the parameter had the expected effect, and what was seen."""

    ok: bool
    detail: str


@functools.cache
def load_table() -> dict[str, Any]:
    """The parity table: smolagents class name -> its backend, base arguments and parameters."""
    data = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    classes: dict[str, Any] = data["classes"]
    for name, spec in classes.items():
        for parameter, entry in spec["parameters"].items():
            kinds = [k for k in entry if k in KINDS]
            if len(kinds) != 1 or len(entry) != 1:
                raise ValueError(f"{TABLE.name}: {name}.{parameter} must have exactly one of {', '.join(KINDS)}, "
                                 f"got {sorted(entry)}")
            if "suite" in entry:
                _require_test(f"{name}.{parameter}", entry["suite"]["test"])
    return classes


def _require_test(where: str, test: str) -> None:
    """``test`` (``suites/file.py::function``) names a check that exists."""
    path, _, function = test.partition("::")
    file = TABLE.parent.parent / path
    if not file.is_file() or f"def {function}(" not in file.read_text(encoding="utf-8"):
        raise ValueError(f"{TABLE.name}: {where} names {test}, which does not exist")


def class_for_backend(backend: str) -> str:
    """The smolagents class name the table lists for ``backend``."""
    for name, spec in load_table().items():
        if spec["backend"] == backend:
            return name
    raise KeyError(f"{TABLE.name} lists no class for backend {backend!r}")


def smolagents_parameters(cls: type) -> list[tuple[str, str]]:
    """(name, where it is declared) of every parameter smolagents' ``cls`` takes, its bases' included.

    A class whose ``__init__`` takes ``**kwargs`` passes them to its base, so the base's parameters are
    the class's too (``requests_per_minute`` of ApiModel, ``tool_name_key`` of Model).
    """
    found: dict[str, str] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = inspect.signature(klass.__init__).parameters
        for name, parameter in parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                found.setdefault(name, klass.__name__)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            break
    return list(found.items())


def positional_names(cls: type) -> list[str]:
    """The names a positional argument binds to, in order, for ``cls(...)``."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _resolve(dotted: str) -> tuple[Any, str]:
    """(owner, attribute) of a dotted path such as ``openai.resources.chat.completions.Completions.create``."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise ImportError(f"cannot import {dotted}")


@contextlib.contextmanager
def watching(dotted: str, stop: bool) -> Iterator[list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """Record every call of the callable at ``dotted`` (a class: its constructor), as (args, kwargs).

    ``stop``: the call raises :class:`CallReached` after it is recorded instead of running.
    """
    owner, attribute = _resolve(dotted)
    target = getattr(owner, attribute)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    if isinstance(target, type):
        owner, attribute, original = target, "__init__", vars(target).get("__init__")
        real_init = target.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            calls.append((args, kwargs))
            if stop:
                raise CallReached(dotted)
            real_init(self, *args, **kwargs)

        replacement: Any = init
    else:
        original = vars(owner).get(attribute) if isinstance(owner, type) else target

        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((args, kwargs))
            if stop:
                raise CallReached(dotted)
            return target(*args, **kwargs)

        replacement = call
    setattr(owner, attribute, replacement)
    try:
        yield calls
    finally:
        if original is None:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)


@contextlib.contextmanager
def replaced(dotted: str, replacement: Callable[..., Any]) -> Iterator[None]:
    """The callable at ``dotted`` replaced while inside, and put back as it was (inherited or not)."""
    owner, attribute = _resolve(dotted)
    original = vars(owner).get(attribute) if isinstance(owner, type) else getattr(owner, attribute)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        if original is None:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)


_MISSING = object()
NOT_PASSED = "(not passed)"  # an `expect` of the table: the keyword is not passed at all


def dig(call: tuple[tuple[Any, ...], dict[str, Any]], path: str) -> Any:
    """The value at ``path`` of a recorded call: ``name`` a keyword, ``args.N`` a positional, ``a.b`` a key inside."""
    args, kwargs = call
    head, *rest = path.split(".")
    if head == "args":
        index = int(rest.pop(0))
        value: Any = args[index] if index < len(args) else _MISSING
    else:
        value = kwargs.get(head, _MISSING)
    for key in rest:
        value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
    return value


def _show(value: Any) -> str:
    return "(not passed)" if value is _MISSING else repr(value)


@functools.cache
def config_dir() -> str:
    """A directory holding only a causal LM's config.json (made once per process)."""
    path = Path(tempfile.mkdtemp(prefix="constructor-parity-"))
    (path / "config.json").write_text(json.dumps(CAUSAL_LM_CONFIG), encoding="utf-8")
    return str(path)


def _fill(value: Any) -> Any:
    """``value`` with ``{config_dir}`` replaced, in nested lists and dicts too."""
    if isinstance(value, str):
        return value.replace("{config_dir}", config_dir()) if "{config_dir}" in value else value
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v) for v in value]
    return value


def base_arguments(class_name: str, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """The arguments every check of ``class_name`` builds it with."""
    base = _fill(load_table()[class_name].get("base") or {})
    return {k: v for k, v in base.items() if k not in without}


def user_turn(text: str) -> list[dict[str, Any]]:
    """One user message with its text as a list of parts: the form every class under test takes, so that a
    constructor check fails only on the constructor (smolagents' local classes refuse string content)."""
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


def _build(cls: type, arguments: dict[str, Any], on_call: bool) -> Any:
    model = cls(**arguments)
    if on_call:
        model(user_turn("Hello"))
    return model


def check_reach(cls: type, class_name: str, parameter: str, spec: dict[str, Any]) -> Outcome:
    """Built with the parameter, the watched callable receives the expected value."""
    arguments = {**base_arguments(class_name, tuple(spec.get("without") or ())), parameter: _fill(spec["value"])}
    return _reach(cls, arguments, spec)


@contextlib.contextmanager
def environment(variables: dict[str, str | None]) -> Iterator[None]:
    """The process environment with ``variables`` set (a None value: removed) while inside, and put back as it was."""
    import os

    before = {name: os.environ.get(name) for name in variables}
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def further_checks(cls: type, class_name: str) -> list[tuple[str, Outcome]]:
    """(what, outcome) of the table's further checks of ``class_name``: a parameter left out takes its documented
    default (``defaults``); a keyword argument the SDK's call takes, given to the model, reaches that call as given
    (``sdk_options``: smolagents passes its ``**kwargs`` on); a setting read from the environment when its parameter
    is left out lands where the parameter would, and does not count as a setting given beside a ready client
    (``environment``)."""
    spec = load_table()[class_name]
    found: list[tuple[str, Outcome]] = []
    for parameter, reach in (spec.get("defaults") or {}).items():
        arguments = base_arguments(class_name, (parameter, *(reach.get("without") or ())))
        with warnings.catch_warnings(record=True) as given:
            warnings.simplefilter("always")
            outcome = _reach(cls, arguments, reach)
        category = getattr(builtins, reach.get("warns") or "", None)
        if outcome.ok and category is not None and not any(
                issubclass(w.category, category) and names(str(w.message), parameter) for w in given):
            seen = "; ".join(f"{w.category.__name__}: {w.message}" for w in given) or "none"
            outcome = Outcome(False, f"no {category.__name__} naming {parameter} (warnings given: {seen})")
        found.append((f"{parameter} left out", outcome))
    for option, reach in (spec.get("sdk_options") or {}).items():
        found.append((f"{option}={reach['value']!r} given", _reach(cls, {**base_arguments(class_name),
                                                                       option: _fill(reach["value"])}, reach)))
    for variable, reach in (spec.get("environment") or {}).items():
        left_out = (reach["parameter"], *(reach.get("without") or ()))
        with environment({variable: reach["value"]}):
            found.append((f"{variable} set, {reach['parameter']} left out",
                          _reach(cls, base_arguments(class_name, left_out), reach)))
            client = next((p for p, e in spec["parameters"].items() if "client" in e), None)
            if client is not None:
                settings = tuple(spec.get("ignored_with_client") or ())
                found.append((f"{variable} set, a client given",
                              check_client(cls, class_name, client, spec["parameters"][client]["client"],
                                           without=(*settings, *left_out))))
    return found


def check_client_kwargs_kept(cls: type, class_name: str, key: str, spec: dict[str, Any]) -> Outcome:
    """A client setting given inside ``client_kwargs`` (its parameter left out, ``spec``'s ``clear`` variables
    removed) reaches ``spec``'s target as given: not overwritten by the parameter left unset, not refused; and where
    the parameter is one of the base arguments, the parameter given beside a None under the same key reaches it."""
    base = base_arguments(class_name, without=("client_kwargs",))
    inside = {name: value for name, value in base.items() if name != key}
    with environment(dict.fromkeys(spec.get("clear") or (), None)):
        outcome = _reach(cls, {**inside, "client_kwargs": {key: _fill(spec["value"])}}, spec)
        if not outcome.ok or key not in base:
            return outcome
        # the parameter given, and the key left None inside client_kwargs (as smolagents' own classes fill it): the
        # parameter's value reaches the client
        beside_none = {**base, "client_kwargs": {key: None}}
        outcome = _reach(cls, beside_none, {**spec, "expect": dict.fromkeys(spec["expect"], base[key])})
    if not outcome.ok:
        return Outcome(False, f"{key} given beside client_kwargs={{{key!r}: None}}: {outcome.detail}")
    return outcome


def check_missing(cls: type, class_name: str, parameter: str, spec: dict[str, Any]) -> Outcome:
    """A setting the model cannot work without, given neither as ``parameter`` nor in the environment (``spec``'s
    ``clear``), refuses the build with an error naming each of ``spec``'s ``names`` (the parameter and its variable)."""
    with environment(dict.fromkeys(spec.get("clear") or (), None)):
        try:
            cls(**base_arguments(class_name, without=(parameter, *(spec.get("without") or ()))))
        except Exception as exc:  # noqa: BLE001 - any type: what is asked is that the error names the setting
            text = str(exc)
            unnamed = [name for name in spec["names"] if not names(text, name)]
            if unnamed:
                return Outcome(False, f"{type(exc).__name__} not naming {unnamed}: {text[:200]}")
            return Outcome(True, f"{type(exc).__name__}: {text[:200]}")
    return Outcome(False, f"built without {parameter} or {', '.join(spec.get('clear') or ())}; the setting is "
                          "missing and nothing said so")


def check_conflicting(cls: type, class_name: str, given: dict[str, Any]) -> Outcome:
    """Arguments of which one would be ignored beside the other are refused with a ValueError naming each of them
    (as the caller spelt it)."""
    given = _fill(given)
    try:
        cls(**{**base_arguments(class_name, without=tuple(given)), **given})
    except ValueError as exc:
        text = str(exc)
        unnamed = [name for name in given if not names(text, name)]
        if unnamed:
            return Outcome(False, f"ValueError not naming {unnamed}: {text[:200]}")
        return Outcome(True, f"ValueError: {text[:200]}")
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, f"{type(exc).__name__} instead of a ValueError: {str(exc)[:200]}")
    return Outcome(False, f"accepted {', '.join(f'{k}={v!r}' for k, v in given.items())}; one of them is ignored")


def _reach(cls: type, arguments: dict[str, Any], spec: dict[str, Any]) -> Outcome:
    """Built with ``arguments`` (and called, with ``on_call``): the watched callable gets ``spec``'s expected values."""
    try:
        with watching(spec["target"], bool(spec.get("stop"))) as calls:
            try:
                _build(cls, arguments, bool(spec.get("on_call")))
            except CallReached:
                pass
    except Exception as exc:  # noqa: BLE001 - the finding is that building or calling failed
        return Outcome(False, f"{type(exc).__name__}: {str(exc)[:300]}")
    if not calls:
        return Outcome(False, f"{spec['target']} was never called")
    args, kwargs = calls[-1]
    kwargs = dict(kwargs)
    for alias, name in (spec.get("aliases") or {}).items():  # read as the target itself reads them
        if kwargs.get(name) is None and alias in kwargs:
            kwargs[name] = kwargs.pop(alias)
    expected = _fill(spec["expect"])
    expected = {path: _MISSING if value == NOT_PASSED else value for path, value in expected.items()}
    seen = {path: dig((args, kwargs), path) for path in expected}
    wrong = {path: value for path, value in seen.items() if value != expected[path]}
    shown = ", ".join(f"{path}={_show(value)}" for path, value in seen.items())
    if wrong:
        want = ", ".join(f"{path}={_show(expected[path])}" for path in wrong)
        return Outcome(False, f"{spec['target']} got {shown}; expected {want}")
    return Outcome(True, f"{spec['target']} got {shown}")


def check_client(cls: type, class_name: str, parameter: str, spec: dict[str, Any],
                 without: tuple[str, ...] | None = None) -> Outcome:
    """A client passed in is the one the model uses; no other is built."""
    given = object()
    try:
        with watching(spec["target"], stop=False) as calls:
            if without is None:
                without = tuple(load_table()[class_name].get("ignored_with_client") or ())
            model = cls(**{**base_arguments(class_name, without=without), parameter: given})
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, f"{type(exc).__name__}: {str(exc)[:300]}")
    if getattr(model, "client", None) is not given:
        return Outcome(False, f"model.client is {getattr(model, 'client', None)!r}, not the client passed in")
    if calls:
        return Outcome(False, f"{spec['target']} was called {len(calls)} time(s) although a client was passed in")
    return Outcome(True, f"model.client is the client passed in; {spec['target']} never called")


def check_parameter(cls: type, class_name: str, parameter: str) -> Outcome | None:
    """The outcome of a parameter's in-process check (reach, client); None for the other kinds."""
    entry = load_table()[class_name]["parameters"][parameter]
    checks: dict[str, Callable[[type, str, str, dict[str, Any]], Outcome]] = {
        "reach": check_reach, "client": check_client}
    kind = next(iter(entry))
    if kind not in checks:
        return None
    return checks[kind](cls, class_name, parameter, entry[kind])


def check_ignored_with_client(cls: type, class_name: str, parameter: str) -> Outcome:
    """With a client passed in, a setting that only configures the client the model would build is refused."""
    settings = load_table()[class_name]["ignored_with_client"]
    value = _fill(settings[parameter])
    try:
        cls(**{**base_arguments(class_name, without=tuple(settings)), "client": object(), parameter: value})
    except ValueError as exc:
        if names(str(exc), parameter):
            return Outcome(True, f"ValueError: {str(exc)[:200]}")
        return Outcome(False, f"ValueError without naming {parameter!r}: {str(exc)[:200]}")
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, f"{type(exc).__name__} instead of a ValueError naming {parameter!r}: {str(exc)[:200]}")
    return Outcome(False, f"accepted {parameter}={value!r} with a client passed in, and ignores it")
