"""Progress of long loops, readable in a terminal and in a log.

On a terminal, tqdm draws its bar. Anywhere else (`dvc repro` piped to a file, CI, a queued experiment) a bar
prints nothing useful, so a plain line goes out at a steady interval instead: how far, how fast, how long is left.
`MASKCLS_PROGRESS_SECONDS` sets the interval (default 30; 0 turns the lines off).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")
DEFAULT_SECONDS = 30.0


def interval() -> float:
    raw = os.environ.get("MASKCLS_PROGRESS_SECONDS", "")
    try:
        return float(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        raise ValueError(f"MASKCLS_PROGRESS_SECONDS={raw!r}: expected a number of seconds") from None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress(
    items: Iterable[T],
    desc: str,
    total: int | None = None,
    size=lambda item: 1,
    unit: str = "img",
    stream: TextIO | None = None,
    clock=time.monotonic,
) -> Iterator[T]:
    """Yield `items`, reporting progress. `size(item)` counts the units in one item (the images of a batch)."""
    stream = stream or sys.stderr
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if stream.isatty():
        yield from tqdm(items, desc=desc, total=total, unit="step", leave=False, file=stream)
        return
    every = interval()
    start = last = clock()
    done_units = 0
    for done_steps, item in enumerate(items, start=1):
        yield item
        done_units += size(item)
        now = clock()
        if every > 0 and now - last >= every:
            last = now
            rate = done_units / max(now - start, 1e-9)
            line = f"{desc}: {done_steps}/{total if total is not None else '?'} steps, {rate:.1f} {unit}/s"
            if total:
                left = (now - start) / done_steps * (total - done_steps)
                line += f", about {_duration(left)} left"
            print(line, file=stream, flush=True)
