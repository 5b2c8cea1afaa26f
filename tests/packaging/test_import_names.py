"""Everything is imported as ``citywatch.*``: no module in the tree imports one of the
repository's folders by its bare name (``import flows``, ``from geo import ...``).

A bare import works by accident inside a checkout (the folder is on ``sys.path``) and
fails from the installed wheel, or loads a second copy of a module under another name.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("flows", "detectors", "geo", "sinks", "replay", "console", "benchmarks", "data")


def _python_files() -> list[Path]:
    files: list[Path] = []
    for folder in (*FOLDERS, "citywatch", "tests"):
        files.extend((REPO / folder).rglob("*.py"))
    return sorted(files)


def _bare_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        bad.extend(
            f"{path.relative_to(REPO)}:{node.lineno}: {n}"
            for n in names
            if n.split(".")[0] in FOLDERS
        )
    return bad


def test_no_module_imports_a_folder_by_its_bare_name() -> None:
    files = _python_files()
    assert len(files) > 100  # the walk found the tree
    bad = [line for f in files for line in _bare_imports(f)]
    assert bad == [], "import these as citywatch.<folder>:\n" + "\n".join(bad)
