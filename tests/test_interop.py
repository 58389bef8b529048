"""The report as an interop dashboard: raw wire behaviour per backend and server, smolagents' MUST failures with
their reproductions, deliberate differences, the clause x backend plot per subject."""

from __future__ import annotations

import json

import yaml

from harness.reporting.interop import deliberate_differences, must_failures, raw_behaviour
from harness.reporting.report import write_report
from harness.results.schema import make_row

CPU = {"label": "Test CPU, 2 cores", "kind": "linux-x86_64-cpu", "cpu_model": "Test CPU", "cpu_cores": 2}
STOP = "stop honoured by the server (text stops before every stop sent)"
NATIVE = "native tool calls for a request offering tools"
STREAM_USAGE = "usage in a stream that asked for it"
TOOL_FINISH = "finish reason of a native tool call is a tool-call reason"


def _interaction(request: dict, response: str, status: int = 200, uri: str = "http://127.0.0.1:8000/v1/chat/"
                 "completions") -> dict:
    return {"request": {"method": "POST", "uri": uri, "body": json.dumps(request)},
            "response": {"status": {"code": status, "message": "x"}, "body": {"string": response}}}


def _completion(text: str, finish: str = "stop", calls: list | None = None, usage: bool = True) -> str:
    message: dict = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}}
                                 for i in calls]
    body: dict = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if usage:
        body["usage"] = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return json.dumps(body)


def _cassette(root, server: str, backend: str, interactions: list[dict]) -> None:
    folder = root / server / backend / "suite"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_x.yaml").write_text(yaml.safe_dump({"interactions": interactions}))


