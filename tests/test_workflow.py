"""The workflow end to end on the tiny preset, dry runs, lint and config errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import polars as pl
import pytest
from tiny_workflow import ROOT, TINY
from tiny_workflow import run as _run


@pytest.mark.slow
def test_tiny_run_outputs(tiny_run):
    results = tiny_run / "results-tiny"
    check = json.loads((results / "data" / "check.json").read_text())
    assert check["reflacx"]["phase_3"]["readings"] == 12
    assert check["reflacx"]["phase_1"]["readings"] == 10
    assert check["warnings"] >= 0  # fixations outside the image are logged, not errors
    realism = (results / "synthetic" / "realism.md").read_text()
    assert "share in sentence windows" in realism
    png = (results / "figures" / "synthetic_examples.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    for rule in ("synthetic_data", "synthetic_realism", "check_data"):
        assert (results / "logs" / f"{rule}.log").is_file()
        assert (results / "benchmarks" / f"{rule}.tsv").is_file()
    # every stage down to the tables: the test IoU of each experiment is reported (the tiny
    # data has validation and test readings with ellipses)
    summary = pl.read_csv(results / "tables" / "summary.csv")
    for metric in ("auc", "iou"):
        rows = summary.filter(pl.col("metric") == metric)
        assert rows["experiment"].to_list() == ["unannotated", "ellipse", "et"], summary
        assert all(v is not None and 0 <= v <= 1 for v in rows["mean"].to_list()), summary
    for experiment in ("unannotated", "ellipse", "et"):
        for split in ("val", "test"):
            metrics = pl.read_parquet(
                results / "metrics" / experiment / "seed1" / f"{split}.parquet"
            )
            assert set(metrics["metric"]) == {"auc", "iou"}
    for figure in ("figure1", "figure4", "iou_per_label", "location_extraction_delay"):
        assert (results / "figures" / f"{figure}.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_rerun_is_a_no_op(tiny_run):
    result = _run(["-n", "--configfile", TINY], tiny_run)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def _stale(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count of a dry run's "Job stats" table (without the `all` target)."""
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    if "Nothing to be done" in out:
        return {}
    lines = out[out.index("Job stats:") :].splitlines()[3:]
    counts = {}
    for line in lines:
        name, count = line.split()
        if name == "total":
            break
        counts[name] = int(count)
    counts.pop("all", None)
    return counts


