import dataclasses
import hashlib
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import rawsample
from maskcls import artifacts
from maskcls.errors import DataError, ResourceError
from maskcls.imageio import read_rgb
from maskcls.params import CacheParams, Params
from maskcls.paths import Paths
from maskcls.stages import cache as stage
from maskcls.stages import validate

SMALL = CacheParams(height=16, width=12)  # default crop: center, 448x336 at (0.45, 0.5)


# --- the crop before face crops followed the face, kept verbatim: `none` and `center` must not change -------


def previous_crop(image: np.ndarray, cache: CacheParams) -> np.ndarray:
    ih, iw = image.shape[:2]
    if cache.crop == "none":
        top, left, h, w = 0, 0, ih, iw
    else:
        h = max(1, min(round(cache.crop_size[0] * ih / 512), ih))
        w = max(1, min(round(cache.crop_size[1] * iw / 384), iw))
        top = int(round(cache.crop_center[0] * ih - h / 2))
        left = int(round(cache.crop_center[1] * iw - w / 2))
        top, left = min(max(top, 0), ih - h), min(max(left, 0), iw - w)
    crop = image[top : top + h, left : left + w]
    return cv2.resize(crop, (cache.width, cache.height), interpolation=cv2.INTER_AREA)


def previous_key(digests: dict, cache: CacheParams) -> str:
    h = hashlib.sha256()
    fields = {"height": cache.height, "width": cache.width, "crop": cache.crop}
    fields |= {"crop_size": list(cache.crop_size), "crop_center": list(cache.crop_center)}
    h.update(json.dumps({"format": 1, "cache": fields}, sort_keys=True).encode())
    for split in sorted(digests):
        h.update(f"\n{split}:{len(digests[split])}\n".encode())
        h.update("\n".join(digests[split]).encode())
    return h.hexdigest()


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


def contains(box, face) -> bool:
    (t, x, h, w), (ft, fx, fh, fw) = box, face
    return t <= ft and x <= fx and ft + fh <= t + h and fx + fw <= x + w


@pytest.mark.parametrize("margin", [1.0, 1.4, 1.7, 2.0, 3.0])
@pytest.mark.parametrize("size_hw", [(128, 96), (160, 128), (96, 128), (64, 64)])
@pytest.mark.parametrize("face", [(160, 110, 160, 160), (200, 150, 120, 100), (140, 120, 90, 150)])
def test_face_box_holds_the_face_in_the_inputs_aspect(margin, size_hw, face):
    cache = CacheParams(crop="face", face_margin=margin, height=size_hw[0], width=size_hw[1])
    box = stage.face_box((512, 384), cache, face)
    top, left, h, w = box
    assert top >= 0 and left >= 0 and top + h <= 512 and left + w <= 384
    assert abs(h / w - size_hw[0] / size_hw[1]) <= 1 / w  # the input's aspect, to the pixel
    if w < 384 and h < 512:  # not shrunk to the photo: margin x the face (its width, or its height if wider)
        aspect = size_hw[0] / size_hw[1]
        assert w == round(margin * max(face[3], face[2] / aspect))
        assert contains(box, face)
        # centred on the face unless the photo's border shifted it
        if top > 0 and top + h < 512:
            assert abs(top + h / 2 - (face[0] + face[2] / 2)) <= 1
        if left > 0 and left + w < 384:
            assert abs(left + w / 2 - (face[1] + face[3] / 2)) <= 1


def test_face_box_width_follows_the_face():
    cache = CacheParams(crop="face", face_margin=1.7)  # 128x96 input
    # a 160 px face, centre (240, 192): 272 x 363 (272 * 4/3 = 362.7), centred
    assert stage.face_box((512, 384), cache, (160, 112, 160, 160)) == (58, 56, 363, 272)
    # a 100 px face gets a 170 px box: the face is 96 / 1.7 = 56 input pixels wide at any distance
    # (top: round(240 - 113.5) = 126, rounding half to even)
    assert stage.face_box((512, 384), cache, (190, 142, 100, 100)) == (126, 107, 227, 170)


