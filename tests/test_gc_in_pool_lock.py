"""tools/gc_in_pool_lock.py: a collection inside every acquisition of a lock, and a deadline that ends a hung run."""

from __future__ import annotations

import gc
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_tool_gc_in_pool_lock", ROOT / "tools" / "gc_in_pool_lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_acquisition_runs_one_collection_and_none_from_inside_it():
    class Lock:
        entered = 0

        def __enter__(self):
            Lock.entered += 1
            return self

        def __exit__(self, *exc):
            return None

    class Finalised:
        """Garbage that takes the lock again when the collector finalises it (as a forgotten response does)."""

        def __init__(self):
            self.me = self  # a cycle: only the collector frees it

        def __del__(self):
            with Lock():
                pass

    _tool()._collecting_inside(Lock)
    collections: list[str] = []

    def seen(phase, info):
        if phase == "start":
            collections.append(phase)

    collecting = gc.isenabled()
    gc.disable()  # only the collections the tool runs
    gc.callbacks.append(seen)
    try:
        Finalised()
        with Lock():
            pass
    finally:
        gc.callbacks.remove(seen)
        if collecting:
            gc.enable()
    assert Lock.entered == 2  # the lock itself, then the finaliser's (the collection inside it finalised the cycle)
    assert collections == ["start"]  # the finaliser's acquisition ran no collection of its own


def test_a_run_past_its_deadline_prints_the_stacks_and_exits_3(tmp_path):
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gc_in_pool_lock.py"), "--deadline", "3", "--",
                           str(tmp_path), "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 3, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    output = done.stdout + done.stderr
    assert "had not ended after 3 s" in output and "test_slow.py" in output, output[-2000:]
