"""The comparison report: files written, hardware merged, regressions flagged."""

from __future__ import annotations

import csv
import re
import sys

import pytest

from harness.reporting.report import regressions, write_report
from harness.results.schema import make_row

CPU = {"label": "Test CPU, 2 cores", "kind": "linux-x86_64-cpu", "cpu_model": "Test CPU", "cpu_cores": 2}
GPU = {"label": "Test GPU (80 GiB)", "kind": "linux-x86_64-cuda", "cpu_model": "Test CPU", "cpu_cores": 16,
       "gpu_name": "Test GPU", "gpu_memory_gb": 80}


def _checks(run: str, failing: set[str] = frozenset()) -> list[dict]:
    rows = []
    for subject in ("adapters", "smolagents"):
        for backend in ("openai", "transformers"):
            for clause in ("test_a", "test_b"):
                failed = f"{subject}/{backend}/{clause}" in failing
                rows.append(make_row("check", run=run, backend=backend, subject=subject, suite="demo", clause=clause,
                                     outcome="failed" if failed else "passed", message="boom" if failed else "",
                                     hardware=CPU, mode="replay"))
    return rows


def _samples(run: str, hardware: dict, ttft: float, n: int = 30) -> list[dict]:
    rows = [make_row("sample", run=run, backend="transformers", suite="bench-latency", clause="stream", outcome="ok",
                     hardware=hardware, warmup=True, ttft_s=99.0, tpot_s=99.0, e2e_s=999.0)]
    for i in range(n):
        rows.append(make_row("sample", run=run, backend="transformers", suite="bench-latency", clause="stream",
                             outcome="ok", hardware=hardware, warmup=False, ttft_s=ttft + i * 2e-4,
                             tpot_s=0.01 + i * 1e-5, itl_s=[0.01, 0.011], e2e_s=ttft + 0.3,
                             output_tokens_per_s=30.0, output_tokens=32))
    rows.append(make_row("summary", run=run, backend="transformers", suite="bench-latency", clause="stream",
                         outcome="ok", hardware=hardware,
                         extra={"roofline": {"tokens_per_s": 200.0, "weight_bytes": 1, "bandwidth_gb_per_s": 1,
                                             "bandwidth_source": "test"}}))
    return rows


def test_report_files_plots_and_merged_hardware(tmp_path):
    rows = _checks("r1", {"smolagents/openai/test_b"}) + _samples("r1", CPU, 0.2) + _samples("r2", GPU, 0.02)
    md_path = write_report(rows, tmp_path / "out")
    out = tmp_path / "out"
    md = md_path.read_text()
    html = (out / "report.html").read_text()
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == ["conformance_matrix.png", "latency_tpot.png", "latency_ttft.png", "ours_vs_smolagents.png"]
    assert "src='data:image/png;base64," in html and "plots/" not in html  # self-contained
    with (out / "results.csv").open() as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == len(rows)
    # one latency table, one column per machine; warm-up (99 s) left out of every figure
    section = md.split("### Latency per hardware", 1)[1]
    header = next(line for line in section.splitlines() if line.startswith("| target"))
    assert "Test CPU, 2 cores" in header and "Test GPU (80 GiB)" in header
    # medians written down: TTFT 0.2 + 14.5 * 0.0002 s, TPOT 0.01 + 14.5 * 0.00001 s
    line = next(line for line in section.splitlines() if line.startswith("| transformers"))
    assert [c.strip() for c in line.strip("|").split("|")] == ["transformers (in-process)", "202.9 / 10.1",
                                                               "22.9 / 10.1"]
    assert "99000" not in md
    assert "% of roofline" in md and "49.3% of 200 tok/s" in md  # 1 / 0.010145 s = 98.6 tok/s of 200
    assert "`demo::test_b` on openai: boom" in md  # the smolagents finding
    assert "TTFT" in md and "time to first token" in md  # definitions written in the report


