import subprocess
import sys

from shared_utils.cli import run_cli
from shared_utils.errors import ConfigError, ModelNotFound, RecordError


def _raises(err):
    def main(argv):
        raise err

    return main


def test_user_errors_are_one_line_and_exit_2(capsys):
    for err in (
        ConfigError("option 'router.mode' must be one of ['kv_anchor', 'token'], got 'tokn'"),
        RecordError("data.jsonl line 3: not valid JSON (Expecting value)"),
        ModelNotFound("cannot load model 'x':\n  not an alias"),
        FileNotFoundError("no such file: a.yaml"),
    ):
        assert run_cli(_raises(err), "prog", []) == 2
        out = capsys.readouterr()
        assert out.out == ""
        lines = out.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("prog: error: ")
        assert "Traceback" not in out.err


def test_bugs_keep_their_traceback():
    import pytest

    with pytest.raises(ZeroDivisionError):
        run_cli(_raises(ZeroDivisionError("bug")), "prog", [])


def test_returns_main_exit_code():
    assert run_cli(lambda argv: None, "prog") == 0
    assert run_cli(lambda argv: 3, "prog") == 3


def test_require_clean_command_runs():
    done = subprocess.run(
        [sys.executable, "-m", "shared_utils.results", "--require-clean", "--allow-dirty"], capture_output=True
    )
    assert done.returncode == 0, done.stderr
