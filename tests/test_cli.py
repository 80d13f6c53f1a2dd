"""The ``nima-lessons`` entry point and its subcommands."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nima_lessons import cli


def test_without_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("command", cli.SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert f"nima-lessons {command}" in out
    assert "(not available yet)" not in out


def test_console_script_is_installed():
    exe = shutil.which("nima-lessons") or shutil.which(
        "nima-lessons", path=str(__import__("pathlib").Path(sys.executable).parent)
    )
    assert exe, "the nima-lessons console script is not on PATH"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("nima-lessons ")


def test_exit_statuses_are_documented_in_help_and_readme(capsys):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = capsys.readouterr().out
    for status, meaning in cli.EXIT_CODES.items():
        assert f"  {status:>3}  " in help_text
        documented = re.search(rf"^\| {status} \| (.+) \|$", readme, flags=re.MULTILINE)
        assert documented, f"README lists no exit status {status}"
        assert documented.group(1).replace("`", "") == meaning