def test_regressions_pass_to_fail_and_latency_outside_the_interval():
    before = _checks("r1") + _samples("r1", CPU, 0.2)
    after = _checks("r2", {"adapters/openai/test_a"}) + _samples("r2", CPU, 0.3)
    changes = regressions(after, before)
    kinds = sorted(c["change"] for c in changes)
    assert kinds == ["REGRESSION: passed -> failed", "REGRESSION: slower TTFT p50", "REGRESSION: slower TTFT p90"]
    assert "demo::test_a" in changes[0]["detail"] or any("demo::test_a" in c["detail"] for c in changes)
    # the same figures again: nothing to flag
    assert regressions(before, before) == []
    # a check that failed before and still fails is no regression
    assert regressions(after, after) == []


def test_report_refuses_nothing_to_plot_gracefully(tmp_path):
    rows = _checks("r1")
    write_report(rows, tmp_path)
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == ["conformance_matrix.png",
                                                                          "ours_vs_smolagents.png"]
    assert "## Latency" not in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("bad", ["{\"schema_version\": 1, \"kind\": \"nope\"}\n"])
def test_cli_names_a_bad_results_file(tmp_path, bad, capsys):
    from harness.cli import main

    path = tmp_path / "bad.jsonl"
    path.write_text(bad)
    assert main(["report", "--results", str(path), "--output-dir", str(tmp_path / "r")]) == 2
    assert "bad.jsonl:1: kind 'nope' is not one of check, sample, summary" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_target_not_measured_is_listed_with_its_reason_not_in_a_figure_column(tmp_path):
    skipped = make_row("summary", run="r1", backend="vllm", suite="bench-latency", clause="stream",
                       outcome="skipped", message="vllm not installed", hardware=CPU)
    md = write_report(_samples("r1", CPU, 0.2) + [skipped], tmp_path).read_text()
    html = (tmp_path / "report.html").read_text()
    assert "- **vllm (in-process)** on Test CPU, 2 cores: not measured (skipped: vllm not installed)" in md
    tables = [block for block in md.split("\n\n") if block.startswith("|")]
    assert tables and not any("vllm" in t for t in tables)  # no row whose cells would sit under other headers
    assert "<td>vllm (in-process)</td>" not in html


