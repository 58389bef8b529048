"""Servers compared: the same suites replayed from what each local OpenAI-compatible server answered.

Two views, both from things on disk: the check rows (passed / failed / skipped per suite and
server, and the observations seen on one server and not on the other), and the recorded wire
traffic of each server's ``openai`` cassettes (does the server honour ``stop``, return native
tool calls, count usage, stream in chunks), read straight from the cassettes.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.recording.cassettes import LOCAL_SERVERS

WIRE_BACKEND = "openai"  # the plain OpenAI wire: what the server itself sent


def servers_in(checks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The servers the check rows came from, in a stable order (local servers first)."""
    seen = {str(r["server"]) for r in checks if r.get("server")}
    return sorted(seen, key=lambda s: (LOCAL_SERVERS.index(s) if s in LOCAL_SERVERS else len(LOCAL_SERVERS), s))


def suite_table(checks: Sequence[Mapping[str, Any]], servers: Sequence[str]) -> list[dict[str, str]]:
    """Per subject and suite: passed / failed / skipped per server, over every HTTP backend."""
    counts: dict[tuple[str, str], dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for r in checks:
        if r.get("server") in servers:
            counts[(str(r.get("subject")), str(r["suite"]))][str(r["server"])][str(r.get("outcome"))] += 1
    table = []
    for (subject, suite), per_server in sorted(counts.items()):
        line = {"subject": subject, "suite": suite}
        for server in servers:
            c = per_server.get(server)
            line[server] = f"{c['passed']} / {c['failed']} / {c['skipped']}" if c else "-"
        table.append(line)
    return table


def differing_observations(checks: Sequence[Mapping[str, Any]], servers: Sequence[str]) -> list[str]:
    """Observations made on some servers and not on the others, for the same check of the same backend."""
    seen: dict[tuple[str, str, str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in checks:
        if r.get("server") in servers and r.get("outcome") != "skipped":
            key = (str(r.get("subject")), str(r["backend"]), str(r["suite"]), str(r.get("clause") or r.get("test")))
            seen[key][str(r["server"])].update(str(o) for o in r.get("observations") or [])
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for (subject, backend, suite, clause), per_server in seen.items():
        if set(per_server) != set(servers):
            continue  # the check did not run on every server: nothing to compare
        for server in servers:
            others = set().union(*(per_server[s] for s in servers if s != server))
            for text in sorted(per_server[server] - others):
                grouped[(f"{suite}::{clause}", server, text)].append(f"{backend} ({subject})")
    return [f"`{check}` only on **{server}** ({', '.join(where)}): {text}"
            for (check, server, text), where in sorted(grouped.items())]


# -- the recorded wire traffic -------------------------------------------------------------------


def _sse_chunks(text: str) -> list[dict[str, Any]]:
    chunks = []
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            chunks.append(json.loads(line[5:]))
    return chunks


def _body_text(body: Any) -> str:
    value = body.get("string") if isinstance(body, Mapping) else body
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value or "")


def _answer(request: Mapping[str, Any], response_text: str) -> dict[str, Any]:
    """What one chat completion answered: text, tool calls, finish reason, usage, chunk count."""
    if request.get("stream"):
        chunks = _sse_chunks(response_text)
        text, tools, finish, usage = "", 0, None, None
        for chunk in chunks:
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                tools += len(delta.get("tool_calls") or [])
                finish = choice.get("finish_reason") or finish
            usage = chunk.get("usage") or usage
        return {"text": text, "tool_calls": tools, "finish": finish, "usage": usage, "chunks": len(chunks)}
    data = json.loads(response_text)
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    return {"text": message.get("content") or "", "tool_calls": len(message.get("tool_calls") or []),
            "finish": choice.get("finish_reason"), "usage": data.get("usage"), "chunks": None}


def _ratio(hits: int, total: int) -> str:
    return f"{hits} of {total}" if total else "-"


def wire_facts(root: Path, servers: Sequence[str]) -> list[dict[str, str]]:
    """Per server, from its recorded openai cassettes: how it treated stop, tools, usage and streams."""
    import yaml

    facts: dict[str, dict[str, str]] = {}
    for server in servers:
        folder = root / server / WIRE_BACKEND
        if not folder.is_dir():
            continue
        tally: Counter[str] = Counter()
        finishes: Counter[str] = Counter()
        chunk_counts: list[int] = []
        for path in sorted(folder.glob("*/*.yaml")):
            for interaction in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("interactions") or []:
                if interaction["response"]["status"]["code"] != 200:
                    continue
                try:
                    request = json.loads(_body_text(interaction["request"].get("body")) or "{}")
                    answer = _answer(request, _body_text(interaction["response"]["body"]))
                except (json.JSONDecodeError, AttributeError, TypeError):
                    continue
                stops = request.get("stop") or []
                stops = [stops] if isinstance(stops, str) else stops
                if stops:
                    tally["stop"] += 1
                    tally["stop honoured"] += not any(s in answer["text"] for s in stops)
                if request.get("tools"):
                    tally["tools"] += 1
                    tally["native"] += answer["tool_calls"] > 0
                    if answer["tool_calls"]:
                        finishes[str(answer["finish"])] += 1
                if request.get("stream"):
                    tally["streams"] += 1
                    chunk_counts.append(answer["chunks"])
                    if (request.get("stream_options") or {}).get("include_usage"):
                        tally["stream usage asked"] += 1
                        tally["stream usage"] += bool(answer["usage"])
                else:
                    tally["answers"] += 1
                    tally["usage"] += bool(answer["usage"])
        facts[server] = {
            "requests with stop: the text stops before it": _ratio(tally["stop honoured"], tally["stop"]),
            "requests offering tools: native tool_calls returned": _ratio(tally["native"], tally["tools"]),
            "finish_reason of a native tool call": ", ".join(sorted(finishes)) or "-",
            "non-streamed answers with usage": _ratio(tally["usage"], tally["answers"]),
            "streams asking for usage (include_usage) that got it": _ratio(tally["stream usage"],
                                                                           tally["stream usage asked"]),
            "chunks per stream (median)": f"{statistics.median(chunk_counts):g}" if chunk_counts else "-",
        }
    if not facts:
        return []
    names = list(next(iter(facts.values())))
    return [{"recorded behaviour": name, **{s: f[name] for s, f in facts.items()}} for name in names]


def markdown(checks: Sequence[Mapping[str, Any]], cassette_root: Path | None) -> list[str]:
    """The "Servers compared" section, or nothing when the rows come from fewer than two servers."""
    servers = servers_in(checks)
    if len(servers) < 2:
        return []
    lines = ["## Servers compared", "",
             f"The same suites, replayed from what each server answered ({', '.join(servers)}), over every "
             "HTTP backend (azure and bedrock are derived from each server's recordings). "
             "Each cell: passed / failed / skipped checks.", ""]
    lines += _table(suite_table(checks, servers))
    facts = wire_facts(cassette_root, servers) if cassette_root is not None and cassette_root.is_dir() else []
    if facts:
        lines += ["", f"What each server sent, read from its recorded `{WIRE_BACKEND}` cassettes:", ""]
        lines += _table(facts)
    differing = differing_observations(checks, servers)
    lines += ["", "### Observations that differ between the servers", ""]
    lines += [f"- {line}" for line in differing] if differing else ["None: both servers needed the same corrections."]
    return lines + [""]


def _table(rows: Sequence[Mapping[str, str]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    out += ["| " + " | ".join(str(r.get(k, "")).replace("|", "\\|") for k in keys) + " |" for r in rows]
    return out
