"""Options derived from recipe dataclasses: help text is shown as written, whatever characters it holds."""

import argparse
from dataclasses import dataclass, field

from compress_utils.cli_args import add_dataclass_arguments, dataclass_from_args


@dataclass
class _Settings:
    share: float = field(default=0.5, metadata={"help": "Share of the tokens, e.g. 0.5 = 50% (not %(default)s)."})
    fast: bool | None = field(default=None, metadata={"help": "Where it is ~4% faster."})


def test_help_with_a_percent_sign_is_shown_as_written():
    parser = add_dataclass_arguments(argparse.ArgumentParser(), _Settings)
    text = " ".join(parser.format_help().split())  # argparse wraps lines
    assert "e.g. 0.5 = 50% (not %(default)s). (default: 0.5)" in text
    assert "Where it is ~4% faster. (default: automatic)" in text
    assert dataclass_from_args(_Settings, parser.parse_args(["--share", "0.25"])) == _Settings(share=0.25)
