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
longer base64 text), and pattern-shaped credentials also inside base64 text; compressed bodies are
read decompressed. A known value is replaced by a placeholder naming its kind (``REDACTED:HF_TOKEN``),
a shaped one by its shape's (``REDACTED:openai-key``).
"""

from __future__ import annotations

import base64
import binascii
import configparser
import contextlib
import gzip
import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

REDACTED = "REDACTED"  # a value redacted by the name it was sent under (a header, a query parameter)


def placeholder(kind: str) -> str:
    """What replaces a credential of ``kind``: ``REDACTED:AZURE_OPENAI_API_KEY``, ``REDACTED:openai-key``."""
    return f"{REDACTED}:{kind}"


KIND_IN_CODE = "key-passed-in-code"
KIND_SET_BY_RESPONSE = "set-by-a-response"
KIND_AWS_FILES = "aws-credentials-file"
KIND_HF_FILES = "hf-token-file"
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
# the kind each shape's placeholder names, in the order of SECRET_PATTERNS
SHAPE_KINDS = ("openai-key", "hf-token", "aws-access-key-id", "sigv4-credential", "sigv4-signature",
               "bedrock-api-key", "jwt", "bearer-token")
_SHAPES = tuple((pattern, placeholder(kind)) for pattern, kind in zip(SECRET_PATTERNS, SHAPE_KINDS, strict=True))
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
_registered_kinds: dict[str, str] = {}
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


def register_secret(value: str | None, kind: str = KIND_IN_CODE) -> None:
    """Treat ``value`` (a key passed in code, not read from the environment) as a secret from now on."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)
            _registered_kinds.setdefault(value, kind)


def _env_values() -> Iterator[tuple[str, str]]:
    for name, value in sorted(os.environ.items()):
        if name in SECRET_ENV or _SECRET_ENV_NAME.search(name):
            yield name, value


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


def known_secret_kinds(extra: Iterable[str | None] = ()) -> dict[str, str]:
    """Every credential value configured on this machine, registered in code, or passed in ``extra``, with
    its kind: the environment variable's name, the credential file, a key passed in code, a value a
    response set. A value found in several places takes the first of these."""
    with _lock:
        registered = [(v, _registered_kinds.get(v, KIND_IN_CODE)) for v in sorted(_registered)]
    kinds: dict[str, str] = {}
    sources = [*((v, n) for n, v in _env_values()), *((v, KIND_AWS_FILES) for v in _aws_file_values()),
               *((v, KIND_HF_FILES) for v in _hf_token_file_values()), *registered,
               *((v, KIND_IN_CODE) for v in extra if v)]
    for value, kind in sources:
        if value and len(value) >= MIN_SECRET_LENGTH:
            kinds.setdefault(value, kind)
    return kinds


def known_secrets(extra: Iterable[str | None] = ()) -> list[str]:
    """Every credential value configured on this machine, registered in code, or passed in ``extra``."""
    # longest first, so a value containing another is replaced whole
    return sorted(known_secret_kinds(extra), key=len, reverse=True)


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


_FORMS_CACHE: dict[tuple[Any, ...], tuple[list[str], list[tuple[str, str]]]] = {}


def _forms_and_placeholders(extra: Iterable[str | None]) -> tuple[list[str], list[tuple[str, str]]]:
    """Every form of every known secret, longest first, alone and with the placeholder of its kind;
    recomputed when a source of secrets changes."""
    extra = tuple(v for v in extra if v)
    key = (_sources_fingerprint(), extra)
    cached = _FORMS_CACHE.get(key)
    if cached is not None:
        return cached
    pairs: dict[str, str] = {}
    for value, kind in sorted(known_secret_kinds(extra).items(), key=lambda item: len(item[0]), reverse=True):
        for form in variants(value):
            pairs.setdefault(form, placeholder(kind))
    ordered = sorted(pairs.items(), key=lambda item: len(item[0]), reverse=True)
    result = ([form for form, _ in ordered], ordered)
    if len(_FORMS_CACHE) > 64:
        _FORMS_CACHE.clear()
    _FORMS_CACHE[key] = result
    return result


def _value_forms(extra: Iterable[str | None]) -> list[str]:
    """Every form of every known secret, longest first."""
    return _forms_and_placeholders(extra)[0]


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
    """:func:`find_secret` for a body of any encoding, compressed ones read decompressed too."""
    found = find_secret(data.decode("latin-1"), extra)
    inner = None if found else decompressed(data)
    return found or (None if inner is None else find_secret_bytes(inner, extra))


_QUERY_PARAM = re.compile(r"([?&;])([^=&#\s\"']+)=([^&#\s\"']*)")


