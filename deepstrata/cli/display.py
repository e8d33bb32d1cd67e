"""Terminal output shared by the CLI and the demo: titled tables, one console.

Off a terminal (CI logs, pipes) rich would squeeze tables into 80 columns;
a wider fixed width keeps them readable there.
"""

from __future__ import annotations

import sys
from functools import cache


@cache
def console():
    from rich.console import Console

    width = None if sys.stdout.isatty() else 120
    return Console(highlight=False, width=width, soft_wrap=False)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich import box
    from rich.table import Table

    # Box-drawing characters read badly in logs: plain columns off a terminal.
    table = Table(box=box.HEAVY_HEAD if sys.stdout.isatty() else None, header_style="bold")
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console().print(title, style="bold")
    console().print(table)
