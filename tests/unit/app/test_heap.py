"""An assembled process collects cyclic garbage rarely and never walks its start-up heap
(app/deploy/heap.py: a bulk load spent a third of its CPU in the collector)."""

from __future__ import annotations

import gc
from pathlib import Path

from app.deploy.assemble import deployed
from app.deploy.heap import THRESHOLDS
from app.settings import load_settings


async def test_an_assembled_process_has_frozen_its_heap_and_raised_the_thresholds(
    tmp_path: Path,
) -> None:
    gc.set_threshold(700, 10, 10)
    async with deployed(load_settings(data_dir=tmp_path)):
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 10_000  # the FHIR model and the registry at least
