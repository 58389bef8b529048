"""The results schema: one JSON line per suite check or benchmark sample, read by ``harness report``.

Every row carries the same keys (see ``FIELDS`` and docs/results-schema.md); a dimension a row does not
have is ``null``. Suites write ``kind="check"`` rows through the pytest plugin's ``--results``;
benchmarks write ``kind="sample"`` rows (one per measured request, warm-up included and flagged) and
``kind="summary"`` rows (one per target: figures that are not per request, such as the roofline).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.contract.errors import HarnessError

SCHEMA_VERSION = 1

KINDS = ("check", "sample", "summary")

# key -> what it holds; every row has every key (None where it does not apply)
FIELDS: dict[str, str] = {
    "schema_version": "this schema's version (an integer; readers refuse a newer one)",
    "run": "the run's id: every row one command wrote shares it",
    "time": "when the row was written (UTC, ISO 8601)",
    "kind": "check (a suite check), sample (one benchmark request) or summary (per-target benchmark figures)",
    "backend": "backend name from the registry (openai, transformers, ...)",
    "server": "what served the model: a local server (transformers-serve, vllm-serve, llama-cpp-serve, "
              "mlx-lm-serve), 'cloud', or null for an in-process engine or the user's own endpoint "
              "(--base-url: see target)",
    "subject": "adapters (this project's classes) or smolagents (smolagents' own classes)",
    "mode": "replay, record or live: how the check really ran (the user's own model and in-process engines always "
            "run live)",
    "target": "what the run pointed at: endpoint=<url>, server=<local server>, cloud=<url>, cassettes=<server>, "
              "engine=<backend> or model-factory=<pkg.module:attr>; null for benchmarks",
    "endpoint": "the URL the target was reached at, without user info, query or secrets; null in replay and "
                "in-process",
    "answered_by": "who answered the check's requests: target, cassette, responder (recorded-reply responder), "
                   "fault-injector, fake or none (nothing sent); null for benchmarks",
    "suite": "the suite (file stem under suites/) or the benchmark's name (bench-latency, ...)",
    "clause": "the check (test name without the backend id) or the benchmark's case",
    "clauses": "the contract clauses the check enforces (ids of suites/clauses.yaml, list); null for benchmarks",
    "level": "the level the check is graded at: must, should or strict (the strictest of its clauses); null for "
             "benchmarks",
    "outcome": "passed, failed or skipped for checks; ok or error for samples and summaries",
    "message": "why it failed or was skipped, or the sample's error; empty otherwise",
    "observations": "what the backend returned that the contract had to correct (list of strings)",
    "duration_s": "wall time of the check or of the whole request, seconds",
    "ttft_s": "time to first token, seconds (streamed samples)",
    "tpot_s": "time per output token after the first, seconds",
    "itl_s": "inter-token latencies: the gaps between successive streamed chunks, seconds (list)",
    "e2e_s": "end-to-end latency of the request, seconds",
    "output_tokens_per_s": "output tokens / end-to-end latency",
    "input_tokens": "prompt tokens",
    "output_tokens": "generated tokens",
    "warmup": "true for a warm-up sample (kept for the record, left out of every statistic)",
    "model": "the model's id",
    "versions": "installed versions of the libraries that matter (dict)",
    "hardware": "the machine: label, cpu_model, cpu_cores, memory_gb, gpu_name, gpu_memory_gb, apple_chip, os",
    "extra": ("anything else the writer wants kept (dict): a latency target's `roofline` and `stability` (each "
              "attempt's spread, load and warnings), a latency sample's `attempt`, a suite check's `backend_reached` "
              "(whether it reached the backend's wire or engine), a failed check's `reproduction` (smolagents' "
              "classes) and `request_differs` (replay answered with the recording of another request), and "
              "`unjudged` (why a failed check judged no clause: its subject's requests could not be captured)"),
}
# extra keys of a failed check row that is no verdict on its clauses (written by the pytest plugin, read by the report)
REQUEST_DIFFERS = "request_differs"
UNJUDGED = "unjudged"


class SchemaError(HarnessError, ValueError):
    """A results file that is not in this schema."""


def _versions() -> dict[str, str]:
    from harness.backends.registry import library_versions

    return library_versions()  # every registered backend's libraries, third-party ones included


def hardware_kind() -> str:
    """A short name for this machine's kind, e.g. ``linux-x86_64-cpu`` or ``darwin-arm64-metal``."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    accel = "cpu"
    if _gpu()[0]:
        accel = "cuda"
    if system == "darwin" and machine == "arm64":
        accel = "metal"
    return f"{system}-{machine}-{accel}"


def _sysctl(name: str) -> str | None:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string") or platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    if sys.platform == "darwin":
        size = _sysctl("hw.memsize")
        return round(int(size) / 2**30, 1) if size and size.isdigit() else None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


