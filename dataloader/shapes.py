"""Moving shapes: 2-3 textured shapes bouncing, rotating, pulsing in closed form (render_clip: any
real time, in frames); <root>/{train,test}/NNNNN.npy (T, S, S, 3) uint8 and <root>/meta.json."""
import json
import math
import os
from typing import Any, Dict

import numpy as np
from numpy.typing import ArrayLike

from utils.atomic import atomic_save_npy, atomic_write_json

SIZE = 64        # stored frame side (opt.input_size resizes)
N_FRAMES = 30
N_TRAIN, N_TEST = 320, 32
SEED = 2021      # fixed: every user gets the same data set
FRAME_DT = 1.0   # time of frame k is k * FRAME_DT (time unit: frames)
KINDS = ("circle", "square", "triangle")
TEXTURES = ("solid", "stripes", "checker")


def _colour(rng, low=0.15, high=1.0):
    return [float(v) for v in rng.uniform(low, high, 3)]


def make_clip_params(rng: np.random.Generator) -> Dict[str, Any]:
    """Random parameters of one clip (a JSON-serialisable dict); rng: numpy Generator."""
    shapes = []
    for _ in range(int(rng.integers(2, 4))):
        speed = rng.uniform(0.025, 0.045)          # of the frame side per frame (~1.6-2.9 px at 64)
        heading = rng.uniform(0, 2 * math.pi)
        rotating, pulsing = rng.random() < 0.6, rng.random() < 0.5
        shapes.append({
            "kind": KINDS[int(rng.integers(len(KINDS)))],
            "texture": TEXTURES[int(rng.integers(len(TEXTURES)))],
            "colour": _colour(rng), "colour2": _colour(rng, 0.0, 0.6),
            "tex_period": float(rng.uniform(0.07, 0.14)), "radius": float(rng.uniform(0.09, 0.15)),
            "pulse_amp": float(rng.uniform(0.1, 0.25)) if pulsing else 0.0,
            "pulse_period": float(rng.uniform(14, 30)),
            "pulse_phase": float(rng.uniform(0, 2 * math.pi)),
            "x0": float(rng.random()), "y0": float(rng.random()),   # start, fraction of the free path
            "vx": float(speed * math.cos(heading)), "vy": float(speed * math.sin(heading)),
            "angle0": float(rng.uniform(0, 2 * math.pi)),
            "omega": float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.15)) if rotating else 0.0,
        })
    return {"background": {"top": _colour(rng, 0.0, 0.5), "bottom": _colour(rng, 0.0, 0.5)},
            "shapes": shapes}


def _bounce(start, velocity, t, lo, hi):
    """Position at time t of a point bouncing between lo and hi (reflected triangle wave)."""
    span = hi - lo
    u = np.mod(start * span + velocity * t, 2 * span)
    return lo + (u if u <= span else 2 * span - u)


def _shape_state(s, t):
    """Centre (x, y), radius and angle of a shape at time t (frame units)."""
    rmax = s["radius"] * (1 + s["pulse_amp"])
    x = _bounce(s["x0"], s["vx"], t, rmax, 1 - rmax)
    y = _bounce(s["y0"], s["vy"], t, rmax, 1 - rmax)
    r = s["radius"] * (1 + s["pulse_amp"] * math.sin(2 * math.pi * t / s["pulse_period"] + s["pulse_phase"]))
    return x, y, r, s["angle0"] + s["omega"] * t


def _distance(kind, qx, qy, r):
    """Signed distance (approximate outside corners) to a shape centred at 0, radius r."""
    if kind == "circle":
        return np.sqrt(qx * qx + qy * qy) - r
    if kind == "square":
        return np.maximum(np.abs(qx), np.abs(qy)) - 0.8 * r
    d = None  # triangle of circumradius r: three half-planes at the inradius r/2
    for k in range(3):
        a = math.pi / 2 + 2 * math.pi * k / 3
        e = qx * math.cos(a) + qy * math.sin(a) - 0.5 * r
        d = e if d is None else np.maximum(d, e)
    return d


def _texture(s, qx, qy):
    """Mix weight of the shape's first colour, in [0, 1]."""
    w = 2 * math.pi / s["tex_period"]
    if s["texture"] == "stripes":
        return 0.5 + 0.5 * np.sin(w * qx)
    if s["texture"] == "checker":
        return 0.5 + 0.5 * np.sin(w * qx) * np.sin(w * qy)
    return np.ones_like(qx)


