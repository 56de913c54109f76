"""``zoo``: build the model zoo (argument parsing only)."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from .zoo import ENTRIES, ZooSettings, build_zoo

    parser = argparse.ArgumentParser(prog="zoo", description="Build, evaluate and package the model zoo.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="Build zoo entries (complete ones are reused).")
    build.add_argument("entries", nargs="*", help=f"Entries to build (default: all of {sorted(ENTRIES)}).")
    build.add_argument("--output-dir", default="zoo")
    build.add_argument("--work-dir", default="runs/zoo")
    build.add_argument("--full", action="store_true", help="Paper-sized settings (hours on CPU).")
    build.add_argument("--overrides", default="{}", help='JSON per-entry overrides, e.g. {"alpine-minilm": {...}}.')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = ZooSettings(
        output_dir=args.output_dir, work_dir=args.work_dir, full=args.full, overrides=json.loads(args.overrides)
    )
    try:
        results = build_zoo(args.entries or None, settings)
    except ValueError as error:
        parser.error(str(error))
    for name in results:
        print(f"{name}: {args.output_dir}/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
