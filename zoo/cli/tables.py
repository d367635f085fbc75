"""Tables that stay readable in an 80-column terminal and in a pipe.

No borders and no outer padding: two spaces between columns is all the chrome, so a table needs
only the width of its content (a piped console is 80 columns wide). Columns named in `keep_whole`
(names a user copies into the next command) are not broken while the table fits; the others wrap
at spaces. Commands pick their compact or `--wide` column set and add rows themselves:

    table = compact_table(["name", "INT8", "FP32"], title="zoo: 2 entries", numeric={"INT8", "FP32"},
                          keep_whole={"name"})
    table.add_row("mobilenetv3_act", "74.40", "75.32")
    print_table(console, table)

In a pipe, print_table gives a table its natural width, so a `--wide` table keeps one line a row
for grep and sort instead of folding into the 80 columns rich assumes there.
"""
from __future__ import annotations

from typing import Any, Collection, Iterable, Optional, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table


class CompactTable(Table):
    """A rich Table whose kept-whole columns fold only when the terminal is too narrow for them.

    Kept whole, such a column is as wide as its longest cell; in a terminal narrower than that plus
    the shortest width of every other column, rich would squeeze the others to a letter a line,
    so there the long cells fold instead (still whole, over two lines).
    """

    def __init__(self, *args: Any, keep_whole: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_whole = frozenset(keep_whole)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        kept = [c for c in self.columns if c.header in self.keep_whole]
        for column in kept:
            column.no_wrap = True
        if self.__rich_measure__(console, options).minimum > options.max_width:
            for column in kept:
                column.no_wrap = False
        yield from super().__rich_console__(console, options)


def compact_table(headers: Sequence[str], *, title: Optional[str] = None, numeric: Collection[str] = (),
                  keep_whole: Collection[str] = ()) -> CompactTable:
    """A borderless table with these column headers; `numeric` columns are right-aligned and never wrap."""
    table = CompactTable(title=title, title_justify="left", box=None, pad_edge=False, padding=(0, 1),
                         header_style="bold", title_style="bold", keep_whole=keep_whole)
    for header in headers:
        number = header in numeric
        table.add_column(header, justify="right" if number else "left", no_wrap=number, overflow="fold")
    return table


def print_table(console: Console, table: Table) -> None:
    """Print `table` fitted to the terminal; when output is not a terminal, at no less than its natural width."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(1 << 16), table).maximum
    # console.print(width=) can only narrow the output: a console of the table's own width widens it
    Console(file=console.file, width=max(natural, console.width), highlight=False).print(table)
