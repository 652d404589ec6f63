"""Procedural scene sampling and rendering for the built-in ``scenes`` benchmark (NumPy + OpenCV).

A scene is a slanted, textured ground plane with flat clutter painted on it, a few raised non-object things (poles,
rocks) and 1-3 objects of 8 classes. Each class is a shape family with its own texture statistics; colours overlap
between classes and about a third of the objects are camouflaged (coloured like the ground behind them), so that the
class and the outline must be read from shape and fine texture. Low light destroys most fine texture and
low-contrast outlines while coarse, contrasted structure survives; the true depth map keeps every raised outline
(illumination invariant), and painted clutter has no depth edge at all.

Rendering is the painter's algorithm over layers sorted far to near. Anti-aliased coverage comes from OpenCV's
``LINE_AA`` polygon filling with sub-pixel vertices; a pixel's label is the label with the largest visible coverage,
and pixels where no label covers at least ``EDGE_WEIGHT`` become 255 (ignore) when ``ignore_edges`` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# (name, prior weight, hue centre in degrees, texture kind, texture scale in pixels at size 96: the period of
# stripes/checker/dots/rings, the blur of mottle; grain is pixel-scale noise and ignores it)
CLASS_SPECS: tuple[tuple[str, float, float, str, float], ...] = (
    ("disc", 0.20, 0.0, "stripes", 4.0),
    ("ring", 0.16, 45.0, "checker", 6.0),
    ("triangle", 0.14, 90.0, "dots", 6.0),
    ("cross", 0.12, 135.0, "stripes", 8.0),
    ("star", 0.11, 180.0, "grain", 1.0),
    ("bar", 0.10, 225.0, "stripes", 3.0),
    ("crescent", 0.09, 270.0, "rings", 5.0),
    ("blob", 0.08, 315.0, "mottle", 2.5),
)
CLUTTER_TEXTURES = ("stripes", "checker", "dots", "grain", "mottle", "rings", "flat")
IGNORE = 255
EDGE_WEIGHT = 0.65  # minimum visible coverage of a pixel's label; below it the pixel is a mixed edge
_SHIFT = 3  # sub-pixel bits of the polygon vertices given to cv2.fillPoly


@dataclass
class Layer:
    """One scene element: an outline (plus holes) in scene pixels, its look, its label and its depth."""

    outline: np.ndarray  # (N, 2) vertices in scene pixel coordinates
    holes: list[np.ndarray]
    centre: tuple[float, float]
    radius: float
    angle: float  # texture orientation (radians)
    colour: np.ndarray  # (3,) sRGB base colour in [0, 1]
    texture: str
    period: float
    amp: float
    label: int  # 0 = background thing (clutter, pole, rock), 1..8 = object class
    inv_depth: float | None  # None: painted on the ground plane
    opacity: float = 1.0
    shade: float = 0.0  # strength of the shading gradient across the element


@dataclass
class Scene:
    """Ground plane ``inv_depth = a + b * y / S + c * (x / S - 0.5)``, its colours, the light and the layers."""

    size: int
    a: float
    b: float
    c: float
    colours: np.ndarray  # (2, 3) ground colours mixed by a low-frequency field
    light: tuple[float, float]  # unit direction the shading gradient brightens towards
    layers: list[Layer] = field(default_factory=list)  # far to near; painted clutter first

    def ground(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray | float:
        return self.a + self.b * np.divide(y, self.size) + self.c * (np.divide(x, self.size) - 0.5)


@dataclass
class Rendered:
    image: np.ndarray  # float32 H×W×3 sRGB in [0, 1]
    mask: np.ndarray  # uint8 H×W: 0..8, 255 = mixed edge pixel
    inv_depth: np.ndarray  # float32 H×W, larger = nearer
    winner: np.ndarray  # int16 H×W: index of the visible raised layer (-1 = ground)
    full: list[int]  # per raised layer: pixels it would cover alone (coverage >= 0.5) in the central crop


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """HSV (h in degrees) to an RGB vector in [0, 1]."""
    h = (h % 360.0) / 60.0
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return np.asarray(rgb, np.float32) + np.float32(v - c)


def _radial(radii: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """Polygon with vertices at ``radii`` spread evenly around the unit circle."""
    t = phase + np.linspace(0, 2 * math.pi, len(radii), endpoint=False)
    return np.stack([radii * np.cos(t), radii * np.sin(t)], 1)


def class_outline(name: str, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Outline and holes of one object of shape family ``name`` in a unit frame (radius about 1)."""
    if name == "disc":
        return _radial(np.ones(40)) * [1.0, rng.uniform(0.8, 1.0)], []
    if name == "ring":
        return _radial(np.ones(40)), [_radial(np.full(40, rng.uniform(0.45, 0.6)))]
    if name == "triangle":
        return _radial(1.0 + rng.uniform(-0.12, 0.12, 3), rng.uniform(-0.2, 0.2)), []
    if name == "cross":
        w = rng.uniform(0.28, 0.4)
        quarter = np.array([[-w, 1.0], [w, 1.0], [w, w]])
        turn = np.array([[0.0, -1.0], [1.0, 0.0]])  # (x, y) -> (y, -x)
        return np.concatenate([quarter @ np.linalg.matrix_power(turn, k) for k in range(4)]), []
    if name == "star":
        return _radial(np.tile([1.0, rng.uniform(0.4, 0.52)], 5)), []
    if name == "bar":
        h = rng.uniform(0.16, 0.24)
        return np.array([[-1.1, -h], [1.1, -h], [1.1, h], [-1.1, h]]), []
    if name == "crescent":
        return _radial(np.ones(40)), [_radial(np.full(40, rng.uniform(0.7, 0.85))) + [rng.uniform(0.5, 0.7), 0.0]]
    if name == "blob":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        r = 0.9 + sum(rng.uniform(0.05, 0.13) * np.sin(k * t + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 4, 5))
        return _radial(r), []
    raise ValueError(f"unknown shape {name!r}")