def scrub_query(text: str) -> str:
    """Every query parameter with a credential's name (any case) in URLs inside ``text``, redacted."""
    def redact(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{name}={REDACTED}" if is_secret_name(name) and match.group(3) else match.group(0)

    return _QUERY_PARAM.sub(redact, text)


_URL_PASSWORD = re.compile(r"//[^/@:\s]+:([^/@\s]+)@")
_FRAGMENT_OR_QUERY_PARAM = re.compile(r"([?&;#])([^=&#\s\"']+)=([^&#\s\"']*)")


def values_set_by_response(headers: Mapping[str, Any]) -> list[str]:
    """The credentials a response hands the client for its next request: cookies it sets, tokens in a
    ``Location`` (query, fragment, a password in the URL) and values of headers with a credential's name.

    A redirect chain is recorded hop by hop; these values come back in later hops (a cookie sent,
    a token echoed), so they are secrets from the moment the response that set them is seen.
    """
    found: list[str] = []
    for name, value in headers.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for text in (str(v) for v in values):
            lowered = name.lower()
            if lowered in ("set-cookie", "set-cookie2"):
                for part in text.split(";")[:1]:  # "name=value; Path=/; HttpOnly": the value only
                    found.append(unquote(part.partition("=")[2].strip().strip('"')))
            elif is_secret_name(name):
                found.append(text)
            if lowered in ("location", "content-location", "refresh", "link"):
                found += [unquote(m.group(3)) for m in _FRAGMENT_OR_QUERY_PARAM.finditer(text)
                          if is_secret_name(m.group(2)) and m.group(3)]
                found += [unquote(m.group(1)) for m in _URL_PASSWORD.finditer(text)]
    return [v for v in found if len(v) >= MIN_SECRET_LENGTH and not v.startswith(REDACTED)]


def scrub_text(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret value (in every form) and every credential-shaped text redacted."""
    for form, replacement in _forms_and_placeholders(extra)[1]:
        text = text.replace(form, replacement)
    for pattern, replacement in _SHAPES:
        if _may_match(pattern, text):
            text = pattern.sub(replacement, text)
    return text


def _compress(data: bytes, kind: str) -> bytes:
    return gzip.compress(data, mtime=0) if kind == "gzip" else zlib.compress(data)


def scrub_bytes(data: bytes, extra: Iterable[str | None] = ()) -> bytes:
    """:func:`scrub_text` on bytes of any encoding (a body that is not UTF-8 is scrubbed all the same).

    A body compressed without saying so is decompressed, scrubbed and compressed again the same way.
    """
    kind = sniff_compression(data)
    if kind is not None:
        inner = decompressed(data, layers=1)
        if inner is not None:
            return _compress(scrub_bytes(inner, extra), kind)
    for form, replacement in _forms_and_placeholders(extra)[1]:
        data = data.replace(form.encode("utf-8"), replacement.encode("ascii"))
    text = data.decode("latin-1")
    for pattern, replacement in _SHAPES:
        if _may_match(pattern, text):
            text = pattern.sub(replacement, text)
    return text.encode("latin-1")


# -- compressed bodies: read as the SDK would read them before scrubbing or scanning -------------

class UndecodableBodyError(ValueError):
    """A body whose content encoding cannot be decoded here: it can be neither scrubbed nor written."""


def _gunzip(data: bytes) -> bytes:
    return gzip.decompress(data)  # every member of a multi-member body, as httpx and urllib3 read it


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:  # "deflate" sent as a raw stream, without the zlib wrapper: httpx reads both
        return zlib.decompress(data, -zlib.MAX_WBITS)


def _unbrotli(data: bytes) -> bytes:
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise UndecodableBodyError("the body is brotli-encoded ('br') and neither brotli nor brotlicffi is "
                                       "installed: the SDK could not read it either") from None
    return bytes(brotli.decompress(data))


def _unzstd(data: bytes) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        raise UndecodableBodyError("the body is zstd-encoded and zstandard is not installed: the SDK could not "
                                   "read it either") from None
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


# The content codings httpx, urllib3 and aiohttp decode (br and zstd when their package is installed).
CONTENT_DECODERS = {"gzip": _gunzip, "x-gzip": _gunzip, "deflate": _inflate, "br": _unbrotli, "zstd": _unzstd}


def content_encodings(values: Iterable[str]) -> list[str]:
    """The codings of Content-Encoding header values in the order applied ('identity' left out; any case)."""
    names = [name.strip().lower() for value in values for name in str(value).split(",")]
    return [name for name in names if name and name != "identity"]


def decode_content(data: bytes, encodings: Iterable[str]) -> bytes:
    """``data`` with every coding undone, the last applied first (``gzip, gzip`` is unzipped twice)."""
    for name in reversed(list(encodings)):
        decoder = CONTENT_DECODERS.get(name)
        if decoder is None:
            raise UndecodableBodyError(f"Content-Encoding {name!r} is not one the SDKs decode "
                                       f"(known: {', '.join(CONTENT_DECODERS)})")
        try:
            data = decoder(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UndecodableBodyError(f"the body does not decode as Content-Encoding {name!r}: {exc}") from None
    return data


def sniff_compression(data: bytes) -> str | None:
    """The coding of a body compressed without saying so (gzip magic bytes, a zlib header), or None."""
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if len(data) > 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0:
        return "deflate"
    return None


def decompressed(data: bytes, layers: int = 4) -> bytes | None:
    """``data`` with the compression it carries unsaid undone (up to ``layers`` deep), or None if it has none."""
    out = None
    for _ in range(layers):
        kind = sniff_compression(data)
        if kind is None:
            break
        try:
            data = decode_content(data, [kind])
        except UndecodableBodyError:
            break
        out = data
    return out


# -- logs: an SDK's debug log may print the headers and bodies it sent or received ---------------

@contextlib.contextmanager
def scrubbed_logs() -> Iterator[None]:
    """Every log record created while active has its secrets redacted, whichever library logs it."""
    previous = logging.getLogRecordFactory()
    state: dict[str, Any] = {"forms": _forms_and_placeholders(())[1], "registered": len(_registered)}

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if len(_registered) != state["registered"]:  # a model registered a key passed in code
            state["forms"], state["registered"] = _forms_and_placeholders(())[1], len(_registered)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not format is left to logging
            return record
        for form, replacement in state["forms"]:
            text = text.replace(form, replacement)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        record.msg, record.args = text, ()
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)
