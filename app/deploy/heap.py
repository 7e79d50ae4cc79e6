"""The cyclic garbage collector, set for a process that keeps a large static heap (the FHIR
model, the search parameters, the compiled FHIRPath) and allocates millions of short-lived
containers per thousand resources (parsed JSON, index values).

With CPython's default thresholds (700, 10, 10) a bulk load spent about a third of its CPU in
collections that traverse that heap again and again and free almost nothing: our garbage is
acyclic and goes with its last reference. Measured in bench/README.md ("Bulk load")."""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)

_frozen = False


def settle_heap() -> None:
    """Move what is alive once the process is assembled out of the collector's sight (it lives
    as long as the process) and collect less often. Idempotent: the freeze happens once."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
    gc.set_threshold(*THRESHOLDS)
