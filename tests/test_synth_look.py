"""How people look: gender and age cues that are noisy and overlap."""

from __future__ import annotations

import numpy as np

from maskcls import layout
from maskcls.synth.look import draw_look


def test_gender_and_age_cues_are_noisy_and_overlap():
    rng = np.random.default_rng(0)
    looks = {(g, a): [draw_look(rng, g, a) for _ in range(150)] for g in layout.GENDERS for a in (20, 58, 60)}
    male = [lk for (g, _), group in looks.items() if g == "male" for lk in group]
    female = [lk for (g, _), group in looks.items() if g == "female" for lk in group]

    def share_long(group):
        return np.mean([lk.hair_style != "short" for lk in group])

    assert share_long(female) > 0.6 > 0.3 > share_long(male) > 0  # mostly, not always
    assert np.mean([lk.fw for lk in male]) > np.mean([lk.fw for lk in female])
    assert max(lk.fw for lk in female) > min(lk.fw for lk in male)
    assert np.mean([lk.brow_thickness for lk in male]) > np.mean([lk.brow_thickness for lk in female])

    def grey(age):
        return np.array([lk.grey for g in layout.GENDERS for lk in looks[(g, age)]])

    assert grey(58).mean() - grey(20).mean() > 0.5
    assert 0 < grey(60).mean() - grey(58).mean() < 0.15  # 58 and 60 look nearly alike
    assert (grey(58) > np.median(grey(60))).mean() > 0.3


def test_people_stand_nearer_or_further_and_off_centre_as_in_real_photos():
    """Real photos: face boxes about 120-220 px wide, centred across give or take ~15 px, the face centre at
    35-50% of the height. The camera zooms about the face centre (y 0.43 of the frame, Haar box ~160 px wide
    at scale 1), so a person's scale and offset place their face; each photo adds a little shake."""
    rng = np.random.default_rng(1)
    looks = [draw_look(rng, g, 30) for g in layout.GENDERS for _ in range(300)]
    width = 160 * np.array([lk.scale for lk in looks])
    cx = np.array([lk.cx + lk.offset[0] for lk in looks]) / 384
    cy = np.array([lk.cy + lk.offset[1] for lk in looks]) / 512
    p5, p95 = np.percentile(width, [5, 95])
    assert 110 < p5 < 130 and 205 < p95 < 235
    assert 10 < cx.std() * 384 < 20 and abs(np.median(cx) - 0.5) < 0.01
    lo, hi = np.percentile(cy, [5, 95])
    assert 0.33 < lo < 0.38 and 0.47 < hi < 0.52
    exposure = np.array([lk.exposure for lk in looks])
    assert exposure.min() < 0.85 and exposure.max() > 1.09  # rooms and phones differ between people
