"""The console-script entry point: registers every command group, then runs the app.

Each ``sync.cli`` module registers its commands on ``sync.cli.app.app`` when imported;
this module imports them all, and nothing imports this module, so the command modules
never import each other.
"""

from __future__ import annotations

import sys

from sync.cli import config_cmds, explain, forecast, ops, reconcile, run, state_cmds
from sync.cli.app import app, closed_pipe
from sync.settings import mask

#: the modules whose import registers commands (kept referenced for the linters)
COMMAND_MODULES = (config_cmds, explain, forecast, ops, reconcile, run, state_cmds)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # outside a command body (help text into `head`)
        closed_pipe()
    except Exception as exc:  # raised outside a command body (guarded() handles theirs)
        print_masked_traceback(exc)
        raise SystemExit(1) from None


def print_masked_traceback(exc: BaseException) -> None:
    """The ``--debug`` traceback with its chained causes, every line through ``mask()``.

    A driver error (psycopg, PyMySQL) may quote the state URL or DSN with its password.
    """
    import traceback

    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(mask(text))
    sys.stderr.flush()


if __name__ == "__main__":
    main()
