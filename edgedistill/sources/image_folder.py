"""A folder of images, one sub-folder per class (``root/cat/1.png``, ``root/dog/2.jpg``), read with PIL.

Images become float32 arrays in NCHW layout scaled to [0, 1], optionally resized and normalised
per channel; grayscale folders stay one channel, anything else becomes RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edgedistill.dataset import Dataset
from edgedistill.errors import UserError, require

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def _class_files(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UserError(f"image folder {root} has no class sub-folders (expected {root}/<class>/<image>)")
    files = [(f, label) for label, name in enumerate(classes)
             for f in sorted((root / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"image folder {root} is empty: no {', '.join(sorted(IMAGE_SUFFIXES))} files in its class sub-folders")
    return classes, files


def load_image_folder(root: str | Path, *, size: Sequence[int] | None = None, mean: Sequence[float] | None = None,
                      std: Sequence[float] | None = None) -> Dataset:
    """Every image under ``root/<class>/``, labelled by its sub-folder (classes in sorted order)."""
    pil = require("PIL.Image", "images", "Pillow")
    Image, UnidentifiedImageError = pil, pil.UnidentifiedImageError
    root = Path(root)
    classes, files = _class_files(root)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise UserError(f"data.image_size must be [height, width], got {list(size)}")
    images = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"image {path} cannot be read: {exc}") from None
    mode = "L" if all(im.mode in ("L", "1") for im in images) else "RGB"
    sizes = {im.size for im in images}
    if size is None and len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3])
        raise UserError(f"images in {root} have different sizes ({shown}): set data.image_size = [height, width]")
    arrays = []
    for im in images:
        im = im.convert(mode)
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    channels = x.shape[1]
    for name, values in (("image_mean", mean), ("image_std", std)):
        if values is not None and len(values) != channels:
            raise UserError(f"data.{name} has {len(values)} values but the images have {channels} channel(s)")
    if mean is not None:
        x = x - np.asarray(mean, np.float32)[None, :, None, None]
    if std is not None:
        if min(std) <= 0:
            raise UserError(f"data.image_std must be > 0, got {list(std)}")
        x = x / np.asarray(std, np.float32)[None, :, None, None]
    preprocessing = {"source": "image-folder", "color": mode, "layout": "NCHW float32",
                     "resize": list(size) if size is not None else None, "interpolation": "bilinear",
                     "scale": 1 / 255, "mean": list(mean) if mean is not None else None,
                     "std": list(std) if std is not None else None}
    return Dataset(inputs={"x": np.ascontiguousarray(x, dtype=np.float32)},
                   y=np.array([label for _, label in files], dtype=np.int64), labels=classes,
                   preprocessing=preprocessing, name=root.name)