@lru_cache(maxsize=1)
def _gpu() -> tuple[str | None, float | None]:
    """The first CUDA device's name and memory, through torch when it is installed."""
    import importlib.util

    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        return None, None
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return str(props.name), round(props.total_memory / 2**30, 1)
    except Exception:  # a broken CUDA install describes itself as no GPU
        pass
    return None, None


def cpu_cores() -> int:
    """The cores this process may run on (fewer than the machine's when pinned with taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def hardware_fingerprint() -> dict[str, Any]:
    """This machine as the report names it: a label plus the facts it is made of."""
    gpu_name, gpu_memory = _gpu()
    apple_chip = _sysctl("machdep.cpu.brand_string") if sys.platform == "darwin" else None
    cores, total = cpu_cores(), os.cpu_count() or 1
    cpu = _cpu_model()
    if gpu_name:
        label = f"{gpu_name} ({gpu_memory:g} GiB)"
    elif apple_chip and apple_chip.startswith("Apple"):
        label = f"{apple_chip} (Metal)"
    else:
        label = f"{cpu}, {cores} core{'s' if cores != 1 else ''}"
    if cores != total:
        label += f" (pinned to {cores} of {total})"
    return {
        "label": label,
        "kind": hardware_kind(),
        "cpu_model": cpu,
        "cpu_cores": cores,
        "cpu_cores_total": total,
        "memory_gb": _memory_gb(),
        "gpu_name": gpu_name,
        "gpu_memory_gb": gpu_memory,
        "apple_chip": apple_chip,
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
    }


def new_run_id() -> str:
    """A run id: UTC time and a short hash of the host, so runs on two machines never share one."""
    host = hashlib.sha1(platform.node().encode()).hexdigest()[:6]
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{host}"


def make_row(kind: str, *, run: str, context: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A complete row: every key of ``FIELDS``, the ones not given set to None.

    ``context`` carries what every row of a run shares (model, versions, hardware); ``fields`` the row's own.
    """
    if kind not in KINDS:
        raise SchemaError(f"{kind!r} is not a row kind. Valid kinds are: {', '.join(KINDS)}")
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise SchemaError(f"unknown result field(s): {', '.join(sorted(unknown))}. Known: {', '.join(FIELDS)}")
    row: dict[str, Any] = dict.fromkeys(FIELDS)
    row.update(context or {})
    row.update(fields)
    row.update(schema_version=SCHEMA_VERSION, run=run, kind=kind)
    if row["time"] is None:
        row["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return row


def run_context(model: str | None = None) -> dict[str, Any]:
    """What every row of one run on this machine shares."""
    return {"model": model, "versions": _versions(), "hardware": hardware_fingerprint()}


def append_rows(path: Path | str, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Append rows to a JSON Lines results file in one write, so concurrent writers never interleave a line."""
    from harness.contract.secrets import scrub_text

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a message or observation may quote a provider that echoed a key: redacted before it is written
    text = scrub_text("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    return out


def _upgrade(row: dict[str, Any], where: str) -> dict[str, Any]:
    """A row in this schema: legacy suite rows (before versioning) are mapped, newer versions refused."""
    version_ = row.get("schema_version")
    if version_ is None:  # the plugin's rows before the schema was versioned
        if "backend" not in row or "outcome" not in row:
            raise SchemaError(f"{where}: not a results row (no schema_version, backend or outcome)")
        legacy = {k: v for k, v in row.items() if k in FIELDS}
        legacy["clause"] = row.get("test")
        return make_row("check", run=str(row.get("run") or "legacy"), **{k: v for k, v in legacy.items()
                                                                          if k not in ("run", "kind")})
    if not isinstance(version_, int) or version_ > SCHEMA_VERSION:
        raise SchemaError(f"{where}: schema_version {version_!r} is newer than this harness reads "
                          f"({SCHEMA_VERSION}); upgrade model-conformance")
    if row.get("kind") not in KINDS:
        raise SchemaError(f"{where}: kind {row.get('kind')!r} is not one of {', '.join(KINDS)}")
    if len(row) < len(FIELDS):  # written before a key was added (clauses, level): every row has every key
        return {**dict.fromkeys(FIELDS), **row}
    return row


def iter_rows(path: Path | str) -> Iterator[dict[str, Any]]:
    """The rows of one results file, validated."""
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: no such results file")
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"{p}:{n}: not a JSON results line ({exc.msg})") from None
            if not isinstance(row, dict):
                raise SchemaError(f"{p}:{n}: a results line must be a JSON object, got {type(row).__name__}")
            yield _upgrade(row, f"{p}:{n}")


def load_results(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Every row of every file, in order."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(iter_rows(path))
    return rows


__all__ = ["FIELDS", "KINDS", "SCHEMA_VERSION", "SchemaError", "append_rows", "cpu_cores", "hardware_fingerprint",
           "hardware_kind", "iter_rows", "load_results", "make_row", "new_run_id", "run_context"]
