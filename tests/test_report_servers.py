"""The servers comparison of the report: counts per server, observations that differ, recorded behaviour."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from harness.reporting.servers import differing_observations, markdown, servers_in, suite_table, wire_facts

SERVERS = ["transformers-serve", "vllm-serve"]


def _row(server, suite, clause, outcome, observations=(), backend="openai", subject="adapters"):
    return {"kind": "check", "backend": backend, "server": server, "subject": subject, "suite": suite,
            "clause": clause, "outcome": outcome, "observations": list(observations)}


ROWS = [
    _row("transformers-serve", "stop_sequences", "test_a", "passed", ["returned 'x, Tuesday' for ['Tues']"]),
    _row("vllm-serve", "stop_sequences", "test_a", "passed"),
    _row("transformers-serve", "stop_sequences", "test_b", "failed", ["same"]),
    _row("vllm-serve", "stop_sequences", "test_b", "passed", ["same"]),
    _row("vllm-serve", "tool_calls", "test_c", "skipped", ["ignored: skipped"]),
    _row(None, "stop_sequences", "test_a", "passed", backend="transformers"),
]


def test_suite_table_counts_each_server_apart():
    table = suite_table(ROWS, SERVERS)
    assert table == [
        {"subject": "adapters", "suite": "stop_sequences",
         "transformers-serve": "1 / 1 / 0", "vllm-serve": "2 / 0 / 0"},
        {"subject": "adapters", "suite": "tool_calls", "transformers-serve": "-", "vllm-serve": "0 / 0 / 1"},
    ]


def test_only_observations_seen_on_one_server_are_listed():
    lines = differing_observations(ROWS, SERVERS)
    assert lines == ["`stop_sequences::test_a` only on **transformers-serve** (openai (adapters)): "
                     "returned 'x, Tuesday' for ['Tues']"]


def test_no_section_from_a_single_server():
    assert markdown([r for r in ROWS if r["server"] != "vllm-serve"], None) == []
    text = "\n".join(markdown(ROWS, None))
    assert "## Servers compared" in text and "| stop_sequences | 1 / 1 / 0 | 2 / 0 / 0 |" in text.replace(
        "| adapters ", "")


def test_four_servers_side_by_side_and_the_report_latency_runs_start_the_servers_it_replays(tmp_path):
    four = ["transformers-serve", "vllm-serve", "llama-cpp-serve", "mlx-lm-serve"]
    rows = [_row(server, "stop_sequences", "test_a", "passed") for server in sorted(four)]
    assert servers_in(rows) == four  # the local servers' own order, not the alphabet's
    text = "\n".join(markdown(rows, None))
    assert "| subject | suite | transformers-serve | vllm-serve | llama-cpp-serve | mlx-lm-serve |" in text
    assert "None: every server needed the same corrections." in text
    from harness.cli import _latency_runs

    runs = _latency_runs(tmp_path / "r.jsonl", 3, "transformers-serve,mlx-lm-serve")
    assert runs and all("--servers=transformers-serve,mlx-lm-serve" in run for run in runs)


def _cassette(path: Path, interactions: list[tuple[dict, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"interactions": [
        {"request": {"body": json.dumps(req)}, "response": {"status": {"code": 200}, "body": {"string": body}}}
        for req, body in interactions]}), encoding="utf-8")


def _completion(text=None, tool_calls=None, finish="stop", usage=True):
    message = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    data = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if usage:
        data["usage"] = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return json.dumps(data)


def _stream(pieces, usage):
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        chunks.append({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def test_wire_facts_read_stop_tools_usage_and_streams_from_the_recordings(tmp_path):
    call = [{"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
    stream = {"stream": True, "stream_options": {"include_usage": True}}
    _cassette(tmp_path / "transformers-serve" / "openai" / "s" / "t.yaml", [
        ({"stop": ["Tues"]}, _completion("Monday, Tues")),  # the stop left in the text: not honoured
        ({"tools": [{}]}, _completion(tool_calls=call, finish="tool_calls")),
        (stream, _stream(["a", "b", "c"], usage=True)),
    ])
    _cassette(tmp_path / "vllm-serve" / "openai" / "s" / "t.yaml", [
        ({"stop": "Tues"}, _completion("Monday, ")),
        ({"tools": [{}]}, _completion("<tool_call>{}</tool_call>", usage=False)),
        (stream, _stream(["abc"], usage=False)),
    ])
    facts = {f["recorded behaviour"]: (f["transformers-serve"], f["vllm-serve"])
             for f in wire_facts(tmp_path, SERVERS)}
    assert facts["requests with stop: the text stops before it"] == ("0 of 1", "1 of 1")
    assert facts["requests offering tools: native tool_calls returned"] == ("1 of 1", "0 of 1")
    assert facts["finish_reason of a native tool call"] == ("tool_calls", "-")
    assert facts["non-streamed answers with usage"] == ("2 of 2", "1 of 2")
    assert facts["streams asking for usage (include_usage) that got it"] == ("1 of 1", "0 of 1")
    assert facts["chunks per stream (median)"] == ("5", "2")  # content chunks, the finish chunk, the usage chunk


def test_a_report_replays_the_http_backends_once_per_server_and_vllm_in_its_environment(monkeypatch):
    import importlib.util

    from harness.cli import suite_runs

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    monkeypatch.setenv("MODEL_CONFORMANCE_VLLM_PYTHON", "/opt/vllm-env/bin/python")
    runs = suite_runs("openai,vllm,transformers", "transformers-serve,vllm-serve", "adapters", "replay",
                      Path("r.jsonl"))
    tails = [(run.cmd[0] == "/opt/vllm-env/bin/python", [a for a in run.cmd if a.startswith(("--backend", "--server"))])
             for run in runs]
    assert tails == [
        (False, ["--backend=openai,transformers", "--server=transformers-serve"]),
        (False, ["--backend=openai", "--server=vllm-serve"]),
        (True, ["--backend=vllm"]),
    ]
    assert {run.lane for run in runs} == {"main"}
    # the report replays from the first server only what make test does (faults at the transport, agents
    # recorded once, the constructor suite sending nothing, the responder's checks answered from the first
    # server's recording): the Makefile's test-suites recipe is the reference
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest-suites:", 1)[1].split("\n\n", 1)[0]
    ignored = [a for a in runs[1].cmd if a.startswith("--ignore")]
    assert sorted(ignored) == sorted(re.findall(r"--ignore=suites/\w+\.py", recipe))
    assert len(re.findall(r"--ignore=", recipe)) == 7
    assert not [a for a in runs[0].cmd if a.startswith("--ignore")]


def test_a_report_runs_a_one_core_engine_beside_the_rest_with_dicts_only(monkeypatch):
    from harness.cli import suite_runs

    monkeypatch.delenv("MODEL_CONFORMANCE_VLLM_PYTHON", raising=False)
    runs = suite_runs("openai,mlx,transformers", "transformers-serve,vllm-serve", "smolagents", "replay",
                      Path("r.jsonl"), beside="mlx", dicts_only="mlx")
    lanes = [(run.lane, [a for a in run.cmd if a.startswith(("--backend", "--server", "--subject"))],
              run.cmd[run.cmd.index("-k") + 1] if "-k" in run.cmd else None) for run in runs]
    assert lanes == [
        ("main", ["--subject=smolagents", "--backend=openai,transformers", "--server=transformers-serve"], None),
        ("main", ["--subject=smolagents", "--backend=openai", "--server=vllm-serve"], None),
        ("beside", ["--subject=smolagents", "--backend=mlx"], "not smolagents_types"),
    ]


def test_a_report_names_a_misspelt_beside_backend():
    from harness.cli import suite_runs
    from harness.contract.errors import HarnessError

    with pytest.raises(HarnessError, match="--beside: 'mlxx' is not a backend"):
        suite_runs("openai", "transformers-serve", "adapters", "replay", Path("r.jsonl"), beside="mlxx")
