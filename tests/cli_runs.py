"""Running the command line in process, shared by the command-line tests."""

from __future__ import annotations

from fcnnzoo import cli


def run(capsys, *arguments: object) -> tuple[int, str, str]:
    """Run the command line in process and return (exit code, stdout, stderr)."""
    code = cli.main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_usage_error(code: int, out: str, err: str, *fragments: str) -> None:
    """Check exit code 2, empty stdout and one stderr line, without a traceback, that contains every fragment."""
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fcnnzoo: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
