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
