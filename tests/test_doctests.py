"""Every docstring example in the packages runs (STYLE: examples that never run rot)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = tuple(
    f"citywatch.{name}" for name in ("detectors", "geo", "flows", "sinks", "replay", "console")
)


def _modules() -> list[str]:
    names: list[str] = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}."):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
