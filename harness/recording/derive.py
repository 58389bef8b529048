"""Azure OpenAI and Amazon Bedrock cassettes derived from real recordings of the local server.

Without an Azure or AWS account the cloud cassettes cannot be recorded, so each recorded
cassette of ``cassettes/<server>/openai`` (a local OpenAI-compatible server on the embedded
model: ``transformers-serve`` or ``vllm-serve``) is rewritten into the wire format each service
documents, into ``cassettes/<server>/<service>``, by ``harness derive-cassettes``:

- **azure**: ``POST https://<resource>.openai.azure.com/openai/deployments/<deployment>/chat/completions
  ?api-version=<v>``; the request body as sent, ``model`` naming the deployment; the response
  body with Azure's ``prompt_filter_results`` and per-choice ``content_filter_results``, and
  Azure's response headers (``apim-request-id``, ``x-request-id``, ``x-ms-region``, ...). Azure
  opens a stream with a chunk holding only ``prompt_filter_results`` and empty ``id``,
  ``object`` and ``model``; the openai types reject an empty ``object``, so the derived chunk
  carries the stream's own.
- **bedrock**: ``POST https://bedrock-runtime.<region>.amazonaws.com/model/<modelId>/converse``
  (``converse-stream`` for a stream) with the Converse request translated from the OpenAI one,
  and a Converse response: ``output.message.content`` text and ``toolUse`` blocks,
  ``stopReason``, ``usage``, ``metrics``; a stream becomes AWS event-stream frames.

What the model said is never edited: text, tool calls and token counts are the recording's.
What the recording cannot tell is labelled in each cassette's provenance: the filter verdicts
are Azure's shape with nothing filtered (no filter ran), ``metrics.latencyMs`` is 0 (the
recording holds no timing), ids are derived from the recording's ids. The function is pure:
the same source gives the same bytes, so re-running the command after a re-recording is all
it takes. A cassette recorded from the real service (provenance ``kind: recorded``) is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.recording.cassettes import LOCAL_SERVERS, content_digest
from harness.recording.derive_azure import azure_interaction, validate_azure
from harness.recording.derive_bedrock import (
    bedrock_interaction,
    derived_tool_use_ids,
    validate_bedrock,
    with_ids_renamed,
)
from harness.recording.derive_common import DerivationError, recorded_libraries
from harness.recording.placeholders import (
    AZURE_API_VERSION,
    AZURE_DEPLOYMENT,
    AZURE_ENDPOINT,
    BEDROCK_MODEL_ID,
    BEDROCK_REGION,
)

DERIVE_COMMAND = "harness derive-cassettes"
SOURCE_BACKEND = "openai"
TARGETS = ("azure", "bedrock")


# -- small helpers ---------------------------------------------------------------------------


# -- Azure OpenAI ----------------------------------------------------------------------------


# -- Amazon Bedrock --------------------------------------------------------------------------


# -- cassettes -------------------------------------------------------------------------------

_WIRE = {
    "azure": (
        f"Azure OpenAI chat completions, api-version {AZURE_API_VERSION}",
        {"azure_endpoint": AZURE_ENDPOINT, "deployment": AZURE_DEPLOYMENT, "api_version": AZURE_API_VERSION},
        "openai.types.chat.ChatCompletion / ChatCompletionChunk (tests/test_derive.py)",
        ["prompt_filter_results and content_filter_results: Azure's shape with nothing filtered; no filter ran",
         "apim-request-id, x-request-id and x-ms-region: placeholders derived from the recording"],
    ),
    "bedrock": (
        "Amazon Bedrock Runtime Converse / ConverseStream (rest-json; event-stream for streams)",
        {"region": BEDROCK_REGION, "model_id": BEDROCK_MODEL_ID},
        "botocore's bedrock-runtime service model: request serializer and validator, rest-json response parser, "
        "event-stream parser (tests/test_derive.py)",
        ["metrics.latencyMs is 0: the recording holds no timing",
         "stopReason from finish_reason; stop_sequence where the request had stops and the text holds one",
         "toolUseId and x-amzn-RequestId: derived from the recording's ids"],
    ),
}


def derive_cassette(
    source: Mapping[str, Any], target: str, source_path: str, source_sha256: str = ""
) -> dict[str, Any]:
    """The ``target`` (azure or bedrock) cassette for a recorded OpenAI-wire cassette; pure."""
    if target not in TARGETS:
        raise DerivationError(f"{target!r} is not a derivation target. Valid targets are: {', '.join(TARGETS)}")
    libraries = recorded_libraries(source)
    build = azure_interaction if target == "azure" else bedrock_interaction
    interactions = []
    renamed: dict[str, str] = {}  # a recorded tool-call id -> the toolUseId the derived responses gave it
    for i, interaction in enumerate(source.get("interactions") or []):
        key = f"{source_path}#{i}"
        try:
            if target == "bedrock":
                # a later request repeats the ids of earlier answers (an agent's memory, its
                # "Calling tools:" text): it carries the ids the derived answers gave
                interaction = with_ids_renamed(interaction, renamed)
                renamed.update(derived_tool_use_ids(interaction, key))
            interactions.append(build(interaction, key, libraries))
        except DerivationError as exc:
            raise DerivationError(f"{source_path}, interaction {i}: {exc}") from None
    wire, placeholders, validated_with, not_recorded = _WIRE[target]
    source_provenance = dict(source.get("provenance") or {})
    provenance = {
        "kind": "derived",
        "backend": target,
        "wire": wire,
        "source": source_path,
        "source_sha256": source_sha256,
        "source_provenance": source_provenance,
        "model": source_provenance.get("model"),
        "placeholders": placeholders,
        "not_recorded": not_recorded,
        "validated_with": validated_with,
        "date": source_provenance.get("date"),
        "command": DERIVE_COMMAND,
        "content_digest": content_digest(interactions),  # replay trusts a derived cassette as a recorded one
    }
    return {"interactions": interactions, "version": source.get("version", 1), "provenance": provenance}


def render(cassette: Mapping[str, Any]) -> str:
    """A cassette as YAML, the way recorded ones are written."""
    return yaml.safe_dump(dict(cassette), sort_keys=False, allow_unicode=True, width=120)


# -- validation with the SDKs' own parsers (the SDKs are imported only here) ------------------

def validate_cassette(cassette: Mapping[str, Any], target: str) -> None:
    """Parse every body of a derived cassette with the SDK's own types; raise on the first failure."""
    check = validate_azure if target == "azure" else validate_bedrock
    for i, interaction in enumerate(cassette["interactions"]):
        try:
            check(interaction)
        except Exception as exc:  # noqa: BLE001 - every parser failure is reported the same way
            raise DerivationError(f"interaction {i} does not parse as {target}: {type(exc).__name__}: {exc}") from exc


