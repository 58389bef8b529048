"""The pytest plugin, run in a throwaway project with ``pytester`` (loaded by its pytest11 entry point)."""

from __future__ import annotations

import json

import pytest

from harness.backends.registry import backend_names

# Two fake backends, registered by the throwaway project's conftest (so the registry of this
# process is never touched): they need no SDK, so --backend accepts them.
FAKE_BACKENDS_CONFTEST = """
from harness.backends.registry import backend

for _name in ("fake-a", "fake-b"):
    backend(_name, extra="fake", modules=(), smolagents_class="FakeModel", kind="http",
            wire_format="openai", settings=lambda target: {})(lambda: None)
"""

SUITE = """
import pytest

def test_plain(backend_name):
    assert backend_name in ("fake-a", "fake-b")

@pytest.mark.parametrize("n", [1, 2])
def test_param(backend_name, n):
    assert n

def test_fails(backend_name):
    assert backend_name == "nobody", "wrong backend"

def test_skips(backend_name):
    pytest.skip("not here")

def test_no_backend():
    pass
"""


# Plugins the throwaway runs do not use; skipping their imports makes each run about 2 s faster.
UNUSED_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:anyio")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``pytest *args`` in a fresh interpreter, so the registry of this process stays untouched."""
    return pytester.runpytest_subprocess(*UNUSED_PLUGINS, *args)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A throwaway project with the fake backends and a suite file, ``test_demo.py``."""
    pytester.makeconftest(FAKE_BACKENDS_CONFTEST)
    pytester.makepyfile(test_demo=SUITE)
    return pytester


def test_unknown_backend_is_a_usage_error_listing_known_backends(pytester):
    result = run(pytester, "--backend=azur")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines if "Known:" in line]
    assert len(lines) == 1, result.errlines
    prefix = "ERROR: 'azur' is not a backend. Known: "
    assert lines[0].startswith(prefix), lines[0]
    listed = lines[0][len(prefix) :].split(", ")
    assert listed[-1] == "all"
    # every backend this process knows (the run may know more if adapters were added meanwhile)
    assert set(backend_names()) <= set(listed[:-1])


def test_bad_mode_is_a_usage_error_listing_modes(pytester):
    result = run(pytester, "--mode", "bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: 'bogus' is not a valid mode. Valid modes are: replay, record, live"])


def test_backend_name_is_parametrised_per_backend_in_the_comma_list(project):
    result = run(project, "--backend=fake-b,fake-a", "-v", "-k", "plain or param or no_backend")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines_random(
        [
            "*test_demo.py::test_plain?fake-b? PASSED*",
            "*test_demo.py::test_plain?fake-a? PASSED*",
            "*test_demo.py::test_param?fake-a-1? PASSED*",
            "*test_demo.py::test_param?fake-b-2? PASSED*",
            "*test_demo.py::test_no_backend PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["model-conformance: backends=fake-b,fake-a subject=adapters mode=replay server=transformers-serve"])


def test_one_backend_gives_one_parametrisation(project):
    result = run(project, "--backend=fake-a", "-k", "plain")
    result.assert_outcomes(passed=1)


def test_missing_cassette_fails_naming_its_path_and_the_record_command(pytester, tmp_path):
    cassettes = tmp_path / "empty-cassettes"
    cassettes.mkdir()
    pytester.makepyfile(
        test_replay="""
        def test_hello(model):
            model([{"role": "user", "content": "Say hello."}])
        """
    )
    result = run(pytester, "--backend=openai", f"--cassette-dir={cassettes}")
    # the conversation as dicts and as smolagents' types: one cassette for both
    result.assert_outcomes(errors=2)
    expected = cassettes / "transformers-serve" / "openai" / "replay" / "test_hello.yaml"
    result.stdout.fnmatch_lines(
        [
            f"*missing cassette {expected}*",
            "*record it with: pytest 'test_replay.py::test_hello[[]openai-dicts[]]' --backend=openai --mode record*",
        ]
    )
    assert not expected.exists()


def test_requires_marker_skips_backends_without_the_capability(pytester):
    pytester.makepyfile(
        test_caps="""
        import pytest

        @pytest.mark.requires("telepathy")
        def test_mind_reading(model):
            raise AssertionError("must not run")
        """
    )
    result = run(pytester, "--backend=openai", "-rs")
    result.assert_outcomes(skipped=2)  # the conversation as dicts and as smolagents' types
    result.stdout.fnmatch_lines(["*openai does not support 'telepathy'*"])


def test_results_file_has_one_json_line_per_check(project, tmp_path):
    results = tmp_path / "out" / "results.jsonl"
    result = run(project, "--backend=fake-a,fake-b", f"--results={results}")
    result.assert_outcomes(passed=7, failed=2, skipped=2)
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    seen = sorted((r["backend"], r["suite"], r["clause"], r["outcome"]) for r in rows)
    expected = sorted(
        (backend, "demo", test, outcome)
        for backend in ("fake-a", "fake-b")
        for test, outcome in [
            ("test_plain", "passed"),
            ("test_param-1", "passed"),
            ("test_param-2", "passed"),
            ("test_fails", "failed"),
            ("test_skips", "skipped"),
        ]
    )
    assert seen == expected  # test_no_backend is no check: it has no backend
    assert len({r["run"] for r in rows}) == 1  # one session, one run id
    for row in rows:
        assert row["schema_version"] == 1 and row["kind"] == "check"
        assert row["subject"] == "adapters" and row["mode"] == "replay"
        assert isinstance(row["duration_s"], float) and row["time"].endswith("Z")
        assert row["hardware"]["cpu_cores"] >= 1 and row["hardware"]["label"]
        assert "pytest" not in row["versions"] and row["ttft_s"] is None  # every key present, unset ones null
        if row["outcome"] == "failed":
            assert "wrong backend" in row["message"]
        if row["outcome"] == "skipped":
            assert "not here" in row["message"]


def test_results_rows_name_the_server_the_cassettes_come_from(project, tmp_path):
    results = tmp_path / "results.jsonl"
    run(project, "--backend=fake-a", "-k", "plain", f"--results={results}")
    run(project, "--backend=fake-a", "-k", "plain", "--server=vllm-serve", f"--results={results}")
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert [r["server"] for r in rows] == ["transformers-serve", "vllm-serve"]


def test_bad_server_is_a_usage_error_listing_servers(pytester):
    result = run(pytester, "--server=vllm")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: 'vllm' is not a server to record from. Valid servers are: "
                                 "transformers-serve, vllm-serve, cloud"])


def test_replay_reads_the_cassettes_of_the_named_server(pytester, tmp_path):
    pytester.makepyfile(
        test_replay="""
        def test_hello(model):
            model([{"role": "user", "content": "Say hello."}])
        """
    )
    result = run(pytester, "--backend=openai", "--server=vllm-serve", f"--cassette-dir={tmp_path}")
    result.assert_outcomes(errors=2)  # dicts and smolagents' types share the one missing cassette
    result.stdout.fnmatch_lines([
        f"*missing cassette {tmp_path / 'vllm-serve' / 'openai' / 'replay' / 'test_hello.yaml'}*",
        "*record it with: pytest * --backend=openai --server=vllm-serve --mode record*",
    ])


def test_a_cloud_backend_records_the_real_service_not_a_local_server(pytester, tmp_path):
    pytester.makepyfile(
        test_record="""
        def test_hello(model):
            raise AssertionError("must not run")
        """
    )
    result = run(pytester, "--backend=azure", "--server=vllm-serve", "--mode=record", "-rs",
                 f"--cassette-dir={tmp_path}")
    result.assert_outcomes(skipped=2)  # dicts and smolagents' types
    result.stdout.fnmatch_lines(["*azure records from the real service in record mode; its vllm-serve cassettes "
                                 "are derived by 'harness derive-cassettes'*"])


def test_results_file_is_appended_to(project, tmp_path):
    results = tmp_path / "results.jsonl"
    for _ in range(2):
        run(project, "--backend=fake-a", "-k", "plain", f"--results={results}")
    assert len(results.read_text(encoding="utf-8").splitlines()) == 2


ENV_PROBE = """
import os

