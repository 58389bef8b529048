"""The nightly workflow passes actionlint and zizmor (both offline), and has the jobs the report needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (pip install 'model-conformance[test]')")
    return found


def test_actionlint_finds_nothing():
    result = subprocess.run([_tool("actionlint"), "-config-file", str(ROOT / ".github" / "actionlint.yaml"),
                             str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_offline():
    result = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", str(WORKFLOW)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_job_feeds_the_merged_report():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    producers = {name for name, job in jobs.items() if any("--results=" in str(s.get("run", "")) or
                                                          "bench latency" in str(s.get("run", ""))
                                                          for s in job["steps"])}
    assert producers == {"linux-replay-and-local", "gpu", "apple", "cloud", "properties-nightly"}
    assert set(jobs["report"]["needs"]) == producers and jobs["report"]["if"] == "always()"
    for name in producers - {"cloud"}:
        runs = " ".join(str(s.get("run", "")) for s in jobs[name]["steps"])
        assert "--junitxml=" in runs, f"{name} writes no JUnit XML"
    assert jobs["properties-nightly"]["env"]["HYPOTHESIS_PROFILE"] == "nightly"
    assert "MUTATION_FAIL_UNDER=95" in " ".join(str(s.get("run", "")) for s in jobs["mutation"]["steps"])
    assert "secrets" in str(jobs["cloud"]["env"]) and all(
        "HAS_SECRETS" in str(s.get("if", "")) for s in jobs["cloud"]["steps"])


def test_the_drift_job_compares_the_pinned_environment_with_the_newest():
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["sdk-drift"]
    runs = [str(s.get("run", "")) for s in job["steps"]]
    install = next(r for r in runs if "make install" in r)
    assert "make install\n" in install and "make install VENV=.venv-newest CONSTRAINTS=" in install
    drift = next(r for r in runs if "harness drift run" in r)
    for part in ("--base-python .venv/bin/python", "--new-python .venv-newest/bin/python", "--output-dir drift",
                 "--backend=openai,inference-client,litellm,litellm-router,azure,bedrock"):
        assert part in drift
    # a drift step may not swallow its exit code: it fails on an escape or a pass -> fail
    assert "|| " not in drift
    upload = next(s for s in job["steps"] if "upload-artifact" in str(s.get("uses", "")))
    assert upload["if"] == "always()" and upload["with"]["path"] == "drift/"
