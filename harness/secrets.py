"""The one definition of a secret, used by scrubbing, refuse-to-write, ``harness scan`` and errors.

A secret is any of:

- a credential value the SDKs would read: the environment (``SECRET_ENV`` and any variable named
  like ``*_API_KEY`` or ``*_TOKEN``), the AWS shared credentials and config files (every profile),
  the Hugging Face token file; plus any value registered with :func:`register_secret` (a key passed
  to a model in code);
- text shaped like a credential (``SECRET_PATTERNS``: OpenAI, Hugging Face, AWS, Bedrock keys, a
  SigV4 signature, a JWT such as an Entra ID token, a bearer token);
- the value of a header or query parameter with a credential's name (``is_secret_name``; names
  compared case-insensitively).

A value is found raw, URL-encoded, JSON-escaped and base64-encoded (at any alignment inside a
longer base64 text), and pattern-shaped credentials also inside base64 text.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "REDACTED"
MIN_SECRET_LENGTH = 8  # shorter configured values ("1", "true") would scrub ordinary text

# Credentials the SDKs read from the environment (openai, azure, huggingface_hub, boto3, litellm).
SECRET_ENV = (
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "AZURE_API_KEY",
    "AZURE_AD_TOKEN",
    "AZURE_CLIENT_SECRET",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACEHUB_API_TOKEN",
    "HF_API_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "LITELLM_API_KEY",
    "LITELLM_MASTER_KEY",
)
_SECRET_ENV_NAME = re.compile(
    r"(?:^|_)(?:API_KEY|API_TOKEN|ACCESS_KEY|SECRET_KEY|SECRET_ACCESS_KEY|SESSION_TOKEN|AUTH_TOKEN|AD_TOKEN"
    r"|BEARER_TOKEN[A-Z_]*|CLIENT_SECRET|MASTER_KEY)$"
)

# Words that make a header, query parameter, setting or config key a credential.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "secret", "token", "password", "credential", "credentials", "signature", "sig", "auth",
     "authorization", "cookie"}
)
# Names that are credentials without holding one of those words.
_SECRET_NAMES = frozenset(
    {"x-amz-date", "x-amz-content-sha256", "amz-sdk-invocation-id", "openai-organization", "openai-project",
     "aws_account_id", "set-cookie", "x-amz-security-token", "code"}
)
# Names that hold one of the words but carry no credential.
_NOT_SECRET_NAMES = frozenset(
    {"max_tokens", "max_completion_tokens", "max-tokens", "tool_name_key", "tool_arguments_key", "tokenizer",
     "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "stop_sequences",
     "top_k", "cache_key"}
)

# re.ASCII: a key right after a byte such as 0xff (a binary body read as latin-1) still starts a word
SECRET_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}", re.ASCII),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}", re.ASCII),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", re.ASCII),
    re.compile(r"Credential=[A-Z0-9]{16,}/", re.ASCII),
    re.compile(r"Signature=[0-9a-f]{64}", re.ASCII),  # a SigV4 signature
    re.compile(r"\b(?:ABSK|bedrock-api-key-)[A-Za-z0-9+/=]{20,}", re.ASCII),  # Bedrock API keys
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", re.ASCII),  # a JWT (Entra ID token)
    re.compile(r"\b[Bb]earer\s+(?!REDACTED)[A-Za-z0-9._~+/=-]{16,}", re.ASCII),
)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
# Text one of which every match of a pattern contains: a plain substring test (fast on a large body)
# decides whether the regex needs to run at all. A pattern not listed here (keyed by its text) is always
# searched.
_REQUIRED_TEXT = {
    r"\bsk-[A-Za-z0-9_-]{16,}": ("sk-",),
    r"\bhf_[A-Za-z0-9]{20,}": ("hf_",),
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b": ("AKIA", "ASIA"),
    r"Credential=[A-Z0-9]{16,}/": ("Credential=",),
    r"Signature=[0-9a-f]{64}": ("Signature=",),
    r"\b(?:ABSK|bedrock-api-key-)[A-Za-z0-9+/=]{20,}": ("ABSK", "bedrock-api-key-"),
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}": ("eyJ",),
    r"\b[Bb]earer\s+(?!REDACTED)[A-Za-z0-9._~+/=-]{16,}": ("Bearer", "bearer"),
}


def _may_match(pattern: re.Pattern[str], text: str) -> bool:
    required = _REQUIRED_TEXT.get(pattern.pattern)
    return required is None or any(part in text for part in required)


def _search(pattern: re.Pattern[str], text: str) -> bool:
    return _may_match(pattern, text) and pattern.search(text) is not None


_registered: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter, setting or config key of this name holds a credential."""
    lowered = name.lower()
    if lowered in _NOT_SECRET_NAMES:
        return False
    if lowered in _SECRET_NAMES:
        return True
    words = set(re.split(r"[_\-.\s]", lowered))
    return bool(words & _SECRET_WORDS) or lowered.endswith(("apikey", "secret", "token", "password"))


