"""``zoo``: build the model zoo, rebuild a model card, publish an entry (argument parsing only)."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _parser(entries: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="Build, card and publish the model zoo.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="Build zoo entries (complete ones are reused) with cards and index.")
    build.add_argument("entries", nargs="*", help=f"Entries to build (default: all of {entries}).")
    build.add_argument("--output-dir", default="zoo")
    build.add_argument("--work-dir", default="runs/zoo", help="Stage outputs and checkpoints (builds resume here).")
    build.add_argument("--full", action="store_true", help="Paper-sized settings (hours on CPU).")
    build.add_argument(
        "--overrides",
        default="{}",
        help="JSON budget overrides per key (alpine-minilm, flab, xtc); a nested dict sets a recipe config's fields, "
        'e.g. {"flab": {"humaneval": 20, "prune": {"layers_to_prune": 2}}}.',
    )
    build.add_argument("--quiet", action="store_true", help="No progress bars.")

    card = commands.add_parser("card", help="Rebuild the model card (README.md and plot) of one entry folder.")
    card.add_argument("folder")
    card.add_argument(
        "--repo-id", default=None, help="Hub name the usage snippet loads (default codecompress-hf/ENTRY)."
    )

    publish = commands.add_parser("publish", help="Upload an entry folder to the Hub, or write it into the HF cache.")
    publish.add_argument("folder")
    publish.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub, e.g. codecompress-hf/alpine-minilm.")
    publish.add_argument("--revision", default=None, help="Branch to publish to (default main).")
    publish.add_argument("--private", action="store_true", help="Create the Hub repository as private.")
    publish.add_argument(
        "--to-cache", action="store_true", help="Write into the local HF cache ($HF_HUB_CACHE) instead of uploading."
    )
    publish.add_argument("--cache-dir", default=None, help="Cache folder for --to-cache (default $HF_HUB_CACHE).")
    return parser


def _overrides(text: str) -> dict:
    """``--overrides`` as a mapping of budget key -> mapping of settings (checked against the budgets later)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"`--overrides` is not valid JSON ({error}): {text!r}.") from None
    if not isinstance(value, dict) or not all(isinstance(settings, dict) for settings in value.values()):
        raise ValueError(
            f'`--overrides` must map budget keys to settings, e.g. {{"xtc": {{"samples": 10}}}}, got {text!r}.'
        )
    return value


def main(argv: list[str] | None = None) -> int:
    from .zoo import ENTRIES

    parser = _parser(list(ENTRIES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "build":
        from .zoo import ZooSettings, build_zoo, check_entry_names, check_overrides

        try:
            overrides = check_overrides(_overrides(args.overrides), args.full)
            names = check_entry_names(args.entries) or None
            settings = ZooSettings(args.output_dir, args.work_dir, args.full, overrides, progress=not args.quiet)
        except (ValueError, json.JSONDecodeError) as error:
            parser.error(str(error))
        results = build_zoo(names, settings)
        for name in results:
            print(f"{name}: {args.output_dir}/{name}")
        return 0
    if args.command == "card":
        from .card import write_card

        try:
            write_card(args.folder, repo_id=args.repo_id)
        except (FileNotFoundError, ValueError) as error:
            parser.error(str(error))
        print(f"{args.folder}/README.md")
        return 0
    from .publish import PublishError, publish_to_cache, publish_to_hub

    try:
        if args.to_cache:
            if args.private:
                parser.error("--private applies to Hub uploads, not to --to-cache.")
            revision = publish_to_cache(
                args.folder, args.repo_id, cache_dir=args.cache_dir, ref=args.revision or "main"
            )
        else:
            revision = publish_to_hub(args.folder, args.repo_id, revision=args.revision, private=args.private)
    except PublishError as error:
        print(f"zoo publish: error: {error}", file=sys.stderr)
        return 1
    print(revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
