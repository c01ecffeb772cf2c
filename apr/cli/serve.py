"""``apr serve``: an APR model behind an OpenAI-compatible API, batched across requests."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from apr.cli.common import fail_cleanly
from apr.serve.loading import DEFAULT_MODEL, load_backend, resolve_model

console = Console(stderr=True)
THREADS_HELP = "torch CPU threads; default: torch's choice. On a busy machine 1 is often much faster."


@fail_cleanly
def serve(
    model: Optional[Path] = typer.Option(None, "--model", help=f"Checkpoint directory (or a training run with "
                                         f"final/). Default: the bundled {DEFAULT_MODEL.name} model."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, min=1, max=65535),
    max_slots: int = typer.Option(32, min=1, help="Sequences decoded together (KV cache rows); "
                                  "more requests queue for a free row."),
    served_model_name: str = typer.Option("apr", help="Model name in /v1/models and requests."),
    cpu_threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
) -> None:
    """Serve POST /v1/completions, GET /v1/models, GET /health and POST /v1/apr/solve on one engine."""
    import uvicorn

    from apr.serve.app import create_app

    path = resolve_model(model)
    backend = load_backend(path, max_slots, cpu_threads)
    console.print(f"serving [bold]{served_model_name}[/] ({path}, context {backend.context_length}, {max_slots} slots) "
                  f"on http://{host}:{port}/v1")
    uvicorn.run(create_app(backend, served_model_name), host=host, port=port, log_level="info")
