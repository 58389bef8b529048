"""Run pytest with a full garbage collection inside every acquisition of httpcore's connection-pool lock.

    python tools/gc_in_pool_lock.py [--deadline SECONDS] -- <pytest arguments>

A response left open by a model is closed by the garbage collector whenever it runs; when that happens while
the same thread holds the (non-reentrant) lock of the connection pool the response came from, closing takes the
lock again and the process hangs. Such a hang is rare in a normal run; here every acquisition of that lock runs a
collection, so any forgotten response is finalised there and the hang is certain. With ``--deadline``, the
process prints every thread's stack and exits 3 when the run has not ended by then (a deadlock), so a hang is a
failure and not a stuck job.

    python tools/gc_in_pool_lock.py -- suites -q -p no:randomly --backend=inference-client --server=transformers-serve
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import sys
import threading
from typing import Any


def _collecting_inside(lock_class: Any) -> None:
    """``lock_class.__enter__`` that runs a full collection once the lock is held (not again from inside it)."""
    enter = lock_class.__enter__
    busy = threading.local()

    def entered(self: Any) -> Any:
        held = enter(self)
        if not getattr(busy, "collecting", False):
            busy.collecting = True
            try:
                gc.collect()
            finally:
                busy.collecting = False
        return held

    lock_class.__enter__ = entered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="seconds before the run counts as deadlocked: stacks printed, exit 3 (default: 600)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: the arguments of pytest")
    args = parser.parse_args(argv)
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    if not pytest_args:
        parser.error("give pytest's arguments after --")
    import httpcore._synchronization as synchronization

    _collecting_inside(synchronization.ThreadLock)
    # pytest captures file descriptor 2 during a test: the stacks go to a copy of the terminal's own
    terminal = os.fdopen(os.dup(2), "w")

    def deadlocked() -> None:
        print(f"gc_in_pool_lock: the run had not ended after {args.deadline:g} s (a deadlock?); every thread's "
              "stack:", file=terminal, flush=True)
        faulthandler.dump_traceback(file=terminal, all_threads=True)
        terminal.flush()
        os._exit(3)

    timer = threading.Timer(args.deadline, deadlocked)
    timer.daemon = True
    timer.start()
    import pytest

    code = int(pytest.main(pytest_args))
    timer.cancel()
    return code


if __name__ == "__main__":
    sys.exit(main())
