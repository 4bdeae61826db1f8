"""The `powdersolve` command line: a thin edge over the Python API.

Each command group lives in its own module with a ``register(group)`` function. Every command
reports :class:`~powdersolve.errors.PowdersolveError` as one line on stderr with its exit code;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

import click

from powdersolve.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, PowdersolveError

#: Modules under powdersolve.cli that register commands, in --help order.
COMMAND_MODULES = ("demo", "simulate", "density", "data", "train", "evaluate", "index", "predict", "flip", "solve")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="powdersolve")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """powdersolve: crystal structures from powder X-ray diffraction."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for _name in COMMAND_MODULES:
    importlib.import_module(f"powdersolve.cli.{_name}").register(cli)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="powdersolve", standalone_mode=False)
    except PowdersolveError as exc:
        if debug:
            raise
        click.echo(f"powdersolve: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("powdersolve: aborted", err=True)
        return 130
    except click.ClickException as exc:
        msg = exc.format_message().replace("\n", " ")
        click.echo(f"powdersolve: error: {msg}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        click.echo("powdersolve: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        click.echo(f"powdersolve: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
                   err=True)
        return EXIT_INTERNAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
