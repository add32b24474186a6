"""The documentation is current and self-contained: the configuration page matches the schema,
every schema key is described, every relative Markdown link and every cited ``*.md`` file
resolves, and no file cites a document that is not in the repository."""

from __future__ import annotations

import ast
import io
import itertools
import os
import re
import tokenize
from pathlib import Path

import pytest
import yaml

from gazeloc import configdoc

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SKIP_DIRS = {"__pycache__", "node_modules", "build", "dist"}
TEXT_SUFFIXES = {".md", ".py", ".smk", ".yaml", ".yml", ".toml", ".cff", ".rst", ".sh", ".txt"}
TEXT_NAMES = {"Snakefile", "Makefile", "run"}
README_LIMIT = 10 * 1024


def repo_files() -> list[Path]:
    """Text files of the repository: no hidden folders (but ``.ci``), outputs, caches or venv."""
    files = []
    for folder, dirs, names in os.walk(ROOT):
        here = Path(folder)
        rel = here.relative_to(ROOT)
        dirs[:] = sorted(
            d
            for d in dirs
            if not (d.startswith(".") and d != ".ci")
            and d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (rel == Path(".") and d.startswith("results"))
            and not (rel == Path("bench") and d == "out")
        )
        for name in names:
            path = here / name
            if path.suffix in TEXT_SUFFIXES or name in TEXT_NAMES:
                files.append(path)
    files.append(ROOT / "results" / "README.md")  # the one tracked file among the outputs
    return sorted(p for p in set(files) if p.is_file())


# --- configuration page ---------------------------------------------------------------------


def test_configuration_page_is_current():
    page = ROOT / "docs" / "configuration.md"
    expected = configdoc.generate(SCHEMA, ROOT / "config.yaml")
    assert page.read_text(encoding="utf-8") == expected, (
        "docs/configuration.md is stale: run python -m gazeloc.configdoc --write "
        "docs/configuration.md"
    )


def test_every_schema_key_has_a_description():
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    assert configdoc.missing_descriptions(schema) == []


def test_experiment_overrides_mirror_their_sections():
    """An experiment's model/training overrides accept exactly what the sections accept, and
    say the same (the page documents them once, in the sections)."""
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    fields = schema["$defs"]["experiment"]["properties"]
    for section in ("model", "training"):
        main = schema["properties"][section]["properties"]
        override = fields[section]["properties"]
        assert set(override) == set(main), section
        for key, sub in override.items():
            expected = {k: v for k, v in main[key].items() if k != "default"}
            got = dict(sub)
            assert got.pop("description", "").strip() == expected.pop("description", "").strip()
            assert got == expected, f"{section}.{key}"


def test_configdoc_check_flags_a_stale_page(tmp_path):
    page = tmp_path / "configuration.md"
    args = ["--schema", str(SCHEMA), "--config", str(ROOT / "config.yaml")]
    assert configdoc.main(["--write", str(page), *args]) == 0
    assert configdoc.main(["--check", str(page), *args]) == 0
    page.write_text(page.read_text(encoding="utf-8") + "edited\n", encoding="utf-8")
    assert configdoc.main(["--check", str(page), *args]) == 1


def test_configdoc_refuses_a_key_without_description(tmp_path):
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    del schema["properties"]["images"]["properties"]["size"]["description"]
    bad = tmp_path / "schema.yaml"
    bad.write_text(yaml.safe_dump(schema), encoding="utf-8")
    page = tmp_path / "configuration.md"
    args = ["--write", str(page), "--schema", str(bad), "--config", str(ROOT / "config.yaml")]
    assert configdoc.main(args) == 1
    assert not page.exists()
    assert configdoc.missing_descriptions(schema) == ["images.size"]


