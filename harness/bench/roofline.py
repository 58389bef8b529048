"""The batch-1 decode roofline: each output token reads every weight once, so tokens/s <= bandwidth / weight bytes.

Memory bandwidth comes from a copy benchmark on CPU (measured here, in this process), and from a
table of published peak figures for known GPUs and Apple chips (a copy benchmark on those needs
their own runtime, and the published peak is what a roofline is drawn against).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# published peak memory bandwidth, GB/s (10^9 bytes/s); the longest matching name wins
GPU_BANDWIDTH_GBS = {
    "H200": 4800, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "GH200": 4000, "B200": 8000,
    "A100-SXM4-80GB": 2039, "A100 80GB PCIe": 1935, "A100": 1555, "A10G": 600, "A10": 600, "L40S": 864,
    "L40": 864, "L4": 300, "T4": 320, "V100": 900, "RTX 4090": 1008, "RTX 3090": 936, "RTX A6000": 768,
}
APPLE_BANDWIDTH_GBS = {
    "Apple M1": 68, "Apple M1 Pro": 200, "Apple M1 Max": 400, "Apple M1 Ultra": 800,
    "Apple M2": 100, "Apple M2 Pro": 200, "Apple M2 Max": 400, "Apple M2 Ultra": 800,
    "Apple M3": 100, "Apple M3 Pro": 150, "Apple M3 Max": 400, "Apple M3 Ultra": 819,
    "Apple M4": 120, "Apple M4 Pro": 273, "Apple M4 Max": 546,
}


@dataclass(frozen=True)
class Bandwidth:
    gb_per_s: float
    source: str  # "copy benchmark (...)" or "published peak for <name>"


def _lookup(name: str, table: Mapping[str, float]) -> tuple[str, float] | None:
    matches = [key for key in table if key.lower() in name.lower()]
    if not matches:
        return None
    best = max(matches, key=len)
    return best, table[best]


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> Bandwidth:
    """Best-of-``repeats`` numpy copy of a buffer larger than any cache; counts bytes read plus bytes written."""
    import numpy as np

    src = np.ones(megabytes * 2**20 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages first
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return Bandwidth(2 * src.nbytes / best / 1e9, f"copy benchmark ({megabytes} MiB numpy copy, best of {repeats})")


def bandwidth_for(hardware: dict[str, Any], device: str) -> Bandwidth:
    """The bandwidth a target on ``device`` (cpu, cuda, metal) is bounded by, on the machine ``hardware`` describes."""
    if device == "cuda" and hardware.get("gpu_name"):
        found = _lookup(hardware["gpu_name"], GPU_BANDWIDTH_GBS)
        if found:
            return Bandwidth(found[1], f"published peak for {found[0]}")
    if device == "metal" and hardware.get("apple_chip"):
        found = _lookup(hardware["apple_chip"], APPLE_BANDWIDTH_GBS)
        if found:
            return Bandwidth(found[1], f"published peak for {found[0]}")
    return copy_bandwidth()


def weight_bytes(model_dir: Path | str) -> int:
    """Bytes of the model's weights as stored (safetensors), read once per decoded token at batch 1."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights to size the roofline by")
    return sum(f.stat().st_size for f in files)


@dataclass(frozen=True)
class Roofline:
    weight_bytes: int
    bandwidth_gb_per_s: float
    bandwidth_source: str
    tokens_per_s: float  # the ceiling

    def percent(self, measured_tokens_per_s: float) -> float:
        return 100.0 * measured_tokens_per_s / self.tokens_per_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def roofline(weights: int, bandwidth: Bandwidth) -> Roofline:
    return Roofline(weights, bandwidth.gb_per_s, bandwidth.source, bandwidth.gb_per_s * 1e9 / weights)


__all__ = ["APPLE_BANDWIDTH_GBS", "GPU_BANDWIDTH_GBS", "Bandwidth", "Roofline", "bandwidth_for", "copy_bandwidth",
           "roofline", "weight_bytes"]