def test_face_box_at_the_borders_is_shifted_then_shrunk():
    cache = CacheParams(crop="face", face_margin=1.7)
    # a face in the top-left corner: the box keeps its size and moves inside the photo
    assert stage.face_box((512, 384), cache, (0, 0, 100, 100)) == (0, 0, 227, 170)
    assert stage.face_box((512, 384), cache, (412, 284, 100, 100)) == (285, 214, 227, 170)
    # a face too big for the margin: the box shrinks to the photo, keeping the 4:3 aspect
    assert stage.face_box((512, 384), cache, (100, 40, 300, 300)) == (0, 0, 512, 384)
    wide = CacheParams(crop="face", face_margin=2.0, height=160, width=128)  # 5:4: 400 x 500 -> 384 x 480
    assert stage.face_box((512, 384), wide, (150, 92, 200, 200)) == (10, 0, 480, 384)
    # other photo sizes: same rules in their pixels
    assert stage.face_box((300, 260), cache, (0, 200, 60, 60)) == (0, 158, 136, 102)


def test_typical_face_is_the_median_of_detected_faces_in_fractions():
    faces = [((512, 384), (100, 100, 150, 150)), ((512, 384), (140, 120, 170, 170)), ((256, 192), (60, 50, 80, 80))]
    typical = stage.typical_face(faces)
    # centres y 175/512, 225/512, 100/256 -> median 0.390625; x 175/384, 205/384, 90/192 -> 0.46875;
    # heights 150/512, 170/512, 80/256 -> 0.3125; widths 150/384, 170/384, 80/192 -> 80/192
    assert typical == stage.TypicalFace(cy=0.390625, cx=0.46875, h=0.3125, w=80 / 192)
    assert typical.box((512, 384)) == pytest.approx((200 - 80, 180 - 80, 160, 160))
    assert stage.typical_face([]) is None


def test_crop_box_falls_back_to_the_typical_face_then_to_the_center_box():
    cache = CacheParams(crop="face", face_margin=1.7)
    face = (160, 112, 160, 160)
    typical = stage.typical_face([((512, 384), face)])
    assert stage.crop_box((512, 384), cache, face, typical) == (stage.face_box((512, 384), cache, face), "face")
    assert stage.crop_box((512, 384), cache, None, typical) == (stage.face_box((512, 384), cache, face), "typical")
    assert stage.crop_box((512, 384), cache, None, None) == (stage.center_box((512, 384), cache), "center")
    # `center` and `none` ignore faces
    center = dataclasses.replace(cache, crop="center")
    assert stage.crop_box((512, 384), center, face, typical) == ((6, 24, 448, 336), "center")
    none = dataclasses.replace(cache, crop="none")
    assert stage.crop_box((512, 384), none, face, typical) == ((0, 0, 512, 384), "photo")


def test_haar_detector_finds_generated_faces_in_the_upper_middle(tmp_path_factory):
    raw = rawsample.template(tmp_path_factory)
    detect = stage.haar_detector()
    assert detect(np.zeros((512, 384, 3), np.uint8)) is None  # blank photo: no face
    photos = sorted(raw.glob("train/images/*/normal.*"))
    faces = [face for face in (detect(read_rgb(photo)) for photo in photos) if face is not None]
    assert len(faces) >= len(photos) - 1  # Haar misses about 1 in 60 bare generated faces
    for top, left, h, w in faces:
        cy, cx = (top + h / 2) / 512, (left + w / 2) / 384
        assert 0.3 < cy < 0.55 and 0.35 < cx < 0.65 and 100 < w < 260, (cy, cx, w)


def test_missing_haar_cascades_say_what_to_do(monkeypatch):
    monkeypatch.delattr(cv2, "CascadeClassifier")
    with pytest.raises(ResourceError, match="crop: center"):
        stage.haar_detector()


