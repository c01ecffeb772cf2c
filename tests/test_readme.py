"""The README's pipeline block, run as written at toy sizes: a fresh clone can follow it to the end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

README = Path(__file__).resolve().parents[1] / "README.md"
TOY = "N=60 MINUTES=0.05 GRPO_MINUTES=0.01 LIMIT=2"


def pipeline_block() -> list[str]:
    """The lines of the bash block under '## The pipeline'."""
    text = README.read_text()
    section = text[text.index("## The pipeline"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines()


def test_the_readme_pipeline_runs_as_written_at_toy_size(tmp_path):
    lines = pipeline_block()
    assert lines[0].startswith("N=") and lines[-1].startswith("apr serve ")  # sizes first, the server last
    script = "\n".join(["set -euo pipefail", TOY, *lines[1:-1]])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    for done in ("runs/apr/final", "runs/sosp/final", "runs/apr-grpo/final"):
        assert (tmp_path / done / "model.safetensors").is_file(), done
    assert (tmp_path / "runs/eval/report.md").is_file()

    with socket_port() as port:
        serve = lines[-1].replace("--port 8000", f"--port {port}").split()
        server = subprocess.Popen([sys.executable, "-m", "apr", *serve[1:]], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "apr serve did not answer /health"
                time.sleep(0.3)
        assert health.json()["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=30)


class socket_port:
    """A free local port, released when the block ends (just before the server binds it)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
