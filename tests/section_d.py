"""Example files in the exact REFLACX 1.0.0 and MIMIC-CXR-JPG 2.0.0 formats, and a tree
builder for reader tests.

The constants hold small example files in the datasets' exact formats (LF line breaks here; REFLACX
files are written with CRLF by :func:`write_reflacx`, as the real writer does). A few files the
examples do not cover (the second phase-3 reading, the phase-1 readings, the MIMIC rows of the
phase-1 image) are built in :func:`write_tree` so that a whole tree passes ``gazeloc check``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

# --- metadata_phase_3.csv ----------------------------------------------------------------

METADATA_PHASE_3 = """\
id,split,eye_tracking_data_discarded,image,dicom_id,subject_id,image_size_x,image_size_y,Abnormal mediastinal contour,Acute fracture,Atelectasis,Consolidation,Enlarged cardiac silhouette,Enlarged hilum,Groundglass opacity,Hiatal hernia,High lung volume / emphysema,Interstitial lung disease,Lung nodule or mass,Other,Pleural abnormality,Pneumothorax,Pulmonary edema,Support devices
P300R512734,train,False,physionet.org/files/mimic-cxr/2.0.0/files/p12/p12345678/s51234567/4f2a9c1e-0b7d3e58-a61c2f94-d3e07b15-9e8c4a27.dcm,4f2a9c1e-0b7d3e58-a61c2f94-d3e07b15-9e8c4a27,12345678,2544,3056,0,0,4,0,5,0,0,0,0,0,0,,3,0,0,True
P300R047190,test,False,physionet.org/files/mimic-cxr/2.0.0/files/p18/p18765432/s59876543/a07e3d2b-c4f81956-2e9b0d7a-61f5c8e3-b2d49a06.dcm,a07e3d2b-c4f81956-2e9b0d7a-61f5c8e3-b2d49a06,18765432,3056,2544,0,0,0,0,0,0,0,0,0,0,2,scoliosis|old healed rib fracture,0,0,0,False
"""  # noqa: E501

# --- metadata_phase_1.csv ----------------------------------------------------------------

METADATA_PHASE_1 = """\
id,split,eye_tracking_data_discarded,image,dicom_id,subject_id,image_size_x,image_size_y,Airway wall thickening,Atelectasis,Consolidation,Emphysema,Enlarged cardiac silhouette,Fibrosis,Fracture,Groundglass opacity,Mass,Nodule,Other,Pleural effusion,Pleural thickening,Pneumothorax,Pulmonary edema,Quality issue,Support devices,Wide mediastinum
P104R803311,validate,False,physionet.org/files/mimic-cxr/2.0.0/files/p15/p15550123/s53330987/5d1c0e7a-9b2f4836-e08a1c53-7f6d2b94-0c3e8a15.dcm,5d1c0e7a-9b2f4836-e08a1c53-7f6d2b94-0c3e8a15,15550123,2544,3056,0,3,0,0,0,0,0,0,0,0,,5,0,0,0,False,True,0
P104R921460,validate,True,physionet.org/files/mimic-cxr/2.0.0/files/p15/p15550123/s53330987/5d1c0e7a-9b2f4836-e08a1c53-7f6d2b94-0c3e8a15.dcm,5d1c0e7a-9b2f4836-e08a1c53-7f6d2b94-0c3e8a15,15550123,2544,3056,0,0,0,0,0,0,0,0,0,0,,4,0,0,0,False,True,0
"""  # noqa: E501

# --- fixations.csv -----------------------------------------------------------------------

FIXATIONS = """\
timestamp_start_fixation,timestamp_end_fixation,x_position,y_position,pupil_area_normalized,angular_resolution_x_pixels_per_degree,angular_resolution_y_pixels_per_degree,window_width,window_level,xmin_shown_from_image,ymin_shown_from_image,xmax_shown_from_image,ymax_shown_from_image,xmin_in_screen_coordinates,ymin_in_screen_coordinates,xmax_in_screen_coordinates,ymax_in_screen_coordinates
0.212,0.468,1301,1422,1.042,132,131,1.0,0.5,0,0,2544,3056,1021,0,2819,2160
0.51,0.897,1655,1190,1.087,133,131,1.0,0.5,0,0,2544,3056,1021,0,2819,2160
1.402,1.655,-688,2833,0.964,128,127,1.0,0.5,0,0,2544,3056,1021,0,2819,2160
9.731,10.018,612,2011,1.118,95,94,0.93712,0.51408,0,896,2521,3056,661,0,3180,2160
"""

# --- gaze.csv ----------------------------------------------------------------------------

GAZE = """\
timestamp_sample,x_position,y_position,pupil_area_normalized,angular_resolution_x_pixels_per_degree,angular_resolution_y_pixels_per_degree,window_width,window_level,xmin_shown_from_image,ymin_shown_from_image,xmax_shown_from_image,ymax_shown_from_image,xmin_in_screen_coordinates,ymin_in_screen_coordinates,xmax_in_screen_coordinates,ymax_in_screen_coordinates
0.137,1297,1425,1.039,132,131,1.0,0.5,0,0,2544,3056,1021,0,2819,2160
0.138,1298,1424,1.04,132,131,1.0,0.5,0,0,2544,3056,1021,0,2819,2160
0.139,,,,,,1.0,0.5,0,0,2544,3056,1021,0,2819,2160
"""

# --- transcription.txt (the whole file: no newline at the end) ---------------------------

TRANSCRIPTION = (
    "endotracheal tube in standard position. small left pleural effusion, with adjacent "
    "atelectasis. cardiomegaly. no pneumothorax."
)

# --- timestamps_transcription.csv --------------------------------------------------------

TIMESTAMPS = """\
word,timestamp_start_word,timestamp_end_word
endotracheal,1.34,2.02
tube,2.02,2.31
in,2.31,2.4
standard,2.4,2.87
position,2.87,3.41
.,3.41,3.75
small,4.62,4.9
left,4.9,5.13
pleural,5.13,5.5
effusion,5.5,6.04
",",6.04,6.3
with,6.3,6.45
adjacent,6.45,6.93
atelectasis,6.93,7.71
.,7.71,8.02
cardiomegaly,8.9,9.66
.,9.66,9.9
no,10.55,10.7
pneumothorax,10.7,11.42
.,11.42,11.42
"""

# --- anomaly_location_ellipses.csv -------------------------------------------------------

ELLIPSES = """\
xmin,ymin,xmax,ymax,certainty,Abnormal mediastinal contour,Acute fracture,Atelectasis,Consolidation,Enlarged cardiac silhouette,Enlarged hilum,Groundglass opacity,Hiatal hernia,High lung volume / emphysema,Interstitial lung disease,Lung nodule or mass,Other,Pleural abnormality,Pneumothorax,Pulmonary edema,Support devices
402,1733,1187,2690,4,False,False,True,False,False,False,False,False,False,False,False,False,False,False,False,False
1398,1610,2466,2705,5,False,False,False,False,True,False,False,False,False,False,False,False,False,False,False,False
228,2101,1105,2874,3,False,False,True,False,False,False,False,False,False,False,False,False,True,False,False,False
"""  # noqa: E501

# --- chest_bounding_box.csv --------------------------------------------------------------

CHEST_BOX = """\
xmin,ymin,xmax,ymax
318,402,2261,2630
"""

# --- MIMIC-CXR-JPG tables ----------------------------------------------------------------

MIMIC_METADATA = """\
dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning
4f2a9c1e-0b7d3e58-a61c2f94-d3e07b15-9e8c4a27,12345678,51234567,CHEST (PA AND LAT),PA,3056,2544,21530611,101522.312,CHEST (PA AND LAT),postero-anterior,Erect
9c0e5b7a-13f4d2a8-6e7b9c01-2d5f8a3e-47b1c6d9,12345678,51234567,CHEST (PA AND LAT),LATERAL,3056,2544,21530611,101522.312,CHEST (PA AND LAT),lateral,Erect
a07e3d2b-c4f81956-2e9b0d7a-61f5c8e3-b2d49a06,18765432,59876543,CHEST (PORTABLE AP),AP,2544,3056,21721203,83207.0,CHEST (PORTABLE AP),antero-posterior,
"""  # noqa: E501

MIMIC_CHEXPERT = """\
subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices
12345678,51234567,1.0,1.0,,,,,,,,-1.0,,,0.0,1.0
18765432,59876543,,,,,,,-1.0,,,,,,,
15550123,53330987,,,,,,,,,1.0,,,,,
"""  # noqa: E501

MIMIC_SPLIT = """\
dicom_id,study_id,subject_id,split
4f2a9c1e-0b7d3e58-a61c2f94-d3e07b15-9e8c4a27,51234567,12345678,train
9c0e5b7a-13f4d2a8-6e7b9c01-2d5f8a3e-47b1c6d9,51234567,12345678,train
a07e3d2b-c4f81956-2e9b0d7a-61f5c8e3-b2d49a06,59876543,18765432,test
"""

# --- Ids of the examples -----------------------------------------------------------------

READING_3A = "P300R512734"
READING_3B = "P300R047190"
READING_1A = "P104R803311"
READING_1D = "P104R921460"  # discarded
DICOM_3A = "4f2a9c1e-0b7d3e58-a61c2f94-d3e07b15-9e8c4a27"
DICOM_3B = "a07e3d2b-c4f81956-2e9b0d7a-61f5c8e3-b2d49a06"
DICOM_1 = "5d1c0e7a-9b2f4836-e08a1c53-7f6d2b94-0c3e8a15"

# --- Files not among the examples (built for a complete, valid tree) ---------------------

PHASE_1_LABELS = (
    "Airway wall thickening,Atelectasis,Consolidation,Emphysema,Enlarged cardiac silhouette,"
    "Fibrosis,Fracture,Groundglass opacity,Mass,Nodule,Other,Pleural effusion,Pleural thickening,"
    "Pneumothorax,Pulmonary edema,Quality issue,Support devices,Wide mediastinum"
)


def _phase1_ellipse_row(box: str, certainty: int, *labels: str) -> str:
    flags = ["True" if name in labels else "False" for name in PHASE_1_LABELS.split(",")]
    return f"{box},{certainty}," + ",".join(flags)


ELLIPSES_PHASE_1A = (
    f"xmin,ymin,xmax,ymax,certainty,{PHASE_1_LABELS}\n"
    + _phase1_ellipse_row("300,1500,1100,2600", 3, "Atelectasis")
    + "\n"
    + _phase1_ellipse_row("1500,2100,2400,2900", 5, "Pleural effusion")
    + "\n"
)
"""Phase-1 ellipses of P104R803311 (Atelectasis 3, Pleural effusion 5, as in its metadata row)."""

ELLIPSES_PHASE_1D = (
    f"xmin,ymin,xmax,ymax,certainty,{PHASE_1_LABELS}\n"
    + _phase1_ellipse_row("1480,2050,2410,2950", 4, "Pleural effusion")
    + "\n"
)
"""Phase-1 ellipses of the discarded P104R921460 (Pleural effusion 4, as in its metadata row)."""

ELLIPSES_3B = (
    ELLIPSES.splitlines()[0]
    + "\n"
    + (
        "1900,700,2150,930,2,False,False,False,False,False,False,False,False,False,False,True,"
        "False,False,False,False,False\n"
    )
)
"""Ellipses of P300R047190 (Lung nodule or mass 2, as in its metadata row)."""

FIXATIONS_3B = (
    FIXATIONS.splitlines()[0]
    + "\n"
    + (
        "0.305,0.62,1490,1210,1.011,118,118,1.0,0.5,0,0,3056,2544,660,0,3180,2098\n"
        "0.7,1.12,1720,1330,1.02,118,118,1.0,0.5,0,0,3056,2544,660,0,3180,2098\n"
        "1.2,1.6,1700,1300,1.02,118,118,1.0,0.5,0,0,3056,2544,660,0,3180,2098\n"
    )
)
"""Fixations of P300R047190 on its 3056x2544 (landscape) image, all inside it."""

MIMIC_SPLIT_PHASE_1 = f"{DICOM_1},53330987,15550123,validate\n"
MIMIC_METADATA_PHASE_1 = (
    f"{DICOM_1},15550123,53330987,CHEST (PA AND LAT),PA,3056,2544,21610930,141312.75,"
    "CHEST (PA AND LAT),postero-anterior,Erect\n"
)
"""MIMIC rows of the phase-1 image (the example MIMIC tables do not list it)."""

VAL_SUBJECTS = "15550123\n"


def crlf(text: str) -> str:
    """LF line breaks -> CRLF (how REFLACX files are written)."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def write_reflacx(path: Path, text: str, *, line_endings: str = "crlf") -> Path:
    """Write a REFLACX file (CRLF by default, ``"lf"`` for the tolerated variant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((crlf(text) if line_endings == "crlf" else text).encode("utf-8"))
    return path


def write_mimic_table(root: Path, table: str, text: str, *, gz: bool = True) -> Path:
    """Write ``mimic-cxr-2.0.0-<table>.csv[.gz]`` (LF; gzip as distributed)."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"mimic-cxr-2.0.0-{table}.csv"
    if gz:
        path = root / (name + ".gz")
        path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    else:
        path = root / name
        path.write_bytes(text.encode("utf-8"))
    return path


