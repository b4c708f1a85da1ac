"""Drawing a person's seven photos: the bare person in the canonical frame, a mask per photo, then the camera."""

from __future__ import annotations

import cv2
import numpy as np

from maskcls.synth.look import H, Look, MaskStyle, W, cv_color, draw_look, lerp

AA = cv2.LINE_AA


def _p(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


def _ramp(tilt: tuple[float, float], value) -> np.ndarray:
    """`value` * (1 + tilt_x * x + tilt_y * y) over the image (x, y in -1..1), uint8 (H, W, 3).

    Computed on a small grid and upscaled: a linear ramp survives bilinear resizing, at a fraction of the cost.
    """
    ys = np.linspace(-1, 1, H // 8, dtype=np.float32)[:, None, None]
    xs = np.linspace(-1, 1, W // 8, dtype=np.float32)[None, :, None]
    small = (1 + tilt[0] * xs + tilt[1] * ys) * np.asarray(value, np.float32)
    return cv2.resize(np.clip(small, 0, 255).round().astype(np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)


def _wall(look: Look) -> np.ndarray:
    img = _ramp(look.wall_tilt, look.wall)
    for x0, y0, x1, y1, color, thickness in look.wall_items:
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thickness, AA)
    return img


def _body(img: np.ndarray, look: Look) -> None:
    cx, sy, sw = look.cx, look.cy + 1.55 * look.fh, look.shoulders
    cv2.ellipse(img, _p(cx, sy + 90), _p(sw, 90), 0, 180, 360, look.clothes, -1, AA)
    cv2.rectangle(img, _p(cx - sw, sy + 90), _p(cx + sw, H), look.clothes, -1)
    if look.clothes_stripes is not None:
        for y in range(int(sy) + 12, H, 16):
            dy = min(0.0, (y - (sy + 90)) / 90)
            half = sw * np.sqrt(max(0.0, 1 - dy * dy))
            cv2.line(img, _p(cx - half + 3, y), _p(cx + half - 3, y), look.clothes_stripes, 4, AA)
    neck_skin = cv_color(look.skin * 0.88)
    nw = 0.55 * look.fw
    if look.neckline == "round":
        cv2.ellipse(img, _p(cx, sy), _p(nw, 0.6 * nw), 0, 0, 180, neck_skin, -1, AA)
    else:
        depth = 1.4 * nw
        cv2.fillPoly(img, [np.array([_p(cx - nw, sy), _p(cx + nw, sy), _p(cx, sy + depth)])], neck_skin, AA)
        if look.neckline == "collar":
            white = (232.0, 232.0, 228.0)
            for s in (-1, 1):
                tri = np.array(
                    [_p(cx + s * nw, sy - 4), _p(cx + s * 0.15 * nw, sy + depth), _p(cx + s * 1.9 * nw, sy + 18)]
                )
                cv2.fillPoly(img, [tri], white, AA)


def _blend(roi: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> None:
    """roi = layer where alpha is 255, roi where 0, anti-aliased in between (in place)."""
    a = alpha[..., None].astype(np.uint16)
    roi[:] = ((layer.astype(np.uint16) * a + roi.astype(np.uint16) * (255 - a) + 127) // 255).astype(np.uint8)


def _paint_hair(img: np.ndarray, region: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Fill a hair region with strands: darker and lighter ones for texture, grey ones as the person greys."""
    x0, y0, w, h = cv2.boundingRect(region)
    if not w:
        return
    x1, y1 = x0 + w, y0 + h
    roi, alpha = img[y0:y1, x0:x1], region[y0:y1, x0:x1]
    layer = np.empty_like(roi)
    layer[:] = cv_color(look.hair)
    light = lerp(look.hair, (205, 203, 198), 0.6 if look.grey > 0.05 else 0.15)
    greys = int(120 * look.grey)
    count = 50 + greys
    starts = rng.uniform((0, 0), (x1 - x0, y1 - y0), size=(count, 2))
    angles = rng.normal(np.pi / 2, 0.5, count)
    lengths = rng.uniform(6, 22, count)
    for k, ((sx, sy), angle, length) in enumerate(zip(starts, angles, lengths, strict=True)):
        end = (sx + length * np.cos(angle), sy + length * np.sin(angle))
        grey_strand = k < greys
        color = light if grey_strand else look.hair * rng.choice([0.7, 1.25])
        cv2.line(layer, _p(sx, sy), _p(*end), cv_color(color), 1, AA)
    _blend(roi, layer, alpha)


def _back_hair(img: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Hair behind the head and down the sides; long hair falls onto the shoulders."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    bottom = cy + (1.85 if look.hair_style == "long" else 0.8) * fh
    half = fw * (1.2 + look.hair_volume)
    region = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(region, _p(cx, cy - 0.15 * fh), _p(half, fh * 1.12), 0, 0, 360, 255, -1, AA)
    cv2.rectangle(region, _p(cx - half, cy - 0.15 * fh), _p(cx + half, bottom - 0.3 * fw), 255, -1)
    cv2.ellipse(region, _p(cx, bottom - 0.3 * fw), _p(half, 0.3 * fw), 0, 0, 180, 255, -1, AA)
    _paint_hair(img, region, look, rng)


def _hair_top(img: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Hair over the top of the head, ending in the person's hairline on the forehead."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    a = fw * (1.08 + look.hair_volume)
    cap = cv2.ellipse2Poly(_p(cx, cy - 0.18 * fh), _p(a, fh * (0.98 + look.hair_volume)), 0, 180, 360, 6)
    xs = np.linspace(cx + a, cx - a, 31)
    u = (xs - cx) / fw
    if look.hairline == "bangs":
        line = cy - 0.4 * fh + 0.03 * fh * np.cos(9 * u)
    elif look.hairline == "side":
        line = cy - 0.55 * fh + 0.14 * fh * u * look.part_side
    elif look.hairline == "arch":
        line = cy - 0.5 * fh - 0.12 * fh * (1 - u * u)
    else:  # receding: high forehead, deeper at the temples
        line = cy - 0.75 * fh - 0.1 * fh * np.exp(-(((np.abs(u) - 0.5) / 0.2) ** 2))
    # Temples: the hairline comes down to eye height at the sides of the face.
    temple = np.clip((np.abs(u) - 0.8) / 0.3, 0, 1)
    line = line + (cy - 0.05 * fh - line) * temple
    poly = np.vstack([cap, np.stack([xs, line], axis=1).round().astype(np.int32)])
    region = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(region, [poly], 255, AA)
    _paint_hair(img, region, look, rng)


def _neck_and_face(img: np.ndarray, look: Look) -> None:
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    skin, neck_skin = cv_color(look.skin), cv_color(look.skin * 0.88)
    cv2.rectangle(img, _p(cx - 0.42 * fw, cy + 0.5 * fh), _p(cx + 0.42 * fw, cy + 1.6 * fh), neck_skin, -1)
    ear, ear_skin = _p(0.15 * fw, 0.24 * fh), cv_color(look.skin * 0.93)
    for s in (-1, 1):
        cv2.ellipse(img, _p(cx + s * 0.97 * fw, cy - 0.02 * fh), ear, 0, 0, 360, ear_skin, -1, AA)
    cv2.ellipse(img, _p(cx, cy), _p(fw, fh), 0, 0, 360, skin, -1, AA)
    # Jaw: wider for men and for older faces, and lower as the face sags.
    jaw_center = _p(cx, cy + (0.4 + 0.06 * look.sag) * fh)
    cv2.ellipse(img, jaw_center, _p(fw * look.jaw, fh * 0.62), 0, 0, 360, skin, -1, AA)
    if look.beard:
        stubble = cv_color(lerp(look.skin, (70, 70, 80), look.beard))
        cv2.ellipse(img, _p(cx, cy + 0.55 * fh), _p(fw * look.jaw * 0.92, fh * 0.45), 0, 0, 180, stubble, -1, AA)


def _eyes_and_brows(img: np.ndarray, look: Look) -> None:
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    eye_y, brow_y = cy - 0.12 * fh, cy - 0.32 * fh
    for s in (-1, 1):
        t = np.linspace(0, 1, 6)
        brow = np.stack([cx + s * (0.14 + 0.48 * t) * fw, brow_y - 0.05 * fh * np.sin(np.pi * (0.3 + 0.7 * t))], axis=1)
        cv2.polylines(img, [brow.round().astype(np.int32)], False, cv_color(look.brow), look.brow_thickness, AA)
        ex = cx + s * 0.38 * fw
        axes = _p(0.17 * fw, 0.07 * fh * look.eye_open)
        cv2.ellipse(img, _p(ex, eye_y), axes, 0, 0, 360, (236.0, 232.0, 228.0), -1, AA)
        cv2.circle(img, _p(ex, eye_y), int(round(0.065 * fw)), (48.0, 32.0, 26.0), -1, AA)
        cv2.ellipse(img, _p(ex, eye_y), axes, 0, 180, 360, cv_color(look.brow * 0.6), 2, AA)


def _nose_and_mouth(img: np.ndarray, look: Look) -> None:
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    nose_y, mouth_y = cy + 0.3 * fh, cy + 0.6 * fh
    shadow, nose_tip = cv_color(look.skin * 0.8), cv_color(look.skin * 0.72)
    cv2.line(img, _p(cx + 0.05 * fw, cy - 0.02 * fh), _p(cx + 0.12 * fw, nose_y - 0.04 * fh), shadow, 2, AA)
    cv2.ellipse(img, _p(cx, nose_y - 0.02 * fh), _p(0.17 * fw, 0.06 * fh), 0, 15, 165, nose_tip, 2, AA)
    nostril, nostril_color = _p(0.045 * fw, 0.022 * fh), cv_color(look.skin * 0.45)
    for s in (-1, 1):
        cv2.ellipse(img, _p(cx + s * 0.08 * fw, nose_y), nostril, 0, 0, 360, nostril_color, -1, AA)
    cv2.ellipse(img, _p(cx, mouth_y), _p(0.3 * fw, 0.07 * fh), 0, 0, 360, cv_color(look.lips), -1, AA)
    cv2.line(img, _p(cx - 0.29 * fw, mouth_y), _p(cx + 0.29 * fw, mouth_y), cv_color(look.lips * 0.55), 2, AA)


def _age_marks(img: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Wrinkles, eye bags and spots, their contrast growing smoothly with apparent age."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    line = cv_color(lerp(look.skin, (90, 60, 50), 0.45 * look.wrinkle))
    eye_y, nose_y, mouth_y = cy - 0.12 * fh, cy + 0.3 * fh, cy + 0.6 * fh
    for k in range(3):  # forehead lines, hidden under bangs when the hairline is low
        y = cy - (0.45 + 0.09 * k) * fh
        cv2.ellipse(img, _p(cx, y + 0.5 * fw), _p(0.42 * fw, 0.5 * fw), 0, 235, 305, line, 2, AA)
    for s in (-1, 1):
        ex = cx + s * 0.38 * fw
        cv2.ellipse(img, _p(ex, eye_y + 0.06 * fh), _p(0.15 * fw, 0.06 * fh), 0, 20, 160, line, 2, AA)
        for k in (-1, 0, 1):  # crow's feet
            start = _p(ex + s * 0.22 * fw, eye_y + k * 0.03 * fh)
            cv2.line(img, start, _p(ex + s * 0.34 * fw, eye_y + k * 0.07 * fh), line, 1, AA)
        cv2.line(img, _p(cx + s * 0.2 * fw, nose_y), _p(cx + s * 0.36 * fw, mouth_y + 0.06 * fh), line, 2, AA)
    for _ in range(look.spots):
        x, y = cx + rng.uniform(-0.7, 0.7) * fw, cy + rng.uniform(-0.6, 0.3) * fh
        cv2.circle(img, _p(x, y), int(rng.integers(1, 3)), cv_color(look.skin * 0.82), -1, AA)


def _glasses(img: np.ndarray, look: Look) -> None:
    cx, fw, fh, eye_y = look.cx, look.fw, look.fh, look.cy - 0.12 * look.fh
    frame, lens = look.glasses, _p(0.27 * fw, 0.16 * fh)
    for s in (-1, 1):
        cv2.ellipse(img, _p(cx + s * 0.4 * fw, eye_y), lens, 0, 0, 360, frame, 2, AA)
        temple = _p(cx + s * 0.67 * fw, eye_y - 0.03 * fh), _p(cx + s * 0.98 * fw, eye_y - 0.05 * fh)
        cv2.line(img, *temple, frame, 2, AA)
    cv2.line(img, _p(cx - 0.13 * fw, eye_y - 0.03 * fh), _p(cx + 0.13 * fw, eye_y - 0.03 * fh), frame, 2, AA)


def render_base(look: Look, rng: np.random.Generator) -> np.ndarray:
    """The person without a mask, RGB uint8 (H, W, 3), in the canonical frame."""
    img = _wall(look)
    _body(img, look)
    if look.hair_style != "short":
        _back_hair(img, look, rng)
    _neck_and_face(img, look)
    _nose_and_mouth(img, look)
    _age_marks(img, look, rng)  # before the hair, which may hide the forehead lines
    _hair_top(img, look, rng)
    _eyes_and_brows(img, look)
    if look.glasses is not None:
        _glasses(img, look)
    return img


def _fabric(shape: tuple[int, ...], style: MaskStyle, top: float) -> np.ndarray:
    """The mask's cloth in a box of `shape`, shaded darker towards the chin."""
    h, w = shape[:2]
    layer = np.empty(shape, np.uint8)
    layer[:] = style.color
    kind, gap = style.kind, style.spacing
    if kind == "surgical":  # pleats
        for k in (1, 2, 3):
            y = int(top + k * (h - top) / 4.5)
            cv2.line(layer, (0, y), (w, y), cv_color(np.array(style.color) * 0.82), 2, AA)
    elif kind == "kf94":  # centre seam
        cv2.line(layer, (w // 2, 0), (w // 2, h), cv_color(np.array(style.color) * 0.75), 2, AA)
    elif kind == "stripes":
        for x in range(-h, w, gap):
            cv2.line(layer, (x, h), (x + h, 0), style.second, max(2, gap // 3), AA)
    elif kind == "dots":
        for y in range(gap // 2, h, gap):
            for x in range((y // gap % 2) * gap // 2, w, gap):
                cv2.circle(layer, (x, y), max(2, gap // 4), style.second, -1, AA)
    elif kind == "two_tone":
        cv2.rectangle(layer, (0, int(top + 0.55 * (h - top))), (w, h), style.second, -1)
    shade = np.linspace(1.0, 0.84, h, dtype=np.float32)[:, None, None]
    return (layer * shade).astype(np.uint8)


def draw_mask(img: np.ndarray, look: Look, style: MaskStyle, place: str) -> None:
    """Draw a mask in place: `wear` covers nose and mouth; `nose_out` and `chin` are worn wrongly."""
    cx, cy, fw, fh = look.cx, look.cy, look.fw, look.fh
    eye_y, nose_y, mouth_y = cy - 0.12 * fh, cy + 0.3 * fh, cy + 0.6 * fh
    top, drop, arch = {
        "wear": (eye_y + 0.17 * fh, 0.0, (0.12 if style.kind == "kf94" else 0.05) * fh),
        "nose_out": (nose_y + 0.07 * fh, 0.1 * fh, 0.02 * fh),
        "chin": (mouth_y + 0.12 * fh, 0.22 * fh, 0.02 * fh),
    }[place]
    ax, ay = fw * 1.05 * max(1.0, look.jaw + 0.1), fh * 0.95
    ecy = cy + 0.1 * fh + drop
    x0, y0 = int(cx - ax) - 2, int(top - arch) - 2
    x1, y1 = int(cx + ax) + 3, min(H, int(ecy + ay) + 3)
    roi = img[y0:y1, x0:x1]
    # The cloth: the face ellipse below an arched top edge (the arch rises over the nose bridge).
    alpha = np.zeros(roi.shape[:2], np.uint8)
    cv2.ellipse(alpha, _p(cx - x0, ecy - y0), _p(ax, ay), 0, 0, 360, 255, -1, AA)
    xs = np.linspace(-ax, ax, 25)
    edge = np.stack([cx + xs - x0, top - arch * (1 - (xs / ax) ** 2) - y0], axis=1)
    below = np.vstack([edge, [[x1 - x0, y1 - y0], [0, y1 - y0]]]).round().astype(np.int32)
    cut = np.zeros_like(alpha)
    cv2.fillPoly(cut, [below], 255, AA)
    alpha = cv2.min(alpha, cut)
    layer = _fabric(roi.shape, style, top - y0)
    _blend(roi, layer, alpha)
    for s in (-1, 1):  # ear loops
        ear = (cx + s * 0.98 * fw, cy + 0.02 * fh)
        cv2.line(img, _p(cx + s * 0.93 * ax, top + 0.05 * fh), _p(*ear), style.loop, 2, AA)
        low = _p(cx + s * 0.8 * ax, min(ecy + 0.5 * ay, y1 - 4))
        cv2.line(img, low, _p(ear[0], ear[1] + 0.2 * fh), style.loop, 2, AA)


def _photo_masks(look: Look, swap: bool) -> dict[str, tuple[MaskStyle, str] | None]:
    """What each stem shows. A swapped person's incorrect_mask and normal photos trade content."""
    shows = {f"mask{k + 1}": (look.masks[k], "wear") for k in range(5)}
    wrong = (look.masks[look.incorrect_mask], look.incorrect_place)
    shows["incorrect_mask"], shows["normal"] = (None, wrong) if swap else (wrong, None)
    return shows


def _camera(img: np.ndarray, look: Look, rng: np.random.Generator, noise: np.ndarray) -> np.ndarray:
    """One shot: where the person stands plus a little shake and zoom, then exposure, blur and sensor noise."""
    # Zoom by resizing and shift by cropping: a quarter of the cost of a general warp, which dominated the run.
    scale = look.scale * rng.uniform(0.97, 1.03)
    size = (round(W * scale), round(H * scale))
    img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    shift = np.asarray(look.offset) + rng.normal(0, 4, 2)
    # The face centre (cx, cy) moves to (cx, cy) + shift.
    x0 = round(look.cx * size[0] / W - look.cx - shift[0])
    y0 = round(look.cy * size[1] / H - look.cy - shift[1])
    pad = max(0, -x0, -y0, x0 + W - size[0], y0 + H - size[1])
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    img = img[y0 + pad : y0 + pad + H, x0 + pad : x0 + pad + W]
    # Exposure and white balance: the person's gain, a little more per shot and per channel, and an offset.
    exposure = np.zeros((3, 4), np.float32)
    exposure[np.arange(3), np.arange(3)] = look.exposure * rng.uniform(0.95, 1.05) * rng.normal(1, 0.025, 3)
    exposure[:, 3] = rng.normal(0, 4)
    img = cv2.transform(img, exposure)
    img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.9))
    dy, dx = rng.integers(0, noise.shape[0] - H + 1), rng.integers(0, noise.shape[1] - W + 1)
    return cv2.add(img, noise[dy : dy + H, dx : dx + W], dtype=cv2.CV_8U)


def render_with_look(
    seed: int, split: int, index: int, gender: str, age: int, swap: bool = False
) -> tuple[dict[str, np.ndarray], Look]:
    """The seven photos of one person by stem and the look they were drawn from (it holds the JPEG quality)."""
    look_rng, draw_rng, photo_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, split, index]).spawn(3)
    )
    look = draw_look(look_rng, gender, age)
    base = render_base(look, draw_rng)
    # Side and top light fall on the scene; the masks drawn later sit near the centre, where it is weakest.
    base = cv2.multiply(base, _ramp(look.light, (128, 128, 128)), scale=1 / 128)
    # One noise field per person, seen through a different window in each photo.
    noise = draw_rng.integers(-look.noise, look.noise + 1, (H + 16, W + 16, 3), dtype=np.int16)
    photos = {}
    for stem, shown in _photo_masks(look, swap).items():
        img = base.copy()
        if shown is not None:
            draw_mask(img, look, *shown)
        photos[stem] = _camera(img, look, photo_rng, noise)
    return photos, look


def render_person(
    seed: int, split: int, index: int, gender: str, age: int, swap: bool = False
) -> dict[str, np.ndarray]:
    """The seven photos of one person, RGB uint8 (H, W, 3) by stem, before file encoding."""
    return render_with_look(seed, split, index, gender, age, swap)[0]
