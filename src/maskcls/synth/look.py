"""How a person looks: face, skin, hair, clothes, wall and the five masks, all drawn once per person.

Each head gets a visual signal of its own strength: the mask is easy, gender is mostly clear, age is the hardest
because its cues (grey hair, wrinkles, sag) grow smoothly with age and vary from person to person.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from maskcls import layout

H, W = layout.IMAGE_SIZE  # the canonical frame a look is placed in, before the camera moves it

MASK_STYLES = ("surgical", "kf94", "cloth", "stripes", "dots", "two_tone", "skin")
WALLS = ((236, 236, 232), (218, 206, 190), (192, 196, 202), (202, 216, 226), (226, 221, 200), (150, 150, 155))


@dataclass(frozen=True)
class MaskStyle:
    kind: str
    color: tuple[float, float, float]
    second: tuple[float, float, float]  # stripes, dots, the other half
    loop: tuple[float, float, float]  # ear loops
    spacing: int


@dataclass(frozen=True)
class Look:
    """Everything that stays the same over one person's seven photos (canonical frame, before the camera)."""

    cx: float
    cy: float
    fw: float  # face half-width
    fh: float  # face half-height
    jaw: float  # jaw width over face width: men and older people have wider jaws
    skin: np.ndarray
    hair: np.ndarray  # after greying
    brow: np.ndarray
    lips: np.ndarray
    hair_style: str  # short, bob, long
    hairline: str  # bangs, side, arch, receding
    hair_volume: float
    part_side: int
    brow_thickness: int
    eye_open: float
    beard: float  # stubble shade, 0 = none
    glasses: tuple[float, float, float] | None
    wrinkle: float  # 0..1, grows with apparent age
    grey: float  # 0..1 share of grey hair
    sag: float  # 0..1 lower face drop
    spots: int
    clothes: tuple[float, float, float]
    clothes_stripes: tuple[float, float, float] | None
    neckline: str
    shoulders: float
    wall: np.ndarray
    wall_tilt: tuple[float, float]
    wall_items: tuple[tuple[int, int, int, int, tuple[float, float, float], int], ...]
    masks: tuple[MaskStyle, ...]  # mask1..mask5
    incorrect_mask: int  # which of the five is worn wrongly
    incorrect_place: str  # nose_out (below the nose) or chin
    scale: float  # how close to the camera the person stood
    offset: tuple[float, float]
    light: tuple[float, float]  # side and top light strength
    noise: int
    quality: int  # JPEG quality of the phone that took the photos
    exposure: float  # how bright the room and the phone made this person's photos


def lerp(a, b, t) -> np.ndarray:
    """The colour a share `t` of the way from `a` to `b`."""
    return np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t


def _rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def cv_color(color) -> tuple[float, float, float]:
    """A colour as OpenCV draws it: channels clipped to 0..255, as a tuple of floats."""
    return tuple(float(v) for v in np.clip(color, 0, 255))


def _glasses_color(rng: np.random.Generator) -> tuple[float, float, float] | None:
    """Frame colour for the 15% who wear glasses: dark plastic or gold metal."""
    if rng.random() >= 0.15:
        return None
    return _rgb(0, 0, rng.uniform(0.1, 0.3)) if rng.random() < 0.6 else (170.0, 150.0, 95.0)


def _wall_items(rng: np.random.Generator) -> tuple:
    """Door frames, posters and shelves behind the person: backgrounds differ between people, not photos."""
    items = []
    for _ in range(rng.integers(0, 3)):
        x0, y0 = int(rng.integers(-40, W)), int(rng.integers(-40, H // 2))
        x1, y1 = x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 400))
        thickness = -1 if rng.random() < 0.6 else int(rng.integers(2, 8))
        items.append((x0, y0, x1, y1, _rgb(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.3, 0.95)), thickness))
    return tuple(items)


def _mask_style(rng: np.random.Generator, kind: str, skin: np.ndarray) -> MaskStyle:
    """One mask: surgical ones are pale, KF94 white, black or grey, cloth any colour, and some close to skin."""
    if kind == "surgical":
        color = _rgb(rng.choice([0.55, 0.5, 0.0, 0.35]), rng.uniform(0, 0.35), rng.uniform(0.85, 1.0))
    elif kind == "kf94":
        color = _rgb(0, 0, rng.choice([0.95, 0.15, 0.6]) + rng.normal(0, 0.03))
    elif kind == "skin":
        color = lerp(skin, (226, 206, 182), 0.5) + rng.normal(0, 6, 3)
    else:
        color = _rgb(rng.random(), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.95))
    color = cv_color(color)
    second = _rgb(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 1.0))
    loop = color if rng.random() < 0.5 else (235.0, 235.0, 235.0)
    return MaskStyle(kind, color, second, loop, int(rng.integers(7, 14)))


