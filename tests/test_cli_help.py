"""Every command's --help at 80 columns: flags read as flags (no value placeholder), lines fit."""
from __future__ import annotations

import re
from typing import Any, Iterator, List, Tuple

import typer

from zoo.cli.main import app

from .conftest import RUNNER


# click objects, duck-typed: newer typer vendors its own click, older typer uses click itself
def _commands(group: Any, path: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], Any]]:
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, path + (name,))


def _flags(command: Any) -> List[str]:
    return [opt for p in command.params if p.param_type_name == "option" and getattr(p, "is_flag", False)
            and not p.hidden for opt in p.opts]


def test_every_help_shows_flags_without_a_value_and_fits_80_columns() -> None:
    commands = list(_commands(typer.main.get_command(app)))
    assert {"fetch", "list", "reproduce", "export", "eval"} <= {path[0] for path, _ in commands if path}
    checked_flags = 0
    for path, command in commands:
        result = RUNNER.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        text = result.stdout
        assert not re.search(r"<bool>|BOOLEAN|\bbool\b", text, re.IGNORECASE), (path, text)
        assert max(len(line) for line in text.splitlines()) <= 80, (path, text)
        for flag in [*_flags(command), "--help"]:
            # the flag's own line: the flag, maybe its short or long twin, then help text or nothing
            line = next((ln for ln in text.splitlines() if re.search(rf"(^|[ ,]){re.escape(flag)}(\s|,|$)", ln)), None)
            assert line is not None, (path, flag, text)
            after = line.split(flag, 1)[1]
            assert not after.lstrip(", ").startswith(("<", "[", "BOOL", "TEXT")), (path, flag, line)
            checked_flags += 1
    assert checked_flags >= 20  # --json, --force, --resume, --wide, --version ... and every --help
