"""The ``gazeloc`` command line: one subcommand per stage; rules call these."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from gazeloc import gpus
from gazeloc.config import ConfigError
from gazeloc.errors import DataFormatError, NonFiniteLossError
from gazeloc.ioutil import DiskFullError, atomic_write_text
from gazeloc.labeler.rules_io import MODES as LABELER_MODES
from gazeloc.provenance import git_commit, version

log = logging.getLogger("gazeloc")

Command = Callable[[argparse.Namespace], int]
GPU_COMMANDS = ("train", "evaluate")
"""The commands of the rules that take the `gpu` resource: each holds a GPU slot
(gazeloc.gpus.job_slot) from start to end when the workflow runs it locally."""


def _check(args: argparse.Namespace) -> int:
    from gazeloc.datacheck import check_datasets

    summary = check_datasets(
        args.reflacx,
        args.mimic,
        args.val_subjects,
        phases=args.phases,
        images=not args.no_images,
        on_bad_image=args.on_bad_image,
        verify_checksums=args.verify_checksums,
        max_errors=args.max_errors,
    )
    atomic_write_text(args.out, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("data check passed: %s", json.dumps(summary, sort_keys=True))
    return 0


def _fingerprint(args: argparse.Namespace) -> int:
    from gazeloc.inputs import fingerprints, write_fingerprints

    parts = fingerprints(args.reflacx, args.mimic, args.phases, args.shards)
    changed = write_fingerprints(parts, args.out_dir)
    log.info("input fingerprints: %d parts, %d written", len(parts), len(changed))
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


def _image_list(args: argparse.Namespace) -> int:
    from gazeloc.images.index import write_image_list

    write_image_list(args.mimic, args.reflacx, args.out)
    return 0


def _index(args: argparse.Namespace) -> int:
    from gazeloc.images.index import write_index

    write_index(
        args.images,
        args.mimic,
        args.reflacx,
        args.val_subjects,
        args.out,
        args.counts_csv,
        args.counts_md,
        uncertain_as=args.uncertain_as,
        blank_as=args.blank_as,
        dedupe_reflacx=args.dedupe_reflacx,
    )
    return 0


def _shard(args: argparse.Namespace) -> int:
    import polars as pl

    from gazeloc.images.shards import write_shard

    write_shard(
        pl.read_parquet(args.images),
        args.mimic,
        args.out,
        args.skipped,
        shard=args.shard,
        n_shards=args.shards,
        size=args.size,
        compression=args.compression,
        dct_scaling=args.dct_scaling == "true",
        on_bad_image=args.on_bad_image,
        workers=args.workers,
    )
    return 0


def _shard_merge(args: argparse.Namespace) -> int:
    from gazeloc.images.shards import merge_shards

    merge_shards(args.shards, args.skipped, args.manifest, args.skipped_out)
    return 0


def _train(args: argparse.Namespace) -> int:
    import torch

    from gazeloc.experiments import parse_runtime_options
    from gazeloc.train.loop import train

    settings = json.loads(args.settings)
    training = settings.setdefault("training", {})
    training.update(parse_runtime_options(args.runtime))
    if args.workers is not None:
        training["workers"] = args.workers
    torch.set_num_threads(max(1, args.threads))
    train(
        settings,
        index=args.index,
        manifest=args.manifest,
        heatmaps=args.heatmaps,
        ellipses=args.ellipses,
        out_dir=args.out_dir,
        seed=args.seed,
        progress=not args.no_progress,
        stop_after_steps=args.stop_after_steps,
        weights=args.weights,
        weights_check=args.weights_check,
        data_roots=dict(item.partition("=")[::2] for item in args.data_roots),
    )
    return 0


def _check_weights(args: argparse.Namespace) -> int:
    from gazeloc.weights import check_record

    record = check_record(args.file, args.expect or None, args.source)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    log.info("%s: sha256 %s", args.file, record["sha256"])
    return 0


def _fetch_weights(args: argparse.Namespace) -> int:
    from gazeloc.weights import IMAGENET_FILES, fetch

    backbones = list(IMAGENET_FILES) if args.all else args.backbone
    for backbone in backbones:
        path = fetch(backbone, progress=not args.no_progress)
        print(f"{backbone}: {path}")
    return 0


def _label(args: argparse.Namespace) -> int:
    from gazeloc.labeler.reports import write_labels

    write_labels(args.reflacx, args.phase, args.out, args.reports_out, mode=args.mode)
    return 0


def _label_eval(args: argparse.Namespace) -> int:
    from gazeloc.labeler.evaluate import write_labeler_table

    write_labeler_table(
        args.reflacx,
        args.dev_ids,
        args.csv,
        args.md,
        phase=args.phase,
        min_certainty=args.gold_min_certainty,
        modes=args.modes,
    )
    return 0


def _window_method(text: str) -> str:
    from gazeloc.gaze.windows import parse_method

    try:
        parse_method(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _heatmaps(args: argparse.Namespace) -> int:
    from gazeloc.gaze.stage import HeatmapSettings, write_heatmaps

    settings = HeatmapSettings(
        method=args.method,
        window_end=args.window_end,
        sigma_degrees=args.sigma_degrees,
        size=args.size,
    )
    write_heatmaps(
        args.reflacx,
        args.phase,
        args.labels,
        args.val_subjects,
        args.out,
        settings,
        workers=args.workers,
    )
    return 0


def _ellipses(args: argparse.Namespace) -> int:
    from gazeloc.gaze.stage import write_ellipses

    write_ellipses(
        args.reflacx, args.phase, args.val_subjects, args.out, size=args.size, workers=args.workers
    )
    return 0


def _location_extraction(args: argparse.Namespace) -> int:
    from gazeloc.gaze.location import write_location_extraction

    if not len(args.phases) == len(args.labels) == len(args.ellipses):
        raise SystemExit("gazeloc location-extraction: one --labels and --ellipses per phase")
    write_location_extraction(
        args.reflacx,
        args.phases,
        args.labels,
        args.ellipses,
        args.val_subjects,
        args.csv,
        args.md,
        args.details,
        args.figure,
        size=args.size,
        sigma_degrees=args.sigma_degrees,
        window_end=args.window_end,
        first_delays=args.first_delays,
        second_delays=args.second_delays,
        method=args.method,
        workers=args.workers,
    )
    return 0


def _figure1(args: argparse.Namespace) -> int:
    from gazeloc.gaze.figure import write_figure1
    from gazeloc.gaze.stage import HeatmapSettings

    if len(args.phases) != len(args.labels):
        raise SystemExit("gazeloc figure1: one --labels per phase")
    settings = HeatmapSettings(
        method=args.method,
        window_end=args.window_end,
        sigma_degrees=args.sigma_degrees,
        size=args.size,
    )
    write_figure1(
        args.reflacx,
        args.mimic,
        dict(zip(args.phases, args.labels, strict=True)),
        args.out,
        settings,
        reading_ids=args.readings,
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from gazeloc.evaluate.run import EvalOptions, evaluate_splits, write_split
    from gazeloc.metrics import REFERENCE_THRESHOLDS

    splits = list(dict.fromkeys(args.split))
    if args.out is not None and len(splits) != 1:
        raise SystemExit("gazeloc evaluate: --out takes one split; use --out-dir for several")
    torch.set_num_threads(max(1, args.threads))
    options = EvalOptions(
        thresholds=tuple(args.thresholds) if args.thresholds else REFERENCE_THRESHOLDS,
        sources=tuple(args.sources),
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        progress=not args.no_progress,
    )
    results = evaluate_splits(
        args.model,
        index=args.index,
        manifest=args.manifest,
        ellipses=args.ellipses,
        splits=splits,
        options=options,
        experiment=args.experiment,
        seed=args.seed,
    )
    for split, result in results.items():
        out = args.out if args.out is not None else args.out_dir / f"{split}.parquet"
        write_split(result, out)
        log.info(
            "%s: %d metric rows, %d image rows, %d reading rows -> %s (and beside it)",
            split,
            result.metrics.height,
            result.images.height,
            result.readings.height,
            out,
        )
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _items(paths: Sequence[Path]) -> tuple[Any, Any]:
    """The test per-item tables beside the test metrics files among ``paths``."""
    from gazeloc.evaluate.run import IMAGE_SCHEMA, READING_SCHEMA, item_paths, read_items

    tests = [p for p in paths if p.name == "test.parquet"]
    pairs = [item_paths(p) for p in tests]
    return (
        read_items([a for a, _ in pairs], IMAGE_SCHEMA),
        read_items([b for _, b in pairs], READING_SCHEMA),
    )


def _tables(args: argparse.Namespace) -> int:
    import polars as pl

    from gazeloc.evaluate.run import read_metrics
    from gazeloc.report.tables import write_selection, write_tables
    from gazeloc.report.workflow import tables_options

    metrics = read_metrics(args.metrics)
    experiments = args.experiments or metrics["experiment"].unique(maintain_order=True).to_list()
    info = json.loads(args.experiment_info) if args.experiment_info else {}
    if args.selection_only:
        path = write_selection(
            metrics, args.out_dir / "selection.csv", experiments=experiments, source=args.source
        )
        log.info("tables: %s", path)
        return 0
    images = readings = None
    if args.bootstrap:
        images, readings = _items(args.metrics)
    interrater = pl.read_csv(args.interrater) if args.interrater else None
    written = write_tables(
        metrics,
        args.out_dir,
        experiments=experiments,
        ci_method=args.ci_method,
        source=args.source,
        selection=not args.no_selection,
        images=images,
        readings=readings,
        bootstrap_samples=args.bootstrap_samples,
        interrater=interrater,
        provenance=[_model_provenance(path) for path in args.models],
        **tables_options(info, experiments),
    )
    log.info("tables: %s", ", ".join(str(p) for p in written.values()))
    return 0


def _comparisons(args: argparse.Namespace) -> int:
    from gazeloc.evaluate.run import read_metrics
    from gazeloc.report.tables import write_comparisons

    metrics = read_metrics(args.metrics)
    experiments = args.experiments or metrics["experiment"].unique(maintain_order=True).to_list()
    pairs = []
    for item in args.pairs:
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise SystemExit(f"gazeloc comparisons: --pairs takes A:B, not {item!r}")
        pairs.append((a, b))
    images, readings = _items(args.metrics)
    path = write_comparisons(
        metrics,
        images,
        readings,
        args.out_dir,
        pairs=pairs,
        experiments=experiments,
        source=args.source,
        bootstrap_samples=args.bootstrap_samples,
    )
    log.info("comparisons: %s", path)
    return 0


def _interrater(args: argparse.Namespace) -> int:
    from gazeloc.report.interrater import write_interrater

    write_interrater(args.ellipses, args.csv, args.md, args.bootstrap_samples)
    return 0


def _report_tables(args: argparse.Namespace) -> int:
    from gazeloc.report.html import write_html_tables

    for path in write_html_tables(args.markdown, args.out_dir):
        print(path)
    return 0


def _model_provenance(path: Path) -> dict[str, object]:
    """A ``model.pt``'s run and provenance (for summary.md)."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    return {
        "experiment": payload.get("experiment"),
        "seed": payload.get("seed"),
        **{
            k: payload.get(k, "unknown")
            for k in ("weights_sha256", "gazeloc_version", "git_commit")
        },
    }