def render_frame(params: Dict[str, Any], t: float, size: int) -> np.ndarray:
    """One frame at real time t (frame units) -> (size, size, 3) uint8."""
    c = (np.arange(size, dtype=np.float64) + 0.5) / size  # pixel centres in [0, 1]
    top, bottom = np.array(params["background"]["top"]), np.array(params["background"]["bottom"])
    img = np.broadcast_to(top + (bottom - top) * c[:, None, None], (size, size, 3)).copy()
    for s in params["shapes"]:
        x, y, r, angle = _shape_state(s, float(t))
        reach = 1.2 * r + 1.0 / size  # beyond it the shape's coverage is exactly 0
        i0, i1 = max(0, int((y - reach) * size)), min(size, int(math.ceil((y + reach) * size)))
        j0, j1 = max(0, int((x - reach) * size)), min(size, int(math.ceil((x + reach) * size)))
        if i0 >= i1 or j0 >= j1:
            continue
        dy, dx = c[i0:i1, None] - y, c[None, j0:j1] - x  # (h, 1), (1, w)
        ca, sa = math.cos(angle), math.sin(angle)
        qx, qy = ca * dx + sa * dy, -sa * dx + ca * dy  # (h, w), shape frame (rotates with it)
        alpha = np.clip(0.5 - _distance(s["kind"], qx, qy, r) * size, 0.0, 1.0)[..., None]
        m = _texture(s, qx, qy)[..., None]
        colour = m * np.array(s["colour"]) + (1 - m) * np.array(s["colour2"])
        img[i0:i1, j0:j1] = img[i0:i1, j0:j1] * (1 - alpha) + colour * alpha
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def render_clip(params: Dict[str, Any], times: ArrayLike, size: int = SIZE) -> np.ndarray:
    """Frames at real-valued `times` (frame units) -> (T, size, size, 3) uint8."""
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    return np.stack([render_frame(params, t, size) for t in times])


def _clip_path(root, split, i):
    return os.path.join(root, split, f"{i:05d}.npy")


def load_meta(root: str) -> Dict[str, Any]:
    with open(os.path.join(root, "meta.json")) as f:
        return json.load(f)


def generate_shapes_dataset(root: str, n_train: int = N_TRAIN, n_test: int = N_TEST,
                            n_frames: int = N_FRAMES, size: int = SIZE, seed: int = SEED,
                            progress: bool = True) -> Dict[str, Any]:
    """Write <root>/{train,test}/NNNNN.npy and meta.json; files already there are kept."""
    meta_path = os.path.join(root, "meta.json")
    if os.path.exists(meta_path):
        meta = load_meta(root)  # finish an interrupted run with its own parameters
    else:
        train_rng, test_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
        meta = {"version": 1, "size": size, "n_frames": n_frames, "seed": seed, "frame_dt": FRAME_DT,
                "time_unit": "frames", "train": [make_clip_params(train_rng) for _ in range(n_train)],
                "test": [make_clip_params(test_rng) for _ in range(n_test)]}
        atomic_write_json(meta_path, meta, indent=1)
    times = np.arange(meta["n_frames"]) * meta["frame_dt"]
    todo = [(split, i, p) for split in ("train", "test") for i, p in enumerate(meta[split])
            if not os.path.exists(_clip_path(root, split, i))]
    if todo:
        from tqdm import tqdm
        for split, i, p in tqdm(todo, desc="shapes", disable=not progress, leave=False):
            atomic_save_npy(_clip_path(root, split, i), render_clip(p, times, meta["size"]))
    return meta


def is_complete(root: str) -> bool:
    """True when meta.json and every clip it lists are present."""
    if not os.path.exists(os.path.join(root, "meta.json")):
        return False
    meta = load_meta(root)
    return all(os.path.exists(_clip_path(root, split, i)) for split in ("train", "test") for i in range(len(meta[split])))


def ensure_shapes_dataset(root: str) -> None:
    """Generate the default shapes data set at `root` unless it is there; one process at a time."""
    def ready():  # complete, or made elsewhere without a meta.json
        meta = os.path.exists(os.path.join(root, "meta.json"))
        return is_complete(root) if meta else os.path.isdir(os.path.join(root, "train"))
    if ready():
        return
    import fcntl
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".generating.lock"), "a") as f:  # closing it releases the lock
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        if not ready():  # nobody generated it while this process waited
            print(f"[data] generating the moving-shapes data set in {root} "
                  f"({N_TRAIN} train + {N_TEST} test clips of {N_FRAMES} frames, {SIZE}x{SIZE}) ...")
            generate_shapes_dataset(root, N_TRAIN, N_TEST, N_FRAMES, SIZE, SEED)
