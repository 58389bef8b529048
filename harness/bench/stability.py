"""Whether a latency target's figures can be trusted: the machine's load while it ran, and the spread of its samples.

As pyperf warns of an unstable benchmark, a target is flagged when its samples spread too wide: the
standard deviation of the per-request decode time (TPOT; end-to-end where a target has no TPOT) above
``MAX_SPREAD`` of the mean, or the 95% interval of its median wider than ``MAX_INTERVAL`` of the median.
Beside that, the conditions are recorded: the load average before and after, the share of the
machine's CPU time that was busy (Linux ``/proc/stat``), and this process's CPU time against wall time,
so that a reader sees why (another process computing on the same cores shows as load and busy CPU).
A flagged target is measured once more; the warning names both attempts.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_SPREAD = 0.10  # pyperf: "the standard deviation is greater than 10% of the mean"
MAX_INTERVAL = 0.20  # the 95% interval of the median, as a share of the median
MIN_SAMPLES = 3  # below this the spread is not judged (a single request has none)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat; None where there is none."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


@dataclass
class Conditions:
    """The machine while one target was measured."""

    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    load_before: float | None = None
    load_after: float | None = None
    machine_busy: float | None = None  # share of all cores' time that was busy, 0..1
    process_cpu_s: float = 0.0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        from harness.reporting.latency import describe_conditions

        return describe_conditions(self.as_dict())


@contextmanager
def measuring() -> Iterator[Conditions]:
    """Record the load and CPU time around a measured block."""
    conditions = Conditions(load_before=_load())
    jiffies = _cpu_jiffies()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield conditions
    finally:
        conditions.process_cpu_s = round(time.process_time() - cpu, 3)
        conditions.wall_s = round(time.perf_counter() - wall, 3)
        conditions.load_after = _load()
        after = _cpu_jiffies()
        if jiffies and after and after[1] > jiffies[1]:
            conditions.machine_busy = round((after[0] - jiffies[0]) / (after[1] - jiffies[1]), 3)


def judge(values: Sequence[float], metric: str = "TPOT") -> tuple[dict[str, Any], list[str]]:
    """The spread figures of one target's samples and the warnings they call for (none: trusted)."""
    from harness.reporting.stats import percentile_ci

    data = [v for v in values if v is not None]
    figures: dict[str, Any] = {"metric": metric, "n": len(data)}
    if len(data) < MIN_SAMPLES:
        return figures, []
    mean = statistics.fmean(data)
    spread = statistics.stdev(data) / mean if mean > 0 else 0.0
    median = percentile_ci(data, 50)
    width = (median.high - median.low) / median.value if median.value > 0 else 0.0
    figures.update(spread=round(spread, 4), interval=round(width, 4), median_s=median.value,
                   low_s=median.low, high_s=median.high)
    warnings = []
    if spread > MAX_SPREAD:
        warnings.append(f"{metric} standard deviation is {100 * spread:.0f}% of the mean (over "
                        f"{100 * MAX_SPREAD:.0f}%)")
    if width > MAX_INTERVAL:
        warnings.append(f"{metric} p50 95% interval [{1000 * median.low:.1f}, {1000 * median.high:.1f}] ms is "
                        f"{100 * width:.0f}% of the median (over {100 * MAX_INTERVAL:.0f}%)")
    return figures, warnings


__all__ = ["MAX_INTERVAL", "MAX_SPREAD", "Conditions", "judge", "measuring"]
