"""Drawing a person's photos: the same seed, split and person give the same pixels, another person others."""

from __future__ import annotations

import numpy as np

from maskcls import layout
from maskcls.synth.people import EVAL, TRAIN
from maskcls.synth.render import render_person


def test_render_person_is_deterministic_and_distinct_per_person():
    a = render_person(0, TRAIN, 0, "female", 20)
    b = render_person(0, TRAIN, 0, "female", 20)
    c = render_person(0, EVAL, 0, "female", 20)
    assert list(a) == list(layout.STEMS)
    assert all(np.array_equal(a[s], b[s]) for s in layout.STEMS)
    assert a["normal"].shape == (512, 384, 3) and a["normal"].dtype == np.uint8
    assert not np.array_equal(a["normal"], c["normal"])
