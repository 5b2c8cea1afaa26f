"""The docstring examples of the track modules run (STYLE.md habit 9)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "citywatch.detectors.track",
    "citywatch.detectors.tracks_gap",
    "citywatch.detectors.tracks_jump",
    "citywatch.detectors.tracks_rendezvous",
    "citywatch.detectors.tracks_speeding",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