def test_configuration_page_lists_every_key_with_its_default():
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    page = configdoc.render(schema, {"images": {"size": 96}})
    for path, sub in configdoc.leaf_keys(schema):
        row = next(line for line in page.splitlines() if line.startswith(f"| `{path}` |"))
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[2] == configdoc._fmt(sub["default"]), path
    size = next(line for line in page.splitlines() if line.startswith("| `images.size` |"))
    assert "| `512` | `96` |" in size
    assert "a multiple of 8" in size


# --- README ---------------------------------------------------------------------------------


def test_readme_is_at_most_10_kb():
    assert len((ROOT / "README.md").read_bytes()) <= README_LIMIT


# --- links and cited files ------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CITED = re.compile(r"(?<![\w.{}*/$-])((?:[\w.-]+/)*[\w-]+\.md)\b(?:#([\w-]+))?")
FORBIDDEN = re.compile(
    r"design\.md|reference-method|data-formats\.md|design contracts?|reference §|style\.md"
    r"|slurm-local\.md",
    re.IGNORECASE,
)


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub makes them (lower case, punctuation dropped, spaces to -)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if in_code or not match:
            continue
        text = re.sub(r"[`*]", "", match.group(2)).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def markdown_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return LINK.findall(text)


def test_github_anchor_rules():
    anchors = github_anchors("# A b\n## The paper study's cost\n## `results_dir`\n## A b\n")
    assert anchors == {"a-b", "the-paper-studys-cost", "results_dir", "a-b-1"}


@pytest.mark.parametrize(
    "path", [p for p in repo_files() if p.suffix == ".md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_relative_markdown_links_resolve(path):
    broken = []
    for target in markdown_links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
            continue
        if anchor and dest.suffix == ".md":
            if anchor not in github_anchors(dest.read_text(encoding="utf-8")):
                broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def _expand_braces(text: str) -> list[str]:
    parts = re.split(r"\{([^{}]*,[^{}]*)\}", text)
    options = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(choice) for choice in itertools.product(*options)]


def output_md_names() -> set[str]:
    """Names of the Markdown files the workflow writes, as docs/outputs.md lists them."""
    names = set()
    for token in re.findall(r"`([^`]+)`", (ROOT / "docs" / "outputs.md").read_text("utf-8")):
        for path in _expand_braces(token):
            if path.endswith(".md"):
                names.add(Path(path).name)
    return names


def prose(path: Path) -> str:
    """The parts of a file that are written for people: all of a text file; of Python, the
    docstrings, the comments and help/description strings."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return text
    pieces = []
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                pieces.append(doc)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):  # attribute docstrings
                pieces.append(node.value.value)
        elif isinstance(node, ast.keyword) and node.arg in ("help", "description", "epilog"):
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    pieces.append(sub.value)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            pieces.append(token.string)
    return "\n".join(pieces)


def test_every_cited_markdown_file_exists():
    outputs = output_md_names()
    assert {"summary.md", "realism.md", "labeler.md"} <= outputs
    missing = []
    for path in repo_files():
        for cited, anchor in set(CITED.findall(prose(path))):
            candidates = [path.parent / cited, ROOT / cited, ROOT / "docs" / cited]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                if Path(cited).name not in outputs:
                    missing.append(f"{path.relative_to(ROOT)}: {cited}")
                continue
            if anchor and anchor not in github_anchors(found.read_text(encoding="utf-8")):
                missing.append(f"{path.relative_to(ROOT)}: {cited}#{anchor} (no such heading)")
    assert not missing, "cited Markdown files that are not in the repository:\n" + "\n".join(
        missing
    )


def test_no_file_cites_the_build_specification():
    hits = []
    for path in repo_files():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not hits, "references to documents outside the repository:\n" + "\n".join(hits)


def test_cited_file_check_catches_a_missing_document(tmp_path):
    doc = tmp_path / "notes.py"
    doc.write_text(
        '"""See guide.md and docs/method.md#losses."""\nx = "c.md"  # not prose, docs/a.md\n'
    )
    assert set(CITED.findall(prose(doc))) == {
        ("guide.md", ""),
        ("docs/method.md", "losses"),
        ("docs/a.md", ""),
    }