def _place(unit: np.ndarray, centre: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return unit @ rot.T * radius + np.asarray(centre)


def _period(base: float, size: int) -> float:
    """Texture scale at image side ``size`` (never below 2.5 px, where stripes would alias)."""
    return max(2.5, base * max(size / 96.0, 0.75))


def _clutter(rng: np.random.Generator, size: int, pad: int) -> list[Layer]:
    """2-6 decals painted on the ground (no depth edge): polygons, ellipses, strokes with any texture."""
    layers = []
    for _ in range(int(rng.integers(2, 7))):
        centre = tuple(rng.uniform(-pad, size + pad, 2))
        radius = size * rng.uniform(0.06, 0.22)
        angle = rng.uniform(0, 2 * math.pi)
        kind = rng.integers(3)
        if kind == 0:
            unit = _radial(rng.uniform(0.5, 1.0, int(rng.integers(4, 8))), rng.uniform(0, 6.3))
        elif kind == 1:
            unit = _radial(np.ones(24)) * [1.0, rng.uniform(0.3, 0.9)]
        else:
            unit = np.array([[-1, -0.08], [1, -0.08], [1, 0.08], [-1, 0.08]])
        texture = str(rng.choice(CLUTTER_TEXTURES))
        layers.append(Layer(
            _place(unit, centre, radius, angle), [], centre, radius, angle,
            hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.1, 0.8), rng.uniform(0.25, 0.9)),
            texture, rng.uniform(2.5, 9.0), rng.uniform(0.2, 0.5), 0, None, rng.uniform(0.35, 0.85),
        ))
    return layers


def _raised_clutter(rng: np.random.Generator, scene: Scene, pad: int) -> list[Layer]:
    """0-2 raised background things standing on the ground: untextured poles and grainy rocks."""
    size, layers = scene.size, []
    for _ in range(int(rng.choice(3, p=[0.4, 0.4, 0.2]))):
        if rng.random() < 0.5:  # pole
            half, x = size * rng.uniform(0.015, 0.035), rng.uniform(-pad, size + pad)
            base = size * rng.uniform(0.3, 1.1)
            top = base - size * rng.uniform(0.4, 1.2)
            outline = np.array([[x - half, top], [x + half, top], [x + half, base], [x - half, base]])
            look = hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.4), rng.uniform(0.2, 0.8)), "flat", 3.0, 0.0
            centre, radius = (x, (top + base) / 2), half
        else:  # rock
            centre = (rng.uniform(-pad, size + pad), rng.uniform(0.2, 1.0) * size)
            radius = size * rng.uniform(0.07, 0.18)
            outline = _place(_radial(rng.uniform(0.6, 1.0, int(rng.integers(6, 10)))), centre, radius, 0.0)
            base = centre[1] + radius
            colour = scene.colours[0] * rng.uniform(0.7, 1.3, 3).astype(np.float32)
            look = np.clip(colour, 0, 1), str(rng.choice(["grain", "mottle"])), 2.5, rng.uniform(0.2, 0.45)
        lift = rng.uniform(0.02, 0.15)
        layers.append(Layer(outline, [], centre, radius, 0.0, *look, 0, float(scene.ground(centre[0], base)) + lift,
                            shade=rng.uniform(0.2, 0.5)))
    return layers