def _figures(args: argparse.Namespace) -> int:
    import polars as pl

    from gazeloc.report.figures import figure4, iou_bars, learning_curves, roc_curves

    if args.learning_curves:
        if not args.train_logs:
            raise SystemExit("gazeloc figures: --learning-curves needs --train-logs")
        logs: dict[str, dict[int, pl.DataFrame]] = {}
        for path in args.train_logs:
            seed = path.parent.name.removeprefix("seed")
            if not seed.isdigit():
                raise SystemExit(
                    f"gazeloc figures: {path}: a train log lies in {{experiment}}/seed{{N}}/"
                )
            frame = pl.read_csv(path, infer_schema_length=None)
            missing = [c for c in ("epoch", "loss", "val_auc") if c not in frame.columns]
            if missing:
                raise SystemExit(f"gazeloc figures: {path}: no column {missing[0]!r}")
            logs.setdefault(path.parent.parent.name, {})[int(seed)] = frame
        order = args.experiments or list(logs)
        learning_curves({e: logs[e] for e in order if e in logs}, args.learning_curves)
    if args.roc:
        if not args.images:
            raise SystemExit("gazeloc figures: --roc needs --images")
        from gazeloc.evaluate.run import IMAGE_SCHEMA, read_items

        images = read_items(args.images, IMAGE_SCHEMA)
        experiments = args.experiments or images["experiment"].unique(maintain_order=True).to_list()
        roc_curves(images, args.roc, experiments)
    if args.iou_bars:
        if not args.iou_table:
            raise SystemExit("gazeloc figures: --iou-bars needs --iou-table")
        table = pl.read_csv(args.iou_table)
        experiments = args.experiments or table["experiment"].unique(maintain_order=True).to_list()
        iou_bars(table, args.iou_bars, experiments)
    if args.figure4:
        missing = [
            n for n in ("selection", "manifest", "ellipses", "models") if not getattr(args, n)
        ]
        if missing:
            raise SystemExit(f"gazeloc figures: --figure4 needs --{missing[0]}")
        models = {}
        for item in args.models:
            name, sep, path = item.partition("=")
            if not sep:
                raise SystemExit(f"gazeloc figures: --models takes EXPERIMENT=PATH, not {item!r}")
            models[name] = path
        selection = pl.read_csv(
            args.selection,
            schema_overrides={
                "experiment": pl.String,
                "source": pl.String,
                "label": pl.String,
                "threshold": pl.Float64,
                "val_iou": pl.Float64,
                "reported": pl.Boolean,
            },
        )
        figure4(
            selection,
            models,
            manifest=args.manifest,
            ellipses=args.ellipses,
            out=args.figure4,
            n_images=args.n_images,
            seed=args.seed,
            device=args.device,
        )
    return 0


