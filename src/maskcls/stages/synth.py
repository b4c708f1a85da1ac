"""synth: write a look-alike sample of the competition data (drawn by `maskcls.synth`) into `out`."""

from __future__ import annotations

import os
from pathlib import Path

from maskcls.synth import generate


def run(
    out: str | os.PathLike, people: int = 300, eval_people: int = 150, seed: int = 0, workers: int | None = None
) -> Path:
    """Write `people` train folders and `eval_people` eval people (7 photos each) to `out`; see `generate`."""
    return generate(out, people=people, eval_people=eval_people, seed=seed, workers=workers)
