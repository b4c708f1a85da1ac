"""The competition's folder format and label encoding: the single place that knows them.

class = mask * 6 + gender * 3 + age
mask:   wear=0 (mask1..mask5), incorrect=1 (incorrect_mask), not wear=2 (normal)
gender: male=0, female=1
age:    <30 = 0, 30..59 = 1, >=60 = 2
"""

from __future__ import annotations

import numpy as np

TRAIN_CSV = "train/train.csv"
TRAIN_IMAGES = "train/images"
EVAL_CSV = "eval/info.csv"
EVAL_IMAGES = "eval/images"
# True eval labels of the generated sample sit beside eval/, never inside it.
EVAL_LABELS = "eval_labels.csv"

TRAIN_COLUMNS = ["id", "gender", "race", "age", "path"]
EVAL_COLUMNS = ["ImageID", "ans"]

IMAGE_SIZE = (512, 384)  # (height, width) of every competition photo
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
JUNK_PREFIX = "._"  # macOS resource forks beside the real images

# Photo stem -> mask label.
STEM_TO_MASK = {
    "mask1": 0,
    "mask2": 0,
    "mask3": 0,
    "mask4": 0,
    "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
STEMS = tuple(STEM_TO_MASK)

GENDERS = ("male", "female")
GENDER_TO_LABEL = {g: i for i, g in enumerate(GENDERS)}

# The three label factors, in the order they compose the 18 classes.
TASKS = ("mask", "gender", "age")
TASK_SIZES = {"mask": 3, "gender": 2, "age": 3}
NUM_CLASSES = 18
NUM_LABELS = {**TASK_SIZES, "class18": NUM_CLASSES}  # classes of each model output

# What each head type predicts: the three tasks, the 18 classes, or both (fused).
HEAD_OUTPUTS: dict[str, tuple[str, ...]] = {
    "single": ("class18",),
    "fused": (*TASKS, "class18"),
    "multihead": TASKS,
    "sequential": TASKS,
    "mask": ("mask",),
    "gender": ("gender",),
    "age": ("age",),
}

YOUNG_BELOW = 30  # age < 30 -> 0
OLD_FROM = 60  # age >= 60 -> 2 (the competition's definition)


def age_to_label(age, old_from: int = OLD_FROM, young_below: int = YOUNG_BELOW):
    """Age band of an age (scalar or array). `old_from` is lowered by the age-filter trick for training targets."""
    age = np.asarray(age)
    label = np.where(age < young_below, 0, np.where(age >= old_from, 2, 1))
    return label.astype(np.int64) if label.ndim else int(label)


def encode(mask, gender, age):
    """(mask, gender, age) labels -> class 0..17; works on scalars and arrays."""
    return np.asarray(mask) * 6 + np.asarray(gender) * 3 + np.asarray(age)


def decode(cls):
    """Class 0..17 -> (mask, gender, age) labels; works on scalars and arrays."""
    cls = np.asarray(cls)
    return cls // 6, (cls // 3) % 2, cls % 3


def joint_probabilities(p_mask, p_gender, p_age):
    """Independent task probabilities (N, 3), (N, 2), (N, 3) -> (N, 18) in class order: numpy arrays or tensors.

    The product over the C-order 3x2x3 cube puts (mask, gender, age) at mask * 6 + gender * 3 + age.
    """
    joint = p_mask[:, :, None, None] * p_gender[:, None, :, None] * p_age[:, None, None, :]
    return joint.reshape(len(p_mask), NUM_CLASSES)


def task_marginals(p18) -> dict:
    """(N, 18) probabilities -> {task: (N, size)} marginals; numpy arrays or tensors."""
    cube = p18.reshape(len(p18), *TASK_SIZES.values())
    return {"mask": cube.sum((2, 3)), "gender": cube.sum((1, 3)), "age": cube.sum((1, 2))}


def person_folder(person_id: str, gender: str, age: int, race: str = "Asian") -> str:
    """Folder name of one train person, e.g. `000001_female_Asian_45`."""
    return f"{person_id}_{gender}_{race}_{age}"


MASK_NAMES = ("wear", "incorrect", "none")
AGE_NAMES = ("<30", "30-59", ">=60")


def class_name(cls: int) -> str:
    """`03 wear/female/<30`: the id, zero-padded so that sorting the names as text keeps numeric order."""
    mask, gender, age = decode(int(cls))
    return f"{int(cls):02d} {MASK_NAMES[mask]}/{GENDERS[gender]}/{AGE_NAMES[age]}"
