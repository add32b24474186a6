"""The stage-version guard (gazeloc.stageguard): a stage's code does not change without a
recorded decision (a version bump in versions.py, or an output-neutral reason)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gazeloc import stageguard

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_matches_its_record():
    problems = stageguard.check(ROOT)
    assert not problems, "\n".join(problems)


def _tree(root: Path, version: int = 1, body: str = "return 1") -> Path:
    """A minimal checkout: one rule of stage ``a`` running ``gazeloc run``."""
    (root / "workflow" / "rules").mkdir(parents=True, exist_ok=True)
    (root / "tests").mkdir(exist_ok=True)
    (root / "workflow" / "rules" / "a.smk").write_text(
        'rule a:\n    params:\n        version=stage_version("a"),\n'
        '    shell:\n        "python -m gazeloc run > {log}"\n'
    )
    pkg = root / "src" / "gazeloc"
    (pkg / "sub").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "versions.py").write_text(f'STAGE_VERSIONS: dict = {{"a": {version}}}\n')
    (pkg / "cli.py").write_text(
        "import argparse\n\n\ndef _run(args):\n    from gazeloc.sub import work\n\n"
        "    return work.go()\n\n\ndef _other(args):\n    return 0\n\n\n"
        "def build_parser():\n    parser = argparse.ArgumentParser()\n"
        "    sub = parser.add_subparsers()\n    p = sub.add_parser('run')\n"
        "    p.set_defaults(func=_run)\n    p = sub.add_parser('other')\n"
        "    p.set_defaults(func=_other)\n    return parser\n"
    )
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "work.py").write_text(f'"""Doc."""\n\n\ndef go():\n    {body}\n')
    (pkg / "unused.py").write_text("X = 1\n")
    return root


def _update(root: Path, **kw) -> list[str]:
    return stageguard.update(root, ask=False, out=io.StringIO(), **kw)


def test_closure_follows_function_level_imports(tmp_path):
    files = stageguard.stage_modules(_tree(tmp_path))["a"]
    assert set(files) == {
        "gazeloc/__init__.py",
        "gazeloc/cli.py::run",
        "gazeloc/sub/__init__.py",
        "gazeloc/sub/work.py",
    }


def test_a_change_needs_a_bump_or_an_output_neutral_reason(tmp_path):
    root = _tree(tmp_path)
    assert stageguard.check(root) and _update(root) == []
    assert stageguard.check(root) == []
    # docstrings, comments, formatting and other commands are no change
    work = root / "src" / "gazeloc" / "sub" / "work.py"
    work.write_text('"""Other words."""\n\n\n# a comment\ndef go():\n    return   1\n')
    (root / "src" / "gazeloc" / "unused.py").write_text("X = 2\n")
    cli = root / "src" / "gazeloc" / "cli.py"
    cli.write_text(
        cli.read_text().replace("def _other(args):\n    return 0", "def _other(a):\n    return 5")
    )
    assert stageguard.check(root) == []
    # a code change in the closure: the check fails and names the module
    _tree(root, body="return 2")
    (problem,) = stageguard.check(root)
    assert "stage a" in problem and "gazeloc/sub/work.py" in problem and "bump" in problem
    assert _update(root) == ["a"]  # no decision: not recorded
    assert stageguard.check(root)
    assert _update(root, neutral={"a": "same numbers, faster"}) == []
    assert stageguard.check(root) == []
    assert stageguard.read_record(root)["a"]["decision"] == "output-neutral: same numbers, faster"
    # a change with a version bump is recorded as such, without a reason
    _tree(root, version=2, body="return 3")
    assert stageguard.check(root) and _update(root) == []
    assert stageguard.read_record(root)["a"]["decision"] == "version 2"
    # a bump alone (same code) must be recorded too
    _tree(root, version=3, body="return 3")
    assert "version 3 in versions.py" in stageguard.check(root)[0]
    _tree(root, version=3, body="return 4")
    assert _update(root, all_neutral="refactor") == []
    assert stageguard.read_record(root)["a"]["decision"] == "version 3"


def test_command_line(tmp_path, capsys):
    root = _tree(tmp_path)
    assert stageguard.main(["--root", str(root), "check"]) == 1
    assert stageguard.main(["--root", str(root), "update", "--no-input"]) == 0
    _tree(root, body="return 2")
    assert stageguard.main(["--root", str(root), "update", "--no-input"]) == 1
    args = ["--root", str(root), "update", "--output-neutral", "a=renamed a variable"]
    assert stageguard.main(args) == 0
    assert stageguard.main(["--root", str(root), "check"]) == 0
    with pytest.raises(SystemExit):
        stageguard.main(["--root", str(root), "update", "--output-neutral", "a"])