# -- the command -----------------------------------------------------------------------------

def source_roots(root: Path) -> list[Path]:
    """The server folders under ``root`` that hold recorded openai cassettes to derive from."""
    return [root / server for server in LOCAL_SERVERS if (root / server / SOURCE_BACKEND).is_dir()]


def derive_all(
    root: Path, targets: Sequence[str] = TARGETS, check: bool = False, force: bool = False, validate: bool = True
) -> list[tuple[Path, str]]:
    """Derive every target cassette from ``root/<server>/openai`` into ``root/<server>/<target>``.

    Returns (path, what happened) per file. With ``check`` nothing is written and a differing
    file is reported ``stale``. A cassette recorded from the real service is kept unless
    ``force``; a derived one whose source is gone is removed.
    """
    outcomes: list[tuple[Path, str]] = []
    for server_root in source_roots(root):
        outcomes += _derive_server(root, server_root, targets, check, force, validate)
    return outcomes


def _derive_server(
    root: Path, server_root: Path, targets: Sequence[str], check: bool, force: bool, validate: bool
) -> list[tuple[Path, str]]:
    outcomes: list[tuple[Path, str]] = []
    expected: set[Path] = set()
    for source_file in sorted((server_root / SOURCE_BACKEND).glob("*/*.yaml")):
        raw = source_file.read_text(encoding="utf-8")
        source = yaml.safe_load(raw) or {}
        if (source.get("provenance") or {}).get("kind") != "recorded":
            continue
        relative = f"{root.name}/{source_file.relative_to(root).as_posix()}"
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
        for target in targets:
            out = server_root / target / source_file.parent.name / source_file.name
            expected.add(out)
            if out.exists() and not force and _kind(out) == "recorded":
                outcomes.append((out, "kept (recorded from the real service)"))
                continue
            why = underivable(source, target)
            if why is not None:  # the server's answer lacks what the target wire always carries
                expected.discard(out)  # a derived file from an earlier recording goes, below
                outcomes.append((out, f"not derivable ({why})"))
                continue
            cassette = derive_cassette(source, target, relative, digest)
            if validate:
                validate_cassette(cassette, target)
            text = render(cassette)
            if out.exists() and out.read_text(encoding="utf-8") == text:
                outcomes.append((out, "up to date"))
            elif check:
                outcomes.append((out, "stale"))
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text, encoding="utf-8")
                outcomes.append((out, "written"))
    for target in targets:
        for existing in sorted((server_root / target).glob("*/*.yaml")):
            if existing not in expected and _kind(existing) == "derived":
                if check:
                    outcomes.append((existing, "stale (its source is gone)"))
                else:
                    existing.unlink()
                    outcomes.append((existing, "removed (its source is gone)"))
    return outcomes


