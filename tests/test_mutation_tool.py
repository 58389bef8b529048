"""tools/mutation.py's report (scores, timeouts apart, survivors with reasons) and tools/listed_bugs.py's bugs."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_score_leaves_out_timeouts_and_mutants_not_run():
    mutation = _tool("mutation")
    counts = Counter({"killed": 7, "timeout": 1, "survived": 2, "not run": 5})
    assert mutation._score(counts) == 100.0 * 7 / 9  # a timeout has no verdict: never a kill


def test_survivors_reasons_are_read_from_the_docs_table(tmp_path):
    mutation = _tool("mutation")
    doc = tmp_path / "mutation.md"
    doc.write_text("| mutant | why |\n|---|---|\n| `a.x_f__mutmut_1` | E: equivalent |\n"
                   "| not a mutant | text |\n", encoding="utf-8")
    assert mutation._reasons(doc) == {"a.x_f__mutmut_1": "E: equivalent"}


def test_the_report_lists_timeouts_apart_and_each_survivor_with_its_reason(tmp_path, monkeypatch, capsys):
    mutation = _tool("mutation")
    meta = tmp_path / "mutants" / mutation.DEFAULT_BACKENDS.replace(",", "+") / "mutants" / "harness" / "contract" / \
        "model.py.meta"
    meta.parent.mkdir(parents=True)
    name = "harness.contract.model.x_validate_call__mutmut_"
    codes = {f"{name}1": 1, f"{name}2": 0, f"{name}3": 0, f"{name}4": 24}
    meta.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")
    doc = tmp_path / "mutation.md"
    doc.write_text("| `harness.contract.model.x_validate_call__mutmut_2` | W: wording only |\n"
                   "| `harness.contract.model.x_other__mutmut_*` | G: a pattern that matches nothing here |\n",
                   encoding="utf-8")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "REASONS", doc)
    assert mutation.main(["--only", "harness.contract.model", "--report-only", "--fail-under", "34"]) == 1
    out = capsys.readouterr().out
    assert "harness.contract.model             4       1        2       1" in out
    assert "timed out (1" in out and "x_validate_call__mutmut_4" in out.split("timed out")[1].split("\nsurvivors")[0]
    assert "x_validate_call__mutmut_2: W: wording only" in out
    assert "x_validate_call__mutmut_3: NO REASON GIVEN" in out
    assert "harness.contract.model       W 1  ? 1" in out.split("survivors by kind")[1]
    # 1 killed of the 3 with a verdict (the timeout has none): 33.3%
    assert mutation.main(["--only", "harness.contract.model", "--report-only", "--fail-under", "33"]) == 0
    # a survivor given as equivalent (E) leaves the gate's denominator; one of any other kind counts against it
    doc.write_text("| `harness.contract.model.x_validate_call__mutmut_2` | E: no test can tell it |\n"
                   "| `harness.contract.model.x_validate_call__mutmut_3` | U: unreachable |\n", encoding="utf-8")
    capsys.readouterr()
    assert mutation.main(["--only", "harness.contract.model", "--report-only", "--fail-under", "51"]) == 1
    assert mutation.main(["--only", "harness.contract.model", "--report-only", "--fail-under", "50"]) == 0
    assert "harness.contract.model             4       1        2       1        0       0   33.3%    1   50.0%" \
        in capsys.readouterr().out


def test_the_score_without_equivalent_survivors_is_killed_of_the_rest():
    mutation = _tool("mutation")
    counts = Counter({"killed": 18, "survived": 4, "timeout": 3})
    assert mutation._score(counts, 2) == 100.0 * 18 / 20
    assert mutation._score(counts) == 100.0 * 18 / 22
    assert mutation._score(Counter({"survived": 2}), 2) == 0.0  # nothing left to judge is no score, not a division


def test_a_reason_given_for_a_pattern_covers_each_mutant_it_matches():
    mutation = _tool("mutation")
    reasons = {"a.x_f__mutmut_*": "G: a gap", "a.x_f__mutmut_2": "E: its own"}
    assert mutation._reason_for("a.x_f__mutmut_2", reasons) == "E: its own"
    assert mutation._reason_for("a.x_f__mutmut_17", reasons) == "G: a gap"
    assert mutation._reason_for("a.x_g__mutmut_1", reasons) == "NO REASON GIVEN"


def test_a_survivors_kind_is_the_letter_its_reason_starts_with():
    mutation = _tool("mutation")
    assert mutation._kind("E: equivalent") == "E"
    assert mutation._kind("G, judged since by test_x (seen red by hand)") == "G"
    assert mutation._kind("**U**: unreachable") == "U"
    assert mutation._kind("Mutants 1-27: O, the branch ... 39, 40: W, the text") == "mixed"
    assert mutation._kind("NO REASON GIVEN") == "?"
    assert mutation._kind("Either way") == "mixed"  # a word that starts with a kind's letter is not a kind


def test_every_listed_bug_still_applies_to_the_code_once():
    listed = _tool("listed_bugs")
    for bug in listed.BUGS:
        text = (ROOT / bug.path).read_text(encoding="utf-8")
        assert text.count(bug.old) == 1, f"{bug.name}: its text is in {bug.path} {text.count(bug.old)} times"
        assert bug.new != bug.old


def test_the_nightly_matrix_names_every_target_once_and_nothing_else():
    """Each nightly mutation job runs `make mutation MUTATION_ONLY=<its targets>`: a stale name makes the job fail
    for a reason other than the score, and a target left out is never measured."""
    import yaml

    mutation = _tool("mutation")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text(encoding="utf-8"))
    groups = workflow["jobs"]["mutation"]["strategy"]["matrix"]["targets"]
    named = [t for group in groups for t in group.split(",")]
    assert sorted(named) == sorted(mutation.TARGETS), set(named) ^ set(mutation.TARGETS)


def test_each_target_is_judged_by_the_backends_that_run_it_in_a_directory_of_its_own(tmp_path, monkeypatch):
    mutation = _tool("mutation")
    groups = mutation._groups(["adapters.hf", "adapters.bedrock", "harness.wire.converse", "harness.contract.model"],
                              None)
    assert groups == {"inference-client": ["adapters.hf"], "bedrock": ["adapters.bedrock", "harness.wire.converse"],
                      mutation.DEFAULT_BACKENDS: ["harness.contract.model"]}
    assert mutation._groups(["adapters.hf", "adapters.bedrock"], "openai") == {
        "openai": ["adapters.hf", "adapters.bedrock"]}
    # each target's verdicts come from its own group's directory: a run of the same target by another judge
    # (here --backends=openai, which let the mutant survive) is kept apart, and a fresh run of one group
    # leaves the other groups' verdicts in place
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "REASONS", tmp_path / "mutation.md")
    monkeypatch.setattr(mutation, "_run_mutmut", lambda *a, **k: 0)
    name = "adapters.hf.x_f__mutmut_1"
    for group, code in (("openai", 0), ("inference-client", 1), ("bedrock", 1)):
        meta = tmp_path / "mutants" / group / "mutants" / "adapters" / "hf.py.meta"
        meta.parent.mkdir(parents=True)
        meta.write_text(json.dumps({"exit_code_by_key": {name: code}}), encoding="utf-8")
    assert mutation.main(["--only", "adapters.hf", "--report-only", "--fail-under", "100"]) == 0
    assert mutation.main(["--only", "adapters.hf", "--report-only", "--backends", "openai", "--fail-under", "1"]) == 1
    (tmp_path / "cassettes").mkdir()
    for name_ in ("harness", "adapters", "suites"):
        (tmp_path / name_).mkdir()
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    mutation.main(["--only", "adapters.bedrock"])  # a fresh run of the bedrock group (mutmut itself not run)
    assert (tmp_path / "mutants" / "inference-client" / "mutants").is_dir()
    assert not (tmp_path / "mutants" / "bedrock" / "mutants").exists()


def test_a_sample_is_drawn_per_target_reproducibly_and_its_score_has_an_interval():
    mutation = _tool("mutation")
    statuses = {"a": {f"a.x_f__mutmut_{i}": "not run" for i in range(50)},
                "b": {f"b.x_g__mutmut_{i}": "not run" for i in range(3)}}
    drawn = mutation._draw(statuses, 10, seed=5)
    assert len(drawn) == 13 and len(set(drawn)) == 13  # 10 of a, all 3 of b
    assert drawn == mutation._draw(statuses, 10, seed=5) and drawn != mutation._draw(statuses, 10, seed=6)
    low, high = mutation._interval(8, 10)  # Wilson's interval for 8 of 10: [0.490, 0.943]
    assert round(low, 1) == 49.0 and round(high, 1) == 94.3


def test_a_rerun_of_survivors_is_judged_by_the_suites_as_they_are_now_and_refuses_changed_mutated_code(
        tmp_path, monkeypatch, capsys):
    mutation = _tool("mutation")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "REASONS", tmp_path / "mutation.md")
    judged: list[list[str]] = []
    monkeypatch.setattr(mutation, "_run_mutmut", lambda globs, *a, **k: judged.append(globs) or 0)
    (tmp_path / "pyproject.toml").write_text('[tool.mutmut]\nonly_mutate = ["adapters/hf.py"]\n', encoding="utf-8")
    (tmp_path / "cassettes").mkdir()
    sources = {"adapters/hf.py": "A = 1\n", "harness/errors.py": "B = 1\n", "suites/test_x.py": "old\n"}
    for path, text in sources.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    work = mutation._workdir("inference-client")
    meta = work / "mutants" / "adapters" / "hf.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"adapters.hf.x_f__mutmut_1": 1, "adapters.hf.x_f__mutmut_2": 0}
    meta.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")
    # the suites and an unmutated module changed since the copy was made: both are taken again, the survivor judged
    (tmp_path / "suites" / "test_x.py").write_text("new\n", encoding="utf-8")
    (tmp_path / "harness" / "errors.py").write_text("B = 2\n", encoding="utf-8")
    assert mutation.main(["--only", "adapters.hf", "--rerun-survivors"]) == 0
    assert judged == [["adapters.hf.x_f__mutmut_2"]]
    assert (work / "suites" / "test_x.py").read_text(encoding="utf-8") == "new\n"
    assert (work / "harness" / "errors.py").read_text(encoding="utf-8") == "B = 2\n"
    # a mutated module changed: its mutants are not this code's, so nothing is judged
    (tmp_path / "adapters" / "hf.py").write_text("A = 2\n", encoding="utf-8")
    assert mutation.main(["--only", "adapters.hf", "--rerun-survivors"]) == 2
    assert judged == [["adapters.hf.x_f__mutmut_2"]]
    assert "adapters/hf.py changed since" in capsys.readouterr().err


def test_a_survivor_killed_in_another_environment_counts_as_killed_and_is_named(tmp_path, monkeypatch, capsys):
    mutation = _tool("mutation")
    work = tmp_path / "mutants" / mutation.DEFAULT_BACKENDS.replace(",", "+")
    meta = work / "mutants" / "harness" / "contract" / "model.py.meta"
    meta.parent.mkdir(parents=True)
    name = "harness.contract.model.x_validate_call__mutmut_"
    meta.write_text(json.dumps({"exit_code_by_key": {f"{name}1": 1, f"{name}2": 0, f"{name}3": 0, f"{name}4": 0}}),
                    encoding="utf-8")
    # the other environment killed _2 (a survivor here) and _1 (killed here already); _3 survived there too
    (work / "also-.venv-newest.json").write_text(json.dumps(
        {f"{name}1": "killed", f"{name}2": "killed", f"{name}3": "survived"}), encoding="utf-8")
    doc = tmp_path / "mutation.md"
    doc.write_text(f"| `{name}2` | E: said to be equivalent |\n", encoding="utf-8")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "REASONS", doc)
    assert mutation.main(["--only", "harness.contract.model", "--report-only", "--fail-under", "50"]) == 0
    out = capsys.readouterr().out
    assert "harness.contract.model             4       2        2" in out  # _1 and _2 killed, _3 and _4 not
    elsewhere = out.split("killed only in another environment")[1].split("\nsurvivors")[0]
    assert ": 1: .venv-newest 1" in elsewhere and f"{name}2" in elsewhere and f"{name}1" not in elsewhere
    assert "its row says equivalent" in elsewhere  # a kill of a mutant whose row says equivalent is flagged
    assert mutation.main(["--only", "harness.contract.model", "--report-only", "--fail-under", "51"]) == 1


def test_the_other_environment_is_named_by_its_virtual_environment():
    mutation = _tool("mutation")
    assert mutation._environment(".venv-newest/bin/python") == ".venv-newest"
    assert mutation._environment("/usr/bin/python3") == "usr"


def test_the_other_environment_given_by_a_relative_path_is_run_from_each_groups_directory(
        tmp_path, monkeypatch, capsys):
    """The judge runs in a group's work directory, so a relative --also-on (the Makefile's .venv-newest/bin/python)
    is read from where the tool was started; one that is no interpreter is refused before any mutant runs."""
    import os

    mutation = _tool("mutation")
    python = tmp_path / ".venv-newest" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n", encoding="utf-8")
    python.chmod(0o755)
    work = tmp_path / "mutants" / "inference-client"
    meta = work / "mutants" / "adapters" / "hf.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": {"adapters.hf.x_f__mutmut_1": 0}}), encoding="utf-8")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "REASONS", tmp_path / "mutation.md")
    monkeypatch.setattr(mutation, "_refresh", lambda backends: [])
    monkeypatch.setattr(mutation, "_run_mutmut", lambda *a, **k: 0)
    given: list[str] = []
    monkeypatch.setattr(mutation, "_judge_elsewhere", lambda python, *a: given.append(python) or {})
    monkeypatch.chdir(tmp_path)
    assert mutation.main(["--only", "adapters.hf", "--rerun-survivors", "--also-on", ".venv-newest/bin/python"]) == 0
    assert given == [str(python)] and os.path.isabs(given[0])
    try:
        mutation.main(["--only", "adapters.hf", "--rerun-survivors", "--also-on", ".venv-none/bin/python"])
    except SystemExit as stop:
        assert stop.code == 2
    else:
        raise AssertionError("a missing interpreter was not refused")
    assert "--also-on" in capsys.readouterr().err and given == [str(python)]