def _objects(rng: np.random.Generator, scene: Scene, n: int, priors: np.ndarray) -> list[Layer]:
    """``n`` objects of classes drawn from ``priors``, nearer than the ground behind them (and larger when nearer)."""
    size, layers = scene.size, []
    for _ in range(n):
        cls = int(rng.choice(len(CLASS_SPECS), p=priors))
        name, _, hue, texture, period = CLASS_SPECS[cls]
        radius = size * math.exp(rng.uniform(math.log(0.15), math.log(0.36)))
        centre = (rng.uniform(0.05, 0.95) * size, rng.uniform(0.05, 0.95) * size)
        angle = rng.uniform(0, 2 * math.pi)
        unit, holes = class_outline(name, rng)
        if rng.random() < 0.2:  # camouflaged: coloured like the ground
            colour = np.clip(scene.colours.mean(0) * rng.uniform(0.85, 1.15, 3), 0, 1).astype(np.float32)
        else:
            hue = rng.uniform(0, 360) if rng.random() < 0.15 else hue + rng.normal(0, 40)
            colour = hsv_to_rgb(hue, rng.uniform(0.25, 0.9), rng.uniform(0.35, 0.95))
        near = float(scene.ground(centre[0], centre[1] + 0.8 * radius)) + rng.uniform(0.1, 0.35)
        layers.append(Layer(
            _place(unit, centre, radius, angle), [_place(hole, centre, radius, angle) for hole in holes], centre,
            radius, angle, colour, texture, _period(period, size) * rng.uniform(0.85, 1.2), rng.uniform(0.3, 0.6),
            cls + 1, near, shade=rng.uniform(0.1, 0.3),
        ))
    return layers


def sample_scene(rng: np.random.Generator, size: int, pad: int, priors: np.ndarray, n_objects: int | None) -> Scene:
    """Draw a scene; ``n_objects`` None draws 1-3 objects."""
    light = rng.uniform(0, 2 * math.pi)
    scene = Scene(
        size, rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.4), rng.uniform(-0.08, 0.08),
        np.stack([hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.1, 0.55), rng.uniform(0.3, 0.75)) for _ in range(2)]),
        (math.cos(light), math.sin(light)),
    )
    n = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25])) if n_objects is None else n_objects
    raised = _raised_clutter(rng, scene, pad) + _objects(rng, scene, n, priors)
    scene.layers = _clutter(rng, size, pad) + sorted(raised, key=lambda lay: lay.inv_depth)
    return scene