def write_phase3_reading(main: Path, line_endings: str = "crlf") -> Path:
    """The fixation, transcript, ellipse and chest-box examples of P300R512734 under ``main``."""
    folder = main / READING_3A
    write_reflacx(folder / "fixations.csv", FIXATIONS, line_endings=line_endings)
    (folder / "transcription.txt").write_bytes(TRANSCRIPTION.encode("utf-8"))
    write_reflacx(folder / "timestamps_transcription.csv", TIMESTAMPS, line_endings=line_endings)
    write_reflacx(folder / "anomaly_location_ellipses.csv", ELLIPSES, line_endings=line_endings)
    write_reflacx(folder / "chest_bounding_box.csv", CHEST_BOX, line_endings=line_endings)
    return folder


_JPEGS: dict[tuple[int, int], bytes] = {}


def gray_jpeg(width: int, height: int) -> bytes:
    """A plain 8-bit grayscale JPEG of the given size (encoded once per size)."""
    if (width, height) not in _JPEGS:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("L", (width, height), 128).save(buffer, format="JPEG", quality=50)
        _JPEGS[width, height] = buffer.getvalue()
    return _JPEGS[width, height]


def image_path(mimic: Path, dicom_id: str) -> Path:
    """Where the MIMIC-CXR-JPG image of a section-D metadata row lies."""
    for line in (MIMIC_METADATA + MIMIC_METADATA_PHASE_1).splitlines()[1:]:
        cells = line.split(",")
        if cells[0] == dicom_id:
            subject, study = cells[1], cells[2]
            return (
                mimic
                / "files"
                / f"p{subject[:2]}"
                / f"p{subject}"
                / f"s{study}"
                / (dicom_id + ".jpg")
            )
    raise KeyError(dicom_id)