def register_secret(value: str | None) -> None:
    """Treat ``value`` (a key passed in code, not read from the environment) as a secret from now on."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def _env_values() -> Iterator[str]:
    for name, value in os.environ.items():
        if name in SECRET_ENV or _SECRET_ENV_NAME.search(name):
            yield value


def _aws_files() -> tuple[str, str]:
    home = Path.home()
    return (os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws" / "credentials"),
            os.environ.get("AWS_CONFIG_FILE") or str(home / ".aws" / "config"))


def _hf_token_files() -> tuple[str, str]:
    hf_home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return os.environ.get("HF_TOKEN_PATH") or str(Path(hf_home) / "token"), str(Path(hf_home) / "stored_tokens")


def _aws_file_values() -> Iterator[str]:
    for file in _aws_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(file, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in parser.sections():
            for key, value in parser.items(section):
                if is_secret_name(key) and value:
                    yield value.strip()


def _hf_token_file_values() -> Iterator[str]:
    for file in _hf_token_files():
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if file.endswith("stored_tokens"):
            parser = configparser.RawConfigParser()
            try:
                parser.read_string(text)
            except configparser.Error:
                continue
            yield from (parser.get(s, "hf_token") for s in parser.sections() if parser.has_option(s, "hf_token"))
        else:
            yield text.strip()


def known_secrets(extra: Iterable[str | None] = ()) -> list[str]:
    """Every credential value configured on this machine, registered in code, or passed in ``extra``."""
    with _lock:
        registered = list(_registered)
    values = {*_env_values(), *_aws_file_values(), *_hf_token_file_values(), *registered, *(v for v in extra if v)}
    # longest first, so a value containing another is replaced whole
    return sorted((v for v in values if v and len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 text ``raw`` becomes at each alignment inside a longer encoded text."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
        start = 4 if offset else 0
        end = 4 * ((offset + len(raw)) // 3)
        fragment = encoded[start:end]
        if len(fragment) >= MIN_SECRET_LENGTH:
            forms.add(fragment)
            forms.add(fragment.replace("+", "-").replace("/", "_"))
    return forms


def variants(value: str) -> list[str]:
    """How ``value`` can appear on the wire or in a recording: raw, URL-encoded, JSON-escaped, base64."""
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    escaped = json.dumps(value)[1:-1]
    forms |= {escaped, escaped.replace("/", "\\/"), json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= _base64_forms(value.encode("utf-8"))
    return sorted(forms, key=len, reverse=True)


# The variables that say where the credential files are (Path.home() reads HOME).
_FILE_ENV = ("HOME", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "HF_HOME", "HF_TOKEN_PATH")
_NAME_IS_SECRET: dict[Any, bool] = {}
_FILES_BY_ENV: dict[tuple[str | None, ...], tuple[str, ...]] = {}


def _environment_items() -> Iterable[tuple[Any, Any]]:
    """The environment's raw (name, value) pairs: os.environ decodes every name and value on each pass,
    and the fingerprint below is taken on every scrub."""
    data = getattr(os.environ, "_data", None)
    return data.items() if isinstance(data, dict) else os.environ.items()


def _names_a_secret(name: Any) -> bool:
    known = _NAME_IS_SECRET.get(name)
    if known is None:
        text = os.fsdecode(name) if isinstance(name, bytes) else str(name)
        known = _NAME_IS_SECRET[name] = text in SECRET_ENV or bool(_SECRET_ENV_NAME.search(text))
    return known


def _sources_fingerprint() -> tuple[Any, ...]:
    """What ``known_secrets`` reads, cheaply: the credential environment, the files' stat, the registry."""
    env = tuple(sorted((n, v) for n, v in _environment_items() if _names_a_secret(n)))
    where = tuple(os.environ.get(n) for n in _FILE_ENV)
    files = _FILES_BY_ENV.get(where)
    if files is None:
        files = _FILES_BY_ENV[where] = (*_aws_files(), *_hf_token_files())
    stats: list[tuple[Any, ...]] = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            stats.append((file, None))
        else:
            stats.append((file, st.st_mtime_ns, st.st_size, st.st_ino))
    with _lock:
        registered = frozenset(_registered)
    return env, tuple(stats), registered


