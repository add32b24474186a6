"""What made a result: the package version and the git commit of its source tree.

``git_commit()`` is the commit of the checkout the package is imported from (with ``-dirty``
when tracked files differ from it), or ``"unknown"`` outside a git checkout (an installed
package, a copied tree). Nothing here touches the network.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from gazeloc import __version__

PACKAGE_DIR = Path(__file__).resolve().parent


def version() -> str:
    return __version__


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(PACKAGE_DIR), *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout.strip()


@functools.cache
def git_commit() -> str:
    """The commit of the package's own checkout (``src/gazeloc`` inside it), else unknown."""
    try:
        top = Path(_git("rev-parse", "--show-toplevel")).resolve()
        if top / "src" / "gazeloc" != PACKAGE_DIR:
            return "unknown"
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def provenance() -> dict[str, str]:
    """``gazeloc_version`` and ``git_commit`` (the keys written into ``model.pt``)."""
    return {"gazeloc_version": version(), "git_commit": git_commit()}
