"""The results schema, the latency definitions, percentile intervals and the roofline."""

from __future__ import annotations

import json

import pytest

from harness.bench.latency import figures
from harness.bench.roofline import Bandwidth, bandwidth_for, roofline
from harness.reporting.stats import percentile_cis
from harness.results import schema
from harness.results.schema import FIELDS, SchemaError, append_rows, iter_rows, make_row


def test_row_has_every_field_and_rejects_unknown_ones():
    row = make_row("check", run="r1", backend="openai", clause="test_x", outcome="passed")
    assert set(row) == set(FIELDS)
    assert row["schema_version"] == schema.SCHEMA_VERSION and row["run"] == "r1" and row["server"] is None
    with pytest.raises(SchemaError, match="unknown result field.*latency_ms"):
        make_row("check", run="r1", latency_ms=3)
    with pytest.raises(SchemaError, match="'bogus' is not a row kind. Valid kinds are: check, sample, summary"):
        make_row("bogus", run="r1")


def test_a_row_written_before_clauses_and_level_existed_reads_with_both_null(tmp_path):
    path = tmp_path / "old.jsonl"
    old = {k: v for k, v in make_row("check", run="r", backend="openai", clause="test_x", outcome="passed").items()
           if k not in ("clauses", "level")}
    path.write_text(json.dumps(old) + "\n", encoding="utf-8")
    (row,) = list(iter_rows(path))
    assert set(row) == set(FIELDS) and row["clauses"] is None and row["level"] is None
    assert row["backend"] == "openai" and row["outcome"] == "passed"


def test_reader_names_the_bad_line_and_refuses_newer_versions(tmp_path):
    path = tmp_path / "r.jsonl"
    append_rows(path, [make_row("check", run="r", backend="a", outcome="passed")])
    with path.open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(SchemaError, match=r"r.jsonl:2: not a JSON results line"):
        list(iter_rows(path))
    path.write_text(json.dumps({**make_row("check", run="r"), "schema_version": 99}) + "\n")
    with pytest.raises(SchemaError, match="schema_version 99 is newer"):
        list(iter_rows(path))
    path.write_text("[1, 2]\n")
    with pytest.raises(SchemaError, match="must be a JSON object, got list"):
        list(iter_rows(path))
    with pytest.raises(SchemaError, match="no such results file"):
        list(iter_rows(tmp_path / "missing.jsonl"))


def test_legacy_suite_rows_are_read_as_checks(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"backend": "openai", "subject": "adapters", "mode": "replay", "suite": "streaming",
                                "test": "test_chunks", "outcome": "failed", "message": "boom", "duration_s": 0.1,
                                "observations": [], "time": 1700000000}) + "\n")
    [row] = list(iter_rows(path))
    assert row["kind"] == "check" and row["clause"] == "test_chunks" and row["outcome"] == "failed"
    assert row["schema_version"] == schema.SCHEMA_VERSION


def test_latency_figures_follow_the_vllm_definitions():
    # sent at 10.0; content chunks at 10.5, 10.6, 10.8; stream ends at 11.0; the server reports 5 output tokens
    fig = figures(10.0, [10.5, 10.6, 10.8], 11.0, output_tokens=5, input_tokens=7)
    assert fig["ttft_s"] == pytest.approx(0.5)
    assert fig["e2e_s"] == pytest.approx(1.0)
    assert fig["tpot_s"] == pytest.approx((1.0 - 0.5) / 4)  # (e2e - ttft) / (tokens - 1)
    assert fig["itl_s"] == pytest.approx([0.1, 0.2])
    assert fig["output_tokens_per_s"] == pytest.approx(5.0)
    # no usage reported: one token per content chunk
    assert figures(0.0, [1.0, 2.0], 2.0, None, None)["output_tokens"] == 2
    with pytest.raises(RuntimeError, match="no content"):
        figures(0.0, [], 1.0, 3, 1)


def test_percentiles_and_their_intervals():
    values = [float(v) for v in range(1, 101)]
    est = percentile_cis(values)
    assert est[50].value == pytest.approx(50.5) and est[90].value == pytest.approx(90.1)
    assert est[99].value == pytest.approx(99.01)
    for e in est.values():
        assert e.low <= e.value <= e.high and e.n == 100
    assert 40 < est[50].low < 50.5 < est[50].high < 61  # a 95% interval of the median of 1..100
    assert percentile_cis(values) == est  # seeded: the same report twice
    # past the bootstrap's size limit the order-statistic interval is used; it still brackets the value
    big = percentile_cis([float(v % 1000) for v in range(50_000)])
    assert big[50].low <= 499.5 <= big[50].high and big[50].high - big[50].low < 20


def test_roofline_arithmetic_and_bandwidth_table():
    line = roofline(1_000_000_000, Bandwidth(100.0, "x"))
    assert line.tokens_per_s == pytest.approx(100.0)
    assert line.percent(25.0) == pytest.approx(25.0)
    assert bandwidth_for({"gpu_name": "NVIDIA H100 PCIe"}, "cuda").gb_per_s == 2000  # longest name wins
    assert bandwidth_for({"gpu_name": "NVIDIA H100 80GB HBM3"}, "cuda").gb_per_s == 3350
    assert bandwidth_for({"apple_chip": "Apple M2 Max"}, "metal").gb_per_s == 400


def test_pinned_process_gets_its_own_hardware_label(monkeypatch):
    monkeypatch.setattr(schema.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(schema.os, "cpu_count", lambda: 8)
    hw = schema.hardware_fingerprint()
    assert hw["cpu_cores"] == 1 and hw["cpu_cores_total"] == 8
    assert hw["label"].endswith("1 core (pinned to 1 of 8)")


def test_every_field_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "results-schema.md").read_text()
    assert f"version {schema.SCHEMA_VERSION}" in doc
    assert [k for k in FIELDS if f"| `{k}` |" not in doc] == []
