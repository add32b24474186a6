"""Stage-version guard: a stage's code cannot change without a decision about its version.

Snakemake reruns a job when its rule, parameters or inputs change, not when package code that
its command runs changes; :mod:`gazeloc.versions` holds per-stage output versions for that, and
this module makes sure they are not forgotten. For every stage (the ``stage_version("...")`` of
the rules in ``workflow/rules/*.smk``) it hashes the code the stage's commands run: each rule's
``python -m gazeloc COMMAND``, that command's part of :mod:`gazeloc.cli` (its sub-parser, its
handler and the helpers they use) and the import closure of the handler within ``gazeloc``
(every ``gazeloc`` module imported, at module level or inside functions, recursively, with
their parent packages). Modules are hashed as their syntax tree without docstrings, so that
comments, docstrings and formatting are no change.

The record (``tests/stage_record.json``) keeps, per stage, the hash, the version it was made
with, the decision that accepted it (``version N`` or ``output-neutral: <reason>``) and a short
hash per module (to name what changed). ``tests/test_stage_versions.py`` fails while a stage's
hash or version differs from the record. To update it::

    python -m gazeloc.stageguard update                 # asks, per changed stage
    python -m gazeloc.stageguard update --output-neutral train="faster data loading"
    python -m gazeloc.stageguard update --all-output-neutral "refactor, same outputs"

A stage whose version in ``versions.py`` went up is accepted as ``version N`` without a
question; a changed stage with the same version needs an output-neutral reason (from the
options above, or typed at the prompt). ``python -m gazeloc.stageguard check`` prints what the
test would say. Only the standard library is used; nothing is imported from the tree it reads.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

RECORD = Path("tests") / "stage_record.json"
_RULE = re.compile(r"^(?=(?:local)?rule \w+:)", re.MULTILINE)
_STAGE = re.compile(r'stage_version\("(\w+)"\)')
_COMMAND = re.compile(r"python -m gazeloc ([a-z][a-z0-9-]*)")


def default_root() -> Path:
    """The checkout this module belongs to (``src/gazeloc/..``)."""
    return Path(__file__).resolve().parents[2]


# --- what each stage runs -------------------------------------------------------------------


def stage_commands(root: Path) -> dict[str, set[str]]:
    """Stage → the ``gazeloc`` subcommands its rules run."""
    out: dict[str, set[str]] = {}
    for path in sorted((root / "workflow" / "rules").glob("*.smk")):
        for block in _RULE.split(path.read_text(encoding="utf-8"))[1:]:
            stage = _STAGE.search(block)
            if stage:
                out.setdefault(stage.group(1), set()).update(_COMMAND.findall(block))
    return out


def stage_versions(root: Path) -> dict[str, int]:
    """``STAGE_VERSIONS`` of the tree's ``versions.py`` (read, not imported)."""
    tree = ast.parse((root / "src" / "gazeloc" / "versions.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "STAGE_VERSIONS" and node.value:
            return {k: int(v) for k, v in ast.literal_eval(node.value).items()}
    raise ValueError("versions.py has no STAGE_VERSIONS")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _digest(nodes: Iterable[ast.AST]) -> str:
    text = "\n".join(ast.dump(_strip_docstrings(n), include_attributes=False) for n in nodes)
    return hashlib.sha256(text.encode()).hexdigest()


class _Package:
    """The ``gazeloc`` modules of a source tree and their imports."""

    def __init__(self, root: Path) -> None:
        self.src = root / "src"

    def file(self, module: str) -> Path | None:
        base = self.src.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def parse(self, module: str) -> ast.Module:
        return ast.parse(self.file(module).read_text(encoding="utf-8"))

    def imports(self, module: str, nodes: Iterable[ast.AST]) -> set[str]:
        """The ``gazeloc`` modules that ``nodes`` (of ``module``) import."""
        is_package = self.file(module).name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        found: set[str] = set()
        for top in nodes:
            for node in ast.walk(top):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parts = package.split(".")
                        parts = parts[: len(parts) - node.level + 1]
                        base = ".".join([*parts, base] if base else parts)
                    names = [base] + [f"{base}.{alias.name}" for alias in node.names]
                for name in names:
                    if (name == "gazeloc" or name.startswith("gazeloc.")) and self.file(name):
                        found.add(name)
        return found

    def closure(self, modules: Iterable[str]) -> set[str]:
        todo, seen = list(modules), set()
        while todo:
            module = todo.pop()
            if module in seen or self.file(module) is None:
                continue
            seen.add(module)
            parts = module.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
            todo.extend(self.imports(module, [self.parse(module)]))
        return seen


def _cli_parts(package: _Package) -> tuple[dict[str, list[ast.AST]], dict[str, ast.AST]]:
    """Subcommand → its sub-parser statements (``add_parser`` … ``set_defaults``) and handler
    name; and cli's module-level functions and classes by name."""
    tree = package.parse("gazeloc.cli")
    defs = {
        n.name: n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    }
    commands: dict[str, list[ast.AST]] = {}
    build = defs.get("build_parser")
    current: list[ast.AST] | None = None
    for stmt in build.body if build else []:
        call = getattr(stmt, "value", None)
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "add_parser"
            and call.args
            and isinstance(call.args[0], ast.Constant)
        ):
            current = commands.setdefault(call.args[0].value, [])
        if current is not None:
            current.append(stmt)
    return commands, defs


def stage_modules(root: Path) -> dict[str, dict[str, str]]:
    """Stage → {module file (relative to src/) or ``cli.py::COMMAND``: its hash}."""
    package = _Package(root)
    commands, defs = _cli_parts(package)
    cli_tree = package.parse("gazeloc.cli")
    cli_top_imports = package.imports(
        "gazeloc.cli", [n for n in cli_tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    )
    out: dict[str, dict[str, str]] = {}
    for stage, names in sorted(stage_commands(root).items()):
        files: dict[str, str] = {}
        roots = set(cli_top_imports)
        for command in sorted(names):
            nodes = list(commands.get(command, []))
            if not nodes:
                raise ValueError(f"stage {stage}: no subcommand {command!r} in gazeloc.cli")
            used: dict[str, ast.AST] = {}
            todo = nodes[:]
            while todo:  # cli functions and classes the sub-parser and its handler use
                for node in ast.walk(todo.pop()):
                    name = node.id if isinstance(node, ast.Name) else None
                    if name in defs and name not in used and name != "build_parser":
                        used[name] = defs[name]
                        todo.append(defs[name])
            parts = nodes + [used[k] for k in sorted(used)]
            files[f"gazeloc/cli.py::{command}"] = _digest(parts)
            roots |= package.imports("gazeloc.cli", parts)
        for module in sorted(package.closure(roots) - {"gazeloc.cli"}):
            path = package.file(module).relative_to(package.src).as_posix()
            files[path] = _digest([package.parse(module)])
        out[stage] = dict(sorted(files.items()))
    return out


def stage_hash(files: Mapping[str, str]) -> str:
    text = "\n".join(f"{k} {v}" for k, v in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


# --- the record -------------------------------------------------------------------------------


def read_record(root: Path) -> dict[str, dict]:
    path = root / RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_record(root: Path, record: Mapping[str, Mapping]) -> None:
    path = root / RECORD
    text = json.dumps(dict(sorted(record.items())), indent=2, sort_keys=True) + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _changed(entry: Mapping, files: Mapping[str, str]) -> list[str]:
    """The module files whose short hash differs from the record's (added, removed, edited)."""
    old = entry.get("modules", {})
    return sorted(k for k in set(old) | set(files) if old.get(k) != _short(files).get(k))


def _short(files: Mapping[str, str]) -> dict[str, str]:
    return {k: v[:12] for k, v in files.items()}


def check(root: Path | None = None) -> list[str]:
    """What differs from the record, one line per stage (empty: all recorded)."""
    root = root or default_root()
    record = read_record(root)
    versions = stage_versions(root)
    problems = []
    how = "then run `python -m gazeloc.stageguard update` (CONTRIBUTING.md, stage versions)"
    for stage, files in stage_modules(root).items():
        entry = record.get(stage)
        version = versions.get(stage)
        if entry is None:
            problems.append(f"stage {stage}: not in {RECORD}; {how}")
            continue
        if entry["hash"] != stage_hash(files):
            changed = _changed(entry, files)
            problems.append(
                f"stage {stage}: its code changed since {RECORD} ({', '.join(changed)}): bump "
                f"STAGE_VERSIONS[{stage!r}] in src/gazeloc/versions.py if what it writes "
                f"changes, or declare the change output-neutral; {how}"
            )
        elif entry["version"] != version:
            problems.append(
                f"stage {stage}: version {version} in versions.py, {entry['version']} in "
                f"{RECORD}; {how}"
            )
    for stage in sorted(set(record) - set(stage_modules(root))):
        problems.append(f"stage {stage}: in {RECORD} but no rule has it; {how}")
    return problems


def update(
    root: Path | None = None,
    *,
    neutral: Mapping[str, str] | None = None,
    all_neutral: str | None = None,
    ask: bool | None = None,
    out=sys.stdout,
) -> list[str]:
    """Record every stage's current hash with its decision; return the stages left
    unrecorded (changed, same version, no output-neutral reason)."""
    root = root or default_root()
    record = read_record(root)
    versions = stage_versions(root)
    modules = stage_modules(root)
    neutral = dict(neutral or {})
    ask = sys.stdin.isatty() if ask is None else ask
    unknown = sorted(set(neutral) - set(modules))
    if unknown:
        raise ValueError(f"--output-neutral: no stage {', '.join(unknown)}")
    left = []
    new_record = {s: e for s, e in record.items() if s in modules}
    for stage, files in modules.items():
        entry = record.get(stage)
        version = versions[stage]
        digest = stage_hash(files)
        if entry is not None and entry["hash"] == digest and entry["version"] == version:
            continue
        if entry is None:
            decision = f"version {version} (first record)"
        elif version > entry["version"]:
            decision = f"version {version}"
        elif version < entry["version"]:
            raise ValueError(f"stage {stage}: version went down ({entry['version']} -> {version})")
        elif entry["hash"] == digest:
            decision = entry["decision"]
        else:
            changed = _changed(entry, files)
            reason = neutral.get(stage) or all_neutral
            if not reason and ask:
                print(
                    f"stage {stage} (version {version}) changed: {', '.join(changed)}.\n"
                    "  If what it writes changes, stop (empty answer), bump its version in "
                    "src/gazeloc/versions.py and run this again.\n"
                    "  Otherwise give the reason it is output-neutral: ",
                    end="",
                    file=out,
                    flush=True,
                )
                reason = sys.stdin.readline().strip()
            if not reason:
                left.append(stage)
                print(f"stage {stage}: changed ({', '.join(changed)}), not recorded", file=out)
                continue
            decision = f"output-neutral: {reason}"
        new_record[stage] = {
            "version": version,
            "hash": digest,
            "decision": decision,
            "modules": _short(files),
        }
        print(f"stage {stage}: recorded ({decision})", file=out)
    write_record(root, new_record)
    return left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gazeloc.stageguard",
        description=f"Check or update the record of each stage's code hash and version ({RECORD}).",
    )
    parser.add_argument("--root", type=Path, default=None, help="checkout (default: this one)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="list the stages whose code or version differs from the record")
    p = sub.add_parser("update", help="record the current hashes (asks per changed stage)")
    p.add_argument(
        "--output-neutral",
        action="append",
        default=[],
        metavar="STAGE=REASON",
        help="declare a changed stage's change output-neutral (repeatable)",
    )
    p.add_argument(
        "--all-output-neutral",
        metavar="REASON",
        default=None,
        help="declare every changed stage whose version did not go up output-neutral",
    )
    p.add_argument("--no-input", action="store_true", help="never ask (changed stages stay)")
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check(args.root)
        print("\n".join(problems) if problems else "every stage is recorded")
        return 1 if problems else 0
    neutral = {}
    for item in args.output_neutral:
        stage, sep, reason = item.partition("=")
        if not sep or not reason.strip():
            parser.error(f"--output-neutral {item!r}: expected STAGE=REASON")
        neutral[stage.strip()] = reason.strip()
    left = update(
        args.root,
        neutral=neutral,
        all_neutral=args.all_output_neutral,
        ask=False if args.no_input else None,
    )
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
