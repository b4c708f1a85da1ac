import warnings

import numpy as np
import pytest
import torch

from maskcls import params as params_mod
from maskcls.errors import ParamsError
from maskcls.params import AugSpec
from maskcls.transforms import build_augment, normalize

# The seed author's kept augmentations (CenterCrop is done by the cache) and the ones that hurt him.
SEED_KEPT = ["RandomBrightnessContrast", "HorizontalFlip", "CLAHE", "Affine", "ShiftScaleRotate"]
SEED_DROPPED = ["Blur", "RandomFog", "ColorJitter", "ElasticTransform", "GridDistortion"]
CONFIG = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def image(rng, h=32, w=24):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", SEED_KEPT + SEED_DROPPED)
def test_seed_transforms_build_and_keep_shape(name, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ShiftScaleRotate's "use Affine instead"
        augment = build_augment([AugSpec(name, {"p": 1.0})], seed=0, image_size=(32, 24))
    out = augment(image=image(rng))["image"]
    assert out.shape == (32, 24, 3) and out.dtype == np.uint8


def test_repo_params_build():
    p = params_mod.load("params.yaml")
    for specs in (p.aug.train, p.aug.minority):
        augment = build_augment(specs, seed=1)
        out = augment(image=np.zeros((128, 96, 3), np.uint8))["image"]
        assert out.shape == (128, 96, 3) and out.dtype == np.uint8


def test_empty_is_none():
    assert build_augment([], seed=0) is None


def test_yaml_lists_become_tuples():
    augment = build_augment([AugSpec("Affine", {"rotate": [-10, 10], "scale": [0.9, 1.1]})], seed=0)
    assert augment.transforms[0].rotate == (-10.0, 10.0)


def test_same_seed_same_output(rng):
    specs = [AugSpec("Affine", {"rotate": [-30, 30], "p": 1.0}), AugSpec("RandomBrightnessContrast", {"p": 1.0})]
    img = image(rng)
    a = [build_augment(specs, seed=3)(image=img)["image"] for _ in range(2)]
    b = build_augment(specs, seed=4)(image=img)["image"]
    assert np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (AugSpec("Afine"), ["'Afine'", "Affine"]),
        (AugSpec("Affine", {"rotat": [-5, 5]}), ["Affine", "'rotat'", "'rotate'"]),
        (AugSpec("HorizontalFlip", {"prob": 0.5}), ["HorizontalFlip", "'prob'", "valid: p"]),
        (AugSpec("Affine", {"rotate": "lots"}), ["Affine", "'rotate'", "'lots'"]),
        (AugSpec("Affine", {"p": 2}), ["Affine", "'p'"]),
        (AugSpec("CenterCrop", {"height": 16, "width": 16}), ["CenterCrop", "size"]),
        (AugSpec("Affine", {"rotate": [30, 40], "fit_output": True}), ["Affine", "size"]),
        (AugSpec("RandomRotate90"), ["RandomRotate90", "size"]),
        (AugSpec("Normalize"), ["Normalize", "float32"]),
    ],
)
def test_strict_errors_name_the_problem(spec, words):
    with pytest.raises(ParamsError) as err:
        build_augment([spec], seed=0, image_size=(32, 24), where="aug.train")
    message = str(err.value)
    assert message.startswith("aug.train[0]")
    for word in words:
        assert word in message


def test_normalize_matches_manual(rng):
    batch = torch.from_numpy(rng.integers(0, 256, (2, 3, 5, 4), dtype=np.uint8))
    mean = torch.tensor(CONFIG["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(CONFIG["std"]).view(1, 3, 1, 1)
    expected = (batch.float() / 255.0 - mean) / std
    out = normalize(batch, CONFIG)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 5, 4)
    torch.testing.assert_close(out, expected)
    # channels-last input gives the same NCHW result
    torch.testing.assert_close(normalize(batch.permute(0, 2, 3, 1), CONFIG), expected)


def test_normalize_refuses_float():
    with pytest.raises(TypeError, match="uint8"):
        normalize(torch.zeros(1, 3, 4, 4), CONFIG)
