"""The report as an interop dashboard: what the backends do themselves, and where smolagents breaks the contract.

- ``raw_behaviour``: a backend-and-server x behaviour matrix read from the recorded wire traffic (every
  server with cassettes, every HTTP backend), before any adapter corrected it, plus the local engines'
  raw output as their live checks observed it; each behaviour with its interop score, the share of
  columns whose raw behaviour already meets the clause.
- ``must_failures``: every MUST failure of smolagents' classes, with the clause and a one-line
  reproduction, apart from the checks replay could not judge (the request differed from the recording).
- ``deliberate_differences``: the STRICT clauses (this project's choices) with their reasons, and
  whether smolagents' classes meet them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.reporting.levels import unjudged


@dataclass
class _Tally:
    """hits of total, per behaviour, for one backend-and-server column."""

    counts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, behaviour: str, hit: bool) -> None:
        self.counts[behaviour][0] += bool(hit)
        self.counts[behaviour][1] += 1


# behaviour -> the clause whose reading it measures (shown beside it)
BEHAVIOURS: dict[str, str] = {
    "stop honoured by the server (text stops before every stop sent)": "stop.before-stop-sequence",
    "native tool calls for a request offering tools": "tools.native-calls-surface",
    "finish reason of a native tool call is a tool-call reason": "response.finish-reason-visible",
    "finish reason given on every answer": "response.finish-reason-visible",
    "usage on a non-streamed answer": "usage.token-usage",
    "usage in a stream that asked for it": "stream.usage-once",
    "several native calls in one answer, ids unique": "tools.parallel-calls",
    "structured output honoured (answer parses as JSON)": "structured.on-the-wire",
    "error answers carry the provider's message": "errors.typed-with-provider-message",
    "content filter answered as HTTP 200 with a reason": "errors.typed-with-provider-message",
}
# the stop checks that make a stopped call and note the raw text when it is not the contract's
_STOPPED_CALL_CLAUSES = {"stop.trimmed-client-side", "stop.earliest-completing"}
_TOOL_REASONS = {"tool_calls", "tool_use", "function_call"}


def _body(body: Any) -> str:
    value = body.get("string") if isinstance(body, Mapping) else body
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value or "")


def _openai_answer(request: Mapping[str, Any], text: str) -> dict[str, Any] | None:
    """Text, tool calls, finish reason and usage of one chat completion (a stream agglomerated)."""
    if request.get("stream"):
        content, finish, usage = "", None, None
        calls: dict[int, dict[str, Any]] = {}
        for line in text.splitlines():
            if not line.startswith("data:") or line[5:].strip() in ("", "[DONE]"):
                continue
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                content += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(call.get("index", len(calls)), {"id": None})
                    slot["id"] = call.get("id") or slot["id"]
                finish = choice.get("finish_reason") or finish
            usage = chunk.get("usage") or usage
        return {"text": content, "ids": [c["id"] for c in calls.values()], "finish": finish, "usage": usage}
    data = json.loads(text)
    choices = data.get("choices") or []
    if not choices:
        return None
    message = choices[0].get("message") or {}
    return {"text": message.get("content") or "", "ids": [c.get("id") for c in message.get("tool_calls") or []],
            "finish": choices[0].get("finish_reason"), "usage": data.get("usage")}


def _converse_answer(text: str) -> dict[str, Any] | None:
    data = json.loads(text)
    blocks = ((data.get("output") or {}).get("message") or {}).get("content") or []
    return {"text": "".join(b.get("text") or "" for b in blocks),
            "ids": [b["toolUse"].get("toolUseId") for b in blocks if "toolUse" in b],
            "finish": data.get("stopReason"), "usage": data.get("usage")}


def _openai_request(request: Mapping[str, Any]) -> dict[str, Any]:
    stops = request.get("stop") or []
    fmt = request.get("response_format") or {}
    return {"stops": [stops] if isinstance(stops, str) else list(stops), "tools": bool(request.get("tools")),
            "stream": bool(request.get("stream")),
            "stream_usage": bool((request.get("stream_options") or {}).get("include_usage")),
            "structured": isinstance(fmt, Mapping) and fmt.get("type") in ("json_schema", "json_object")}


def _converse_request(request: Mapping[str, Any]) -> dict[str, Any]:
    config = request.get("inferenceConfig") or {}
    return {"stops": list(config.get("stopSequences") or []), "tools": bool(request.get("toolConfig")),
            "stream": False, "stream_usage": False, "structured": False}


def _tally_interaction(tally: _Tally, interaction: Mapping[str, Any]) -> None:
    uri = str(interaction["request"].get("uri") or "")
    converse = "/converse" in uri
    if converse and uri.endswith("/converse-stream"):
        return  # an event stream (binary frames): its text is judged by the suites, not read here
    status = int(interaction["response"]["status"]["code"])
    text = _body(interaction["response"]["body"])
    try:
        request = json.loads(_body(interaction["request"].get("body")) or "{}")
    except json.JSONDecodeError:
        return
    if not isinstance(request, Mapping):
        return
    if status >= 400:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        error = data.get("error") if isinstance(data, Mapping) else None
        message = (error.get("message") if isinstance(error, Mapping) else error) or (
            data.get("message") or data.get("Message") if isinstance(data, Mapping) else None)
        tally.add("error answers carry the provider's message", bool(message))
        return
    asked = _converse_request(request) if converse else _openai_request(request)
    try:
        answer = _converse_answer(text) if converse else _openai_answer(request, text)
    except (json.JSONDecodeError, AttributeError, TypeError):
        return
    if answer is None:
        return
    if asked["stops"]:
        tally.add("stop honoured by the server (text stops before every stop sent)",
                  not any(s and s in answer["text"] for s in asked["stops"]))
    if asked["tools"]:
        tally.add("native tool calls for a request offering tools", bool(answer["ids"]))
    if answer["ids"]:
        tally.add("finish reason of a native tool call is a tool-call reason", answer["finish"] in _TOOL_REASONS)
        if len(answer["ids"]) > 1:
            tally.add("several native calls in one answer, ids unique",
                      len(set(answer["ids"])) == len(answer["ids"]) and all(answer["ids"]))
    tally.add("finish reason given on every answer", bool(answer["finish"]))
    if answer["finish"] == "content_filter" or answer["finish"] == "guardrail_intervened":
        tally.add("content filter answered as HTTP 200 with a reason", True)
    if asked["stream"]:
        if asked["stream_usage"]:
            tally.add("usage in a stream that asked for it", bool(answer["usage"]))
    else:
        tally.add("usage on a non-streamed answer", bool(answer["usage"]))
    if asked["structured"]:
        try:
            json.loads(answer["text"])
            tally.add("structured output honoured (answer parses as JSON)", True)
        except json.JSONDecodeError:
            tally.add("structured output honoured (answer parses as JSON)", False)


def _wire_tallies(root: Path) -> dict[str, _Tally]:
    """``<backend> (<server>)`` -> its tally, for every server folder and backend folder under ``root``."""
    import yaml

    tallies: dict[str, _Tally] = {}
    for server in sorted(p for p in root.iterdir() if p.is_dir()):
        for backend in sorted(p for p in server.iterdir() if p.is_dir()):
            tally = _Tally()
            for path in sorted(backend.glob("*/*.yaml")):
                try:
                    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                except yaml.YAMLError:
                    continue
                for interaction in data.get("interactions") or []:
                    _tally_interaction(tally, interaction)
            if tally.counts:
                tallies[f"{backend.name} ({server.name})"] = tally
    return tallies


def _engine_tallies(checks: Iterable[Mapping[str, Any]]) -> dict[str, _Tally]:
    """Local engines: their raw output as their live stop checks saw it (an observation: the engine's own
    text was not the contract's)."""
    tallies: dict[str, _Tally] = {}
    for row in checks:
        if row.get("server") or row.get("mode") == "replay" or row.get("subject") != "adapters":
            continue
        if row.get("suite") != "stop_sequences" or row.get("outcome") not in ("passed", "failed"):
            continue
        if not set(row.get("clauses") or ()) & _STOPPED_CALL_CLAUSES:
            continue
        observed = [o for o in row.get("observations") or [] if "for stop_sequences=" in str(o)]
        if row.get("outcome") == "failed" and not observed:
            continue  # failed before the stopped call: nothing known of the raw text
        tally = tallies.setdefault(f"{row.get('backend')} (in-process)", _Tally())
        tally.add("stop honoured by the server (text stops before every stop sent)", not observed)
    return tallies


def raw_behaviour(checks: Sequence[Mapping[str, Any]], cassettes: Path | None) -> tuple[list[dict[str, str]],
                                                                                      list[str]]:
    """The behaviour x backend-and-server matrix (cells ``hits of total``) with an interop score per behaviour."""
    tallies = _wire_tallies(cassettes) if cassettes is not None and cassettes.is_dir() else {}
    tallies.update(_engine_tallies(checks))
    columns = list(tallies)
    table = []
    for behaviour, clause in BEHAVIOURS.items():
        cells = {c: tallies[c].counts.get(behaviour) for c in columns}
        judged = [c for c, v in cells.items() if v and v[1]]
        meets = [c for c in judged if cells[c][0] == cells[c][1]]  # type: ignore[index]
        line = {"behaviour": behaviour, "clause": clause,
                "interop": f"{100 * len(meets) / len(judged):.0f}% ({len(meets)}/{len(judged)})" if judged else "-"}
        for c in columns:
            v = cells[c]
            line[c] = f"{v[0]} of {v[1]}" if v and v[1] else "-"
        table.append(line)
    return table, columns


def must_failures(checks: Sequence[Mapping[str, Any]], subject: str = "smolagents") -> tuple[
        list[dict[str, str]], list[dict[str, str]]]:
    """(contract breaks, unjudged): the subject's failed MUST checks, one line per clause and failure message."""
    from harness.reporting.levels import target_of

    breaks: dict[tuple[str, str], dict[str, Any]] = {}
    not_judged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in checks:
        if row.get("subject") != subject or row.get("level") != "must" or row.get("outcome") != "failed":
            continue
        extra = row.get("extra") or {}
        message = " ".join(str(row.get("message") or "failed").split())[:200]
        why = unjudged(row)
        into = not_judged if why else breaks
        for clause in row.get("clauses") or ():
            entry = into.setdefault((str(clause), message), {"clause": str(clause), "failure": message,
                                                             "backends": [], "check": "", "reproduction": ""})
            if why:
                entry["why unjudged"] = why
            target = target_of(row)
            if target not in entry["backends"]:
                entry["backends"].append(target)
            repro = extra.get("reproduction") or []
            if repro and (not entry["reproduction"] or (repro[0].startswith("python") and
                                                        not entry["reproduction"].startswith("python"))):
                entry["reproduction"] = repro[0]
                entry["check"] = f"{row.get('suite')}::{row.get('clause')}"

    def rows(found: Mapping[tuple[str, str], dict[str, Any]]) -> list[dict[str, str]]:
        return [{**e, "backends": ", ".join(e["backends"])} for _, e in sorted(found.items())]

    return rows(breaks), rows(not_judged)


def deliberate_differences(registry: Mapping[str, Any], checks: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every STRICT clause with its reason, and how smolagents' classes fare on it (clauses passed/judged)."""
    from harness.reporting.levels import clause_verdicts

    verdicts = clause_verdicts(checks)
    out = []
    for clause in registry.values():
        if clause.level != "strict":
            continue
        judged = [v for (s, level, _t, c), v in verdicts.items()
                  if s == "smolagents" and level == "strict" and c == clause.id and v != "skipped"]
        smolagents = (f"fails on {judged.count('failed')} of {len(judged)} backends" if judged
                      else "not judged")
        out.append({"clause": clause.id, "level": "STRICT", "this project": clause.sentence,
                    "reason": clause.reason or "-", "smolagents": smolagents})
    return out


__all__ = ["BEHAVIOURS", "deliberate_differences", "must_failures", "raw_behaviour"]
