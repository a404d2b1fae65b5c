"""Images for training and evaluation: photographs and video frames installed from package registries, a user
folder, and the style images the project may ship (with their licences).

The content set (muon_ad_ros/data/SOURCES.md lists every file, its licence and the split): photographs in
the scikit-image wheel (only files inside the installed package, never its pooch downloads) and the sample
images and videos of Debian's ``opencv-doc`` package (installed by tools/env.sh). Nothing is downloaded.
The held-out split (``eval``) shares no scene with the training split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import os

# Where Debian's opencv-doc package puts OpenCV's sample data (MUON_AD_OPENCV_DATA overrides it).
OPENCV_DATA = Path(os.environ.get("MUON_AD_OPENCV_DATA", "/usr/share/doc/opencv-doc/examples/data"))
# scikit-image's sample photographs are read from the installed wheel's skimage/data folder, or from
# MUON_AD_SKIMAGE_DATA: a folder of copies of those files, for a machine whose scikit-image differs
# (tools/gpu_prepare.sh carries them to a GPU machine).
SKIMAGE_DATA_ENV = "MUON_AD_SKIMAGE_DATA"
# sample names whose file is named otherwise
SKIMAGE_FILES = {"immunohistochemistry": "ihc.png"}
# Content sources: "skimage:<name>" (a photograph in the scikit-image wheel), "opencv:<file>" (a file of
# OpenCV's sample data), "opencv:<video>@<first>:<step>" (every step-th frame of a sample video from frame
# first on). Greyscale images are turned into RGB. Views of one scene (stereo pairs, video frames) stay in
# one split. Only images whose licence note is known are used (muon_ad_ros/data/SOURCES.md).
CONTENT_TRAIN = (
    "skimage:astronaut", "skimage:coffee", "skimage:rocket", "skimage:camera", "skimage:coins",
    "skimage:retina", "skimage:brick", "skimage:grass", "skimage:gravel",
    "opencv:aero1.jpg", "opencv:aero3.jpg", "opencv:aloeL.jpg", "opencv:aloeR.jpg", "opencv:apple.jpg",
    "opencv:baboon.jpg", "opencv:board.jpg", "opencv:butterfly.jpg", "opencv:cards.png",
    "opencv:chicky_512.png", "opencv:ela_original.jpg", "opencv:graf1.png", "opencv:graf3.png", "opencv:home.jpg",
    "opencv:left.jpg", "opencv:right.jpg", "opencv:leuvenA.jpg", "opencv:leuvenB.jpg",
    "opencv:licenseplate_motion.jpg", "opencv:orange.jpg", "opencv:pca_test1.jpg", "opencv:smarties.png",
    "opencv:sudoku.png", "opencv:text_motion.jpg", "opencv:box_in_scene.png", "opencv:basketball1.png",
    "opencv:basketball2.png", "opencv:left01.jpg", "opencv:left07.jpg", "opencv:left13.jpg",
    "opencv:Blender_Suzanne1.jpg",
    "opencv:vtest.avi@0:50", "opencv:tree.avi@0:10",
)
CONTENT_EVAL = (
    "skimage:chelsea", "skimage:hubble_deep_field", "opencv:fruits.jpg", "opencv:building.jpg",
    "opencv:messi5.jpg", "opencv:stuff.jpg", "opencv:squirrel_cls.jpg", "opencv:rubberwhale1.png",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SKIMAGE_LICENCE = ("scikit-image sample data (skimage.data), shipped in the scikit-image wheel; "
                   "see the licence note of each image in its skimage.data docstring")


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB copy of a greyscale, RGB or RGBA image."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8) if img.dtype.kind == "f" else img.astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {img.shape}")
    return np.ascontiguousarray(img[..., :3])


def load_image(path: str | Path) -> np.ndarray:
    """Return the image file at ``path`` as (H, W, 3) uint8 RGB."""
    import cv2
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise ValueError(f"cannot read image {path} (not an image OpenCV can decode)")
    if bgr.dtype == np.uint16:
        bgr = (bgr >> 8).astype(np.uint8)
    if bgr.ndim == 3:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGBA if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return to_rgb(bgr)


def save_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image (PNG/JPEG by suffix) and return its path."""
    import cv2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(to_rgb(rgb), cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write image {path} (unknown suffix?)")
    return path


def skimage_path(name: str) -> Path:
    """Return the file of the scikit-image sample ``name`` (in the wheel, or in MUON_AD_SKIMAGE_DATA)."""
    folder = os.environ.get(SKIMAGE_DATA_ENV)
    if folder is None:
        import skimage.data
        folder = Path(skimage.data.__file__).parent
    path = Path(folder) / SKIMAGE_FILES.get(name, name)
    candidates = [path] if path.suffix else sorted(path.parent.glob(path.name + ".*"))
    if not candidates or not candidates[0].is_file():
        where = f"{SKIMAGE_DATA_ENV}={folder}" if os.environ.get(SKIMAGE_DATA_ENV) else "the installed wheel"
        raise FileNotFoundError(f"scikit-image sample {name!r} is not in {where}")
    return candidates[0]


def skimage_image(name: str) -> np.ndarray:
    """Return the scikit-image sample ``name`` as RGB, read from its file (skimage_path; no download)."""
    return load_image(skimage_path(name))


def content_images(folder: str | Path | None = None, split: str = "train") -> list[np.ndarray]:
    """Return RGB content images from ``folder`` (all image files in it), else the bundled photographs."""
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise NotADirectoryError(f"content folder not found: {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in content folder {folder}")
        return [load_image(p) for p in files]
    names = {"train": CONTENT_TRAIN, "eval": CONTENT_EVAL}.get(split)
    if names is None:
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    return [img for n in names for img in source_images(n)]


def source_images(source: str) -> list[np.ndarray]:
    """Return the RGB images of one content source ("skimage:<name>", "opencv:<file>[@first:step]")."""
    kind, _, name = source.partition(":")
    if kind == "skimage":
        return [skimage_image(name)]
    if kind != "opencv":
        raise ValueError(f"unknown content source {source!r}")
    name, _, frames = name.partition("@")
    path = OPENCV_DATA / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: OpenCV's sample data comes from Debian's opencv-doc "
                                f"package, which tools/env.sh installs (or set MUON_AD_OPENCV_DATA)")
    if not frames:
        return [load_image(path)]
    import cv2
    first, step = (int(v) for v in frames.split(":"))
    cap, out, i = cv2.VideoCapture(str(path)), [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i >= first and (i - first) % step == 0:
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    if not out:
        raise ValueError(f"no frames read from {path} (frames {frames})")
    return out


def fit_frame(rgb: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """Return ``rgb`` centre-cropped to width:height and resized to width x height (a camera frame)."""
    import cv2
    h, w = rgb.shape[:2]
    if w * height > h * width:
        cw, ch = h * width // height, h
    else:
        cw, ch = w, w * height // width
    y, x = (h - ch) // 2, (w - cw) // 2
    crop = rgb[y:y + ch, x:x + cw]
    interp = cv2.INTER_AREA if cw >= width else cv2.INTER_CUBIC
    return cv2.resize(crop, (width, height), interpolation=interp)


def make_mosaic(size: int = 512, cells: int = 90, seed: int = 7) -> np.ndarray:
    """Return a procedural stained-glass mosaic: Voronoi cells in a saturated palette with dark leading."""
    rng = np.random.default_rng(seed)
    palette = np.array([[214, 40, 40], [247, 127, 0], [252, 191, 73], [234, 226, 183], [0, 48, 73],
                        [42, 157, 143], [38, 70, 83], [106, 76, 147], [25, 130, 196]], np.float32)
    pts = rng.uniform(0, size, (cells, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    nearest = np.argmin(d, axis=-1)
    colours = palette[rng.integers(0, len(palette), cells)]
    img = colours[nearest]
    # shade each cell towards its centre like uneven glass, and draw lead where two cells nearly tie
    shade = 1.0 - 0.25 * np.sqrt(order[..., 0]) / (np.sqrt(order[..., 0]).max() + 1e-6)
    img = img * shade[..., None]
    edge = (np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])) < 3.0
    img[edge] = 20.0
    grain = rng.normal(0, 6, (size, size, 1))
    return np.clip(img + grain, 0, 255).astype(np.uint8)


# name -> (image function, source, licence)
STYLES = {
    "mosaic": (make_mosaic, "generated by muon_ad_ros.train.data.make_mosaic(size=512, cells=90, seed=7)",
               "made by this project; same licence as muon_ad_ros"),
    # the file frames the painting in black and a light mat; 24 px on each side are cut off so the style
    # statistics are the painting's
    "starry_night": (lambda: load_image(OPENCV_DATA / "starry_night.jpg")[24:-24, 24:-24],
                     "Vincent van Gogh, The Starry Night (1889, oil on canvas, MoMA): starry_night.jpg (752x600) "
                     "of OpenCV's sample data, Debian package opencv-doc 4.6.0+dfsg-12, its 24-px frame cut off",
                     "the painting is in the public domain (the painter died in 1890); the file is distributed "
                     "by Debian under the opencv-doc copyright's Files: * stanza (Apache-2.0 AND BSD-3-Clause)"),
    "ihc": (lambda: skimage_image("immunohistochemistry"),
            "scikit-image sample data: skimage.data.immunohistochemistry() (ihc.png), colonic glands with "
            "IHC/DAB staining, acquired at the Center for Microscopy And Molecular Imaging (CMMI)",
            "no known copyright restrictions (as stated in skimage.data.immunohistochemistry)"),
}


def style_image(name_or_path: str | Path) -> tuple[np.ndarray, str, str]:
    """Return (RGB image, source, licence) for a bundled style name or an image file path."""
    if str(name_or_path) in STYLES:
        fn, source, licence = STYLES[str(name_or_path)]
        return fn(), source, licence
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"style {name_or_path!r} is neither a bundled style {sorted(STYLES)} nor a file")
    return load_image(path), str(path.name), "supplied by the user"


def to_tensor(rgb: np.ndarray):
    """Return a (1, 3, H, W) float32 torch tensor in [0, 1] from an (H, W, 3) uint8 image."""
    import torch
    return torch.from_numpy(to_rgb(rgb)).permute(2, 0, 1)[None].float().div(255.0)


def to_uint8(x) -> np.ndarray:
    """Return an (H, W, 3) uint8 image from a (1, 3, H, W) or (3, H, W) tensor in [0, 1]."""
    x = x.detach()
    if x.ndim == 4:
        x = x[0]
    return (x.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def resize_max(rgb: np.ndarray, max_side: int, multiple: int = 8) -> np.ndarray:
    """Return ``rgb`` scaled so its longer side is <= max_side and both sides are multiples of ``multiple``."""
    import cv2
    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    nh, nw = max(multiple, int(h * s) // multiple * multiple), max(multiple, int(w * s) // multiple * multiple)
    if (nh, nw) == (h, w):
        return rgb
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)


def random_crops(images: list[np.ndarray], size: int, count: int, rng: np.random.Generator,
                 scale_range: tuple[float, float] = (0.35, 1.0), paired: list[np.ndarray] | None = None):
    """Return a (count, 3, size, size) float tensor of random rescaled square crops with random flips.

    ``paired``: images of the same sizes as ``images`` (e.g. a teacher's stylizations of them), cropped and
    flipped alike; then (crops, paired crops) is returned.
    """
    import cv2
    import torch
    out = np.empty((count, size, size, 3), np.uint8)
    out2 = np.empty_like(out) if paired is not None else None
    for i in range(count):
        j = rng.integers(len(images))
        img = images[j]
        h, w = img.shape[:2]
        side = int(min(h, w) * rng.uniform(*scale_range))
        side = max(min(side, h, w), min(h, w, size // 2))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        flip = rng.random() < 0.5
        for src, dst in ((img, out), (paired[j] if paired is not None else None, out2)):
            if src is None:
                continue
            crop = cv2.resize(src[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
            dst[i] = crop[:, ::-1] if flip else crop
    tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255.0)
    return tensor(out) if paired is None else (tensor(out), tensor(out2))
