"""The package's import rules (CONTRIBUTING.md#architecture): the import-linter contracts in
pyproject.toml hold, and they break when a lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("lint-imports")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run(
        [*command, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(src), "NO_COLOR": "1"},
    )


def test_the_import_contracts_hold(tmp_path):
    result = _lint_imports(ROOT / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "broken"),
    [
        ("io/mimic.py", "from gazeloc import splits", "gazeloc.io is not allowed to import"),
        ("evaluate/pointing.py", "from gazeloc.train import loop", "import nothing from training"),
        ("model/losses.py", "from gazeloc.datasets import sets", "The model knows no"),
        ("synthetic/types.py", "import gazeloc.labeler", "imports no labeler rules"),
        ("report/html.py", "from gazeloc import cli", "Nothing imports the CLI"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, bad_import, broken):
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("data", "__pycache__")
    shutil.copytree(ROOT / "src" / "gazeloc", src / "gazeloc", ignore=skip)
    with open(src / "gazeloc" / module, "a") as handle:
        handle.write(f"\n\ndef _late():\n    {bad_import}  # noqa\n")
    result = _lint_imports(src, tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout
