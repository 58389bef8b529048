"""The imports the README and docs show users, and the entry points pyproject.toml declares, all resolve."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
_IMPORT = re.compile(r"^(?:from (?:harness|adapters)[\w.]* import [^\n]+|import (?:harness|adapters)[\w.]*)$", re.M)


def documented_imports() -> list[str]:
    """Every import of this project's packages in a Python block of README.md or docs/*.md."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in _BLOCK.findall(page.read_text(encoding="utf-8")):
            found += _IMPORT.findall(block)
    return found


def test_the_documented_imports_resolve():
    imports = documented_imports()
    # the drop-in adapters, the third-party backend's registration and capture types at least
    assert any(line.startswith("from adapters import") for line in imports), imports
    assert any("backend" in line for line in imports), imports
    done = subprocess.run([sys.executable, "-c", "\n".join(imports)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{imports}\n{done.stderr}"


def test_the_public_api_is_the_contract():
    import harness

    for name in harness.__all__:
        assert getattr(harness, name).__module__.startswith("harness.contract."), name


def test_the_entry_points_load():
    plugin = next(ep for ep in entry_points(group="pytest11") if ep.name == "model_conformance")
    assert plugin.value == "harness.plugin"
    module = plugin.load()
    # the plugin registers one module per job; each of them imports
    for name in module.pytest_plugins:
        __import__(name)
    backends = next(ep for ep in entry_points(group="model_conformance.backends") if ep.name == "builtin")
    assert backends.value == "adapters"
    assert hasattr(backends.load(), "__path__")
