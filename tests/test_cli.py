"""The command line: subcommands exist and errors print without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gazeloc.cli import build_parser, main


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
