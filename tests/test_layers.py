"""The layers of harness/ as pyproject.toml declares them, checked by import-linter (`lint-imports`):
kept by the code as it is, broken by one import that runs up a layer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy(tmp_path: Path) -> Path:
    for name in ("harness", "adapters"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy, not the installed harness
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_layers_are_kept(tmp_path: Path) -> None:
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "harness layers: each imports only from the layers below it KEPT" in done.stdout
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_an_import_up_a_layer_breaks_them(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    types = root / "harness" / "contract" / "types.py"
    # the contract reaching up to the recording layer: the kind of arrow that closed the old circle
    types.write_text(types.read_text() + "\n\ndef _up() -> object:\n"
                     "    from harness.recording.cassettes import load_yaml\n\n    return load_yaml\n")
    done = _lint(root)
    assert done.returncode != 0
    assert "harness layers: each imports only from the layers below it BROKEN" in done.stdout
    assert "harness.contract.types -> harness.recording.cassettes" in done.stdout


def test_the_harness_importing_an_adapter_breaks_them(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    cli = root / "harness" / "cli.py"
    cli.write_text(cli.read_text() + "\n\ndef _adapter() -> object:\n    import adapters.openai\n\n"
                   "    return adapters.openai\n")
    done = _lint(root)
    assert done.returncode != 0
    assert "the harness never imports an adapter" in done.stdout and "BROKEN" in done.stdout
    assert "harness.cli -> adapters.openai" in done.stdout
