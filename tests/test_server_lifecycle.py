"""Starting, health-checking and stopping the local servers, and how each one is launched.

The processes here are stand-ins (a few lines of http.server, or a process that exits at once),
started through the servers' own `start`, health check and `stop`; no model is loaded. What each
real server does with its command line is proven by the cassettes recorded from it.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from harness.recording.cassettes import LOCAL_SERVERS, SERVER_LIBRARIES
from harness.servers.catalog import make_server, server_classes
from harness.servers.llama_cpp import PYTHON_VARIABLE, LlamaCppServer, llama_cpp_python
from harness.servers.local import LocalOpenAIServer
from harness.servers.mlx_lm import MlxLmServer

# answers 200 on the paths given after the port, 503 on every other GET
CHILD = """
import http.server, sys
ok = set(sys.argv[2:])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path in ok else 503
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
print("stand-in listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _model(tmp_path: Path) -> types.SimpleNamespace:
    model_dir = tmp_path / "copy"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"chat_template": "t", "eos_token": "<e>"}))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    return types.SimpleNamespace(name="stand-in-model", model_dir=model_dir, gguf=gguf)


def _stand_in(base: type[LocalOpenAIServer], *healthy_paths: str) -> type[LocalOpenAIServer]:
    class StandIn(base):  # type: ignore[valid-type, misc]
        name = f"stand-in-{base.name}"

        def command(self) -> list[str]:
            return [sys.executable, "-c", CHILD, str(self.port), *healthy_paths]

    return StandIn


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat")  # a zombie has exited; only its reaper is missing
    return status.exists() and status.read_text().split()[2] == "Z"


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the processes started through subprocess.Popen by harness.servers.local during the test."""
    import subprocess

    import harness.servers.local

    pids: list[int] = []
    real = subprocess.Popen

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            pids.append(self.pid)

    monkeypatch.setattr(harness.servers.local.subprocess, "Popen", Spy)
    return pids


@pytest.mark.parametrize("base", [LocalOpenAIServer, LlamaCppServer, MlxLmServer])
def test_a_server_that_never_becomes_healthy_is_named_and_leaves_no_process(base, tmp_path, spawned):
    server = _stand_in(base)(model=_model(tmp_path), startup_timeout=1.5)  # every GET answers 503
    with pytest.raises(RuntimeError) as caught:
        server.start()
    message = str(caught.value)
    assert message.startswith(f"stand-in-{base.name} not healthy after 2s on http://127.0.0.1:{server.port}"
                              f"{base.health_path}"), message
    assert "stand-in listening" in message  # the log tail says what the process printed
    assert len(spawned) == 1 and _gone(spawned[0]), "the unhealthy server's process was left running"
    assert not server.running and server._workdir is None


def test_a_server_that_exits_during_startup_is_named_with_its_exit_code(tmp_path, spawned):
    class Exits(LocalOpenAIServer):
        name = "exits-serve"

        def command(self) -> list[str]:
            return [sys.executable, "-c", "import sys; print('no model here', flush=True); sys.exit(3)"]

    server = Exits(model=_model(tmp_path), startup_timeout=60)
    with pytest.raises(RuntimeError, match=r"^exits-serve exited with 3 during startup:\nno model here"):
        server.start()
    assert len(spawned) == 1 and _gone(spawned[0])


@pytest.mark.parametrize(("base", "path"), [(LocalOpenAIServer, "/health"), (LlamaCppServer, "/v1/models"),
                                            (MlxLmServer, "/health")])
def test_each_server_is_ready_when_its_own_health_path_answers_and_stops_with_its_process(base, path, tmp_path,
                                                                                          spawned):
    # llama.cpp's server has no /health: only its /v1/models answers here, and only /health for the others
    server = _stand_in(base, path)(model=_model(tmp_path), startup_timeout=30)
    with server:
        assert server.running
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert len(spawned) == 1 and _gone(spawned[0])
    assert server._workdir is None


def test_every_local_server_has_a_class_and_an_engine_named_in_provenance():
    assert list(server_classes()) == list(LOCAL_SERVERS)
    assert set(SERVER_LIBRARIES) == set(LOCAL_SERVERS)
    with pytest.raises(ValueError, match=r"'llama' is not a local server\. Valid servers are: transformers-serve, "
                                         r"vllm-serve, llama-cpp-serve, mlx-lm-serve"):
        make_server("llama")


def test_llama_cpp_serves_the_linked_gguf_under_the_path_free_name_with_native_tool_calls(tmp_path, monkeypatch):
    python = tmp_path / "python"
    python.write_text("")
    monkeypatch.setenv(PYTHON_VARIABLE, str(python))
    server = LlamaCppServer(model=_model(tmp_path), port=4321)
    server.place_model(tmp_path)
    assert (tmp_path / "stand-in-model.gguf").resolve() == (tmp_path / "model.gguf").resolve()
    command = server.command()
    assert command[:3] == [str(python), "-m", "llama_cpp.server"]
    options = dict(zip(command[3::2], command[4::2]))
    assert options["--model"] == "stand-in-model.gguf"  # relative: no machine path in what the server reports
    assert options["--model_alias"] == "stand-in-model"
    assert options["--chat_format"] == "chatml-function-calling"
    assert (options["--host"], options["--port"]) == ("127.0.0.1", "4321")


def test_llama_cpp_python_names_the_variable_or_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv(PYTHON_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match=f"^{PYTHON_VARIABLE}=.*missing is not a file$"):
        llama_cpp_python()
    monkeypatch.delenv(PYTHON_VARIABLE)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(RuntimeError, match=r"llama-cpp-serve needs llama-cpp-python\[server\]: `make "
                                           r"install-llamacpp`"):
        llama_cpp_python()


def test_mlx_lm_gets_the_copy_with_its_tool_call_parser_named_and_the_shared_copy_untouched(tmp_path):
    model = _model(tmp_path)
    before = (model.model_dir / "tokenizer_config.json").read_text()
    workdir = tmp_path / "work"
    workdir.mkdir()
    server = MlxLmServer(model=model, port=4321)
    server.place_model(workdir)
    served = workdir / "stand-in-model"
    assert (served / "config.json").is_symlink()
    assert (served / "config.json").resolve() == (model.model_dir / "config.json").resolve()
    config = json.loads((served / "tokenizer_config.json").read_text())
    assert config == {"chat_template": "t", "eos_token": "<e>", "tool_parser_type": "json_tools"}
    assert (model.model_dir / "tokenizer_config.json").read_text() == before
    command = server.command()
    assert command[1:4] == ["-m", "mlx_lm", "server"]
    options = dict(zip(command[4::2], command[5::2]))
    assert (options["--model"], options["--host"], options["--port"]) == ("stand-in-model", "127.0.0.1", "4321")


def test_the_suites_build_models_for_llama_cpp_with_text_content_only():
    # the effect on the wire is judged by replaying cassettes/llama-cpp-serve (their requests carry text content)
    from harness.plugin.replay import _server_model_settings

    assert _server_model_settings("llama-cpp-serve") == {"flatten_messages_as_text": True}
    assert [s for s in LOCAL_SERVERS if _server_model_settings(s)] == ["llama-cpp-serve"]
    assert _server_model_settings("cloud") == {}
