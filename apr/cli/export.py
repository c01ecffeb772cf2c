"""``apr export``: a checkpoint in another engine's format."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from apr.cli.common import Precision, fail_cleanly

app = typer.Typer(no_args_is_help=True, help="Write a checkpoint in another engine's format.")


@app.command("gguf")
@fail_cleanly
def gguf(
    model: Path = typer.Argument(..., help="Checkpoint folder (e.g. models/apr-cpu)."),
    out: Path = typer.Argument(..., help="GGUF file to write."),
    precision: Precision = typer.Option(Precision.fp32, help="Weights' number format (norms stay fp32)."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer folder (default: the checkpoint's own)."),
) -> None:
    """A GGUF that llama.cpp (llama-server, llama-cpp-python) serves with this project's token ids."""
    from apr.models.gguf import export_gguf
    from apr.tokenizer import checkpoint_tokenizer

    if out.is_dir():
        raise ValueError(f"{out} is a folder: give the GGUF file to write, e.g. {out / (model.name + '.gguf')}")
    written = export_gguf(model, out, checkpoint_tokenizer(model, tokenizer), precision.value)
    size = written.stat().st_size / 2**20
    typer.echo(f"wrote {written} ({size:.1f} MiB, {precision.value}); serve it with "
               f"`llama-server -m {written} --parallel 8 -c {8 * _window(model)}` and pass --backend-url")


def _window(model: Path) -> int:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model).max_position_embeddings
