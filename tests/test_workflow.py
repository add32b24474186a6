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
            assert set(metrics["metric"]) == {"auc", "iou", "hit_rate"}
            for part in ("images", "readings"):
                items = pl.read_parquet(
                    results / "metrics" / experiment / "seed1" / f"{split}_{part}.parquet"
                )
                assert items.height > 0 and set(items["experiment"]) == {experiment}
    # the evaluation statistics: bootstrap CIs, hit rate, comparisons, inter-rater agreement
    assert {"boot_ci_low", "boot_ci_high"} <= set(summary.columns)
    assert set(summary["metric"]) == {"auc", "iou", "hit_rate"}
    comparisons = pl.read_csv(results / "tables" / "comparisons.csv")
    assert set(zip(comparisons["experiment_a"], comparisons["experiment_b"], strict=True)) == {
        ("et", "unannotated"),
        ("ellipse", "et"),
        ("ellipse", "unannotated"),
    }
    assert comparisons["p_value"].drop_nulls().is_between(0, 1).all()
    interrater = pl.read_csv(results / "tables" / "interrater.csv")
    assert set(interrater["split"]) == {"all", "test"} and interrater["n_pairs"].sum() > 0
    assert "radiologists" in (results / "tables" / "iou_per_label.md").read_text()
    for name in ("hit_rate_per_label", "comparisons", "interrater"):
        assert (results / "tables" / f"{name}.md").is_file()
        rule = "tables" if name == "hit_rate_per_label" else name
        assert (results / "logs" / f"{rule}.log").is_file()
        assert (results / "benchmarks" / f"{rule}.tsv").is_file()
    # the report's tables: one HTML page with a table per Markdown table the run made
    pages = results / "report" / "tables"
    for name in (
        "summary",
        "auc_per_label",
        "iou_per_label",
        "comparisons",
        "interrater",
        "dataset_counts",
        "labeler",
        "location_extraction",
        "realism",
    ):
        assert "<table>" in (pages / f"{name}.html").read_text(), name
    for figure in (
        "figure1",
        "figure4",
        "iou_per_label",
        "location_extraction_delay",
        "learning_curves",
        "roc",
        "synthetic_examples",
    ):
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
# what a dry run must list after each change (docs/cluster.md#what-reruns-after-a-change).
# The report is rebuilt by `make demo` each time and is not a job.
# One evaluation job per experiment and seed writes both splits.
_AFTER_TRAIN = {
    "selection": 1,
    "tables": 1,
    "comparisons": 1,
    "iou_figure": 1,
    "figure4": 1,
    "learning_curves": 1,
    "roc": 1,
    "report_tables": 1,  # the report's HTML pages follow every table
}
RERUNS = {
    "tables.ci_method": (
        "tables:\n  ci_method: normal_pop\n",
        {"tables": 1, "iou_figure": 1, "report_tables": 1},
    ),
    # the figure of iou_per_label.csv follows the tables job that rewrites it
    "tables.bootstrap_samples": (
        "tables:\n  bootstrap_samples: 500\n",
        {"tables": 1, "comparisons": 1, "interrater": 1, "iou_figure": 1, "report_tables": 1},
    ),
    "tables.comparisons": (
        "tables:\n  comparisons: [[et, ellipse]]\n",
        {"comparisons": 1, "report_tables": 1},
    ),
    "heatmaps.figure1_readings": (
        "heatmaps:\n  figure1_readings: [P300R801929]\n",
        {"figure1": 1},
    ),
    "training.lambda_t": (
        "training:\n  lambda_t: 30.0\n",
        {"train": 2, "evaluate": 2, **_AFTER_TRAIN},  # not unannotated
    ),
    "heatmaps.method": (
        "heatmaps:\n  method: 2s_startofsentence_lastmention\n",
        {
            "heatmaps": 3,
            "location_extraction": 1,
            "figure1": 1,
            "train": 1,  # et
            "evaluate": 1,
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
            "evaluate": 3,
            "interrater": 1,
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
            "evaluate": 1,
            **_AFTER_TRAIN,
        },
    ),
    "training.vanishing_ellipses": (
        "training:\n  vanishing_ellipses: skip\n",
        {"train": 1, "evaluate": 1, **_AFTER_TRAIN},  # ellipse only
    ),
    "one more seed": ("seeds: [1, 2]\n", {"train": 3, "evaluate": 3, **_AFTER_TRAIN}),
    # a method key: every training reruns (its job retrains only if the effective precision
    # changes; on the CPU auto and fp32 are both fp32, so it finishes from its checkpoint)
    "training.precision": (
        "training:\n  precision: fp32\n",
        {"train": 3, "evaluate": 3, **_AFTER_TRAIN},
    ),
    "worker counts": (
        "training:\n  workers: 1\nevaluation:\n  workers: 1\nsynthetic:\n  workers: 2\n",
        {},
    ),
    # runtime-only: how fast a job runs or what it leaves behind, never its results
    "devices, compile, checkpoints, evaluation batch size": (
        "training:\n  device: auto\n  compile: true\n  checkpoint_minutes: 1.5\n"
        "  keep_checkpoints: true\nevaluation:\n  device: auto\n  batch_size: 3\n",
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
            "evaluate": 1,
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


def test_structured_config_values_are_typed(tmp_path):
    result = _run(
        ["-n", "--config", "images={'size': 96}", "seeds=[1,2]", "training={'epochs': 2}"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train" in result.stdout


def _imagenet_run(tmp_path, args, env=None):
    return _run(
        ["--configfile", TINY, "--config", "model={'pretrained': 'imagenet'}", *args],
        tmp_path,
        env=env,
    )


def test_missing_weights_stop_the_run_before_any_job(tmp_path):
    cache = tmp_path / "torch-home"
    target = "results-tiny/models/unannotated/seed1/model.pt"
    result = _imagenet_run(tmp_path, ["--cores", "1", target], {"TORCH_HOME": str(cache)})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "resnet18-f37072fd.pth" in out and str(cache / "hub" / "checkpoints") in out
    assert "gazeloc fetch-weights --backbone resnet18" in out
    assert not (tmp_path / "results-tiny" / "synthetic").exists()
    assert not (tmp_path / target).exists()


def test_configured_weights_are_checked_by_a_local_rule(tmp_path):
    import torch
    import torchvision

    from gazeloc.weights import sha256_file

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "enc.pth")
    sha = sha256_file(tmp_path / "enc.pth")
    model = f"model={{'pretrained': '{tmp_path / 'enc.pth'}', 'pretrained_sha256': '{sha}'}}"
    result = _run(["-n", "--configfile", TINY, "--config", model], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _stale(result)["pretrained_weights"] == 3
    typo = _run(
        ["-n", "--configfile", TINY, "--config", "model={'pretrained': 'imagnet'}"], tmp_path
    )
    assert typo.returncode != 0 and "did you mean 'imagenet'" in typo.stdout + typo.stderr


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
    # the report's item list: every figure and every table page of the run, and the study's
    # description with the settings that ran
    items = set(re.findall(r"Adding (\S+) \(", result.stdout + result.stderr))
    figures = ["figure1", "figure4", "iou_per_label", "learning_curves", "roc"]
    figures += ["location_extraction_delay", "synthetic_examples"]
    tables = ["summary", "auc_per_label", "iou_per_label", "hit_rate_per_label", "comparisons"]
    tables += ["interrater", "dataset_counts", "labeler", "location_extraction", "realism"]
    assert {f"{f}.png" for f in figures} | {f"{t}.html" for t in tables} <= items, items
    assert "synthetic_examples.png" in html and "initialised from" in html


def test_project_never_reads_shared():
    """Nothing beside the checkout is read: users have only the repository."""
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
            "evaluate": 1,
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
            "evaluate": 3,
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
            "evaluate": 3,
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
