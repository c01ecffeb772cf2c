"""``apr serve``: an APR model behind an OpenAI-compatible API, batched across requests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from apr.cli.common import Precision, cpu_threads_option, device_option, dtype_option, fail_cleanly, max_slots_option
from apr.serve.guard import ServePolicy
from apr.serve.loading import DEFAULT_MODEL, load_backend, resolve_model

console = Console(stderr=True)
CAPS = ServePolicy().solve_caps


@fail_cleanly
def serve(
    model: Optional[Path] = typer.Option(None, "--model", help=f"Checkpoint directory (or a training run with "
                                         f"final/). Default: the bundled {DEFAULT_MODEL.name} model."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, min=1, max=65535),
    max_slots: int = max_slots_option(),
    max_step_tokens: int = typer.Option(512, min=4, help="Tokens one engine step may feed: a longer prompt "
                                        "prefills in chunks, so the requests decoding beside it keep their pace."),
    served_model_name: str = typer.Option("apr", help="Model name in /v1/models and requests."),
    cpu_threads: Optional[int] = cpu_threads_option(),
    device: str = device_option(),
    dtype: Precision = dtype_option("fp32"),
    api_key: Optional[str] = typer.Option(None, envvar="APR_API_KEY", help="Require 'Authorization: Bearer KEY' "
                                          "on /v1 routes (as vLLM's --api-key)."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="Serve only requests whose Host header is "
                                           "this (repeat for more; '*.example.com' works). Default: any."),
    max_body_bytes: int = typer.Option(ServePolicy.max_body_bytes, min=1, help="Largest request body accepted."),
    solve_timeout: float = typer.Option(ServePolicy.solve_timeout_s, min=0.001, help="Seconds a /v1/apr/solve "
                                        "may take when its limits set no timeout_s."),
    max_solve_threads: int = typer.Option(CAPS.max_threads, min=1, help="Most threads one solve may ask for."),
    max_solve_tokens: int = typer.Option(CAPS.max_total_tokens, min=1,
                                         help="Most decoded tokens one solve may ask for."),
) -> None:
    """Serve POST /v1/completions and /v1/chat/completions (streaming too), GET /v1/models, GET /health and
    POST /v1/apr/solve on one engine."""
    import uvicorn

    from apr.serve.app import create_app

    caps = dataclasses.replace(CAPS, max_threads=max_solve_threads, max_total_tokens=max_solve_tokens,
                               timeout_s=max(CAPS.timeout_s, solve_timeout))
    policy = ServePolicy(max_body_bytes=max_body_bytes, solve_caps=caps, solve_timeout_s=solve_timeout,
                         api_key=api_key, allowed_hosts=tuple(allowed_host))
    from apr.models.trained_range import trained_range

    path = resolve_model(model)
    backend = load_backend(path, max_slots, cpu_threads, device, max_step_tokens, dtype.value)
    console.print(f"serving [bold]{served_model_name}[/] ({path}, context {backend.context_length}, {max_slots} slots) "
                  f"on http://{host}:{port}/v1" + (" (API key required)" if api_key else ""))
    app = create_app(backend, served_model_name, policy=policy, trained=trained_range(path))
    uvicorn.run(app, host=host, port=port, log_level="info")