def test_a_planted_face_is_found_and_cropped_around(tmp_path_factory):
    """A generated person's head pasted low and left on a plain wall: the crop follows it there."""
    raw = rawsample.template(tmp_path_factory)
    detect = stage.haar_detector()
    images = (read_rgb(photo) for photo in sorted(raw.glob("train/images/*/normal.*")))
    source, (top, left, h, w) = next((image, face) for image in images if (face := detect(image)) is not None)
    pad = w // 4
    head = source[top - pad : top + h + pad, left - pad : left + w + pad]
    photo = np.full((512, 384, 3), 200, np.uint8)
    at = (280, 30)  # the head's top-left corner; the face centre lands near (280 + pad + h/2, 30 + pad + w/2)
    photo[at[0] : at[0] + head.shape[0], at[1] : at[1] + head.shape[1]] = head
    planted = (at[0] + pad, at[1] + pad, h, w)
    found = detect(photo)
    assert found is not None
    assert abs(found[0] - planted[0]) <= 0.1 * h and abs(found[1] - planted[1]) <= 0.1 * w
    assert abs(found[3] - w) <= 0.15 * w
    cache = CacheParams(crop="face", face_margin=1.7)
    box, followed = stage.crop_box(photo.shape[:2], cache, found)
    assert followed == "face" and contains(box, planted)
    assert box[3] == round(1.7 * found[3])  # sized from the face, not the fixed 448x336 box
    fy, fx = found[0] + found[2] / 2, found[1] + found[3] / 2
    assert abs(box[0] + box[2] / 2 - fy) <= 1  # centred across and down (not at a border here)
    assert box[1] == 0 or abs(box[1] + box[3] / 2 - fx) <= 1


# --- the stage on a tiny competition folder -----------------------------------------------------------------