def draw_look(rng: np.random.Generator, gender: str, age: int) -> Look:
    """A person's appearance. Gender and age shape it only through noisy, overlapping cues."""
    # One masculinity score drives every gender cue, so the cues agree but both genders overlap at the margin.
    m = rng.normal(0.8 if gender == "male" else -0.8, 0.45)
    # People look older or younger than they are: 58 and 60 are nearly the same picture.
    apparent = age + rng.normal(0, 4.0)
    wrinkle = float(np.clip((apparent - 27) / 36, 0, 1)) ** 1.2
    grey = float(np.clip((apparent - 36) / 30 + rng.normal(0, 0.12), 0, 1))
    sag = float(np.clip((apparent - 32) / 32, 0, 1))

    fw = 64 + 3.5 * m + rng.normal(0, 2.5)
    fh = fw * rng.uniform(1.22, 1.36) + 4 * sag
    long_score = -m + rng.normal(0, 0.7)
    hair_style = "long" if long_score > 0.6 else "bob" if long_score > 0.0 else "short"
    receding = gender == "male" and rng.random() < 0.6 * sag
    hairline = "receding" if receding else str(rng.choice(["bangs", "side", "arch"], p=[0.35, 0.4, 0.25]))

    skin = lerp((238, 208, 184), (172, 126, 98), rng.uniform(0.05, 0.75)) + rng.normal(0, 4, 3)
    skin = lerp(skin, skin.mean(), 0.15 * sag)  # older skin a little duller
    dyed = rng.random() < (0.3 if gender == "female" else 0.1) * (1 - grey)
    base_hair = (
        lerp((22, 20, 20), (78, 54, 40), rng.random()) if not dyed else lerp((95, 60, 40), (140, 95, 60), rng.random())
    )
    grey_tone = rng.uniform(170, 215)
    hair = lerp(base_hair, (grey_tone, grey_tone, grey_tone - 4), 0.9 * grey)
    redness = rng.normal(0.45, 0.12) if m < 0 else rng.normal(0.18, 0.08)
    beard = rng.uniform(0.06, 0.18) if m > 0.3 and rng.random() < 0.45 else 0.0

    return Look(
        cx=W / 2,
        cy=0.43 * H,
        fw=fw,
        fh=fh,
        jaw=0.84 + 0.04 * np.clip(m, -1.5, 1.5) + 0.08 * sag + rng.normal(0, 0.02),
        skin=np.clip(skin, 0, 255),
        hair=hair,
        brow=lerp(base_hair, hair, 0.6) * 0.9,
        lips=lerp(skin * 0.9, (185, 75, 85), float(np.clip(redness, 0.05, 0.8))),
        hair_style=hair_style,
        hairline=hairline,
        hair_volume=rng.uniform(0.02, 0.12) * (1.5 if hair_style != "short" else 1.0),
        part_side=int(rng.choice([-1, 1])),
        brow_thickness=int(np.clip(round(3 + 1.1 * m + rng.normal(0, 0.6)), 1, 6)),
        eye_open=float(np.clip(1 - 0.25 * sag + rng.normal(0, 0.08), 0.6, 1.2)),
        beard=beard,
        glasses=_glasses_color(rng),
        wrinkle=wrinkle,
        grey=grey,
        sag=sag,
        spots=int(max(0, round(wrinkle * 6 + rng.normal(0, 1)))),
        clothes=_rgb(rng.random(), rng.uniform(0.05, 0.8), rng.uniform(0.15, 0.95)),
        clothes_stripes=_rgb(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.3, 1)) if rng.random() < 0.2 else None,
        neckline=str(rng.choice(["round", "v", "collar"])),
        shoulders=150 + 12 * m + rng.normal(0, 8),
        wall=np.clip(np.asarray(WALLS[rng.integers(len(WALLS))], np.float64) + rng.normal(0, 10, 3), 0, 255),
        wall_tilt=(rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1)),
        wall_items=_wall_items(rng),
        masks=tuple(_mask_style(rng, kind, skin) for kind in rng.choice(MASK_STYLES, 5, replace=False)),
        incorrect_mask=int(rng.integers(5)),
        incorrect_place="nose_out" if rng.random() < 0.65 else "chin",
        # Where the person stood varies across people as in the competition's photos: Haar face boxes about
        # 120-220 px wide (160 at scale 1), centred across give or take 15 px, the face centre at 35-50% of the
        # height. The camera zooms about the face centre, so `scale` sets the face's size and `offset` its place.
        scale=float(np.clip(np.exp(rng.normal(0.0, 0.18)), 0.72, 1.4)),
        offset=(float(np.clip(rng.normal(0, 14), -45, 45)), float(np.clip(rng.normal(-4, 20), -50, 50))),
        light=(rng.uniform(-0.25, 0.25), rng.uniform(-0.12, 0.12)),
        noise=int(rng.integers(2, 5)),
        quality=int(rng.integers(80, 96)),
        exposure=rng.uniform(0.82, 1.12),
    )
