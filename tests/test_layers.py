"""Import layers: the contracts of ``[tool.importlinter]`` in pyproject.toml hold.

``lint-imports`` (import-linter) reads the package from the file system, where the
repository's folders are not yet under one ``citywatch`` folder (setuptools maps them
at install). Each test links them as the installed package lays them out, in a temporary
folder, and runs ``lint-imports`` there against the project's own pyproject.toml.

The tests also plant a back-arrow and an import circle in such a tree and check that
the same contracts report them, so the layer test cannot pass by checking nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
PACKAGES = ("flows", "detectors", "geo", "sinks", "replay", "console", "benchmarks", "data")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def package_tree(dest: Path, real: tuple[str, ...] = ()) -> Path:
    """``dest/citywatch`` laid out as installed: each folder linked under ``citywatch``;
    the folders named in ``real`` are made of linked files instead, so a test can add
    modules to them without touching the repository."""
    pkg = dest / "citywatch"
    pkg.mkdir(parents=True)
    for f in (ROOT / "citywatch").iterdir():
        if f.suffix in (".py", ".typed"):
            (pkg / f.name).symlink_to(f)
    for name in PACKAGES:
        if name not in real:
            (pkg / name).symlink_to(ROOT / name, target_is_directory=True)
            continue
        for src in (ROOT / name).rglob("*.py"):
            link = pkg / name / src.relative_to(ROOT / name)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src)
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), (
        f"{LINT_IMPORTS} not found: install the dev dependencies (make .venv/.installed-stamp)"
    )
    # From the tree's folder: lint-imports puts the working directory first on the
    # path, so `citywatch` is the linked tree, not the repository's own citywatch/.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(PYPROJECT)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )


def test_the_package_keeps_its_import_layers(tmp_path: Path) -> None:
    done = lint_imports(package_tree(tmp_path))
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "0 broken" in report, report
    # Every module was read (a tree lint-imports cannot see would pass with no imports).
    analysed = int(report.split("Analyzed ")[1].split(" files")[0])
    assert analysed >= 100, report


@pytest.mark.parametrize(
    ("planted", "broken"),
    [
        pytest.param(
            {"geo/back_arrow.py": "from citywatch.detectors import base\n"},
            "Layers one way",
            id="geo-imports-detectors",
        ),
        pytest.param(
            {"sinks/back_arrow.py": "import citywatch.console.store\n"},
            "Only the flows",
            id="sinks-import-console",
        ),
        pytest.param(
            {
                "replay/circle_a.py": "from citywatch.replay import circle_b\n",
                "replay/circle_b.py": "from citywatch.replay import circle_a\n",
            },
            "No import circles",
            id="circle-in-replay",
        ),
    ],
)
def test_a_planted_violation_is_reported(
    tmp_path: Path, planted: dict[str, str], broken: str
) -> None:
    tree = package_tree(tmp_path, real=tuple({p.split("/")[0] for p in planted}))
    for rel, text in planted.items():
        (tree / "citywatch" / rel).write_text(text)
    done = lint_imports(tree)
    report = done.stdout + done.stderr
    assert done.returncode != 0, report
    kept_or_broken = [line for line in report.splitlines() if line.startswith(broken)]
    assert kept_or_broken and kept_or_broken[0].endswith("BROKEN"), report
    # A back-arrow between packages is also a circle between them (the acyclic contract).
    assert "0 broken" not in report, report
