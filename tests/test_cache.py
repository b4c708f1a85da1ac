import dataclasses
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from maskcls import artifacts
from maskcls.errors import DataError, ResourceError
from maskcls.params import CacheParams, Params
from maskcls.paths import Paths
from maskcls.stages import cache as stage

SMALL = CacheParams(height=16, width=12)  # default crop: center, 448x336 at (0.45, 0.5)


# --- crop box math ------------------------------------------------------------------------------------------


def test_center_box_on_a_competition_photo():
    # centre (230.4, 192) -> top round(230.4 - 224) = 6, left 192 - 168 = 24
    assert stage.center_box((512, 384), CacheParams()) == (6, 24, 448, 336)


def test_center_box_clamped_inside():
    top_left = CacheParams(crop_center=(0.0, 0.0))
    bottom_right = CacheParams(crop_center=(1.0, 1.0))
    assert stage.center_box((512, 384), top_left) == (0, 0, 448, 336)
    assert stage.center_box((512, 384), bottom_right) == (64, 48, 448, 336)


@pytest.mark.parametrize(
    ("image_hw", "box"),
    [
        ((1024, 768), (13, 48, 896, 672)),  # twice the size: the box scales with the photo
        ((256, 192), (3, 12, 224, 168)),
        ((300, 301), (4, 19, 262, 263)),  # odd aspect: each side scales on its own
        ((7, 5), (0, 0, 6, 4)),
    ],
)
def test_center_box_scales_with_odd_sizes(image_hw, box):
    got = stage.center_box(image_hw, CacheParams())
    assert got == box
    top, left, h, w = got
    assert top >= 0 and left >= 0 and top + h <= image_hw[0] and left + w <= image_hw[1]


def test_face_box_centres_on_the_face_and_falls_back():
    params = CacheParams()
    box, fell_back = stage.face_box((512, 384), params, face=(200, 150, 80, 60))  # centre (240, 180)
    assert (box, fell_back) == ((16, 12, 448, 336), False)
    box, fell_back = stage.face_box((512, 384), params, face=(0, 0, 40, 40))  # corner face: box clamped inside
    assert (box, fell_back) == ((0, 0, 448, 336), False)
    box, fell_back = stage.face_box((512, 384), params, face=None)
    assert (box, fell_back) == (stage.center_box((512, 384), params), True)


def test_haar_detector_finds_generated_faces_in_the_upper_middle(tmp_path):
    from maskcls.imageio import read_rgb
    from maskcls.stages import synth

    raw = synth.run(tmp_path / "raw", people=4, eval_people=1, seed=3)
    detect = stage.haar_detector()
    assert detect(np.zeros((512, 384, 3), np.uint8)) is None  # blank photo: no face
    for photo in sorted(raw.glob("train/images/*/normal.*")):
        top, left, h, w = detect(read_rgb(photo))
        cy, cx = (top + h / 2) / 512, (left + w / 2) / 384
        assert 0.3 < cy < 0.55 and 0.35 < cx < 0.65, (photo, cy, cx)


def test_missing_haar_cascades_say_what_to_do(monkeypatch):
    monkeypatch.delattr(cv2, "CascadeClassifier")
    with pytest.raises(ResourceError, match="crop: center"):
        stage.haar_detector()


# --- the stage on a tiny competition folder -----------------------------------------------------------------