def test_unrelated():
    print("HF_HUB_OFFLINE=" + repr(os.environ.get("HF_HUB_OFFLINE")))
    print("LITELLM_LOCAL_MODEL_COST_MAP=" + repr(os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")))
"""


def test_plugin_leaves_an_unrelated_session_environment_untouched(pytester, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    pytester.makepyfile(test_env=ENV_PROBE)
    result = run(pytester, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*HF_HUB_OFFLINE=None", "LITELLM_LOCAL_MODEL_COST_MAP=None"])


def test_plugin_sets_the_run_environment_for_a_backend_run_and_restores_it(pytester, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "user-value")  # what the user set wins
    pytester.makepyfile(
        test_env="""
        import os

        def test_a_in_run(backend):
            assert os.environ.get("HF_HUB_OFFLINE") == "1"
            assert os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP") == "user-value"

        def test_z_plain():
            pass
        """
    )
    pytester.makeconftest(
        FAKE_BACKENDS_CONFTEST
        + """
import os

def pytest_unconfigure(config):
    print("AFTER HF_HUB_OFFLINE=" + repr(os.environ.get("HF_HUB_OFFLINE")))
    print("AFTER LITELLM_LOCAL_MODEL_COST_MAP=" + repr(os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")))
"""
    )
    result = run(pytester, "--backend=fake-a", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["AFTER HF_HUB_OFFLINE=None", "AFTER LITELLM_LOCAL_MODEL_COST_MAP='user-value'"])


def test_results_rows_are_the_same_under_xdist(project, tmp_path):
    """``pytest -n 2`` writes the rows a serial run writes: workers hand them to the controller."""
    pytest.importorskip("xdist")
    serial, parallel = tmp_path / "serial.jsonl", tmp_path / "parallel.jsonl"
    run(project, "--backend=fake-a,fake-b", f"--results={serial}").assert_outcomes(passed=7, failed=2, skipped=2)
    run(project, "--backend=fake-a,fake-b", "-n", "2", f"--results={parallel}").assert_outcomes(
        passed=7, failed=2, skipped=2)

    def identities(path):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return sorted((r["backend"], r["suite"], r["clause"], r["outcome"], r["message"]) for r in rows)

    assert len(identities(serial)) == 10
    assert identities(parallel) == identities(serial)