def write_photo(path, rng, hw=(512, 384)):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Smooth content: JPEG noise on random pixels would make the by-hand comparison meaningless.
    y, x = np.mgrid[0 : hw[0], 0 : hw[1]]
    base = rng.integers(0, 200, 3)
    arr = np.stack([(base[c] + (y * (c + 1) + x * (3 - c)) // 8) % 256 for c in range(3)], -1).astype(np.uint8)
    Image.fromarray(arr).save(path)


TRAIN_FILES = [f"train/images/000001_female_Asian_45/{s}" for s in ("mask1.jpg", "mask2.png", "normal.jpeg")]
TRAIN_FILES += ["train/images/000002_male_Asian_60/mask1.jpg", "train/images/000002_male_Asian_60/normal.jpg"]
TRAIN_STEMS = ["mask1", "mask2", "normal", "mask1", "normal"]
EVAL_FILES = ["eval/images/aa.jpg", "eval/images/bb.jpg"]


@pytest.fixture
def root(tmp_path, rng):
    """A repository root with data/sample (5 train photos, one of odd size and one PNG, 2 eval) and the index."""
    raw = tmp_path / "data" / "sample"
    for i, f in enumerate(TRAIN_FILES + EVAL_FILES):
        write_photo(raw / f, rng, hw=(300, 260) if i == 3 else (512, 384))
    index = Paths(tmp_path).index_dir
    index.mkdir(parents=True)
    train = pd.DataFrame({"row": range(5), "stem": TRAIN_STEMS, "file": TRAIN_FILES})
    train.to_csv(index / "train.csv", index=False)
    pd.DataFrame({"row": range(2), "ImageID": ["aa.jpg", "bb.jpg"], "file": EVAL_FILES}).to_csv(
        index / "eval.csv", index=False
    )
    return tmp_path


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    """A repository root over the generated sample (6 people, 3 eval people) with its index."""
    root = tmp_path_factory.mktemp("sample-root")
    (root / "data").mkdir()
    (root / "data" / "sample").symlink_to(rawsample.template(tmp_path_factory))
    validate.run(root / "data" / "sample", Paths(root).index_dir)
    return root


def params_with(**cache):
    return Params(cache=dataclasses.replace(SMALL, **cache))


def test_cache_matches_decoding_by_hand(root, capsys):
    params = params_with()
    meta = stage.run(params, root=root, threads=2)
    cache_dir = Paths(root).cache_dir
    train = artifacts.open_cache(cache_dir, "train", expected_rows=5, expected_size=(16, 12))
    evals = artifacts.open_cache(cache_dir, "eval", expected_rows=2)
    assert train.shape == (5, 16, 12, 3) and train.dtype == np.uint8 and evals.shape == (2, 16, 12, 3)
    raw = root / "data" / "sample"
    for row in range(5):  # the PNG (1) and the odd-sized photo (3) among them
        np.testing.assert_array_equal(train[row], previous_crop(read_rgb(raw / TRAIN_FILES[row]), params.cache))
    assert meta["counts"] == {"train": 5, "eval": 2}
    assert meta["odd_size_photos"] == {"train": 1, "eval": 0}
    assert json.loads((cache_dir / "meta.json").read_text()) == meta
    # center (the default) runs no detection and writes the meta.json it always wrote
    assert set(meta) == {"format", "key", "cache", "shape", "counts", "face_fallbacks", "odd_size_photos"}
    assert meta["face_fallbacks"] is None and meta["format"] == 1
    assert "scale 0.036 (a 160 px wide face becomes 6 px)" in capsys.readouterr().err  # 12 / 336


@pytest.mark.parametrize(
    "cache",
    [
        CacheParams(),  # the default: 448x336 around (0.45, 0.5) -> 128x96
        CacheParams(height=160, width=128),
        CacheParams(crop_size=(300, 200), crop_center=(0.1, 0.9)),
        CacheParams(crop="none"),
        CacheParams(crop="none", height=200, width=150),
    ],
)
def test_center_and_none_crops_are_what_they_were(sample_root, cache):
    """Bytes and key as the implementation before face crops followed the face wrote them, on generated photos."""
    meta = stage.run(Params(cache=cache), root=sample_root, threads=2)
    files = {s: artifacts.read_index(Paths(sample_root).index_dir, s)["file"] for s in stage.SPLITS}
    raw = sample_root / "data" / "sample"
    for split in stage.SPLITS:
        cached = artifacts.open_cache(Paths(sample_root).cache_dir, split)
        for row in (0, 3, len(files[split]) - 1):
            np.testing.assert_array_equal(cached[row], previous_crop(read_rgb(raw / files[split][row]), cache))
    digests = {s: [hashlib.sha256((raw / f).read_bytes()).hexdigest() for f in files[s]] for s in stage.SPLITS}
    assert meta["key"] == previous_key(digests, cache)
    assert "faces" not in meta


class FakeDetector:
    """Faces by call order (threads=1 keeps the order): the first pass scans train rows, then eval rows."""

    def __init__(self, faces):
        self.faces = list(faces)
        self.calls = 0

    def __call__(self):
        def detect(image):
            self.calls += 1
            return self.faces[self.calls - 1]

        return detect


# train rows 0 (mask1), 2 (normal), 3 (mask1, the 300x260 photo) and eval row 0 have a face
HAND_FACES = [(100, 120, 150, 150), None, (140, 100, 170, 170), (60, 60, 90, 90), None, (120, 110, 160, 160), None]


def test_face_crop_falls_back_to_the_median_face_of_both_splits(root, monkeypatch):
    monkeypatch.setattr(stage, "haar_detector", FakeDetector(HAND_FACES))
    params = params_with(crop="face", face_margin=1.5)
    meta = stage.run(params, root=root, threads=1)
    assert meta["face_fallbacks"] == {"train": 2, "eval": 1}
    # median over both splits, as fractions of each photo:
    # centres y 175/512, 225/512, 105/300, 200/512 -> (0.35 + 0.390625) / 2; x 195/384, 185/384, 105/260, 190/384;
    # heights 150/512, 170/512, 90/300, 160/512 -> (0.3 + 0.3125) / 2; widths 150/384, 170/384, 90/260, 160/384
    typical = stage.TypicalFace(
        cy=(0.35 + 200 / 512) / 2, cx=(185 + 190) / 384 / 2, h=(0.3 + 160 / 512) / 2, w=155 / 384
    )
    assert meta["faces"]["typical"] == {
        "center_yx": [round(typical.cy, 4), round(typical.cx, 4)],
        "size_hw": [round(typical.h, 4), round(typical.w, 4)],
    }
    raw = root / "data" / "sample"
    cached = {s: artifacts.open_cache(Paths(root).cache_dir, s) for s in stage.SPLITS}
    rows = [("train", f, face) for f, face in zip(TRAIN_FILES, HAND_FACES[:5], strict=True)]
    rows += [("eval", f, face) for f, face in zip(EVAL_FILES, HAND_FACES[5:], strict=True)]
    counts = {"train": 0, "eval": 0}
    for split, file, face in rows:
        image = read_rgb(raw / file)
        around = face if face is not None else typical.box(image.shape[:2])
        box = stage.face_box(image.shape[:2], params.cache, around)
        crop = image[box[0] : box[0] + box[2], box[1] : box[1] + box[3]]
        expected = cv2.resize(crop, (12, 16), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(cached[split][counts[split]], expected)
        counts[split] += 1
    # the fallback row is cropped around the median face, not the fixed centre box
    assert stage.face_box((512, 384), params.cache, typical.box((512, 384))) != stage.center_box(
        (512, 384), params.cache
    )


def test_face_crop_without_any_face_uses_the_center_box(root, monkeypatch, capsys):
    monkeypatch.setattr(stage, "haar_detector", FakeDetector([None] * 7))
    meta = stage.run(params_with(crop="face"), root=root, threads=1)
    assert meta["face_fallbacks"] == {"train": 5, "eval": 2} and meta["faces"]["typical"] is None
    image = read_rgb(root / "data/sample" / TRAIN_FILES[0])
    np.testing.assert_array_equal(artifacts.open_cache(Paths(root).cache_dir, "train")[0], previous_crop(image, SMALL))
    assert "no face in any photo: all 7 used the center crop" in capsys.readouterr().err


def test_report_on_a_hand_made_case(root, monkeypatch, capsys):
    """center + detect_faces: shares per split and stem, face widths in the photo and in the input, the scale."""
    monkeypatch.setattr(stage, "haar_detector", FakeDetector(HAND_FACES))
    params = params_with(detect_faces=True)  # center 448x336 -> 16x12: scale 12/336; the 300x260 photo 12/228
    meta = stage.run(params, root=root, threads=1)
    faces = meta["faces"]
    assert faces["share"] == {"train": 0.6, "eval": 0.5}
    assert faces["share_by_stem"] == {"train": {"mask1": 1.0, "mask2": 0.0, "normal": 0.5}}
    assert faces["median_width"] == {"train": 150.0, "eval": 160.0}
    # train: 150 * 12/336 = 5.357, 170 * 12/336 = 6.071, 90 * 12/228 = 4.737 -> 5.36; eval 160 * 12/336 = 5.714
    assert faces["median_input_width"] == {"train": 5.36, "eval": 5.71}
    assert faces["median_scale"] == {"train": round(12 / 336, 4), "eval": round(12 / 336, 4)}
    assert meta["face_fallbacks"] is None and meta["cache"] == stage.cache_params_dict(SMALL)  # same arrays, same key
    image = read_rgb(root / "data/sample" / TRAIN_FILES[0])
    np.testing.assert_array_equal(artifacts.open_cache(Paths(root).cache_dir, "train")[0], previous_crop(image, SMALL))
    err = capsys.readouterr().err
    assert "train: face found in 60% of 5 photos (mask1 100%, mask2 0%, normal 50%)" in err
    assert "median face 150 px wide -> 5 px in the 16x12 input" in err
    assert "eval: face found in 50% of 2 photos; median face 160 px wide -> 6 px" in err


def test_face_crop_report_says_what_the_model_gets(root, monkeypatch, capsys):
    monkeypatch.setattr(stage, "haar_detector", FakeDetector(HAND_FACES))
    meta = stage.run(params_with(crop="face", face_margin=2.0), root=root, threads=1)
    # every face box fits: each face spans 12 / 2 = 6 input pixels whatever its size in the photo
    assert meta["faces"]["median_input_width"] == {"train": 6.0, "eval": 6.0}
    assert meta["cache"]["face_margin"] == 2.0
    err = capsys.readouterr().err
    assert "median face 150 px wide -> 6 px in the 16x12 input" in err
    assert "3 photos without a face were cropped around the median face" in err


def test_face_crop_bytes_do_not_depend_on_threads(sample_root):
    """Real detection on generated photos: one thread or three, the same arrays and meta.json."""
    params = Params(cache=CacheParams(crop="face", height=32, width=24))
    cache_dir = Paths(sample_root).cache_dir
    meta = stage.run(params, root=sample_root, threads=1)
    first = {s: np.load(artifacts.cache_array_path(cache_dir, s)) for s in stage.SPLITS}
    text = (cache_dir / "meta.json").read_text()
    assert stage.run(params, root=sample_root, threads=3) == meta
    assert (cache_dir / "meta.json").read_text() == text
    for split in stage.SPLITS:
        np.testing.assert_array_equal(np.load(artifacts.cache_array_path(cache_dir, split)), first[split])
    faces = meta["faces"]
    assert faces["share_by_stem"]["train"]["normal"] >= 0.8  # nearly every bare generated face is found
    assert 0 < sum(meta["face_fallbacks"].values()) < sum(meta["counts"].values())
    assert faces["median_input_width"]["train"] == pytest.approx(24 / 1.7, abs=0.5)


def test_a_photo_changed_between_the_passes_is_refused(root, monkeypatch, rng):
    calls = {"n": 0}

    def detector():
        def detect(image):
            calls["n"] += 1
            if calls["n"] == 7:  # the last photo of the first pass: change the first one behind the stage's back
                write_photo(root / "data/sample" / TRAIN_FILES[0], rng)
            return None

        return detect

    monkeypatch.setattr(stage, "haar_detector", detector)
    with pytest.raises(DataError, match="mask1.jpg: changed while the cache was built"):
        stage.run(params_with(crop="face"), root=root, threads=1)
    assert not Paths(root).cache_dir.exists()


def test_key_follows_sources_and_params(root, rng):
    cache_dir = Paths(root).cache_dir
    key = stage.run(params_with(), root=root)["key"]
    first = np.load(cache_dir / "train.npy")
    assert stage.run(params_with(), root=root, threads=1)["key"] == key  # threads do not matter
    np.testing.assert_array_equal(np.load(cache_dir / "train.npy"), first)
    assert stage.run(params_with(crop_center=(0.5, 0.5)), root=root)["key"] != key
    assert stage.run(params_with(height=20), root=root)["key"] != key
    assert stage.run(params_with(face_margin=2.0), root=root)["key"] == key  # center: the margin plays no part
    assert stage.run(params_with(detect_faces=True), root=root)["key"] == key  # nor does measuring faces
    face_key = stage.run(params_with(crop="face"), root=root)["key"]
    assert face_key != key and stage.run(params_with(crop="face", face_margin=2.0), root=root)["key"] != face_key
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


@pytest.mark.parametrize("margin", [0.9, 4.5])
def test_a_face_margin_that_cuts_the_face_or_drowns_it_is_refused(margin):
    from maskcls import params
    from maskcls.errors import ParamsError

    with pytest.raises(ParamsError, match="cache.face_margin"):
        params.from_dict({"cache": {"crop": "face", "face_margin": margin}})
    assert params.from_dict({"cache": {"crop": "face", "face_margin": 1.0}}).cache.face_margin == 1.0
