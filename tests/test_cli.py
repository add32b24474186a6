"""The command line: subcommands exist (in pipeline order), data errors print without a
traceback, an unexpected error prints one line and keeps its traceback in the job's log."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gazeloc import cli
from gazeloc.cli import build_parser, main

PIPELINE_ORDER = (
    "synth",
    "realism",
    "check",
    "fingerprint",
    "image-list",
    "index",
    "shard",
    "shard-merge",
    "label",
    "label-eval",
    "heatmaps",
    "ellipses",
    "location-extraction",
    "figure1",
    "fetch-weights",
    "check-weights",
    "train",
    "evaluate",
    "tables",
    "comparisons",
    "interrater",
    "report-tables",
    "figures",
    "predict",
)


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("synth", "realism", "check"):
        assert command in out


@pytest.mark.parametrize("command", ["synth", "realism", "check"])
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    assert "usage: gazeloc " + command in capsys.readouterr().out


def test_missing_data_is_a_clean_error(tmp_path, capsys):
    code = main(
        [
            "check",
            "--reflacx",
            str(tmp_path / "nope"),
            "--mimic",
            str(tmp_path / "nope2"),
            "--val-subjects",
            str(tmp_path / "v.txt"),
            "--out",
            str(tmp_path / "c.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "v.txt" in err and "file not found" in err
    assert "Traceback" not in err
    assert not (tmp_path / "c.json").exists()


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "gazeloc", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "synth" in out


def test_check_weights_records_or_refuses(tmp_path, capsys):
    import hashlib
    import json

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not really weights")
    sha = hashlib.sha256(b"not really weights").hexdigest()
    out = tmp_path / "w.json"
    args = ["check-weights", "--file", str(weights), "--source", "x", "--out", str(out)]
    assert main([*args, "--expect", sha[:8]]) == 0
    record = json.loads(out.read_text())
    assert record["sha256"] == sha and record["size"] == 18 and record["source"] == "x"
    out.unlink()
    assert main([*args, "--expect", "0" * 64]) == 2
    err = capsys.readouterr().err
    assert "does not match" in err and str(weights) in err and "Traceback" not in err
    assert not out.exists()


def test_version(capsys):
    from gazeloc import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"gazeloc {__version__} (commit ")


def test_help_lists_the_subcommands_in_pipeline_order(capsys):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert tuple(sub.choices) == PIPELINE_ORDER
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ")]
    assert tuple(c for c in listed if c in PIPELINE_ORDER) == PIPELINE_ORDER


CHECK_WEIGHTS = ["check-weights", "--file", "w.pth", "--out", "w.json"]


def _fail_with(monkeypatch, exc):
    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "_check_weights", boom)


def test_an_unexpected_error_is_one_line_on_a_terminal(monkeypatch, capsys):
    _fail_with(monkeypatch, KeyError("training.lr"))
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    assert main(CHECK_WEIGHTS) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "gazeloc check-weights: error: KeyError: 'training.lr' (key 'training.lr';"
    )
    assert "raised at test_cli.py:" in err and "-v for the traceback" in err


def test_verbose_shows_the_traceback_on_a_terminal(monkeypatch, capsys):
    _fail_with(monkeypatch, FileNotFoundError(2, "No such file or directory", "/data/x.parquet"))
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    assert main(["-v", *CHECK_WEIGHTS]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1].startswith("gazeloc check-weights: error: FileNotFoundError: ")
    assert "(file /data/x.parquet; raised at test_cli.py:" in lines[-1]


def test_a_job_log_keeps_the_traceback_of_an_unexpected_error(tmp_path):
    """As a rule runs it (``> {log} 2>&1``): the traceback, then the one line, in the log."""
    script = (
        "import sys\n"
        "from gazeloc import cli\n"
        "def boom(args):\n"
        "    raise ValueError('bad value in results/images/index.parquet')\n"
        "cli._check_weights = boom\n"
        f"sys.exit(cli.main({CHECK_WEIGHTS!r}))\n"
    )
    log = tmp_path / "job.log"
    with open(log, "w") as handle:
        code = subprocess.run(
            [sys.executable, "-c", script],
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[1])},
        ).returncode
    assert code == 1
    lines = log.read_text().splitlines()
    assert "Traceback (most recent call last):" in lines
    assert any('File "<string>", line 4, in boom' in line for line in lines)
    assert lines[-1] == (
        "gazeloc check-weights: error: ValueError: bad value in results/images/index.parquet "
        "(raised at <string>:4)"
    )