def underivable(source: Mapping[str, Any], target: str) -> str | None:
    """Why the recorded openai cassette ``source`` cannot become a ``target`` one, or None when it can.

    Only a recorded stream that lacks what the target service always sends makes a cassette underivable
    (Converse always reports usage, llama.cpp's server streams without it; Azure's chunks are objects
    ``chat.completion.chunk``, mlx-lm's say ``chat.completion``): derived cassettes never invent or
    correct an answer; and a server error for Bedrock (the recording holds as many error replies as
    the openai client made attempts; the Bedrock client makes another number). Every other derivation
    error stays an error of the command.
    """
    for number, interaction in enumerate(source.get("interactions") or [], 1):
        response = interaction.get("response") or {}
        status = (response.get("status") or {}).get("code")
        if target == "bedrock" and isinstance(status, int) and status >= 500:
            return (f"interaction {number}: HTTP {status}, answered to the openai client's retries, which are not "
                    "the Bedrock client's")
        if status != 200:
            continue
        body = (response.get("body") or {}).get("string")
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        chunks = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        if chunks:  # an event stream (lines such as mlx-lm's ': keepalive' comments are not events)
            try:
                usage = [json.loads(c).get("usage") for c in chunks if c and c != "[DONE]"]
            except (json.JSONDecodeError, AttributeError):
                continue  # not a stream this check can read: the derivation itself says what is wrong
            if target == "bedrock" and not any(usage):
                return f"interaction {number}: the recorded stream has no usage; Converse always reports it"
            objects = sorted({str(json.loads(c).get("object")) for c in chunks if c and c != "[DONE]"})
            if target == "azure" and objects != ["chat.completion.chunk"]:
                return (f"interaction {number}: the recorded stream's chunks are objects {', '.join(objects)}; "
                        "Azure's are chat.completion.chunk")
    return None


def _kind(path: Path) -> str | None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return (data.get("provenance") or {}).get("kind")


def _run(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.backend.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise DerivationError(f"{', '.join(map(repr, unknown))}: not a derivation target. "
                              f"Valid targets are: {', '.join(TARGETS)}")
    root = Path(args.cassette_dir)
    if not source_roots(root):
        raise DerivationError(f"no recorded {SOURCE_BACKEND} cassettes under {root}/<server> "
                              f"(servers: {', '.join(LOCAL_SERVERS)})")
    outcomes = derive_all(root, targets, check=args.check, force=args.force)
    for path, what in outcomes:
        if what != "up to date" or args.verbose:
            print(f"{what:12} {path}")
    counts: dict[str, int] = {}
    for _, what in outcomes:
        counts[what.split(" ")[0]] = counts.get(what.split(" ")[0], 0) + 1
    print(", ".join(f"{n} {w}" for w, n in sorted(counts.items())) or "nothing to derive")
    if args.check and any(w.startswith("stale") for _, w in outcomes):
        print(f"derived cassettes are stale; run: {DERIVE_COMMAND}", file=sys.stderr)
        return 1
    return 0


def add_derive_parser(sub: Any) -> None:
    """The ``harness derive-cassettes`` subcommand."""
    parser = sub.add_parser(
        "derive-cassettes",
        help="derive each server's azure and bedrock cassettes from its recorded openai ones (validated with the SDKs)",
    )
    parser.add_argument("--cassette-dir", default="cassettes", help="cassette root (default: cassettes)")
    parser.add_argument("--backend", default=",".join(TARGETS), help="targets, a comma list (default: azure,bedrock)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a derived cassette is stale")
    parser.add_argument("--force", action="store_true", help="also replace cassettes recorded from the real service")
    parser.add_argument("--verbose", action="store_true", help="list unchanged files too")
    parser.set_defaults(fn=_run)