def write_photo(path, rng, hw=(512, 384)):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Smooth content: JPEG noise on random pixels would make the by-hand comparison meaningless.
    y, x = np.mgrid[0 : hw[0], 0 : hw[1]]
    base = rng.integers(0, 200, 3)
    arr = np.stack([(base[c] + (y * (c + 1) + x * (3 - c)) // 8) % 256 for c in range(3)], -1).astype(np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def root(tmp_path, rng):
    """A repository root with data/sample (5 train photos, one of odd size and one PNG, 2 eval) and the index."""
    raw = tmp_path / "data" / "sample"
    train_files = [f"train/images/000001_female_Asian_45/{s}" for s in ("mask1.jpg", "mask2.png", "normal.jpeg")]
    train_files += ["train/images/000002_male_Asian_60/mask1.jpg", "train/images/000002_male_Asian_60/normal.jpg"]
    eval_files = ["eval/images/aa.jpg", "eval/images/bb.jpg"]
    for i, f in enumerate(train_files + eval_files):
        write_photo(raw / f, rng, hw=(300, 260) if i == 3 else (512, 384))
    index = Paths(tmp_path).index_dir
    index.mkdir(parents=True)
    pd.DataFrame({"row": range(5), "file": train_files}).to_csv(index / "train.csv", index=False)
    pd.DataFrame({"row": range(2), "ImageID": ["aa.jpg", "bb.jpg"], "file": eval_files}).to_csv(
        index / "eval.csv", index=False
    )
    return tmp_path


def params_with(**cache):
    return Params(cache=dataclasses.replace(SMALL, **cache))


def by_hand(path, cache: CacheParams):
    image = np.asarray(Image.open(path).convert("RGB"))
    top, left, h, w = stage.center_box(image.shape[:2], cache)
    return cv2.resize(image[top : top + h, left : left + w], (cache.width, cache.height), interpolation=cv2.INTER_AREA)


def test_cache_matches_decoding_by_hand(root):
    params = params_with()
    meta = stage.run(params, root=root, threads=2)
    cache_dir = Paths(root).cache_dir
    train = artifacts.open_cache(cache_dir, "train", expected_rows=5, expected_size=(16, 12))
    evals = artifacts.open_cache(cache_dir, "eval", expected_rows=2)
    assert train.shape == (5, 16, 12, 3) and train.dtype == np.uint8 and evals.shape == (2, 16, 12, 3)
    files = pd.read_csv(Paths(root).index_dir / "train.csv")["file"]
    raw = root / "data" / "sample"
    for row in (1, 3):  # the PNG and the odd-sized photo
        np.testing.assert_array_equal(train[row], by_hand(raw / files[row], params.cache))
    assert meta["counts"] == {"train": 5, "eval": 2}
    assert meta["odd_size_photos"] == {"train": 1, "eval": 0}
    assert json.loads((cache_dir / "meta.json").read_text()) == meta


def test_crop_none_is_the_whole_photo(root):
    params = params_with(crop="none")
    stage.run(params, root=root, threads=1)
    image = np.asarray(Image.open(root / "data/sample/eval/images/aa.jpg"))
    expected = cv2.resize(image, (12, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(artifacts.open_cache(Paths(root).cache_dir, "eval")[0], expected)


def test_face_crop_counts_fallbacks(root, monkeypatch):
    found = {"n": 0}

    def fake_detector():
        def detect(image):  # a "face" in every other photo
            found["n"] += 1
            return (0, 0, 20, 20) if found["n"] % 2 else None

        return detect

    monkeypatch.setattr(stage, "haar_detector", fake_detector)
    meta = stage.run(params_with(crop="face"), root=root, threads=1)
    assert sum(meta["face_fallbacks"].values()) == 3  # photos 2, 4, 6 of 7


def test_key_follows_sources_and_params(root, rng):
    cache_dir = Paths(root).cache_dir
    key = stage.run(params_with(), root=root)["key"]
    first = np.load(cache_dir / "train.npy")
    assert stage.run(params_with(), root=root, threads=1)["key"] == key  # threads do not matter
    np.testing.assert_array_equal(np.load(cache_dir / "train.npy"), first)
    assert stage.run(params_with(crop_center=(0.5, 0.5)), root=root)["key"] != key
    assert stage.run(params_with(height=20), root=root)["key"] != key
    write_photo(root / "data/sample/eval/images/bb.jpg", rng)  # new content, same name
    assert stage.run(params_with(), root=root)["key"] != key


def test_failed_cache_leaves_no_directory(root):
    (root / "data/sample/train/images/000002_male_Asian_60/normal.jpg").write_bytes(b"not a photo")
    with pytest.raises(DataError, match="normal.jpg"):
        stage.run(params_with(), root=root, threads=2)
    data = root / "data"
    assert not (data / "cache").exists()
    assert sorted(p.name for p in data.iterdir()) == ["index", "sample"]  # no temporary left either


def test_open_cache_detects_mismatch(root):
    cache_dir = Paths(root).cache_dir
    with pytest.raises(DataError, match="maskcls cache"):
        artifacts.open_cache(cache_dir, "train")  # not built yet
    stage.run(params_with(), root=root)
    with pytest.raises(DataError, match="6 rows"):
        artifacts.open_cache(cache_dir, "train", expected_rows=6)
    with pytest.raises(DataError, match="128x96"):
        artifacts.open_cache(cache_dir, "train", expected_size=(128, 96))
    np.save(cache_dir / "eval.npy", np.zeros((3, 16, 12, 3), np.uint8))  # an array from another index
    with pytest.raises(DataError, match="stale"):
        artifacts.open_cache(cache_dir, "eval")


def test_missing_index_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="validate"):
        stage.run(Params(), root=tmp_path)
