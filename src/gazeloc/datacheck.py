"""Whole-dataset validation: every REFLACX reading, every MIMIC-CXR-JPG table and image.

Used by ``gazeloc check`` (the ``check_data`` rule, which every stage reading the datasets
waits for) so that format problems stop the workflow at its start, with the file, line and
column, rather than deep inside a later stage. The check does not stop at the first problem:
it collects every error it finds (up to ``max_errors``) and reports them together, so that one
run lists everything to fix. Warnings (tolerated deviations) are logged and counted by kind.

A stage library above the readers (:mod:`gazeloc.io`), the splits and the images it opens;
the readers themselves know nothing of splits.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from tqdm import tqdm

from gazeloc.errors import DataFormatError, warn_at
from gazeloc.io import mimic, reflacx
from gazeloc.splits import check_reflacx_split, check_val_subjects, read_val_subjects

log = logging.getLogger(__name__)

DEFAULT_MAX_ERRORS = 50
CHECKSUMS = "SHA256SUMS.txt"
"""The checksum list PhysioNet ships at the MIMIC-CXR-JPG root (``<sha256>  <path>``)."""


class DataCheckError(DataFormatError):
    """Every problem the whole-dataset check found (the first one's location is the error's).

    ``problems`` lists them in the order found; ``more`` counts those left out once
    ``max_errors`` was reached.
    """

    def __init__(self, problems: Sequence[DataFormatError], more: int = 0) -> None:
        first = problems[0]
        super().__init__(first.path, first.reason, line=first.line, column=first.column)
        self.problems = list(problems)
        self.more = more
        lines = [str(p) for p in self.problems]
        if len(lines) > 1 or more:
            total = len(lines) + more
            tail = ""
            if more:
                tail = f" (the first {len(lines)} listed; data.max_errors sets how many)"
            lines.append(f"{total} problems in the data{tail}")
        self.args = ("\n".join(lines),)

    def __str__(self) -> str:
        return self.args[0]


class _TooMany(Exception):
    pass


class Problems:
    """Collects errors up to ``max_errors``; :meth:`raise_if_any` raises them together."""

    def __init__(self, max_errors: int = DEFAULT_MAX_ERRORS) -> None:
        if max_errors < 1:
            raise ValueError(f"max_errors must be at least 1, not {max_errors}")
        self.max_errors = max_errors
        self.errors: list[DataFormatError] = []
        self.more = 0

    def add(self, error: DataFormatError) -> None:
        if len(self.errors) < self.max_errors:
            self.errors.append(error)
            log.error("%s", error)
        else:
            self.more += 1

    @property
    def full(self) -> bool:
        return len(self.errors) >= self.max_errors

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Record a :class:`DataFormatError` raised inside the block and carry on."""
        try:
            yield
        except DataCheckError as exc:
            for problem in exc.problems:
                self.add(problem)
            self.more += exc.more
        except DataFormatError as exc:
            self.add(exc)

    def raise_if_any(self) -> None:
        if self.errors:
            raise DataCheckError(self.errors, self.more)


