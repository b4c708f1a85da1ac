"""Per-person inference: sitting features, constrained grouping, its quality, and group-level decisions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from maskcls.layout import encode, joint_probabilities
from maskcls.person import (
    PHOTOS_PER_PERSON,
    apply_person_mode,
    assign_masks,
    choose_grouping,
    choose_threshold,
    group_photos,
    grouping_quality,
    image_statistics,
    kept_cells,
    standardize,
)


def photos(mask_rows, gender_rows, age_rows) -> np.ndarray:
    """(N, 18) probabilities from per-photo task distributions."""
    return joint_probabilities(*(np.asarray(rows, dtype=np.float64) for rows in (mask_rows, gender_rows, age_rows)))


def blobs(rng, people: int, dim: int = 30, spread: float = 0.05, size: int = PHOTOS_PER_PERSON):
    """`people` well separated Gaussian blobs of `size` points each, shuffled; returns (points, person ids)."""
    centers = rng.normal(size=(people, dim))
    points = np.repeat(centers, size, 0) + spread * rng.normal(size=(people * size, dim))
    ids = np.repeat(np.arange(people), size)
    order = rng.permutation(len(ids))
    return points[order], ids[order]


def as_sets(groups) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(groups == g).tolist()) for g in np.unique(groups)}


# --- decisions per group ----------------------------------------------------------------------------------------

WORN, INCORRECT, NONE = [0.9, 0.06, 0.04], [0.25, 0.7, 0.05], [0.05, 0.05, 0.9]


def seven_photos(masks=None, genders=None):
    masks = masks or [WORN, WORN, WORN, [0.35, 0.6, 0.05], WORN, INCORRECT, NONE]
    genders = genders or [[0.9, 0.1]] * 7
    return photos(masks, genders, [[0.8, 0.15, 0.05]] * 7)


def test_assignment_turns_two_incorrect_masks_into_exactly_one():
    p = seven_photos()
    groups = np.zeros(7, np.int64)
    assert (p.argmax(1) // 6).tolist() == [0, 0, 0, 1, 0, 1, 2]  # alone, two photos look incorrect
    _, pooled = apply_person_mode(p, groups, "pool")
    assert (pooled // 6).tolist() == [0, 0, 0, 1, 0, 1, 2]  # pooling alone keeps per-photo masks
    out, decision = apply_person_mode(p, groups, "pool+assign")
    # Photo 5 is the likelier incorrect one: log(0.7 / 0.25) > log(0.6 / 0.35).
    assert (decision // 6).tolist() == [0, 0, 0, 0, 0, 1, 2]
    assert decision.tolist() == encode(np.array([0, 0, 0, 0, 0, 1, 2]), 0, 0).tolist()
    assert (out.argmax(1) == decision).all()
    np.testing.assert_allclose(out.sum(1), 1.0)


def test_assignment_is_the_most_probable_valid_one():
    rng = np.random.default_rng(1)
    log_mask = np.log(rng.dirichlet(np.ones(3), size=(40, 7)))
    labels = assign_masks(log_mask)
    for g in range(len(log_mask)):
        best = max(
            (log_mask[g, np.arange(7), lab].sum(), lab)
            for i, j in itertools.permutations(range(7), 2)
            for lab in [np.array([1 if k == i else 2 if k == j else 0 for k in range(7)])]
        )
        assert sorted(labels[g].tolist()) == [0, 0, 0, 0, 0, 1, 2]
        assert labels[g].tolist() == best[1].tolist()


def test_pooled_gender_overrides_a_single_wrong_photo():
    genders = [[0.2, 0.8]] * 6 + [[0.9, 0.1]]  # one photo confidently male, six say female
    p = seven_photos(genders=genders)
    assert p.argmax(1)[6] // 3 % 2 == 0
    for mode in ("pool", "pool+assign"):
        out, decision = apply_person_mode(p, np.zeros(7, np.int64), mode)
        assert (decision // 3 % 2 == 1).all()
        assert (out.argmax(1) == decision).all()
        # Every photo of the group carries the same pooled gender.
        gender = out.reshape(7, 3, 2, 3).sum((1, 3))
        np.testing.assert_allclose(gender, np.repeat(gender[:1], 7, 0))
    # The pooled gender is the renormalised geometric mean.
    geo = np.exp(np.log(np.array(genders)).mean(0))
    out, _ = apply_person_mode(p, np.zeros(7, np.int64), "pool")
    np.testing.assert_allclose(out.reshape(7, 3, 2, 3).sum((1, 3))[0], geo / geo.sum())


def test_incomplete_groups_keep_per_photo_masks_and_singletons_are_untouched():
    p = seven_photos(genders=[[0.2, 0.8]] * 5 + [[0.9, 0.1]] * 2)
    groups = np.array([0, 0, 0, 0, 0, 0, 1])  # six photos and a single one
    out, decision = apply_person_mode(p, groups, "pool+assign")
    assert (decision[:6] // 6).tolist() == (p[:6].argmax(1) // 6).tolist()  # two incorrect stay: no assignment
    assert (decision[:6] // 3 % 2 == 1).all()  # pooled gender
    np.testing.assert_allclose(out[6], p[6])
    assert decision[6] == p[6].argmax()


@pytest.mark.parametrize("mode", ["none", "pool", "pool+assign"])
@pytest.mark.parametrize("weight", [1.0, 0.6])
def test_decisions_are_the_argmax_of_the_returned_probabilities(mode, weight):
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.full(18, 0.3), size=200)
    groups = rng.integers(0, 35, 200)
    groups[:7] = 99  # at least one complete group
    out, decision = apply_person_mode(p, groups, mode, assign_weight=weight)
    assert out.shape == (200, 18) and decision.dtype == np.int64
    np.testing.assert_allclose(out.sum(1), 1.0)
    assert (out.argmax(1) == decision).all()
    if mode == "pool+assign":
        assert sorted((decision[:7] // 6).tolist()) == [0, 0, 0, 0, 0, 1, 2]


def test_person_mode_rejects_bad_input():
    p = seven_photos()
    with pytest.raises(ValueError, match="mode"):
        apply_person_mode(p, np.zeros(7), "vote")
    with pytest.raises(ValueError, match="groups"):
        apply_person_mode(p, np.zeros(6), "pool")
    with pytest.raises(ValueError, match="assign_weight"):
        apply_person_mode(p, np.zeros(7), "pool+assign", assign_weight=0.5)


# --- grouping ---------------------------------------------------------------------------------------------------


def test_grouping_recovers_planted_groups_of_seven_exactly():
    rng = np.random.default_rng(3)
    points, ids = blobs(rng, 286)  # 2002 photos
    groups = group_photos(points, threshold=0.5)
    assert as_sets(groups) == as_sets(ids)
    quality = grouping_quality(groups, ids)
    assert quality["people_whole"] == quality["purity"] == quality["full_groups"] == 1.0
    # Ids count up in order of each group's first photo.
    _, first = np.unique(groups, return_index=True)
    assert (np.diff(first) > 0).all() and groups[0] == 0


def test_a_single_sitting_is_one_group():
    rng = np.random.default_rng(4)
    points, _ = blobs(rng, 1)
    assert group_photos(points, threshold=0.5).tolist() == [0] * 7
    assert group_photos(points, threshold=0.0).tolist() == list(range(7))  # nothing close enough


@pytest.mark.parametrize("linkage", ["average", "complete", "single"])
@pytest.mark.parametrize("max_size", [7, 3])
def test_groups_never_exceed_max_size_even_when_everything_is_close(linkage, max_size):
    rng = np.random.default_rng(5)
    points = 1.0 + 1e-3 * rng.normal(size=(100, 8))
    groups = group_photos(points, threshold=2.0, max_size=max_size, k=5, linkage=linkage)
    sizes = np.bincount(groups)
    assert sizes.max() <= max_size
    assert sizes.sum() == 100 and (sizes >= 1).all()


def test_grouping_does_not_depend_on_input_order():
    rng = np.random.default_rng(6)
    # Loose blobs, so that the result is a mixture of good and bad groups: every merge decision counts.
    points, _ = blobs(rng, 60, dim=10, spread=0.6)
    groups = group_photos(points, threshold=0.8)
    order = rng.permutation(len(points))
    shuffled = group_photos(points[order], threshold=0.8)
    back = {frozenset(order[list(s)].tolist()) for s in as_sets(shuffled)}
    assert back == as_sets(groups)
    assert len(as_sets(groups)) > 60  # the case is not trivial
    assert (group_photos(points, threshold=0.8) == groups).all()  # and repeatable


def test_grouping_quality_on_hand_made_labels():
    people = np.array(["a"] * 7 + ["b"] * 7 + ["c"] * 3 + ["d"] * 2)
    groups = np.array([0] * 7 + [1] * 4 + [2] * 3 + [3] * 5)
    # a: whole. b: split over groups 1 and 2. c and d together in group 3 (c, d together, not whole).
    q = grouping_quality(groups, people)
    assert q["people_whole"] == 1 / 4
    assert q["people_together"] == 3 / 4
    assert q["purity"] == 3 / 4  # groups 0, 1, 2 are one person each; group 3 mixes c and d
    assert q["mean_group_size"] == 19 / 4
    assert q["full_groups"] == 7 / 19
    assert (q["groups"], q["people"]) == (4, 4)


def test_choose_threshold_maximises_people_recovered_and_prefers_the_smaller():
    rng = np.random.default_rng(7)
    points, ids = blobs(rng, 40, spread=0.05)
    best, table = choose_threshold(points, ids, [1.9, 0.001, 0.4, 0.6])
    assert [row["threshold"] for row in table] == [0.001, 0.4, 0.6, 1.9]
    assert table[0]["people_whole"] == 0.0  # nothing merges
    assert table[1]["people_whole"] == table[2]["people_whole"] == 1.0
    assert best == 0.4  # the smaller of the tied best
    assert {"purity", "mean_group_size", "full_groups"} <= set(table[0])


# --- features ---------------------------------------------------------------------------------------------------


def sitting(rng, wall, shirt, n=7, gain=None):
    """Photos of one synthetic sitting: a wall with a stripe, a shirt below, a face whose middle changes."""
    img = np.empty((n, 128, 96, 3), np.float64)
    img[:] = wall
    img[:, :, 10:14] = np.asarray(wall) * 0.5  # a door frame
    img[:, 90:] = shirt
    img[:, 30:90, 28:68] = (200, 160, 140)
    img[:, 55:85, 28:68] = rng.uniform(0, 255, (n, 1, 1, 3))  # the mask: a different colour each photo
    if gain is not None:
        img *= np.asarray(gain)[:, None, None, None]
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def test_image_statistics_identical_for_identical_photos_and_different_for_other_backgrounds():
    rng = np.random.default_rng(8)
    a = sitting(rng, (200, 200, 190), (30, 60, 120), n=1)
    b = sitting(rng, (90, 140, 90), (30, 60, 120), n=1)
    images = np.concatenate([a, a, b])
    f = image_statistics(images)
    assert f.shape == (3, kept_cells(128, 96).sum() * 3) and f.dtype == np.float32
    np.testing.assert_array_equal(f[0], f[1])
    assert np.abs(f[0] - f[2]).max() > 0.01


def test_image_statistics_ignore_the_mask_and_exposure():
    rng = np.random.default_rng(9)
    people = [((200, 200, 190), (30, 60, 120)), ((90, 140, 90), (200, 50, 50)), ((120, 120, 200), (240, 240, 240))]
    images = np.concatenate([sitting(rng, wall, shirt, gain=rng.uniform(0.85, 1.1, 7)) for wall, shirt in people])
    ids = np.repeat(np.arange(3), 7)
    f = image_statistics(images)
    d = np.linalg.norm(f[:, None] - f[None], axis=-1)
    same = ids[:, None] == ids[None]
    assert d[same].max() < d[~same].min()
    assert as_sets(group_photos(f, threshold=1.0)) == as_sets(ids)


def test_image_statistics_read_in_chunks_and_from_a_memory_map(tmp_path):
    rng = np.random.default_rng(10)
    images = rng.integers(0, 256, (11, 32, 24, 3), dtype=np.uint8)
    path = tmp_path / "images.npy"
    np.save(path, images)
    mapped = np.load(path, mmap_mode="r")
    whole = image_statistics(images, chunk_size=256)
    np.testing.assert_array_equal(image_statistics(mapped, chunk_size=3), whole)
    raw = image_statistics(images, standardize=False)
    np.testing.assert_allclose(image_statistics(images[:5], standardize=False), raw[:5], rtol=1e-6)
    assert np.isfinite(whole).all()
    with pytest.raises(ValueError, match="uint8"):
        image_statistics(images.astype(np.float32))


def test_rendered_people_are_recovered():
    """The generated sample's sittings (random exposure, shake and zoom per shot) come back as whole people."""
    from maskcls.synth.render import render_person

    images, ids = [], []
    for i in range(8):
        for img in render_person(0, 1, i, ("male", "female")[i % 2], 20 + 7 * i).values():
            images.append(img[32:480:4, 24:360:4][:128, :96].copy())
            ids.append(i)
    f = image_statistics(np.stack(images))
    groups = group_photos(f, threshold=0.9)
    assert grouping_quality(groups, np.array(ids))["people_whole"] == 1.0