def test_every_table_row_has_a_cell_under_every_header(tmp_path):
    from harness.reporting.report import _Doc

    doc = _Doc()
    doc.table([{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    md = doc.markdown(tmp_path)
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["a", "b", "c"]
    assert [c.strip() for c in lines[3].strip("|").split("|")] == ["3", "-", "4"]


def test_a_skip_reason_is_one_line_naming_its_backends_and_a_long_failure_is_an_excerpt(tmp_path):
    rows = [make_row("check", run="r1", backend=b, subject="adapters", suite="faults", clause=c, outcome="skipped",
                     message="Skipped: a fault of bedrock only", hardware=CPU, mode="replay")
            for b in ("openai", "azure") for c in ("test_x", "test_y")]
    rows.append(make_row("check", run="r1", backend="openai", subject="smolagents", suite="faults", clause="test_z",
                         outcome="failed", message="boom " + "x" * 1000 + " END", hardware=CPU, mode="replay"))
    md = write_report(rows, tmp_path).read_text()
    assert "- a fault of bedrock only **on** openai (2), azure (2)" in md
    assert md.count("a fault of bedrock only") == 1 and "Skipped: a fault" not in md  # the heading says it
    finding = next(line for line in md.splitlines() if "test_z" in line)
    assert "boom xxx" in finding and finding.endswith("[...]") and "END" not in finding
    with (tmp_path / "results.csv").open() as fh:
        assert any(r["message"].endswith(" END") for r in csv.DictReader(fh))  # the whole message kept


@pytest.mark.parametrize("markdown", [False, True], ids=["plain", "markdown"])
def test_latency_table_without_tabulate_has_the_same_cells(monkeypatch, markdown):
    """`harness bench latency` prints its table where the report extra (tabulate) is not installed (vllm's venv)."""
    from harness.reporting.latency import latency_table

    rows = _samples("r1", CPU, ttft=0.05)
    with_tabulate = latency_table(rows, markdown=markdown)
    monkeypatch.setitem(sys.modules, "tabulate", None)  # import tabulate now raises ImportError
    without = latency_table(rows, markdown=markdown)

    def cells(text: str) -> list[list[str]]:
        lines = [line for line in text.splitlines() if not set(line) <= set("|-: ")]
        return [[c for c in re.split(r"\s*\|\s*|\s{2,}", line.strip()) if c] for line in lines]

    assert cells(without) == cells(with_tabulate)
    lines = without.splitlines()
    rule = next(line for line in lines if set(line) <= set("|-: ") and "-" in line)
    starts = [m.start() for m in re.finditer(r"-+", rule)]
    for line in lines:  # every cell starts where its column's rule starts: the columns are aligned
        assert all(line[i] != " " and (i == 0 or line[i - 1] == " ") for i in starts if i < len(line)), line
    assert "TTFT" in without.splitlines()[0] or "ttft" in without.splitlines()[0].lower()


def _graded(subject: str, backend: str, clauses: list[str], level: str, outcome: str) -> dict:
    return make_row("check", run="r1", backend=backend, server="transformers-serve", subject=subject, suite="demo",
                    clause="test_" + "_".join(clauses), clauses=clauses, level=level, outcome=outcome,
                    hardware=CPU, mode="replay")


def test_verdict_by_level_shares_of_clauses_and_the_clause_matrix(tmp_path):
    from harness.reporting.levels import clause_matrix, level_headline

    rows = [
        _graded("adapters", "openai", ["a.doc"], "must", "passed"),
        _graded("adapters", "openai", ["a.doc", "b.ours"], "strict", "passed"),
        _graded("adapters", "litellm", ["a.doc"], "must", "passed"),
        _graded("adapters", "litellm", ["a.doc", "b.ours"], "strict", "skipped"),
        _graded("smolagents", "openai", ["a.doc"], "must", "failed"),
        _graded("smolagents", "openai", ["a.doc"], "must", "passed"),  # one failed check fails the clause
        _graded("smolagents", "openai", ["a.doc", "b.ours"], "strict", "failed"),
        _graded("smolagents", "litellm", ["a.doc"], "must", "passed"),
        _graded("smolagents", "litellm", ["a.doc", "b.ours"], "strict", "passed"),
    ]
    o, lt = "openai (transformers-serve)", "litellm (transformers-serve)"
    assert level_headline(rows) == [
        {"subject": "adapters", "level": "MUST", lt: "100% (1/1)", o: "100% (1/1)"},
        {"subject": "adapters", "level": "STRICT", lt: "-", o: "100% (2/2)"},  # only skipped there: not judged
        {"subject": "smolagents", "level": "MUST", lt: "100% (1/1)", o: "0% (0/1)"},
        {"subject": "smolagents", "level": "STRICT", lt: "100% (2/2)", o: "0% (0/2)"},
    ]
    assert clause_matrix(rows, "smolagents") == [
        {"level": "MUST", "clause": "a.doc", lt: "pass", o: "FAIL"},
        {"level": "STRICT", "clause": "a.doc", lt: "pass", o: "FAIL"},
        {"level": "STRICT", "clause": "b.ours", lt: "pass", o: "FAIL"},
    ]
    assert clause_matrix(rows, "adapters")[-1] == {"level": "STRICT", "clause": "b.ours", lt: "skip", o: "pass"}
    report = write_report(rows, tmp_path).read_text(encoding="utf-8")
    assert "## Verdict by level" in report and "### Clauses x backends: smolagents" in report
    assert "0% (0/2)" in report