_FORMS_CACHE: dict[tuple[Any, ...], list[str]] = {}


def _value_forms(extra: Iterable[str | None]) -> list[str]:
    """Every form of every known secret, longest first; recomputed when a source of secrets changes."""
    extra = tuple(v for v in extra if v)
    key = (_sources_fingerprint(), extra)
    cached = _FORMS_CACHE.get(key)
    if cached is not None:
        return cached
    forms: set[str] = set()
    for value in known_secrets(extra):
        forms.update(variants(value))
    result = sorted(forms, key=len, reverse=True)
    if len(_FORMS_CACHE) > 64:
        _FORMS_CACHE.clear()
    _FORMS_CACHE[key] = result
    return result


def _decoded_base64_runs(text: str) -> Iterator[str]:
    for match in _BASE64_RUN.finditer(text):
        run = match.group(0).rstrip("=")
        for shift in range(4):
            part = run[shift:]
            part = part[: len(part) - len(part) % 4]
            if len(part) < 16:
                continue
            try:
                raw = base64.b64decode(part.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                continue
            yield raw.decode("latin-1")


def _find(text: str, forms: Iterable[str]) -> str | None:
    for form in forms:
        if form in text:
            return "a configured credential value"
    for pattern in SECRET_PATTERNS:
        if _search(pattern, text):
            return f"text matching {pattern.pattern!r}"
    # the decoded runs are searched as one text: no pattern matches across the NUL between two runs,
    # and one search per pattern instead of one per run keeps a large body's scan linear and fast
    decoded = "\x00".join(_decoded_base64_runs(text))
    for pattern in SECRET_PATTERNS:
        if _search(pattern, decoded):
            return f"base64 text that decodes to text matching {pattern.pattern!r}"
    return None


def find_secret(text: str, extra: Iterable[str | None] = ()) -> str | None:
    """What kind of credential ``text`` holds (never the credential itself), or None."""
    return _find(text, _value_forms(extra))


def find_secret_bytes(data: bytes, extra: Iterable[str | None] = ()) -> str | None:
    """:func:`find_secret` for a body of any encoding."""
    return find_secret(data.decode("latin-1"), extra)


_QUERY_PARAM = re.compile(r"([?&;])([^=&#\s\"']+)=([^&#\s\"']*)")


def scrub_query(text: str) -> str:
    """Every query parameter with a credential's name (any case) in URLs inside ``text``, redacted."""
    def redact(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{name}={REDACTED}" if is_secret_name(name) and match.group(3) else match.group(0)

    return _QUERY_PARAM.sub(redact, text)


def scrub_text(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret value (in every form) and every credential-shaped text redacted."""
    for form in _value_forms(extra):
        text = text.replace(form, REDACTED)
    for pattern in SECRET_PATTERNS:
        if _may_match(pattern, text):
            text = pattern.sub(REDACTED, text)
    return text


def scrub_bytes(data: bytes, extra: Iterable[str | None] = ()) -> bytes:
    """:func:`scrub_text` on bytes of any encoding (a body that is not UTF-8 is scrubbed all the same)."""
    for form in _value_forms(extra):
        data = data.replace(form.encode("utf-8"), REDACTED.encode("ascii"))
    text = data.decode("latin-1")
    for pattern in SECRET_PATTERNS:
        if _may_match(pattern, text):
            text = pattern.sub(REDACTED, text)
    return text.encode("latin-1")


# -- scanning files: cassettes, logs, JUnit XML, reports ----------------------------------------

EVENT_STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


def _event_stream_payloads(data: bytes) -> bytes | None:
    """The payloads of an event-stream body joined (a secret split across frames is whole again)."""
    from harness.cassettes import decode_event_stream

    try:
        messages = decode_event_stream(data)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError):
        return None
    return b"".join(v for headers, payload in messages for _, kind, v in headers if kind == 7) + b"".join(
        payload for _, payload in messages
    )


def _yaml_findings(text: str, forms: list[str]) -> list[tuple[int, str]]:
    """Secrets in the decoded values of a YAML document: escaped strings, ``!!binary`` bodies."""
    import yaml

    try:
        # builds nodes only: no tag is ever constructed (libyaml where available: linear on large bodies)
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return []
    findings: list[tuple[int, str]] = []
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.ScalarNode):
            line = node.start_mark.line + 1
            found = None
            if node.tag == "tag:yaml.org,2002:binary":
                try:
                    data = base64.b64decode("".join(node.value.split()))
                except (binascii.Error, ValueError):
                    data = b""
                found = _find(data.decode("latin-1"), forms)
                joined = None if found else _event_stream_payloads(data)
                if joined:
                    found = _find(joined.decode("latin-1"), forms)
            elif isinstance(node.value, str):
                found = _find(node.value, forms)
            if found:
                findings.append((line, found))
    return findings


def scan_text(text: str, name: str = "", extra: Iterable[str | None] = ()) -> list[tuple[int, str]]:
    """Every (line, what) where ``text`` holds a secret: line by line, and for YAML by decoded value."""
    forms = _value_forms(extra)
    findings = {}
    whole = _find(text, forms)  # most files are clean: one pass over the whole text
    if whole:
        for number, line in enumerate(text.splitlines(), start=1):
            found = _find(line, forms)
            if found:
                findings[number] = found
    if name.endswith((".yaml", ".yml")):
        for number, found in _yaml_findings(text, forms):
            findings.setdefault(number, found)
    if whole and not findings:
        findings[1] = f"{whole} (across lines)"
    return sorted(findings.items())


def scan_paths(paths: Iterable[str | Path]) -> list[str]:
    """``file:line: what`` for every secret in the files (directories: every file below them)."""
    problems = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            problems.append(f"{root}: no such file or directory")
            continue
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            data = file.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")  # a body of any encoding is scanned all the same
            for line, found in scan_text(text, file.name):
                problems.append(f"{file}:{line}: {found}")
    return problems


# -- logs: an SDK's debug log may print the headers and bodies it sent or received ---------------

@contextlib.contextmanager
def scrubbed_logs() -> Iterator[None]:
    """Every log record created while active has its secrets redacted, whichever library logs it."""
    previous = logging.getLogRecordFactory()
    state: dict[str, Any] = {"forms": _value_forms(()), "registered": len(_registered)}

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if len(_registered) != state["registered"]:  # a model registered a key passed in code
            state["forms"], state["registered"] = _value_forms(()), len(_registered)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not format is left to logging
            return record
        for form in state["forms"]:
            text = text.replace(form, REDACTED)
        for pattern in SECRET_PATTERNS:
            text = pattern.sub(REDACTED, text)
        record.msg, record.args = text, ()
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)