class _Version(argparse.Action):
    """``--version``: the package version and the commit of its checkout (computed lazily)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"gazeloc {version()} (commit {git_commit()})")
        parser.exit()


def _predict(args: argparse.Namespace) -> int:
    import torch

    from gazeloc.predict import PredictOptions, predict

    torch.set_num_threads(max(1, args.threads))
    options = PredictOptions(
        source=args.source,
        selection=str(args.selection) if args.selection else None,
        min_probability=args.min_probability,
        all_labels=args.all_labels,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        strict=args.strict,
        overlay_size=args.overlay_size,
        progress=not args.no_progress,
    )
    summary = predict(args.model, args.images, args.out, options)
    print(f"{summary['images']} images, {summary['skipped']} skipped -> {args.out}")
    print(summary["source_note"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gazeloc",
        description="Eye-tracking localization supervision for chest x-ray classifiers. "
        "The subcommands are listed in pipeline order.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging, and the traceback of an unexpected error on a terminal too",
    )
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="print the version and git commit and exit"
    )
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
    p.add_argument(
        "--phases", type=int, nargs="*", help="REFLACX phases used (default: those present)"
    )
    p.add_argument("--no-images", action="store_true", help="do not open the MIMIC images")
    p.add_argument(
        "--on-bad-image",
        choices=("fail", "skip"),
        default="fail",
        help="a bad image is an error (fail) or a warning (skip: the shards leave it out)",
    )
    p.add_argument(
        "--verify-checksums",
        action="store_true",
        help="compare each image with the SHA256SUMS.txt at the MIMIC-CXR-JPG root",
    )
    p.add_argument(
        "--max-errors", type=int, default=50, help="stop listing problems after this many"
    )
    p.add_argument("--out", type=Path, required=True, help="JSON summary")
    p.set_defaults(func=_check)

    p = sub.add_parser(
        "fingerprint",
        help="stat-based fingerprints of the dataset parts each stage reads",
        description="Write OUT_DIR/<part>.json (file count, bytes, SHA-256 of the sorted "
        "(path, size, mtime) list) for the MIMIC tables, each image shard's JPEGs, the REFLACX "
        "metadata tables and each REFLACX phase's reading folders. Only stat calls.",
    )
    p.add_argument("--reflacx", type=Path, required=True)
    p.add_argument("--mimic", type=Path, required=True)
    p.add_argument("--phases", type=int, nargs="+", required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=_fingerprint)

    p = sub.add_parser(
        "image-list",
        help="list the MIMIC-CXR-JPG images the study uses (paper's filter + REFLACX images)",
        description="Write the image list (parquet): images whose study has a CheXpert row, "
        "with view PA or AP and the only frontal image of the study, plus every REFLACX "
        "image. Image shards are made from this list.",
    )
    p.add_argument("--mimic", type=Path, required=True, help="MIMIC-CXR-JPG root")
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--out", type=Path, required=True, help="image list (parquet)")
    p.set_defaults(func=_image_list)

    p = sub.add_parser(
        "index",
        help="index of the images: splits, 10 labels, set membership; dataset counts",
        description="Write index.parquet (the image list with study split, the 10 model "
        "labels from the CheXpert columns, in_mimic/in_reflacx flags and REFLACX reading "
        "ids) and dataset_counts.csv/.md (positive examples per split, paper Table 3).",
    )
    p.add_argument("--images", type=Path, required=True, help="image list from image-list")
    p.add_argument("--mimic", type=Path, required=True, help="MIMIC-CXR-JPG root")
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--val-subjects", type=Path, required=True, help="validation subjects list")
    p.add_argument("--out", type=Path, required=True, help="index (parquet)")
    p.add_argument("--counts-csv", type=Path, required=True)
    p.add_argument("--counts-md", type=Path, required=True)
    choices = ("positive", "negative", "ignore")
    p.add_argument("--uncertain-as", choices=choices, default="positive", help="CheXpert -1.0")
    p.add_argument("--blank-as", choices=choices, default="negative", help="CheXpert blank")
    p.add_argument(
        "--dedupe-reflacx",
        action="store_true",
        help="remove images with a phase-3 REFLACX reading from the MIMIC sets",
    )
    p.set_defaults(func=_index)

    p = sub.add_parser(
        "shard",
        help="write one HDF5 shard of framed uint8 images",
        description="Frame every image of one shard of the image list (stable hash of "
        "dicom_id) at SIZE x SIZE and write them to an HDF5 file, one chunk per image.",
    )
    p.add_argument("--images", type=Path, required=True, help="image list from image-list")
    p.add_argument("--mimic", type=Path, required=True, help="MIMIC-CXR-JPG root")
    p.add_argument("--shard", type=int, required=True, help="shard number (0-based)")
    p.add_argument("--shards", type=int, required=True, help="number of shards")
    p.add_argument("--size", type=int, default=512, help="frame side S in pixels")
    p.add_argument(
        "--compression",
        choices=("none", "lzf", "gzip", "blosc-lz4", "blosc-lz4hc"),
        default="blosc-lz4hc",
    )
    p.add_argument(
        "--dct-scaling",
        choices=("true", "false"),
        default="true",
        help="decode large JPEGs at a reduced DCT scale before the resize",
    )
    p.add_argument("--on-bad-image", choices=("fail", "skip"), default="fail")
    p.add_argument("--workers", type=int, default=1, help="decoding threads (default 1)")
    p.add_argument("--out", type=Path, required=True, help="shard (.h5)")
    p.add_argument("--skipped", type=Path, required=True, help="skipped images of the shard")
    p.set_defaults(func=_shard)

    p = sub.add_parser(
        "shard-merge",
        help="manifest of a complete set of shards and the merged skipped-images list",
        description="Write the shard manifest (dicom_id, shard, file, row, official_split) "
        "and skipped.csv from every shard of one set.",
    )
    p.add_argument("--shards", type=Path, nargs="+", required=True, help="shard files")
    p.add_argument("--skipped", type=Path, nargs="*", default=[], help="per-shard skipped CSVs")
    p.add_argument("--manifest", type=Path, required=True, help="manifest (parquet)")
    p.add_argument("--skipped-out", type=Path, required=True, help="merged skipped.csv")
    p.set_defaults(func=_shard_merge)

    p = sub.add_parser(
        "label",
        help="find abnormality mentions in one phase's REFLACX reports",
        description="Label every non-discarded report of a REFLACX phase with the rule-based "
        "labeler: one row per mention (category, character offsets into transcription.txt, "
        "sentence, status) and one row per report (1 positive, -1 uncertain, 0 negative, "
        "empty not mentioned, per category).",
    )
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--phase", type=int, choices=(1, 2, 3), required=True)
    p.add_argument("--out", type=Path, required=True, help="mentions (phase{P}.parquet)")
    p.add_argument(
        "--reports-out", type=Path, required=True, help="report labels (phase{P}_reports.parquet)"
    )
    p.add_argument(
        "--mode",
        choices=LABELER_MODES,
        default="gazeloc",
        help="phrase semantics (labeler.mode): gazeloc (default) or reference (the authors' "
        "labeler: anatomy such as 'the heart' is a mention unless negated; 'density' is also "
        "a lung nodule or mass)",
    )
    p.set_defaults(func=_label)

    p = sub.add_parser(
        "label-eval",
        help="labeler recall and precision against the radiologists' labels (paper Table 4)",
        description="Label the phase's reports in each labeler mode and compare the "
        "report-level labels (positive or uncertain = detected) with the REFLACX metadata "
        "labels, leaving out the labeler-development readings; one block of rows per mode.",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=LABELER_MODES,
        default=list(LABELER_MODES),
        help="labeler modes to evaluate (default: all)",
    )
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--dev-ids", type=Path, required=True, help="reading ids to leave out")
    p.add_argument("--phase", type=int, choices=(1, 2, 3), default=2)
    p.add_argument(
        "--gold-min-certainty",
        type=int,
        choices=range(1, 6),
        default=1,
        metavar="{1..5}",
        help="gold positive if the certainty is at least this (default 1: any)",
    )
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.set_defaults(func=_label_eval)

    p = sub.add_parser(
        "heatmaps",
        help="label-specific eye-tracking heatmaps of one REFLACX phase (HDF5)",
        description="For every sentence with a positive or uncertain mention, render the "
        "fixations of its time window as a Gaussian heatmap in the padded square frame and "
        "give it to every label the sentence mentions (max over sentences); also the "
        "full-dictation heatmap. Writes one group per reading (et, et_labels, "
        "report_labels, full_report; split, dicom_id, subject_id).",
    )
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--phase", type=int, choices=(1, 2, 3), required=True)
    p.add_argument("--labels", type=Path, required=True, help="mentions (labels/phase{P}.parquet)")
    p.add_argument("--val-subjects", type=Path, required=True, help="validation subjects list")
    p.add_argument(
        "--method",
        type=_window_method,
        default="1.5s_startofsentence_lastmention",
        help="time-window method, e.g. 1.5s_startofsentence_lastmention "
        "(docs/method.md#time-windows)",
    )
    p.add_argument("--window-end", choices=("word_start", "word_end"), default="word_start")
    p.add_argument("--sigma-degrees", type=float, default=1.0, help="Gaussian sigma in degrees")
    p.add_argument("--size", type=int, default=512, help="frame side S in pixels")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--out", type=Path, required=True, help="heatmaps/phase{P}.h5")
    p.set_defaults(func=_heatmaps)

    p = sub.add_parser(
        "ellipses",
        help="ellipse masks per label of one REFLACX phase (HDF5)",
        description="Fill each ellipse at original resolution, map it into the square frame "
        "like an image, binarise at > 0.5 and OR it into its labels (certainty >= 3); also "
        "ellipse_labels and ellipse_labels_any (any certainty).",
    )
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--phase", type=int, choices=(1, 2, 3), required=True)
    p.add_argument("--val-subjects", type=Path, required=True, help="validation subjects list")
    p.add_argument("--size", type=int, default=512, help="frame side S in pixels")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--out", type=Path, required=True, help="ellipses/phase{P}.h5")
    p.set_defaults(func=_ellipses)

    p = sub.add_parser(
        "location-extraction",
        help="IoU of label-specific heatmaps against ellipses for many window methods",
        description="Location-extraction validation (paper §2.8): on the train readings of "
        "the given phases, the IoU of every window method's label-specific heatmaps with the "
        "ellipses (thresholds chosen per method and label); a first stage of the reference's "
        "35 methods, then delays with the best first-stage start and end.",
    )
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--phases", type=int, nargs="+", choices=(1, 2, 3), required=True)
    p.add_argument("--labels", type=Path, nargs="+", required=True, help="one per phase")
    p.add_argument("--ellipses", type=Path, nargs="+", required=True, help="one per phase")
    p.add_argument("--val-subjects", type=Path, required=True, help="validation subjects list")
    p.add_argument("--size", type=int, default=512, help="frame side S (the ellipses' size)")
    p.add_argument("--sigma-degrees", type=float, default=1.0)
    p.add_argument("--window-end", choices=("word_start", "word_end"), default="word_start")
    p.add_argument("--first-delays", type=float, nargs="+", default=[2.5, 5.0, 7.5])
    p.add_argument(
        "--second-delays",
        type=float,
        nargs="*",
        default=[0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0],
    )
    p.add_argument(
        "--method",
        type=_window_method,
        default="1.5s_startofsentence_lastmention",
        help="the configured heatmap method, always evaluated",
    )
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("--details", type=Path, required=True, help="existence and empty windows")
    p.add_argument("--figure", type=Path, required=True, help="IoU against delay (PNG)")
    p.set_defaults(func=_location_extraction)

    p = sub.add_parser(
        "figure1",
        help="the paper's Figure 1 for chosen readings (PNG)",
        description="For each reading: the whole-dictation heatmap and a label-specific "
        "heatmap over the chest x-ray, and a timeline with the fixations, the dictated "
        "sentence, its mentions and its fixation window.",
    )
    p.add_argument("--reflacx", type=Path, required=True, help="REFLACX root (has main_data/)")
    p.add_argument("--mimic", type=Path, required=True, help="MIMIC-CXR-JPG root")
    p.add_argument("--phases", type=int, nargs="+", choices=(1, 2, 3), required=True)
    p.add_argument("--labels", type=Path, nargs="+", required=True, help="one per phase")
    p.add_argument("--readings", nargs="*", default=[], help="reading ids (default: one chosen)")
    p.add_argument("--method", type=_window_method, default="1.5s_startofsentence_lastmention")
    p.add_argument("--window-end", choices=("word_start", "word_end"), default="word_start")
    p.add_argument("--sigma-degrees", type=float, default=1.0)
    p.add_argument("--size", type=int, default=512, help="frame side S in pixels")
    p.add_argument("--out", type=Path, required=True, help="PNG")
    p.set_defaults(func=_figure1)

    p = sub.add_parser(
        "fetch-weights",
        help="download torchvision's ImageNet ResNet weights into the torch cache (needs network)",
        description="Run once on a machine with network (e.g. a cluster login node, with the "
        "same TORCH_HOME as the jobs): downloads the IMAGENET1K_V1 file of each backbone into "
        "$TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints) with torchvision's "
        "hash check. Workflow runs never download.",
    )
    p.add_argument(
        "--backbone",
        nargs="+",
        choices=("resnet18", "resnet34", "resnet50"),
        default=["resnet50"],
        help="backbone(s) (default resnet50, the paper's)",
    )
    p.add_argument("--all", action="store_true", help="every backbone")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_fetch_weights)

    p = sub.add_parser(
        "check-weights",
        help="check a pretrained weights file's sha256 and record it (the weights rule)",
        description="Hash FILE (sha256), refuse it unless the hash starts with EXPECT (the "
        "prefix in a torchvision file name, or a full configured hash), write the record.",
    )
    p.add_argument("--file", type=Path, required=True, help="weights file")
    p.add_argument("--expect", default="", help="expected sha256 or its prefix (empty: any)")
    p.add_argument("--source", default="", help="the configured model.pretrained")
    p.add_argument("--out", type=Path, required=True, help="record (JSON)")
    p.set_defaults(func=_check_weights)

    p = sub.add_parser(
        "train",
        help="train one experiment and seed (resumable); write model.pt and train_log.csv",
        description="Train the MIL classifier of one experiment with one seed: MIMIC train "
        "(+ annotated REFLACX train readings), per-epoch validation AUC on MIMIC val, the best "
        "epoch as OUT_DIR/model.pt, OUT_DIR/train_log.csv. A checkpoint under OUT_DIR/resume/ "
        "lets the same command continue after a kill.",
    )
    p.add_argument(
        "--settings",
        required=True,
        help="JSON of the resolved experiment (experiment, annotations, "
        "label_specific_heatmaps, input_size, model, training)",
    )
    p.add_argument(
        "--runtime",
        default="",
        help="runtime-only training keys as KEY=VALUE,... (device, compile, checkpoint_minutes, "
        "keep_checkpoints)",
    )
    p.add_argument("--weights", type=Path, default=None, help="pretrained encoder weights file")
    p.add_argument(
        "--weights-check", type=Path, default=None, help="the weights rule's record (JSON)"
    )
    p.add_argument("--seed", type=int, required=True, help="seed of the run")
    p.add_argument("--index", type=Path, required=True, help="images/index.parquet")
    p.add_argument("--manifest", type=Path, required=True, help="images/shards.parquet")
    p.add_argument("--heatmaps", type=Path, default=None, help="heatmaps/phase3.h5 (et)")
    p.add_argument("--ellipses", type=Path, default=None, help="ellipses/phase3.h5 (ellipse)")
    p.add_argument("--out-dir", type=Path, required=True, help="run folder")
    p.add_argument(
        "--data-roots",
        nargs="*",
        default=[],
        metavar="NAME=FOLDER",
        help="dataset roots recorded in the model card (e.g. mimic=/data/mimic-cxr-jpg)",
    )
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1)")
    p.add_argument(
        "--workers", type=int, default=None, help="data-loading processes (overrides --runtime)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="save a checkpoint and stop after N steps (for testing resume)",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "evaluate",
        help="AUC (MIMIC), IoU and hit rate (REFLACX, every heatmap source) of a model",
        description="Evaluate a trained model.pt on one or more splits (one model load): "
        "per-label AUC of the image-level probability on the MIMIC images, and per-label IoU "
        "(at every threshold) and hit rate of the spatial activations, decoder output and "
        "Grad-CAM against the phase-3 ellipses (positive readings only). Writes, per split, the "
        "tidy metrics parquet and the per-image and per-reading parquet files.",
    )
    p.add_argument("--model", type=Path, required=True, help="model.pt of gazeloc train")
    p.add_argument("--index", type=Path, required=True, help="images/index.parquet")
    p.add_argument("--manifest", type=Path, required=True, help="images/shards.parquet")
    p.add_argument("--ellipses", type=Path, required=True, help="ellipses/phase3.h5")
    p.add_argument("--split", choices=("val", "test"), nargs="+", required=True)
    p.add_argument("--experiment", default=None, help="experiment name (default: the model's)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the model's)")
    p.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=None,
        help="IoU thresholds, increasing in [0, 1) (default: the reference's 26)",
    )
    p.add_argument(
        "--sources",
        nargs="+",
        choices=("grid", "decoder", "gradcam"),
        default=["grid", "decoder", "gradcam"],
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes")
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "--out",
        type=Path,
        help="metrics parquet of the one split (SPLIT_images.parquet and "
        "SPLIT_readings.parquet are written beside it, named after it)",
    )
    out.add_argument(
        "--out-dir",
        type=Path,
        help="folder for SPLIT.parquet, SPLIT_images.parquet and SPLIT_readings.parquet of "
        "every split",
    )
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "tables",
        help="result tables with 95%% CIs over seeds from tidy metrics",
        description="Choose each experiment's threshold per source and label (and its source) "
        "on validation IoU, then write summary, auc_per_label, iou_per_label (and ablation) "
        "as CSV and Markdown, and selection.csv.",
    )
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="tidy parquet files")
    p.add_argument(
        "--models",
        type=Path,
        nargs="*",
        default=[],
        help="model.pt of each run: their weights sha256, version and commit go into summary.md",
    )
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--experiments", nargs="*", default=[], help="order of the experiments")
    p.add_argument("--ci-method", choices=("t", "normal_pop"), default="t")
    p.add_argument("--source", choices=("validation", "reference"), default="validation")
    p.add_argument(
        "--experiment-info",
        default="",
        help="JSON: per experiment annotations, fraction (annotated share) and ablation flags",
    )
    only = p.add_mutually_exclusive_group()
    only.add_argument(
        "--selection-only", action="store_true", help="write only OUT_DIR/selection.csv"
    )
    only.add_argument("--no-selection", action="store_true", help="do not write selection.csv")
    p.add_argument(
        "--bootstrap",
        action="store_true",
        help="bootstrap CIs in the summary from the per-item files beside the test metrics",
    )
    p.add_argument("--bootstrap-samples", type=_positive, default=1000, help="replicates")
    p.add_argument("--interrater", type=Path, help="interrater.csv, shown in iou_per_label.md")
    p.set_defaults(func=_tables)

    p = sub.add_parser(
        "comparisons",
        help="paired differences between experiments with bootstrap CIs and p-values",
        description="For each pair A:B of experiments, the difference of the test summary "
        "means (AUC, IoU, hit rate), its 95%% CI and two-sided p-value from a paired two-level "
        "bootstrap over seeds and test subjects. Reads the per-item files beside the test "
        "metrics files. Writes OUT_DIR/comparisons.csv and .md.",
    )
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="tidy parquet files")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--pairs", nargs="*", default=[], help="A:B ... (difference A - B)")
    p.add_argument("--experiments", nargs="*", default=[], help="the evaluated experiments")
    p.add_argument("--source", choices=("validation", "reference"), default="validation")
    p.add_argument("--bootstrap-samples", type=_positive, default=1000, help="replicates")
    p.set_defaults(func=_comparisons)

    p = sub.add_parser(
        "interrater",
        help="inter-radiologist IoU on the REFLACX phase 1-2 ellipses (CSV and Markdown)",
        description="Per label, the mean IoU of every pair of readings of the same image in "
        "which both radiologists drew an ellipse (certainty >= 3), with a bootstrap CI over "
        "images, for all images and for the test-split images.",
    )
    p.add_argument("--ellipses", type=Path, nargs="+", required=True, help="phase{1,2}.h5")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("--bootstrap-samples", type=_positive, default=1000, help="replicates")
    p.set_defaults(func=_interrater)

    p = sub.add_parser(
        "report-tables",
        help="the Markdown result tables as HTML pages (for snakemake --report)",
        description="Writes OUT_DIR/{name}.html for every {name}.md: headings, pipe tables "
        "(with their column alignment), paragraphs and lists.",
    )
    p.add_argument("--markdown", type=Path, nargs="+", required=True, help="table .md files")
    p.add_argument("--out-dir", type=Path, required=True, help="folder of the HTML pages")
    p.set_defaults(func=_report_tables)

    p = sub.add_parser(
        "figures",
        help="Figure 4, per-label IoU bars, learning curves and ROC curves (PNG)",
        description="--learning-curves: training loss and validation AUC per epoch of "
        "train_log.csv files. --roc: per-label test ROC curves of test_images.parquet files. "
        "--iou-bars: bars of iou_per_label.csv with CIs. --figure4: random test "
        "readings with each experiment's reported heatmap source, the ellipses and the "
        "prediction at the validation-chosen threshold.",
    )
    p.add_argument("--learning-curves", type=Path, help="output PNG of the learning curves")
    p.add_argument(
        "--train-logs", type=Path, nargs="*", default=[], help="{experiment}/seed{N}/train_log.csv"
    )
    p.add_argument("--roc", type=Path, help="output PNG of the test ROC curves")
    p.add_argument("--images", type=Path, nargs="*", default=[], help="test_images.parquet ...")
    p.add_argument("--iou-bars", type=Path, help="output PNG of the IoU bars")
    p.add_argument("--iou-table", type=Path, help="iou_per_label.csv")
    p.add_argument("--figure4", type=Path, help="output PNG of Figure 4")
    p.add_argument("--selection", type=Path, help="selection.csv of gazeloc tables")
    p.add_argument("--models", nargs="*", default=[], help="EXPERIMENT=model.pt ...")
    p.add_argument("--manifest", type=Path, help="images/shards.parquet")
    p.add_argument("--ellipses", type=Path, help="ellipses/phase3.h5")
    p.add_argument("--experiments", nargs="*", default=[], help="order of the experiments")
    p.add_argument("--n-images", type=int, default=4, help="test readings in Figure 4")
    p.add_argument("--seed", type=int, default=0, help="seed of the readings' draw")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=_figures)

    p = sub.add_parser(
        "predict",
        help="apply a trained model.pt to new images (JPEG, PNG, DICOM)",
        description="Probabilities of the 10 labels for each image, the chosen heatmap in "
        "the image's own pixels and an overlay per image. Writes OUT/predictions.csv, "
        "OUT/heatmaps.h5, OUT/overlays/<name>.png, OUT/skipped.csv and OUT/predict.json. "
        "Files that cannot be read are listed in skipped.csv (or stop the run with --strict). "
        "Never uses the network.",
    )
    p.add_argument("--model", type=Path, required=True, help="model.pt of gazeloc train")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--source",
        choices=("grid", "decoder", "gradcam", "chosen"),
        default="chosen",
        help="heatmap source; chosen (default): the one chosen on validation for the model's "
        "experiment in selection.csv, with its per-label thresholds (without a selection: the "
        "reference's fixed source and no threshold)",
    )
    p.add_argument(
        "--selection",
        type=Path,
        default=None,
        help="selection.csv of gazeloc tables (default: RESULTS/tables/selection.csv of the "
        "results folder the model is in, when it exists)",
    )
    p.add_argument(
        "--min-probability",
        type=float,
        default=0.5,
        help="write heatmaps and overlay panels for the labels with at least this probability",
    )
    p.add_argument("--all-labels", action="store_true", help="heatmaps for every label")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable file")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--workers", type=int, default=0, help="image-reading processes")
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    p.add_argument(
        "--overlay-size",
        type=int,
        default=512,
        help="long side of each overlay panel in pixels (0: the original size)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_predict)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _involved(exc: BaseException) -> str:
    """What an exception names: the file of an OS error, the key of a KeyError, and where it
    was raised (``path:line`` of the innermost frame, relative to the package)."""
    parts = []
    if isinstance(exc, OSError) and exc.filename is not None:
        parts.append(f"file {exc.filename}")
    elif isinstance(exc, KeyError) and exc.args:
        parts.append(f"key {exc.args[0]!r}")
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        path = Path(frames[-1].filename)
        package = Path(__file__).resolve().parent
        try:
            shown = f"gazeloc/{path.resolve().relative_to(package).as_posix()}"
        except ValueError:
            shown = path.name
        parts.append(f"raised at {shown}:{frames[-1].lineno}")
    return "; ".join(parts)


def unexpected_error(command: str, exc: Exception, *, verbose: bool) -> int:
    """Report an exception no handler expected (exit status 1): its full traceback on stderr,
    unless stderr is a terminal and ``verbose`` is off, then one line that names the
    command, the exception and the file or key involved, always last. The workflow's jobs
    send stderr to their log file (``2>&1``), so the log keeps the traceback
    (docs/outputs.md#logs-and-benchmarks)."""
    message = " ".join(str(exc).split()) or "(no message)"
    line = f"gazeloc {command}: error: {type(exc).__name__}: {message}"
    involved = _involved(exc)
    show_traceback = verbose or not _stderr_is_terminal()
    if not show_traceback:
        involved = f"{involved}; -v for the traceback" if involved else "-v for the traceback"
    if involved:
        line += f" ({involved})"
    if show_traceback:
        text = traceback.format_exception(type(exc), exc, exc.__traceback__)
        sys.stderr.write("".join(text))
    print(line, file=sys.stderr)
    sys.stderr.flush()
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # SIGTERM (Snakemake or SLURM stopping a job) unwinds like Ctrl-C, so that atomic writes
    # remove their temporary files.
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        previous = None
    try:
        with gpus.job_slot() if args.command in GPU_COMMANDS else nullcontext():
            return args.func(args)
    except DiskFullError as exc:
        print(f"gazeloc {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, NonFiniteLossError) as exc:
        print(f"gazeloc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except DataFormatError as exc:
        problems = getattr(exc, "problems", None)
        if problems is not None and (len(problems) > 1 or exc.more):
            print(f"gazeloc {args.command}: {len(problems) + exc.more} errors:", file=sys.stderr)
            for problem in problems:
                print(f"gazeloc {args.command}: error: {problem}", file=sys.stderr)
            if exc.more:
                print(
                    f"gazeloc {args.command}: ... and {exc.more} more (data.max_errors)",
                    file=sys.stderr,
                )
            return 2
        print(f"gazeloc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else: one line, the traceback in the job's log
        return unexpected_error(args.command, exc, verbose=args.verbose)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
