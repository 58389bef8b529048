"""Latency that says when it cannot be trusted: the spread of a target's samples judged as pyperf does, the load
recorded, a flagged target measured again and named in the terminal and the report."""

from __future__ import annotations

import time

from harness.bench.stability import MAX_SPREAD, judge, measuring
from harness.reporting.latency import latency_rows, latency_stats, unstable_targets
from harness.results.schema import make_row

CPU = {"label": "Test CPU, 2 cores", "kind": "linux-x86_64-cpu", "cpu_model": "Test CPU", "cpu_cores": 2}


def test_tight_samples_are_trusted_and_wide_ones_are_not():
    tight = [0.0100 + i * 1e-5 for i in range(20)]  # 0.6% spread
    figures, warnings = judge(tight)
    assert warnings == [] and figures["spread"] < MAX_SPREAD
    wide = [0.034, 0.870, 0.676, 0.050, 0.700, 0.040, 0.800, 0.035, 0.650, 0.060]  # the busy run the issue saw
    figures, warnings = judge(wide)
    assert len(warnings) == 2 and "standard deviation" in warnings[0] and "95% interval" in warnings[1]
    assert judge([0.01, 0.9]) == ({"metric": "TPOT", "n": 2}, [])  # too few samples to judge a spread


def test_measuring_records_the_process_cpu_time_against_wall_time():
    with measuring() as conditions:
        start = time.process_time()
        while time.process_time() - start < 0.1:  # 0.1 s of computing, however long a busy machine makes it
            pass
        time.sleep(0.3)
    assert conditions.wall_s >= 0.4
    assert 0.1 <= conditions.process_cpu_s < conditions.wall_s - 0.25  # the sleep took no CPU time
    assert conditions.load_after is not None and conditions.cores >= 1
    assert "CPU s per wall s" in conditions.describe()


def _target(attempts: list[tuple[int, float]], unstable: bool) -> list[dict]:
    rows = []
    for attempt, spread in attempts:
        rows += [make_row("sample", run="r", backend="transformers", suite="bench-latency", clause="s", outcome="ok",
                          hardware=CPU, warmup=False, ttft_s=0.1, tpot_s=0.01 * attempt + i * spread, e2e_s=0.5,
                          extra={"attempt": attempt}) for i in range(10)]
    stability = {"unstable": unstable, "attempts": [
        {"attempt": a, "warnings": ["TPOT standard deviation is 50% of the mean (over 10%)"] if s > 1e-4 else [],
         "conditions": {"cores": 2, "load_before": 7.5, "load_after": 8.0, "machine_busy": 0.99,
                        "process_cpu_s": 1.0, "wall_s": 2.0}} for a, s in attempts]}
    rows.append(make_row("summary", run="r", backend="transformers", suite="bench-latency", clause="s",
                         outcome="ok", hardware=CPU, extra={"stability": stability}))
    return rows


def test_a_target_measured_again_is_judged_by_its_last_measurement_and_named():
    rows = _target([(1, 5e-3), (2, 1e-6)], unstable=False)
    [stats] = latency_stats(rows)
    assert stats["samples"] == 10 and abs(stats["tpot_s"][50].value - 0.02) < 1e-4  # attempt 2's samples only
    [line] = unstable_targets(rows)
    assert line.startswith("transformers (in-process) on Test CPU, 2 cores: unstable at first, trusted when "
                           "measured again. attempt 1: TPOT standard deviation is 50% of the mean (over 10%) "
                           "(load average 8.00 on 2 cores, machine CPU 99% busy, this process 0.50 CPU s per wall s)")
    assert latency_rows(latency_stats(rows))[0]["target"] == "transformers (in-process)"
    still = _target([(1, 5e-3), (2, 5e-3)], unstable=True)
    assert "not to be trusted" in unstable_targets(still)[0]
    assert latency_rows(latency_stats(still))[0]["target"] == "transformers (in-process) (UNSTABLE)"
    assert unstable_targets(_target([(1, 1e-6)], unstable=False)) == []
