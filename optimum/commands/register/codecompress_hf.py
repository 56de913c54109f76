# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""``optimum-cli alpine convert``, ``optimum-cli flab prune`` and ``optimum-cli xtc compress``.

``optimum-cli`` imports every module of the ``optimum.commands.register`` namespace package at start-up and registers
the commands listed in its ``REGISTER_COMMANDS`` (optimum 2.x, ``optimum/commands/optimum_cli.py``); this module is
how codecompress-hf joins it, the same way optimum-onnx and optimum-intel do. Keep it that way:

* PEP 420: no ``__init__.py`` in ``optimum/``, ``optimum/commands/`` or ``optimum/commands/register/``, or it would
  shadow the real optimum package;
* light: it runs on every ``optimum-cli`` start, even for ``optimum-cli export``. The arguments and the work live in
  ``alpine_hf.cli``, ``flab_hf.cli`` and ``xtc_hf.cli`` (``add_<command>_arguments`` / ``run_<command>``, shared with
  ``alpine-hf``, ``flab-hf`` and ``xtc-hf``); those modules import only the standard library at the top, but their
  packages import torch and transformers (seconds), so they are loaded from their files without running the
  package ``__init__``, which is imported only when a command runs.
"""

import importlib
import importlib.util
import logging
import os
import sys

from optimum.commands.base import BaseOptimumCLICommand, CommandInfo


def _cli_module(package: str):
    """``<package>.cli``, loaded without running ``<package>/__init__.py`` (unless the package is imported already)."""
    name = f"{package}.cli"
    if name in sys.modules:
        return sys.modules[name]
    if package in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.find_spec(package)  # locates a top-level package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed; reinstall codecompress-hf (`make install`).")
    location = os.path.join(list(spec.submodule_search_locations)[0], "cli.py")
    cli_spec = importlib.util.spec_from_file_location(name, location)
    module = importlib.util.module_from_spec(cli_spec)
    sys.modules[name] = module
    try:
        cli_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class _SharedCommand(BaseOptimumCLICommand):
    """A leaf command whose arguments and work are ``add_<NAME>_arguments`` / ``run_<NAME>`` of ``<PACKAGE>.cli``."""

    PACKAGE = ""
    NAME = ""

    @classmethod
    def parse_args(cls, parser):
        # standalone: also the options the package's own CLI has on its top-level parser (--quiet, ...)
        getattr(_cli_module(cls.PACKAGE), f"add_{cls.NAME}_arguments")(parser, standalone=True)

    def run(self):
        logging.basicConfig(
            level=logging.WARNING if getattr(self.args, "quiet", False) else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
        )
        cli = _cli_module(self.PACKAGE)
        package = importlib.import_module(self.PACKAGE)  # the heavy import, only now that a command runs
        if getattr(package, "cli", None) is not cli:
            package.cli = cli  # the submodule was loaded before its package: bind it as a normal import would
        return getattr(cli, f"run_{self.NAME}")(self.args)


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
