"""Flow-test helpers: run the whole flow over raw lines in given batches and workers."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import pytest
from bytewax.run import cli_main
from bytewax.testing import TestingSink, TestingSource, run_main

from citywatch.flows.config import Config
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.records import RawBatch
from citywatch.geo.reference import Reference
from citywatch.sinks.dispatch import Dispatch


class RunBatched(Protocol):
    def __call__(
        self, lines: list[bytes], batch: int, workers: int, shards: int | None = None
    ) -> list[Dispatch]: ...


@pytest.fixture(scope="session")
def run_batched(config: Config, reference: Reference) -> RunBatched:
    """``run(lines, batch, workers, shards=None)``: the dispatches of the flow over
    ``lines`` cut into batches of ``batch`` lines, on one worker (in this thread) or
    several, with the config's ``[flow] shards`` or ``shards``."""

    def run(
        lines: list[bytes], batch: int, workers: int, shards: int | None = None
    ) -> list[Dispatch]:
        cfg = config
        if shards is not None:
            cfg = dataclasses.replace(config, flow=dataclasses.replace(config.flow, shards=shards))
        batches = [
            RawBatch("recording", lines[i : i + batch], 0) for i in range(0, len(lines), batch)
        ]
        out: list[Dispatch] = []
        flow = build_flow(
            TestingSource(batches),
            FlowOutputs(dispatch=TestingSink(out)),
            cfg,
            ReferenceHolder(reference),
        )
        if workers == 1:
            run_main(flow)
        else:
            cli_main(flow, workers_per_process=workers)
        return out

    return run
