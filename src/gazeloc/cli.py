"""The ``gazeloc`` command line: one subcommand per stage; rules call these."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gazeloc.errors import DataFormatError
from gazeloc.ioutil import atomic_write_text

log = logging.getLogger("gazeloc")

Command = Callable[[argparse.Namespace], int]


def _check(args: argparse.Namespace) -> int:
    from gazeloc.io.check import check_datasets

    summary = check_datasets(args.reflacx, args.mimic, args.val_subjects)
    atomic_write_text(args.out, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("data check passed: %s", json.dumps(summary, sort_keys=True))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from gazeloc.synthetic.generate import SynthSettings, generate

    settings = SynthSettings.from_mapping(json.loads(args.settings) if args.settings else {})
    generate(args.out, settings, workers=args.workers)
    return 0


def _realism(args: argparse.Namespace) -> int:
    from gazeloc.synthetic.realism import write_realism

    write_realism(args.reflacx, args.mimic, args.truth, table=args.table, figure=args.figure)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gazeloc",
        description="Eye-tracking localization supervision for chest x-ray classifiers.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "synth",
        help="generate a synthetic REFLACX + MIMIC-CXR-JPG dataset",
        description="Write reflacx/, mimic-cxr-jpg/, ground_truth/, val_subjects.txt and "
        "labeler_dev_reading_ids.txt under OUT. The same settings give byte-identical files.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--settings",
        default="",
        help="JSON object of the config's `synthetic` keys, e.g. '{\"seed\": 1}'",
    )
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.set_defaults(func=_synth)

    p = sub.add_parser(
        "realism",
        help="measure the synthetic dataset's realism (table + figure)",
        description="Gaze and format realism of a generated dataset: a Markdown table and a "
        "PNG of generated images with ellipses and fixations.",
    )
    p.add_argument("--reflacx", type=Path, required=True)
    p.add_argument("--mimic", type=Path, required=True)
    p.add_argument("--truth", type=Path, required=True)
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--figure", type=Path, required=True)
    p.set_defaults(func=_realism)

    p = sub.add_parser(
        "check",
        help="validate REFLACX and MIMIC-CXR-JPG copies",
        description="Read every REFLACX reading and MIMIC-CXR-JPG table, check formats, ids, "
        "splits and the validation-subjects invariant; write a JSON summary.",
    )
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--mimic", type=Path, required=True, help="MIMIC-CXR-JPG root")
    p.add_argument("--val-subjects", type=Path, required=True, help="validation subjects list")
    p.add_argument("--out", type=Path, required=True, help="JSON summary")
    p.set_defaults(func=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except DataFormatError as exc:
        print(f"gazeloc {args.command}: error: {exc}", file=sys.stderr)
        return 2
