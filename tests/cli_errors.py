"""One check for every command line's bad input: it ends as an argparse-style error, not a traceback.

A uniquely named module on the tests' ``pythonpath`` (pyproject.toml), shared by the bad-input tests of every package.
"""

import pytest


def cli_error(capsys, main, argv) -> str:
    """Run ``main(argv)``; assert it ends as an argparse-style error (exit 2, ``error:``, no traceback); return stderr.

    Example:
        >>> assert "`--save`=" in cli_error(capsys, main, ["compress", "--save", "a-file"])  # doctest: +SKIP
    """
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    return err