def test_raw_behaviour_reads_each_server_and_backend_before_any_correction(tmp_path):
    stop = {"messages": [], "stop": ["Sunday"]}
    tools = {"messages": [], "tools": [{"type": "function"}]}
    stream = {"messages": [], "stream": True, "stream_options": {"include_usage": True}}
    chunks = "".join(f"data: {json.dumps(c)}\n\n" for c in [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]) + "data: [DONE]\n\n"
    # a server that ignores stop and writes tool calls as text, one that honours both; streams without usage
    _cassette(tmp_path, "server-a", "openai", [
        _interaction(stop, _completion("Monday, Sunday, Monday")),
        _interaction(stop, _completion("Monday, ")),
        _interaction(tools, _completion('{"name": "f"}')),
        _interaction(stream, chunks)])
    _cassette(tmp_path, "server-b", "openai", [
        _interaction(stop, _completion("Monday, ")),
        _interaction(tools, _completion("", finish="tool_calls", calls=["a", "b"]))])
    # Converse (bedrock): stopSequences and toolConfig read from its own shapes
    converse = json.dumps({"output": {"message": {"content": [{"text": "Mon Sund"}]}}, "stopReason": "end_turn",
                           "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}})
    _cassette(tmp_path, "server-a", "bedrock", [
        _interaction({"messages": [], "inferenceConfig": {"stopSequences": ["Sund"]}}, converse,
                     uri="https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse")])
    table, columns = raw_behaviour([], tmp_path)
    assert columns == ["bedrock (server-a)", "openai (server-a)", "openai (server-b)"]
    by = {line["behaviour"]: line for line in table}
    assert by[STOP] == {**by[STOP], "openai (server-a)": "1 of 2", "openai (server-b)": "1 of 1",
                        "bedrock (server-a)": "0 of 1", "interop": "33% (1/3)"}
    assert by[NATIVE]["openai (server-a)"] == "0 of 1" and by[NATIVE]["openai (server-b)"] == "1 of 1"
    assert by[NATIVE]["interop"] == "50% (1/2)"  # bedrock offered no tools: not judged there
    assert by[STREAM_USAGE]["openai (server-a)"] == "0 of 1" and by[STREAM_USAGE]["openai (server-b)"] == "-"
    assert by[TOOL_FINISH]["openai (server-b)"] == "1 of 1"
    assert by["several native calls in one answer, ids unique"]["openai (server-b)"] == "1 of 1"


def test_raw_behaviour_of_local_engines_from_their_stop_checks():
    def row(outcome: str, observations: list[str], clauses: list[str]) -> dict:
        return make_row("check", run="r", backend="transformers", subject="adapters", suite="stop_sequences",
                        clause="test_x", clauses=clauses, level="strict", outcome=outcome, mode="live",
                        observations=observations, hardware=CPU)

    ran_past = "returned 'Monday, Sund' for stop_sequences=['Sund']; the contract's text is 'Monday, '"
    rows = [row("passed", [ran_past], ["stop.trimmed-client-side"]),
            row("passed", [], ["stop.earliest-completing"]),
            row("passed", [], ["stop.bad-value-is-clear-error"])]  # no stopped call: not a measure of the engine
    table, columns = raw_behaviour(rows, None)
    assert columns == ["transformers (in-process)"]
    assert next(line for line in table if line["behaviour"] == STOP)["transformers (in-process)"] == "1 of 2"


def _must(backend: str, outcome: str, message: str, extra: dict | None = None, subject: str = "smolagents") -> dict:
    return make_row("check", run="r", backend=backend, server="s", subject=subject, suite="message_format",
                    clause="test_string_content", clauses=["messages.string-content"], level="must", outcome=outcome,
                    message=message, mode="replay", hardware=CPU, extra=extra)


def test_must_failures_carry_their_reproduction_and_leave_unjudged_replays_apart():
    line = "python -c \"from smolagents import M; m = M(**{})\""
    rows = [_must("openai", "failed", "TypeError: string indices must be integers",
                  {"reproduction": ["pytest 'x[openai]'"]}),
            _must("litellm", "failed", "TypeError: string indices must be integers",
                  {"reproduction": [line, "pytest 'x[litellm]'"]}),
            _must("azure", "failed", "body.messages[0].content: sent 'a' (str)",
                  {"request_differs": True, "reproduction": ["pytest 'x[azure]'"]}),
            _must("bedrock", "passed", ""),
            _must("openai", "failed", "ours failing is not smolagents'", subject="adapters")]
    breaks, unjudged = must_failures(rows)
    assert breaks == [{"clause": "messages.string-content", "failure": "TypeError: string indices must be integers",
                       "backends": "openai (s), litellm (s)", "check": "message_format::test_string_content",
                       "reproduction": line}]  # a python -c line is preferred to a pytest line
    assert [u["backends"] for u in unjudged] == ["azure (s)"]


def test_the_headline_counts_as_unjudged_what_the_must_list_leaves_apart():
    """A replayed failure of another request than the recorded one is no verdict: the headline and the clause
    matrix leave it out, as the list of MUST failures does, so the two never disagree."""
    from harness.reporting.levels import clause_matrix, level_headline

    rows = [_must("azure", "failed", "body.messages[0].content: sent 'a' (str)",
                  {"request_differs": True, "reproduction": ["pytest 'x[azure]'"]}),
            _must("openai", "failed", "TypeError: string indices must be integers",
                  {"reproduction": ["pytest 'x[openai]'"]}),
            _must("bedrock", "passed", "")]
    breaks, unjudged = must_failures(rows)
    (line,) = level_headline(rows)
    assert line["azure (s)"] == "-" and line["openai (s)"] == "0% (0/1)" and line["bedrock (s)"] == "100% (1/1)"
    failed_in_headline = sum(1 for k, v in line.items() if isinstance(v, str) and v.startswith("0%"))
    assert failed_in_headline == len(breaks) == 1 and len(unjudged) == 1
    (matrix_line,) = clause_matrix(rows, "smolagents")
    assert matrix_line["azure (s)"] == "skip" and matrix_line["openai (s)"] == "FAIL"


def test_deliberate_differences_list_every_strict_clause_with_its_reason():
    from harness.plugin.clauses import Clause

    registry = {"a.doc": Clause("a.doc", "must", "doc", "page", quote="q"),
                "b.ours": Clause("b.ours", "strict", "Ours.", "this project", reason="why we ask it")}
    rows = [make_row("check", run="r", backend=b, server="s", subject="smolagents", suite="d", clause="t",
                     clauses=["b.ours"], level="strict", outcome=o, mode="replay", hardware=CPU)
            for b, o in (("openai", "failed"), ("azure", "failed"), ("litellm", "passed"))]
    assert deliberate_differences(registry, rows) == [
        {"clause": "b.ours", "level": "STRICT", "this project": "Ours.", "reason": "why we ask it",
         "smolagents": "fails on 2 of 3 backends"}]


def test_report_has_the_dashboard_sections_and_a_clause_plot_per_subject(tmp_path, monkeypatch):
    from harness.reporting import report

    monkeypatch.setattr(report, "CASSETTES", tmp_path / "none")
    rows = [_must("openai", "failed", "TypeError: boom", {"reproduction": ["pytest 'x'"]}),
            _must("openai", "passed", "", subject="adapters")]
    text = write_report(rows, tmp_path / "out").read_text(encoding="utf-8")
    assert "### MUST failures of smolagents' classes: 1" in text
    assert "pytest 'x'" in text.replace("\\|", "|")
    plots = sorted(p.name for p in (tmp_path / "out" / "plots").glob("clause_matrix_*.png"))
    assert plots == ["clause_matrix_adapters.png", "clause_matrix_smolagents.png"]
