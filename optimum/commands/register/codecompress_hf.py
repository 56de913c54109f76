# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""``optimum-cli alpine convert``, ``optimum-cli flab prune`` and ``optimum-cli xtc compress``.

``optimum-cli`` imports every module of the ``optimum.commands.register`` namespace package at start-up and registers
the commands listed in its ``REGISTER_COMMANDS`` (optimum 2.x, ``optimum/commands/optimum_cli.py``); this module is
how codecompress-hf joins it, the same way optimum-onnx and optimum-intel do. Keep it that way:

* PEP 420: no ``__init__.py`` in ``optimum/``, ``optimum/commands/`` or ``optimum/commands/register/``, or it would
  shadow the real optimum package;
* light: it runs on every ``optimum-cli`` start, even for ``optimum-cli export``. The arguments and the work live in
  ``alpine_hf.cli``, ``flab_hf.cli`` and ``xtc_hf.cli`` (``add_<command>_arguments`` / ``run_<command>``, shared with
  ``alpine-hf``, ``flab-hf`` and ``xtc-hf``). Their options are derived from the recipe dataclasses, which import
  torch and transformers (seconds), so a subcommand's parser is filled only when that subcommand is parsed or its
  help printed: ``optimum-cli --help`` and ``optimum-cli export ...`` import none of our packages.
"""

import argparse
import importlib
import logging

from optimum.commands.base import BaseOptimumCLICommand, CommandInfo

# the library's errors for bad input (they name the argument); anything else is a bug and keeps its traceback
_USER_ERRORS = (ValueError, OSError)


def fill_parser(parser: argparse.ArgumentParser, package: str, name: str) -> argparse.ArgumentParser:
    """Add the options of ``<package>.cli.add_<name>_arguments`` to ``parser`` (once); imports the package."""
    if not getattr(parser, "_codecompress_filled", False):
        parser._codecompress_filled = True
        cli = importlib.import_module(f"{package}.cli")
        # standalone: also the options the package's own CLI has on its top-level parser (--quiet, ...)
        getattr(cli, f"add_{name}_arguments")(parser, standalone=True)
    return parser


def _fill_lazily(parser: argparse.ArgumentParser, package: str, name: str):
    """Defer :func:`fill_parser` until ``parser`` parses its arguments or prints its help."""
    parse_known_args, format_help, format_usage = parser.parse_known_args, parser.format_help, parser.format_usage

    def filled(method):
        def call(*args, **kwargs):
            fill_parser(parser, package, name)
            return method(*args, **kwargs)

        return call

    parser.parse_known_args = filled(parse_known_args)
    parser.format_help = filled(format_help)
    parser.format_usage = filled(format_usage)


class _SharedCommand(BaseOptimumCLICommand):
    """A leaf command whose arguments and work are ``add_<NAME>_arguments`` / ``run_<NAME>`` of ``<PACKAGE>.cli``."""

    PACKAGE = ""
    NAME = ""

    @classmethod
    def parse_args(cls, parser):
        _fill_lazily(parser, cls.PACKAGE, cls.NAME)

    def run(self):
        logging.basicConfig(
            level=logging.WARNING if getattr(self.args, "quiet", False) else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        cli = importlib.import_module(f"{self.PACKAGE}.cli")
        try:
            return getattr(cli, f"run_{self.NAME}")(self.args)
        except _USER_ERRORS as error:  # `optimum-cli xtc compress: error: ...`, exit code 2, as argparse errors
            self.parser.exit(2, f"{self.parser.prog}: error: {error}\n")


class AlpineConvertCommand(_SharedCommand):
    PACKAGE, NAME = "alpine_hf", "convert"


class FlabPruneCommand(_SharedCommand):
    PACKAGE, NAME = "flab_hf", "prune"


class XTCCompressCommand(_SharedCommand):
    PACKAGE, NAME = "xtc_hf", "compress"


class AlpineCommand(BaseOptimumCLICommand):
    COMMAND = CommandInfo(name="alpine", help="ALPINE adaptive token pruning for BERT/RoBERTa encoders.")
    SUBCOMMANDS = (
        CommandInfo(
            name="convert",
            help="Turn a stock BERT/RoBERTa checkpoint into an ALPINE one (same as `alpine-hf convert`).",
            subcommand_class=AlpineConvertCommand,
        ),
    )


class FlabCommand(BaseOptimumCLICommand):
    COMMAND = CommandInfo(name="flab", help="Flab-Pruner vocabulary/layer/FFN pruning of Qwen2/Qwen3/Llama decoders.")
    SUBCOMMANDS = (
        CommandInfo(
            name="prune",
            help="Prune a model folder (or the embedded smollm2) and save it (same as `flab-hf prune`).",
            subcommand_class=FlabPruneCommand,
        ),
    )


class XTCCommand(BaseOptimumCLICommand):
    COMMAND = CommandInfo(name="xtc", help="XTC layer reduction and 1/2/8-bit quantisation of GPT-2.")
    SUBCOMMANDS = (
        CommandInfo(
            name="compress",
            help="Compress a GPT-2 teacher with XTC (same as `xtc-hf compress`).",
            subcommand_class=XTCCompressCommand,
        ),
    )


REGISTER_COMMANDS = [AlpineCommand, FlabCommand, XTCCommand]
