"""A look-alike sample of the competition data, in its exact folder layout.

The real photos cannot be redistributed, so the pipeline, its tests and its benchmarks run on drawn people:
`people` decides who they are and what their labels say, `look` how each of them looks, `render` draws their
photos and `write` lays out the folder. Every random draw comes from a generator seeded by (seed, split, person),
so the same seed gives the same bytes whether people are drawn in one process or in a pool.
"""

from maskcls.synth.write import generate

__all__ = ["generate"]