class _WarningCounter(logging.Handler):
    """Counts warnings, by kind (the message without its location and leading count)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.kinds: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            return
        self.count += 1
        self.kinds[warning_kind(record.getMessage())] += 1


def warning_kind(message: str) -> str:
    """``'<file>, line 3: 2 fixation(s) overlap ...'`` -> ``'fixation(s) overlap ...'``."""
    text = message.split(": ", 1)[-1]
    head, _, rest = text.partition(" ")
    text = rest if head.isdigit() and rest else text
    return text.split(" (", 1)[0].split(":", 1)[0].strip()


def check_reading(reading: reflacx.ReflacxReading, problems: Problems) -> None:
    """Every file of one reading, each checked on its own (all its errors are reported)."""
    with problems.collect():
        reflacx.check_ellipse_consistency(reading, reading.ellipses())
    with problems.collect():
        reading.chest_box()
    if reading.discarded:
        reflacx.warn_discarded_files(reading)
        return
    fixations = transcript = None
    with problems.collect():
        fixations = reading.fixations()
    with problems.collect():
        transcript = reading.transcript()
    if fixations is not None and fixations.height == 0:
        warn_at(
            log,
            reading.main_dir / "fixations.csv",
            "no fixations (header only): this reading gives empty heatmaps",
        )
    elif fixations is not None and transcript is not None and transcript.words.height:
        last = float(fixations.get_column("timestamp_end_fixation").max())
        first_word = float(transcript.words.get_column("timestamp_start_word").min())
        if first_word > last:
            warn_at(
                log,
                reading.main_dir / "timestamps_transcription.csv",
                f"every word starts after the last fixation ends ({first_word} s > {last} s;"
                " shifted times?): this reading gives empty heatmaps",
                line=2,
                column="timestamp_start_word",
            )


def read_checksums(path: Path) -> dict[str, str]:
    """``SHA256SUMS.txt``: relative path -> hex digest (a ``*`` binary marker is allowed)."""
    sums: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            digest, _, name = line.partition(" ")
            name = name.strip().lstrip("*")
            if len(digest) != 64 or not name:
                raise DataFormatError(path, "expected '<sha256>  <path>'", line=number)
            sums[name.removeprefix("./")] = digest.lower()
    return sums


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_images(
    mimic_root: Path,
    images: pl.DataFrame,
    problems: Problems,
    *,
    on_bad_image: str = "fail",
    verify_checksums: bool = False,
    progress: bool = True,
) -> dict:
    """Open every image of the image list (format, 8-bit grayscale, metadata size) and, when
    ``verify_checksums`` and ``SHA256SUMS.txt`` is present, compare its checksum.

    With ``on_bad_image="skip"`` a bad image is a warning (the shard stage leaves it out and
    lists it); with ``"fail"`` it is an error.
    """
    from gazeloc.images.frame import check_image_file

    sums_path = mimic_root / CHECKSUMS
    sums: dict[str, str] | None = None
    if verify_checksums:
        if sums_path.is_file():
            with problems.collect():
                sums = read_checksums(sums_path)
        else:
            log.warning(
                "%s: not found; data.verify_checksums is on but no checksums are compared",
                sums_path,
            )
    bad = 0
    compared = 0
    rows = images.select("path", "width", "height").iter_rows()
    bar = tqdm(rows, total=images.height, desc="MIMIC images", unit="img", disable=not progress)
    for rel, width, height in bar:
        path = mimic_root / rel
        error: DataFormatError | None = None
        try:
            check_image_file(path, (int(width), int(height)))
            if sums is not None:
                want = sums.get(rel)
                if want is None:
                    raise DataFormatError(path, f"not listed in {CHECKSUMS}")
                compared += 1
                if sha256_of(path) != want:
                    raise DataFormatError(
                        path, f"SHA-256 differs from {CHECKSUMS} (corrupt or changed copy)"
                    )
        except DataFormatError as exc:
            error = exc
        if error is None:
            continue
        bad += 1
        if on_bad_image == "skip":
            log.warning("%s (on_bad_image: skip; the image is left out)", error)
        else:
            problems.add(error)
    return {"checked": images.height, "bad": bad, "checksums_compared": compared}


def check_datasets(
    reflacx_root: str | Path,
    mimic_root: str | Path,
    val_subjects_path: str | Path,
    *,
    phases: Sequence[int] | None = None,
    images: bool = True,
    on_bad_image: str = "fail",
    verify_checksums: bool = False,
    max_errors: int = DEFAULT_MAX_ERRORS,
    progress: bool = True,
) -> dict:
    """Read and validate everything; return a summary (counts) for ``check.json``.

    ``phases``: the REFLACX phases the workflow uses (a missing metadata file is an error);
    None: those present. ``images``: open every image of the image list. Raises
    :class:`DataCheckError` (a :class:`~gazeloc.errors.DataFormatError`) listing every
    problem found, up to ``max_errors``. Warnings are logged and counted.
    """
    reflacx_root, mimic_root = Path(reflacx_root), Path(mimic_root)
    counter = _WarningCounter()
    logging.getLogger("gazeloc").addHandler(counter)
    problems = Problems(max_errors)
    try:
        summary: dict = {"mimic": {}, "reflacx": {}, "val_subjects": 0}
        val_subjects: set[int] | None = None
        with problems.collect():
            val_subjects = set(read_val_subjects(val_subjects_path))
            summary["val_subjects"] = len(val_subjects)
        split = meta = labels = None
        with problems.collect():
            split = mimic.read_split(mimic_root)
        with problems.collect():
            meta = mimic.read_metadata(mimic_root)
        with problems.collect():
            labels = mimic.read_labels(mimic_root, "chexpert")
        if split is not None:
            summary["mimic"].update(
                images=split.height,
                subjects=split.get_column("subject_id").n_unique(),
                official_split=dict(sorted(Counter(split.get_column("split")).items())),
            )
        if labels is not None:
            summary["mimic"]["studies"] = labels.height
        if meta is not None:
            summary["mimic"]["views"] = dict(
                sorted(Counter(meta.get_column("ViewPosition").fill_null("")).items())
            )
        if split is not None and meta is not None:
            missing_meta = ~split.get_column("dicom_id").is_in(
                meta.get_column("dicom_id").implode()
            )
            for row in missing_meta.arg_true().to_list():
                problems.add(
                    DataFormatError(
                        mimic.table_path(mimic_root, "split"),
                        "dicom_id has no row in the metadata table",
                        line=int(row) + 2,
                        column="dicom_id",
                    )
                )
        present = reflacx.phases_present(reflacx_root)
        wanted = present if phases is None else sorted(set(phases))
        if not (reflacx_root / "main_data").is_dir():
            problems.add(DataFormatError(reflacx_root, "not a REFLACX root: main_data/ is missing"))
        elif not present:
            problems.add(
                DataFormatError(reflacx_root / "main_data", "no metadata_phase_<N>.csv found")
            )
        for phase in wanted:
            path = reflacx.metadata_path(reflacx_root, phase)
            if phase not in present:
                if present:
                    problems.add(
                        DataFormatError(
                            path,
                            f"file not found: the workflow uses REFLACX phase {phase} "
                            "(its labels, heatmaps and ellipses); restore the file",
                        )
                    )
                continue
            frame = None
            with problems.collect():
                frame = reflacx.read_metadata(reflacx_root, phase)
            if frame is None:
                continue
            if split is not None:
                with problems.collect():
                    check_reflacx_split(frame, split, path, meta)
            if val_subjects is not None:
                with problems.collect():
                    check_val_subjects(frame, val_subjects, path)
            readings = reflacx.readings_from_metadata(reflacx_root, frame)
            for reading in tqdm(
                readings, desc=f"REFLACX phase {phase}", unit="reading", disable=not progress
            ):
                check_reading(reading, problems)
            summary["reflacx"][f"phase_{phase}"] = {
                "readings": frame.height,
                "discarded": int(frame.get_column("eye_tracking_data_discarded").sum()),
                "images": frame.get_column("dicom_id").n_unique(),
                "official_split": dict(sorted(Counter(frame.get_column("split")).items())),
            }
        if images and split is not None and meta is not None and labels is not None:
            from gazeloc.images.index import build_image_list

            image_list = None
            readers = logging.getLogger("gazeloc.io")
            level = readers.level
            readers.setLevel(logging.ERROR)  # the tables' warnings were logged above
            try:
                image_list = build_image_list(mimic_root, reflacx_root)
            except DataFormatError as exc:
                # Table errors found above come back here; report the others only once.
                if str(exc) not in {str(e) for e in problems.errors}:
                    problems.add(exc)
            finally:
                readers.setLevel(level)
            if image_list is not None:
                summary["images"] = check_images(
                    mimic_root,
                    image_list,
                    problems,
                    on_bad_image=on_bad_image,
                    verify_checksums=verify_checksums,
                    progress=progress,
                )
        problems.raise_if_any()
        summary["warnings"] = counter.count
        summary["warnings_by_kind"] = dict(sorted(counter.kinds.items()))
        return summary
    finally:
        logging.getLogger("gazeloc").removeHandler(counter)
