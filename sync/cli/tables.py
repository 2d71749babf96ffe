"""How the CLI prints a table: never a cut or ellipsized cell (issue 16).

rich shrinks a table to the console and ends long cells with "…"; when stdout is a
pipe or a file its console is 80 columns, so ``stocksync report | grep`` saw
``PHON…`` instead of the SKU. Every table the CLI prints goes through
``print_table``.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

#: the console width for a pipe or a file: wider than any row, so the table takes
#: exactly the width its longest cells need (rich pads nothing beyond it)
PIPE_WIDTH = 1_000_000


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` with every cell whole.

    On a terminal, a cell too long for its column wraps (long codes fold) within the
    terminal's width; elsewhere the table is as wide as its longest cells need, one
    line per row.
    """
    for column in table.columns:
        column.overflow = "fold"
    if console.is_terminal:
        console.print(table)
        return
    detected = console._width  # None: follow the file's size (restored as it was)
    console.width = PIPE_WIDTH
    try:
        console.print(table)
    finally:
        console._width = detected
