"""Procedural street scenes for the ``scenes_daynight`` benchmark (NumPy + OpenCV): layout, day and night rendering.

A scene is a *place* (static layout: sky, buildings with windows, road with lane marks, sidewalks, trees, poles
with lamps) plus *traffic* (dynamic: cars on the road, people on the sidewalks). It is drawn on a world canvas a
margin larger than the view, so that a second camera can look at the same place shifted and zoomed (as Dark
Zurich's GPS-matched day/night pairs do). A ``City`` style (facade, road and vegetation colours, colour cast) makes
the source and target cities differ by more than illumination.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Static classes first (as in Cityscapes, where train ids 0..10 are static), then dynamic ones.
CLASSES: tuple[str, ...] = ("road", "sidewalk", "building", "pole", "vegetation", "sky", "person", "car")
NUM_STATIC = 6
ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR = range(8)


@dataclass(frozen=True)
class City:
    """Colour style of one city (the dataset gap besides illumination)."""

    facade_hues: tuple[float, float]  # degrees
    facade_sat: tuple[float, float]
    road_grey: tuple[float, float]
    sidewalk_tint: tuple[float, float, float]
    foliage_hue: float
    cast: tuple[float, float, float]  # multiplicative colour cast of the camera


SOURCE_CITY = City((20.0, 50.0), (0.1, 0.35), (0.28, 0.42), (0.62, 0.6, 0.58), 95.0, (1.0, 1.0, 1.0))
TARGET_CITY = City((180.0, 260.0), (0.05, 0.25), (0.34, 0.5), (0.55, 0.57, 0.62), 75.0, (0.95, 1.0, 1.08))


@dataclass
class Thing:
    """A drawable element: class, polygon(s) in world pixels, colour, and lamp position (poles) if any."""

    label: int
    polys: list[np.ndarray]
    colour: np.ndarray
    base_y: float  # for far-to-near ordering
    lamp: tuple[float, float] | None = None
    lit: bool = False  # car lights / lit windows at night


@dataclass
class Place:
    """The static layout of a world canvas of ``shape`` (H, W) and the traffic in it."""

    shape: tuple[int, int]
    horizon: float
    sky: np.ndarray
    road: np.ndarray  # polygon
    road_colour: np.ndarray
    sidewalk_colour: np.ndarray
    statics: list[Thing]
    windows: list[tuple[np.ndarray, bool]]  # window polygons, lit at night


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    rgb = cv2.cvtColor(np.float32([[[h % 360.0, s, v]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return np.clip(rgb, 0, 1).astype(np.float32)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 16) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).astype(np.float32)


def sample_place(rng: np.random.Generator, shape: tuple[int, int], city: City) -> Place:
    """Buildings along the horizon, a road towards a vanishing point, sidewalks, trees and lamp poles."""
    h, w = shape
    horizon = h * rng.uniform(0.38, 0.5)
    vx = w * rng.uniform(0.35, 0.65)
    half = w * rng.uniform(0.28, 0.45)
    road = np.float32([[vx - 2, horizon], [vx + 2, horizon], [vx + half + rng.uniform(-8, 8), h],
                       [vx - half + rng.uniform(-8, 8), h]])
    statics: list[Thing] = []
    windows: list[tuple[np.ndarray, bool]] = []
    x = -rng.uniform(0, 10)
    while x < w:
        bw = rng.uniform(0.12, 0.3) * w
        if rng.random() < 0.85:
            top = horizon - h * rng.uniform(0.12, 0.36)
            colour = _hsv(rng.uniform(*city.facade_hues), rng.uniform(*city.facade_sat), rng.uniform(0.45, 0.8))
            statics.append(Thing(BUILDING, [_rect(x, top, x + bw, horizon + 2)], colour, horizon - 1))
            step_x, step_y = rng.uniform(4, 7), rng.uniform(5, 8)
            for wy in np.arange(top + 3, horizon - 4, step_y):
                for wx in np.arange(x + 2, x + bw - 3, step_x):
                    windows.append((_rect(wx, wy, wx + 2, wy + 2.5), bool(rng.random() < 0.35)))
        x += bw + rng.uniform(0, 6)
    for side in (-1, 1):
        for _ in range(int(rng.integers(1, 4))):
            t = rng.uniform(0.15, 1.0)
            y = horizon + t * (h - horizon)
            edge = vx + side * (2 + t * half)
            px = edge + side * rng.uniform(2, 10) * (0.4 + t)
            kind = rng.random()
            scale = 0.3 + t
            if kind < 0.5:
                top = y - h * 0.35 * scale
                thing = Thing(POLE, [_rect(px - 0.8 * scale, top, px + 0.8 * scale, y)], np.float32([0.35] * 3), y,
                              lamp=(px - side * 3 * scale, top))
                thing.polys.append(_rect(px - side * 3.5 * scale, top - 0.8, px, top + 0.8))
                statics.append(thing)
            else:
                r = h * rng.uniform(0.07, 0.12) * scale
                crown = _ellipse(px, y - 2.2 * r, r, r * rng.uniform(0.9, 1.3), 20)
                crown += rng.normal(0, r * 0.08, crown.shape).astype(np.float32)
                colour = _hsv(city.foliage_hue + rng.uniform(-15, 15), rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.55))
                statics.append(Thing(VEGETATION, [crown, _rect(px - 0.4 * r, y - 1.5 * r, px + 0.4 * r, y)], colour,
                                     y))
    sky = _hsv(rng.uniform(195, 215), rng.uniform(0.25, 0.5), rng.uniform(0.8, 0.95))
    road_colour = np.float32([rng.uniform(*city.road_grey)] * 3)
    sidewalk = np.float32(city.sidewalk_tint) * rng.uniform(0.85, 1.1)
    return Place(shape, horizon, sky, road, road_colour, sidewalk.astype(np.float32), statics, windows)


def sample_traffic(rng: np.random.Generator, place: Place, n_cars: int, n_people: int) -> list[Thing]:
    """Cars on the road and people on the sidewalks, sized by their distance to the horizon."""
    h, w = place.shape
    road = place.road
    things = []
    for _ in range(n_cars):
        t = rng.uniform(0.2, 1.0)
        y = place.horizon + t * (h - place.horizon)
        left = road[0, 0] + t * (road[3, 0] - road[0, 0])
        right = road[1, 0] + t * (road[2, 0] - road[1, 0])
        cw = w * 0.16 * (0.3 + t)
        cx = rng.uniform(left + cw / 2, max(left + cw / 2, right - cw / 2) + 1e-3)
        ch = cw * rng.uniform(0.55, 0.75)
        body = np.float32([[cx - cw / 2, y], [cx - cw / 2, y - 0.6 * ch], [cx - 0.3 * cw, y - ch],
                           [cx + 0.3 * cw, y - ch], [cx + cw / 2, y - 0.6 * ch], [cx + cw / 2, y]])
        colour = _hsv(rng.uniform(0, 360), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.9))
        things.append(Thing(CAR, [body], colour, y, lit=bool(rng.random() < 0.7)))
    for _ in range(n_people):
        t = rng.uniform(0.2, 1.0)
        y = place.horizon + t * (h - place.horizon)
        side = -1 if rng.random() < 0.5 else 1
        edge = road[0, 0] + t * (road[3, 0] - road[0, 0]) if side < 0 else road[1, 0] + t * (road[2, 0] - road[1, 0])
        px = edge + side * rng.uniform(1, 8) * (0.4 + t)
        ph = h * 0.2 * (0.3 + t)
        body = _ellipse(px, y - 0.45 * ph, ph * 0.13, ph * 0.42, 12)
        head = _ellipse(px, y - 0.95 * ph, ph * 0.09, ph * 0.09, 10)
        colour = _hsv(rng.uniform(0, 360), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.7))
        things.append(Thing(PERSON, [body, head], colour, y))
    return things


def move_traffic(rng: np.random.Generator, place: Place, traffic: list[Thing], keep: float) -> list[Thing]:
    """The traffic at another time: each thing kept (and moved a little) with probability ``keep``, plus new ones."""
    kept = []
    for thing in traffic:
        if rng.random() < keep:
            shift = np.float32([rng.uniform(-6, 6), 0.0])
            kept.append(Thing(thing.label, [p + shift for p in thing.polys], thing.colour, thing.base_y, lit=thing.lit))
    fresh = sample_traffic(rng, place, int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    return kept + fresh


def _fill(canvas: np.ndarray, labels: np.ndarray, polys: list[np.ndarray], colour: np.ndarray, label: int) -> None:
    pts = [np.round(p * 8).astype(np.int32) for p in polys]
    cv2.fillPoly(canvas, pts, colour.tolist(), cv2.LINE_AA, shift=3)
    cv2.fillPoly(labels, pts, int(label), cv2.LINE_8, shift=3)


def render(place: Place, traffic: list[Thing], rng: np.random.Generator, night: bool) -> tuple[np.ndarray, np.ndarray]:
    """RGB float32 in [0, 1] and the label map of the world canvas, by day or by night (before the camera noise)."""
    h, w = place.shape
    img = np.empty((h, w, 3), np.float32)
    labels = np.full((h, w), SKY, np.uint8)
    ys = np.arange(h, dtype=np.float32)[:, None, None] / h
    img[:] = place.sky * (0.85 + 0.3 * ys) if not night else np.float32([0.05, 0.07, 0.15]) * (1 + ys)
    ground = _rect(-1, place.horizon, w + 1, h + 1)
    _fill(img, labels, [ground], place.sidewalk_colour, SIDEWALK)
    _fill(img, labels, [place.road], place.road_colour, ROAD)
    mid = (place.road[0] + place.road[1]) / 2
    bottom = (place.road[2] + place.road[3]) / 2
    for t0 in np.arange(0.1, 1.0, 0.15):
        a, b = mid + (bottom - mid) * t0, mid + (bottom - mid) * (t0 + 0.06)
        wdt = 0.3 + 1.2 * t0
        mark = np.float32([[a[0] - wdt, a[1]], [a[0] + wdt, a[1]], [b[0] + wdt, b[1]], [b[0] - wdt, b[1]]])
        cv2.fillPoly(img, [np.round(mark * 8).astype(np.int32)], (0.9, 0.9, 0.85), cv2.LINE_AA, shift=3)
    for thing in sorted([t for t in place.statics if t.label == BUILDING], key=lambda t: t.base_y):
        _fill(img, labels, thing.polys, thing.colour, BUILDING)
    for poly, lit in place.windows:
        colour = (0.95, 0.8, 0.45) if night and lit else (0.2, 0.25, 0.3)
        cv2.fillPoly(img, [np.round(poly * 8).astype(np.int32)], colour, cv2.LINE_AA, shift=3)
    others = [t for t in place.statics if t.label != BUILDING] + traffic
    for thing in sorted(others, key=lambda t: t.base_y):
        _fill(img, labels, thing.polys, thing.colour, thing.label)
        if thing.label == CAR:
            body = thing.polys[0]
            x0, x1, y1 = body[:, 0].min(), body[:, 0].max(), body[:, 1].max()
            cw = x1 - x0
            glass = _rect(x0 + 0.25 * cw, y1 - 0.85 * (y1 - body[:, 1].min()), x1 - 0.25 * cw,
                          y1 - 0.6 * (y1 - body[:, 1].min()))
            cv2.fillPoly(img, [np.round(glass * 8).astype(np.int32)], (0.15, 0.18, 0.22), cv2.LINE_AA, shift=3)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)  # surface texture
    if night:
        img = _night_light(img, place, traffic, rng)
    return np.clip(img, 0, 1), labels


def _night_light(img: np.ndarray, place: Place, traffic: list[Thing], rng: np.random.Generator) -> np.ndarray:
    """Dim bluish ambient light plus warm pools under the lamps and car lights (linear light)."""
    h, w = place.shape
    lin = np.power(np.clip(img, 0, 1), 2.2)
    light = np.broadcast_to(np.float32([0.3, 0.33, 0.45]) * rng.uniform(0.6, 1.2), lin.shape).copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sources = [(t.lamp, h * 0.25, (1.0, 0.75, 0.45)) for t in place.statics if t.lamp is not None]
    for t in traffic:
        if t.label == CAR and t.lit:
            body = t.polys[0]
            sources.append(((float(body[:, 0].mean()), float(body[:, 1].max())), h * 0.12, (1.0, 0.95, 0.85)))
    for (cx, cy), sigma, colour in sources:
        pool = np.exp(-((xx - cx) ** 2 + ((yy - cy) * 0.7) ** 2) / (2 * sigma**2)) * rng.uniform(1.0, 2.0)
        light += pool[..., None] * np.float32(colour)
    lit = lin * light
    lit[img.max(-1) > 0.9] = np.power(img[img.max(-1) > 0.9], 2.2) * 0.8  # lit windows, lane marks stay bright
    return np.power(np.clip(lit, 0, 1), 1 / 2.2).astype(np.float32)


def view(world: np.ndarray, matrix: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    """The camera view (H, W) = ``size`` of a world canvas; ``matrix`` (2×3) maps view pixels to world pixels."""
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(world, matrix, (size[1], size[0]), flags=flags, borderMode=cv2.BORDER_REPLICATE)