def coverage(layer: Layer, shape: tuple[int, int], pad: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of ``layer`` (outline minus holes) on a canvas offset by ``pad``."""
    canvas = np.zeros(shape, np.uint8)
    scale = 1 << _SHIFT

    def pts(p: np.ndarray) -> list[np.ndarray]:
        return [np.round((p + pad) * scale).astype(np.int32)]

    cv2.fillPoly(canvas, pts(layer.outline), 255, cv2.LINE_AA, _SHIFT)
    for hole in layer.holes:
        cv2.fillPoly(canvas, pts(hole), 0, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) * np.float32(1 / 255)


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise with unit standard deviation."""
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / max(float(n.std()), 1e-6)


def _texture(layer: Layer, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Texture value in [-1, 1] on the pixel grid (xs, ys) in the element's rotated frame."""
    dx, dy = xs - layer.centre[0], ys - layer.centre[1]
    ca, sa = math.cos(layer.angle), math.sin(layer.angle)
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    w = 2 * math.pi / layer.period
    kind = layer.texture
    if kind == "stripes":
        t = 1.5 * np.sin(w * u)
    elif kind == "checker":
        t = 3.0 * np.sin(w * u) * np.sin(w * v)
    elif kind == "dots":
        p = layer.period
        d = np.hypot(np.mod(u, p) - p / 2, np.mod(v, p) - p / 2)
        t = 2.0 * (0.3 * p - d)
    elif kind == "rings":
        t = 1.5 * np.sin(w * np.hypot(u, v))
    elif kind == "grain":
        t = 0.6 * _noise(rng, xs.shape, 0.6)
    elif kind == "mottle":
        t = 0.7 * _noise(rng, xs.shape, layer.period)
    else:
        return np.zeros(xs.shape, np.float32)
    return np.clip(t, -1, 1).astype(np.float32)


def _ground(scene: Scene, rng: np.random.Generator, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground image (two colours mixed by a low-frequency field, shading, grain, haze) and its inverse depth."""
    n = scene.size + 2 * pad
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) - pad
    low = [cv2.resize(rng.standard_normal((5, 5)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
           for _ in range(2)]
    mix = 1 / (1 + np.exp(-2 * low[0]))
    img = scene.colours[0] * (1 - mix[..., None]) + scene.colours[1] * mix[..., None]
    img = img * (1 + 0.15 * low[1][..., None] + 0.05 * _noise(rng, (n, n), 0.7)[..., None])
    inv = np.asarray(scene.ground(xs, ys), np.float32)
    haze = (0.35 * np.clip(1 - (inv - scene.a) / scene.b, 0, 1))[..., None]
    img = img * (1 - haze) + np.float32([0.7, 0.72, 0.78]) * haze
    return img.astype(np.float32), inv


def render(scene: Scene, rng: np.random.Generator, pad: int, ignore_edges: bool) -> Rendered:
    """Render on a canvas of side ``size + 2 * pad`` whose pixel (pad, pad) is scene pixel (0, 0).

    Scene coordinates are pixel centres: canvas pixel (i, j) is scene point (j - pad, i - pad).
    """
    n = scene.size + 2 * pad
    img, inv = _ground(scene, rng, pad)
    labels = [0]
    weights = [np.ones((n, n), np.float32)]
    depths: list[float] = []
    full: list[int] = []
    crop = np.s_[pad:pad + scene.size, pad:pad + scene.size]
    lx, ly = scene.light
    for layer in scene.layers:
        alpha = coverage(layer, (n, n), pad) * np.float32(layer.opacity)
        rows, cols = np.nonzero(alpha.any(1))[0], np.nonzero(alpha.any(0))[0]
        if not len(rows):
            alpha = None
        else:
            win = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            ys, xs = np.mgrid[win].astype(np.float32) - pad
            t = _texture(layer, xs, ys, rng)
            g = ((xs - layer.centre[0]) * lx + (ys - layer.centre[1]) * ly) / layer.radius
            tone = (1 + layer.amp * t) * (1 + layer.shade * np.clip(g, -1.5, 1.5))
            colour = np.clip(layer.colour * tone[..., None], 0, 1)
            a = alpha[win][..., None]
            img[win] = img[win] * (1 - a) + colour * a
        if layer.inv_depth is None:
            continue
        if alpha is None:
            alpha = np.zeros((n, n), np.float32)
        for w in weights:
            w *= 1 - alpha
        weights.append(alpha)
        labels.append(layer.label)
        depths.append(layer.inv_depth)
        full.append(int((alpha[crop] >= 0.5).sum()))
    stack = np.stack(weights)
    winner = stack.argmax(0).astype(np.int16) - 1
    label_of = np.asarray(labels, np.uint8)
    mask = label_of[winner + 1]
    if ignore_edges:
        best = np.zeros((n, n), np.float32)
        for lab in np.unique(label_of):
            best = np.maximum(best, stack[label_of == lab].sum(0))
        mask = np.where(best < EDGE_WEIGHT, np.uint8(IGNORE), mask)
    layer_depth = np.asarray(depths, np.float32)
    depth = np.where(winner >= 0, layer_depth[np.maximum(winner, 0)] if depths else 0, inv).astype(np.float32)
    return Rendered(np.clip(img, 0, 1).astype(np.float32), mask, depth, winner, full)


def min_pixels(size: int) -> int:
    """Fewest mask pixels for a class to count as present in an image (smaller slivers become ignore)."""
    return max(12, round(0.004 * size * size))


def _objects_visible(scene: Scene, out: Rendered, pad: int) -> bool:
    """Each object shows at least 30% of its in-frame area and ``min_pixels`` in the central crop."""
    crop = np.s_[pad:pad + scene.size, pad:pad + scene.size]
    win = out.winner[crop][out.mask[crop] != IGNORE]
    visible = np.bincount(win[win >= 0], minlength=len(out.full))
    raised = [lay for lay in scene.layers if lay.inv_depth is not None]
    need = min_pixels(scene.size)
    return all(visible[k] >= max(need, 0.3 * out.full[k]) for k, lay in enumerate(raised) if lay.label)


def make_scene(
    rng: np.random.Generator, size: int, pad: int, priors: np.ndarray, ignore_edges: bool
) -> tuple[Scene, Rendered]:
    """Sample and render a scene whose objects are all visible enough (up to 20 draws; one object after 8)."""
    for attempt in range(20):
        scene = sample_scene(rng, size, pad, priors, 1 if attempt >= 8 else None)
        out = render(scene, rng, pad, ignore_edges)
        if _objects_visible(scene, out, pad):
            break
    return scene, out


_LAMPS = np.array([[1.0, 0.72, 0.4], [1.0, 0.95, 0.85], [0.8, 0.9, 1.0]], np.float32)  # sodium, LED, cool white


def night_relight(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Night illumination in linear light: dim bluish ambient, 1-3 coloured light pools (street lights, headlights)."""
    n = image.shape[0]
    lin = np.power(image, 2.2)
    ambient = rng.uniform(0.3, 0.6) * np.float32([0.8, 0.88, 1.0])
    light = np.broadcast_to(ambient.astype(np.float32), lin.shape).copy()
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, n, 2)
        sigma = size * rng.uniform(0.15, 0.4)
        pool = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)) * rng.uniform(0.6, 1.5)
        light += pool[..., None] * _LAMPS[int(rng.integers(len(_LAMPS)))]
    return np.power(np.clip(lin * light, 0, 1), 1 / 2.2).astype(np.float32)