def write_images(mimic: Path) -> None:
    """One JPEG per MIMIC metadata row, of the metadata size (Columns x Rows)."""
    for line in (MIMIC_METADATA + MIMIC_METADATA_PHASE_1).splitlines()[1:]:
        cells = line.split(",")
        rows, columns = int(cells[5]), int(cells[6])
        path = image_path(mimic, cells[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gray_jpeg(columns, rows))


def write_tree(
    tmp: Path, *, line_endings: str = "crlf", gz: bool = True, images: bool = True
) -> dict[str, Path]:
    """A complete, valid REFLACX (phases 1 and 3) + MIMIC-CXR-JPG tree from the D examples.

    Returns the paths ``reflacx``, ``mimic`` and ``val_subjects``. ``images``: also write a
    plain JPEG for every MIMIC metadata row.
    """
    reflacx = tmp / "reflacx"
    main = reflacx / "main_data"
    write_reflacx(main / "metadata_phase_3.csv", METADATA_PHASE_3, line_endings=line_endings)
    write_reflacx(main / "metadata_phase_1.csv", METADATA_PHASE_1, line_endings=line_endings)
    write_phase3_reading(main, line_endings)
    write_reflacx(reflacx / "gaze_data" / READING_3A / "gaze.csv", GAZE, line_endings=line_endings)
    # The second phase-3 reading (landscape image) and the non-discarded phase-1 reading reuse
    # the example transcript; their ellipses agree with their metadata rows.
    for reading, fixations, ellipses in (
        (READING_3B, FIXATIONS_3B, ELLIPSES_3B),
        (READING_1A, FIXATIONS, ELLIPSES_PHASE_1A),
    ):
        folder = main / reading
        write_reflacx(folder / "fixations.csv", fixations, line_endings=line_endings)
        (folder / "transcription.txt").write_bytes(TRANSCRIPTION.encode("utf-8"))
        write_reflacx(
            folder / "timestamps_transcription.csv", TIMESTAMPS, line_endings=line_endings
        )
        write_reflacx(folder / "anomaly_location_ellipses.csv", ellipses, line_endings=line_endings)
        write_reflacx(folder / "chest_bounding_box.csv", CHEST_BOX, line_endings=line_endings)
        (reflacx / "gaze_data" / reading).mkdir(parents=True, exist_ok=True)
    discarded = main / READING_1D
    write_reflacx(
        discarded / "anomaly_location_ellipses.csv", ELLIPSES_PHASE_1D, line_endings=line_endings
    )
    write_reflacx(discarded / "chest_bounding_box.csv", CHEST_BOX, line_endings=line_endings)
    (reflacx / "gaze_data" / READING_1D).mkdir(parents=True, exist_ok=True)

    mimic = tmp / "mimic"
    write_mimic_table(mimic, "metadata", MIMIC_METADATA + MIMIC_METADATA_PHASE_1, gz=gz)
    write_mimic_table(mimic, "chexpert", MIMIC_CHEXPERT, gz=gz)
    write_mimic_table(mimic, "split", MIMIC_SPLIT + MIMIC_SPLIT_PHASE_1, gz=gz)
    if images:
        write_images(mimic)
    val_subjects = tmp / "val_subjects.txt"
    val_subjects.write_text(VAL_SUBJECTS, encoding="utf-8")
    return {"reflacx": reflacx, "mimic": mimic, "val_subjects": val_subjects}