# --- blocks, robust choices, standardised blocks ------------------------------------------------------------------


def test_blocks_keep_photos_apart_even_when_they_are_identical():
    rng = np.random.default_rng(11)
    points, ids = blobs(rng, 10)
    twice = np.concatenate([points, points])  # the same photos in two blocks (two networks' feature spaces, say)
    blocks = np.repeat([0, 1], len(points))
    groups = group_photos(twice, threshold=0.5, blocks=blocks)
    assert not set(groups[blocks == 0]) & set(groups[blocks == 1])
    assert as_sets(groups[blocks == 0]) == as_sets(ids) == as_sets(groups[blocks == 1])
    _, table = choose_threshold(twice, np.concatenate([ids, ids + 100]), [0.5], blocks=blocks)
    assert table[0]["people_whole"] == 1.0
    without = group_photos(twice, threshold=0.5)  # without blocks, copies merge with each other first
    assert set(without[blocks == 0]) & set(without[blocks == 1])


def test_choose_grouping_takes_the_middle_of_the_best_plateau_and_the_widest_linkage():
    rng = np.random.default_rng(12)
    points, ids = blobs(rng, 40, spread=0.05)
    candidates = [0.001, 0.2, 0.3, 0.4, 0.5, 0.6, 1.9]
    choice = choose_grouping(points, ids, candidates)
    table = choice["table"]
    assert set(table) == {"average", "complete", "single"}
    best = max(row["people_whole"] for rows in table.values() for row in rows)
    plateau = [row["threshold"] for row in table[choice["linkage"]] if row["people_whole"] == best]
    assert best == 1.0 and len(plateau) >= 3
    assert choice["threshold"] == plateau[(len(plateau) - 1) // 2] != min(plateau)  # not the smallest, as
    assert choose_threshold(points, ids, candidates, linkage=choice["linkage"])[0] == min(plateau)  # this one
    widths = {name: sum(row["people_whole"] == best for row in rows) for name, rows in table.items()}
    assert widths[choice["linkage"]] == max(widths.values())
    assert choice["quality"]["people_whole"] == 1.0 and "threshold" not in choice["quality"]
    # Only one linkage asked: that one.
    assert choose_grouping(points, ids, candidates, linkages=["complete"])["linkage"] == "complete"


def test_standardize_puts_blocks_on_one_scale():
    rng = np.random.default_rng(13)
    small, large = rng.normal(size=(50, 4)), 1000 + 50 * rng.normal(size=(50, 400))
    large[:, 0] = 7.0  # a constant column
    for block in (small, large):
        z = standardize(block)
        assert z.dtype == np.float32
        assert np.mean((z * z).sum(1)) == pytest.approx(1.0 if block is small else 399 / 400, rel=1e-4)
    assert (standardize(large)[:, 0] == 0).all()
    np.testing.assert_allclose(standardize(small), standardize(3 * small + 2), atol=1e-6)


def test_image_statistics_of_chosen_rows_equal_those_rows_taken_out_first():
    rng = np.random.default_rng(14)
    images = rng.integers(0, 256, (12, 32, 24, 3), dtype=np.uint8)
    rows = np.array([7, 2, 11, 3])
    np.testing.assert_array_equal(image_statistics(images, rows=rows, chunk_size=3), image_statistics(images[rows]))
    with pytest.raises(ValueError, match="rows"):
        image_statistics(images, rows=np.array([12]))
