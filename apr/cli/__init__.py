"""The ``apr`` command line: one sub-command group per pipeline stage."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="apr",
    no_args_is_help=True,
    add_completion=False,
    help="Adaptive Parallel Reasoning: data, training, fork-join inference, evaluation and serving.",
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"apr {version('apr')}")
        raise typer.Exit()


@app.callback()
def _root(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                            help="Print the version and exit.")) -> None:
    """Adaptive Parallel Reasoning: data, training, fork-join inference, evaluation and serving."""


def _register() -> None:
    # Imported here so that `apr --help` stays fast and each stage owns its own module.
    from apr.cli import ask, data, export, serve, solve, train
    from apr.cli import eval as eval_cli

    app.add_typer(data.app, name="data")
    app.add_typer(train.app, name="train")
    app.add_typer(export.app, name="export")
    app.command("ask")(ask.ask)
    app.command("solve", context_settings=solve.CONTEXT)(solve.solve)
    app.command("serve")(serve.serve)
    app.command("eval")(eval_cli.eval_cmd)


def main() -> None:
    _register()
    app()
