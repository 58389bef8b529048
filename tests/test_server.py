"""The local server's process lifecycle: no server outlives the harness process that started it.

The server here is a stand-in process (a few lines of http.server answering every GET with 200),
started through LocalOpenAIServer's own start, health check and stop; the model is not loaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PARENT = textwrap.dedent(
    """
    import sys, time, types
    from pathlib import Path
    from harness.servers.local import LocalOpenAIServer

    CHILD = '''
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    '''

    class StandIn(LocalOpenAIServer):
        def command(self):
            return [sys.executable, "-c", CHILD, str(self.port)]

    model = types.SimpleNamespace(name="stand-in", model_dir=Path(sys.argv[1]))
    server = StandIn(model=model, startup_timeout=60).start()
    print(server._process.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited; only its parent (init here) has yet to reap it
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_server_does_not_outlive_a_killed_harness(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, env=env,
                              text=True)
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the stand-in server did not start: {line!r}"
        child = int(line)
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)  # no cleanup of its own can run
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        survived = _alive(child)
        if survived:
            os.kill(child, signal.SIGKILL)
        assert not survived, "the server kept running after the process that started it was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
