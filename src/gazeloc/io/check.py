"""Whole-dataset validation: every REFLACX reading and every MIMIC-CXR-JPG table.

Used by ``gazeloc check`` (the ``check_data`` rule) so that format problems stop the workflow
at its start, with the file, line and column, rather than deep inside a later stage.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from gazeloc.io import mimic, reflacx
from gazeloc.splits import check_reflacx_split, check_val_subjects, read_val_subjects

log = logging.getLogger(__name__)


class _WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def check_datasets(
    reflacx_root: str | Path,
    mimic_root: str | Path,
    val_subjects_path: str | Path,
    *,
    progress: bool = True,
) -> dict:
    """Read and validate everything; return a summary (counts) for ``check.json``.

    Raises :class:`~gazeloc.errors.DataFormatError` at the first error. Warnings are logged
    and counted.
    """
    counter = _WarningCounter()
    logging.getLogger("gazeloc").addHandler(counter)
    try:
        val_subjects = read_val_subjects(val_subjects_path)
        split = mimic.read_split(mimic_root)
        meta = mimic.read_metadata(mimic_root)
        labels = mimic.read_labels(mimic_root, "chexpert")
        summary: dict = {
            "mimic": {
                "images": split.height,
                "studies": labels.height,
                "subjects": split.get_column("subject_id").n_unique(),
                "official_split": dict(sorted(Counter(split.get_column("split")).items())),
                "views": dict(
                    sorted(Counter(meta.get_column("ViewPosition").fill_null("")).items())
                ),
            },
            "reflacx": {},
            "val_subjects": len(val_subjects),
        }
        missing_meta = ~split.get_column("dicom_id").is_in(meta.get_column("dicom_id").implode())
        if missing_meta.any():
            row = int(missing_meta.arg_true()[0])
            raise reflacx.DataFormatError(
                mimic.table_path(mimic_root, "split"),
                "dicom_id has no row in the metadata table",
                line=row + 2,
                column="dicom_id",
            )
        for phase in reflacx.phases_present(reflacx_root):
            frame = reflacx.read_metadata(reflacx_root, phase)
            path = reflacx.metadata_path(reflacx_root, phase)
            check_reflacx_split(frame, split, path, meta)
            check_val_subjects(frame, val_subjects, path)
            readings = reflacx.readings_from_metadata(reflacx_root, frame)
            for reading in tqdm(
                readings, desc=f"REFLACX phase {phase}", unit="reading", disable=not progress
            ):
                reflacx.check_reading_files(reading)
            summary["reflacx"][f"phase_{phase}"] = {
                "readings": frame.height,
                "discarded": int(frame.get_column("eye_tracking_data_discarded").sum()),
                "images": frame.get_column("dicom_id").n_unique(),
                "official_split": dict(sorted(Counter(frame.get_column("split")).items())),
            }
        if not summary["reflacx"]:
            raise reflacx.DataFormatError(
                Path(reflacx_root) / "main_data", "no metadata_phase_<N>.csv found"
            )
        summary["warnings"] = counter.count
        return summary
    finally:
        logging.getLogger("gazeloc").removeHandler(counter)