# After the tiny run (3 REFLACX phases, 2 shards, experiments unannotated/ellipse/et, seed 1):
# what a dry run must list after each change (README "Reruns"). The report is rebuilt by
# `make demo` each time and is not a job.
_AFTER_TRAIN = {"selection": 1, "tables": 1, "iou_figure": 1, "figure4": 1}
RERUNS = {
    "tables.ci_method": ("tables:\n  ci_method: normal_pop\n", {"tables": 1, "iou_figure": 1}),
    "training.lambda_t": (
        "training:\n  lambda_t: 30.0\n",
        {"train": 2, "evaluate": 4, **_AFTER_TRAIN},  # not unannotated
    ),
    "heatmaps.method": (
        "heatmaps:\n  method: 2s_startofsentence_lastmention\n",
        {
            "heatmaps": 3,
            "location_extraction": 1,
            "figure1": 1,
            "train": 1,  # et
            "evaluate": 2,
            **_AFTER_TRAIN,
        },
    ),
    "images.size": (
        "images:\n  size: 72\n",
        {
            "image_shard": 2,
            "image_shards": 1,
            "heatmaps": 3,
            "ellipses": 3,
            "location_extraction": 1,
            "figure1": 1,
            "train": 3,
            "evaluate": 6,
            **_AFTER_TRAIN,
        },
    ),
    "labeler.mode": (
        "labeler:\n  mode: reference\n",
        {
            "labels": 3,  # labeler_table reports both modes whatever the config's
            "heatmaps": 3,
            "location_extraction": 1,
            "figure1": 1,
            "train": 1,  # et
            "evaluate": 2,
            **_AFTER_TRAIN,
        },
    ),
    "training.vanishing_ellipses": (
        "training:\n  vanishing_ellipses: skip\n",
        {"train": 1, "evaluate": 2, **_AFTER_TRAIN},  # ellipse only
    ),
    "one more seed": ("seeds: [1, 2]\n", {"train": 3, "evaluate": 6, **_AFTER_TRAIN}),
    "worker counts": (
        "training:\n  workers: 1\nevaluation:\n  workers: 1\nsynthetic:\n  workers: 2\n",
        {},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("change", list(RERUNS))
def test_a_change_reruns_exactly_the_stale_stages(tiny_run, tmp_path, change):
    text, expected = RERUNS[change]
    override = tmp_path / "change.yaml"
    override.write_text(text)
    result = _run(["-n", "--configfile", TINY, str(override)], tiny_run)
    assert _stale(result) == expected


@pytest.mark.slow
def test_docs_comments_and_versions(tiny_run):
    """A comment in a rule file or a README edit reruns nothing; bumping a stage's output
    version (gazeloc.versions) reruns that stage and what depends on it."""
    copy = tiny_run / "checkout"
    rules = copy / "workflow" / "rules" / "labels.smk"
    readme = copy / "README.md"
    versions = copy / "src" / "gazeloc" / "versions.py"
    saved = {path: path.read_text() for path in (rules, readme, versions)}
    try:
        rules.write_text(saved[rules].replace("\nrule labels:", "\n# a comment\nrule labels:"))
        readme.write_text(saved[readme] + "\nMore text.\n")
        assert _stale(_run(["-n", "--configfile", TINY], tiny_run)) == {}
        versions.write_text(saved[versions].replace('"labels": 2', '"labels": 3'))
        assert _stale(_run(["-n", "--configfile", TINY], tiny_run)) == {
            "labels": 3,
            "labeler_table": 1,
            "heatmaps": 3,
            "location_extraction": 1,
            "figure1": 1,
            "train": 1,
            "evaluate": 2,
            **_AFTER_TRAIN,
        }
    finally:
        for path, text in saved.items():
            path.write_text(text)


@pytest.mark.slow
def test_only_stale_stages_rerun(tiny_run, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("synthetic:\n  seed: 8\n")
    result = _run(["-n", "--configfile", TINY, str(seed)], tiny_run)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "synthetic_data" in out and "check_data" in out
    workers = tmp_path / "workers.yaml"
    workers.write_text("synthetic:\n  workers: 2\n")
    result = _run(["-n", "--configfile", TINY, str(workers)], tiny_run)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_dry_run_default_config(tmp_path):
    result = _run(["-n"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "synthetic_data" in result.stdout


def test_bad_config_stops_before_any_job(tmp_path):
    result = _run(["-n", "--config", "images={'size': 'big'}"], tmp_path)
    assert result.returncode != 0
    assert "config key 'images.size'" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_real_source_requires_paths(tmp_path):
    result = _run(["-n", "--config", "data={'source': 'real'}"], tmp_path)
    assert result.returncode != 0
    assert "data.reflacx_dir" in result.stderr + result.stdout


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_report_builds(tiny_run):
    report = tiny_run / "results-tiny" / "report.html"
    result = _run(["--cores", "1", "--configfile", TINY, "--report", str(report)], tiny_run)
    assert result.returncode == 0, result.stderr[-2000:]
    html = report.read_text(errors="replace")
    assert "synthetic_examples.png" in html


def test_project_never_reads_shared():
    """The spec folder beside the checkout does not exist for users."""
    needle = "../" + "shared"
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("src", "workflow", "tests", "bench")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".smk", ".yaml", ".txt", ".md"}
        and needle in path.read_text(errors="ignore")
    ]
    assert offenders == []


def test_every_rule_takes_its_stage_version():
    """Code changes inside the package rerun a stage only through params.version
    (src/gazeloc/versions.py); every rule must take one."""
    from gazeloc.versions import STAGE_VERSIONS

    missing = []
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^(?=(?:local)?rule \w+:)", path.read_text(), flags=re.MULTILINE)
        for block in blocks[1:]:
            name = block.split(":", 1)[0].split()[-1]
            stage = re.search(r'version=stage_version\("(\w+)"\)', block)
            if stage is None or stage.group(1) not in STAGE_VERSIONS:
                missing.append(f"{path.name}: {name}")
    assert not missing, missing


def test_every_path_in_a_shell_command_is_quoted():
    """Paths with spaces or shell characters: every {input}, {output}, {log} placeholder of a
    rule's shell command carries :q (params holding paths are quoted where they are built)."""
    unquoted = []
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", path.read_text(), flags=re.MULTILINE)[1:]:
            shell = block.split("    shell:", 1)[-1] if "    shell:" in block else ""
            for match in re.finditer(r"\{(input|output|log)(\.\w+|\[\w+\])?(:\w+)?\}", shell):
                if match.group(3) != ":q":
                    unquoted.append(f"{path.name}: {match.group(0)}")
            for match in re.finditer(r"\$\(dirname [^)]*\)", shell):
                before = shell[: match.start()]
                if not before.endswith('"'):
                    unquoted.append(f"{path.name}: {match.group(0)} (unquoted)")
    assert unquoted == []


# Input edits inside the generated dataset of the tiny run (each file's time moves one second
# on, as an editor's save does): what a dry run must list. A stray file reruns nothing.
def _phase3_reading(results):
    meta = (results / "synthetic/reflacx/main_data/metadata_phase_3.csv").read_text()
    for line in meta.splitlines()[1:]:
        cells = line.split(",")
        if cells[2] == "False":
            return cells[0]
    raise AssertionError("no phase-3 reading with eye tracking")


def _first_image(results):
    rel = pl.read_parquet(results / "images/images.parquet")["path"][0]
    return results / "synthetic/mimic-cxr-jpg" / rel


INPUT_EDITS = {
    "a phase-3 fixations.csv": (
        lambda r: r / "synthetic/reflacx/main_data" / _phase3_reading(r) / "fixations.csv",
        {
            "check_data": 1,
            "labels": 1,
            "heatmaps": 1,
            "figure1": 1,
            "train": 1,  # et
            "evaluate": 2,
            **_AFTER_TRAIN,
        },
    ),
    "a phase-3 ellipse file": (
        lambda r: (
            r / "synthetic/reflacx/main_data" / _phase3_reading(r) / "anomaly_location_ellipses.csv"
        ),
        {
            "check_data": 1,
            "ellipses": 1,
            "figure1": 1,
            "train": 1,  # ellipse
            "evaluate": 6,
            **_AFTER_TRAIN,
        },
    ),
    "a MIMIC JPEG": (
        _first_image,
        {
            "check_data": 1,
            "image_shard": 1,
            "image_shards": 1,
            "figure1": 1,
            "train": 3,
            "evaluate": 6,
            **_AFTER_TRAIN,
        },
    ),
    "a stray file at each root": (None, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("edit", list(INPUT_EDITS))
def test_an_input_edit_reruns_exactly_its_readers(tiny_run, edit):
    import os

    results = tiny_run / "results-tiny"
    pick, expected = INPUT_EDITS[edit]
    inputs = sorted((results / "inputs").glob("*.json"))
    saved = {p: (p.read_bytes(), p.stat()) for p in inputs}
    strays = []
    try:
        if pick is None:
            for root in ("synthetic/reflacx", "synthetic/mimic-cxr-jpg", "synthetic"):
                strays.append(results / root / "notes.txt")
                strays[-1].write_text("a stray file\n")
            target = None
        else:
            target = pick(results)
            st = target.stat()
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert _stale(_run(["-n", "--configfile", TINY], tiny_run)) == expected
    finally:
        for stray in strays:
            stray.unlink()
        if pick is not None:
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        for path, (data, st_) in saved.items():
            path.write_bytes(data)
            os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))
    assert _stale(_run(["-n", "--configfile", TINY], tiny_run)) == {}


@pytest.mark.slow
def test_real_data_in_odd_paths_and_its_input_edits(tiny_synthetic, tmp_path):
    """Real-data mode with spaces and non-ASCII letters in the data folders, results_dir and
    the work folder: the first stages run and write nothing outside results_dir; then edits
    inside the dataset roots rerun exactly their readers."""
    import os
    import shutil

    data = tmp_path / "dåta ü $x"
    reflacx, mimic = data / "REFLACX 1.0 é", data / "mimic cxr ö"
    shutil.copytree(tiny_synthetic / "reflacx", reflacx)
    shutil.copytree(tiny_synthetic / "mimic-cxr-jpg", mimic)
    work = tmp_path / "wörk dir"
    work.mkdir()
    override = tmp_path / "real.yaml"
    override.write_text(
        json.dumps(
            {
                "results_dir": "resülts 'x'",
                "data": {
                    "source": "real",
                    "reflacx_dir": str(reflacx),
                    "mimic_dir": str(mimic),
                    "val_subjects_file": str(tiny_synthetic / "val_subjects.txt"),
                    "labeler_dev_ids_file": str(tiny_synthetic / "labeler_dev_reading_ids.txt"),
                },
            }
        )
    )
    results = work / "resülts 'x'"
    targets = [  # relative to the work folder, as the rules' outputs are
        f"{results.name}/images/images.parquet",
        f"{results.name}/labels/phase3.parquet",
        f"{results.name}/heatmaps/phase3.h5",
    ]
    args = ["--configfile", TINY, str(override), "--", *targets]
    run = _run(["--cores", "2", *args], work)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert sorted(p.name for p in work.iterdir()) == [".snakemake", "resülts 'x'"]
    assert sorted(p.name for p in data.iterdir()) == ["REFLACX 1.0 é", "mimic cxr ö"]
    assert _stale(_run(["-n", *args], work)) == {}

    meta = reflacx / "main_data" / "metadata_phase_3.csv"
    reading = next(
        line.split(",")[0]
        for line in meta.read_text().splitlines()[1:]
        if line.split(",")[2] == "False"
    )
    jpg = mimic / pl.read_parquet(results / "images/images.parquet")["path"][0]
    edits = [
        (reflacx / "main_data" / reading / "fixations.csv", {"labels": 1, "heatmaps": 1}),
        (meta, {"image_list": 1, "labels": 1, "heatmaps": 1}),
        (jpg, {}),  # only its shard (not a target here) and the check
        (reflacx / "notes.txt", None),  # a stray file at a root: nothing
    ]
    saved = {p: (p.read_bytes(), p.stat()) for p in (results / "inputs").glob("*.json")}
    for path, expected in edits:
        if expected is None:
            path.write_text("mine\n")
            assert _stale(_run(["-n", *args], work)) == {}
            continue
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert _stale(_run(["-n", *args], work)) == {"check_data": 1, **expected}, path
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        for saved_path, (text, saved_st) in saved.items():
            saved_path.write_bytes(text)
            os.utime(saved_path, ns=(saved_st.st_atime_ns, saved_st.st_mtime_ns))
    # An edit, then the run: afterwards nothing is stale.
    path = edits[0][0]
    path.write_bytes(path.read_bytes())
    rerun = _run(["--cores", "2", *args], work)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    assert _stale(_run(["-n", *args], work)) == {}
