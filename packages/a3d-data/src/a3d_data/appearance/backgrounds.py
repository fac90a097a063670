"""The background catalogue: shipped photographs without people, and procedural images.

Ids are stable strings: ``skimage/<name>`` (scikit-image's bundled photos), ``mate/<stem>`` (the
nature photos of Debian's ``mate-backgrounds``, when installed) and ``procedural/<kind>/<seed>``.
Train, val and test never share a background. Photographs are split by scene group (the stereo
motorcycle pair is one scene): within each source, groups are ordered by a stable hash of the
salted group name and dealt out by the split fractions, at least one group per split when the
source has three or more, so every split sees photos of every source and a photo's split does not
depend on which other sources are installed. Procedural seeds of each split come from a disjoint
range. Photos are read on first use and kept for the life of the process.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from a3d_data.appearance.params import BackgroundParams
from a3d_data.appearance.procedural import PROCEDURAL_KINDS, procedural_background
from a3d_data.synthesis.schema import SPLITS

log = logging.getLogger(__name__)

SKIMAGE_SOURCE: Final[str] = "skimage"
MATE_SOURCE: Final[str] = "mate"
PROCEDURAL_SOURCE: Final[str] = "procedural"

# scikit-image photos that load offline and show no person: name -> (loader in skimage.data,
# index into the loader's tuple or None, scene group).
SKIMAGE_PHOTOS: Final[dict[str, tuple[str, int | None, str]]] = {
    "coffee": ("coffee", None, "coffee"),
    "chelsea": ("chelsea", None, "chelsea"),
    "rocket": ("rocket", None, "rocket"),
    "motorcycle_left": ("stereo_motorcycle", 0, "motorcycle"),
    "motorcycle_right": ("stereo_motorcycle", 1, "motorcycle"),
    "hubble_deep_field": ("hubble_deep_field", None, "hubble_deep_field"),
    "coins": ("coins", None, "coins"),
    "immunohistochemistry": ("immunohistochemistry", None, "immunohistochemistry"),
    "brick": ("brick", None, "brick"),
    "grass": ("grass", None, "grass"),
    "gravel": ("gravel", None, "gravel"),
    "moon": ("moon", None, "moon"),
    "clock": ("clock", None, "clock"),
    "cell": ("cell", None, "cell"),
    "retina": ("retina", None, "retina"),
    "text": ("text", None, "text"),
    "page": ("page", None, "page"),
}
# scikit-image data left out, and why (kept as data so a test can hold the line).
SKIMAGE_EXCLUDED: Final[dict[str, str]] = {
    "astronaut": "a person (Eileen Collins)",
    "camera": "a person (the cameraman)",
    "lfw_subset": "faces of people",
    "cat": "the same photo as chelsea",
    "colorwheel": "a synthetic graphic (procedural backgrounds cover these)",
    "logo": "a synthetic graphic with transparency",
    "checkerboard": "a synthetic pattern",
    "binary_blobs": "a synthetic binary image",
    "horse": "a binary silhouette",
    "shepp_logan_phantom": "a synthetic phantom",
    "microaneurysms": "102 x 102 pixels, too small to crop",
    "brain": "needs a download",
    "cells3d": "needs a download",
    "eagle": "needs a download",
    "human_mitosis": "needs a download",
    "kidney": "needs a download",
    "lily": "needs a download",
    "nickel_solidification": "needs a download",
    "palisades_of_vogt": "needs a download",
    "protein_transport": "needs a download",
    "skin": "needs a download",
    "vortex": "needs a download",
}
PHOTO_SUFFIXES: Final[tuple[str, ...]] = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class PhotoEntry:
    """One catalogued photograph.

    id : stable id (``skimage/coffee``); group : scene it belongs to (one split per scene);
    path : file on disk, or None for scikit-image data (loaded through ``skimage.data``).
    """

    id: str
    group: str
    path: Path | None = None


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Any 2D/3D image -> (H, W, 3) uint8: grey is repeated, alpha dropped, floats scaled."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64) * (255.0 if image.max() <= 1.0 else 1.0)), 0, 255)
        image = image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


@functools.cache
def _load_photo(entry_id: str, path: str | None, max_side: int) -> np.ndarray:
    """(H, W, 3) uint8 of a catalogued photo, read once per process (read-only array)."""
    if path is None:
        import skimage.data

        name = entry_id.split("/", 1)[1]
        loader, index, _ = SKIMAGE_PHOTOS[name]
        try:
            image = getattr(skimage.data, loader)()
        except Exception as err:  # a download-only loader raises; name the photo, not pooch
            message = f"background {entry_id}: skimage.data.{loader}() failed offline: {err}"
            raise RuntimeError(message) from err
        if index is not None:
            image = image[index]
    else:
        try:
            with Image.open(path) as opened:
                image = np.asarray(opened.convert("RGB"))
        except OSError as err:
            raise RuntimeError(f"background {entry_id}: cannot read {path}: {err}") from err
    image = _downscale(_as_rgb(image), max_side)
    image.setflags(write=False)  # shared by every caller through the cache
    return image


def _unit_hash(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (sha256, independent of Python's hash seed)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16) / 2.0**64


class BackgroundCatalogue:
    """Every background the synthesis may use, with its split.

    Parameters
    ----------
    params : background parameters (sources, split fractions and salt, procedural kinds, crops).
    """

    def __init__(self, params: BackgroundParams | None = None):
        self.params = params or BackgroundParams()
        entries: list[PhotoEntry] = []
        if self.params.use_skimage and _skimage_available():
            entries += [
                PhotoEntry(f"{SKIMAGE_SOURCE}/{name}", f"{SKIMAGE_SOURCE}/{group}")
                for name, (_, _, group) in SKIMAGE_PHOTOS.items()
            ]
        folder = self.params.mate_folder
        if folder is not None and Path(folder).is_dir():
            for path in sorted(Path(folder).iterdir()):
                if path.suffix.lower() in PHOTO_SUFFIXES and path.is_file():
                    entry_id = f"{MATE_SOURCE}/{path.stem}"
                    entries.append(PhotoEntry(entry_id, entry_id, path))
        self.photos: tuple[PhotoEntry, ...] = tuple(entries)
        self._by_id = {entry.id: entry for entry in entries}
        self._group_split: dict[str, str] = {}
        for source in (SKIMAGE_SOURCE, MATE_SOURCE):
            groups = sorted({e.group for e in entries if e.id.startswith(f"{source}/")})
            self._group_split.update(self._deal_groups(groups))
        self._split_photos = {
            split: tuple(e for e in entries if self.split_of(e.id) == split) for split in SPLITS
        }
        for split, photos in self._split_photos.items():
            if not photos:
                log.warning("no background photo falls in split %r: it will use procedural ones only", split)

    def __repr__(self) -> str:
        counts = ", ".join(f"{split}={len(p)}" for split, p in self._split_photos.items())
        kinds = ", ".join(PROCEDURAL_KINDS)
        return f"BackgroundCatalogue({len(self.photos)} photos: {counts}; procedural: {kinds})"

    def photo_ids(self, split: str | None = None) -> list[str]:
        """Ids of the catalogued photos, of one split or of all."""
        if split is None:
            return [entry.id for entry in self.photos]
        self._check_split(split)
        return [entry.id for entry in self._split_photos[split]]

    def procedural_seed_range(self, split: str) -> tuple[int, int]:
        """``[low, high)`` of the procedural seeds that belong to ``split``."""
        self._check_split(split)
        per_split = self.params.procedural_seeds_per_split
        k = SPLITS.index(split)
        return k * per_split, (k + 1) * per_split

    def split_of(self, background_id: str) -> str:
        """The split a background id belongs to (photos by their scene group, procedural ids by
        seed range); a photo id not in the catalogue is a KeyError."""
        source, _, rest = background_id.partition("/")
        if source == PROCEDURAL_SOURCE:
            kind, _, seed = rest.partition("/")
            if kind not in PROCEDURAL_KINDS or not seed.isdigit():
                raise ValueError(f"malformed procedural background id {background_id!r}")
            k = int(seed) // self.params.procedural_seeds_per_split
            if k >= len(SPLITS):
                raise ValueError(f"procedural seed of {background_id!r} is beyond every split's range")
            return SPLITS[k]
        entry = self._by_id.get(background_id)
        if entry is None:
            raise KeyError(f"background {background_id!r} is not in the catalogue ({self!r})")
        return self._group_split[entry.group]

    def _deal_groups(self, groups: list[str]) -> dict[str, str]:
        """Split assignment of one source's scene groups: hash order, then fraction quotas."""
        salt = self.params.split_salt
        ordered = sorted(groups, key=lambda group: _unit_hash(f"{salt}/{group}"))
        fractions = self.params.split_fractions
        num = len(ordered)
        # A source of three or more scenes gives each evaluation split at least one, however
        # small its fraction, so val and test always see photos of every source.
        minimum = 1 if num >= len(SPLITS) else 0
        val = max(round(num * fractions.val), minimum if fractions.val > 0 else 0)
        test = max(round(num * fractions.test), minimum if fractions.test > 0 else 0)
        val = min(val, num)
        test = min(test, num - val)
        split_of = {group: "train" for group in ordered[val + test :]}
        split_of.update({group: "val" for group in ordered[:val]})
        split_of.update({group: "test" for group in ordered[val : val + test]})
        return split_of

    def load(self, background_id: str, size: int = 256, rng: np.random.Generator | None = None) -> np.ndarray:
        """One background as (size, size, 3) uint8 RGB.

        A photo is cropped to a random square (``crop_fraction`` of its shorter side) when ``rng``
        is given, else to its central square; a procedural id is fully determined by its seed.
        """
        source, _, rest = background_id.partition("/")
        if source == PROCEDURAL_SOURCE:
            self.split_of(background_id)  # validates the id
            kind, _, seed = rest.partition("/")
            return procedural_background(kind, int(seed), size)
        entry = self._by_id.get(background_id)
        if entry is None:
            raise KeyError(f"background {background_id!r} is not in the catalogue ({self!r})")
        path = None if entry.path is None else str(entry.path)
        photo = _load_photo(entry.id, path, self.params.max_photo_side)
        return self._crop(photo, size, rng)

    def _crop(self, photo: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
        height, width = photo.shape[:2]
        short = min(height, width)
        if rng is None:
            side = short
            top, left = (height - side) // 2, (width - side) // 2
        else:
            fraction = rng.uniform(self.params.crop_fraction.low, self.params.crop_fraction.high)
            side = max(1, round(fraction * short))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
        # Crop before handing pixels to PIL: converting the whole (up to 1024 px) photo for every
        # sample cost more than the resize itself.
        crop = np.ascontiguousarray(photo[top : top + side, left : left + side])
        resized = Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)

    def sample_backgrounds(
        self, count: int, rng: np.random.Generator, split: str, size: int = 256
    ) -> tuple[np.ndarray, list[str]]:
        """Draw ``count`` backgrounds of ``split``.

        Each is a photo of the split (probability from ``kinds``; random crop and rescale) or a
        procedural image of a kind drawn from ``procedural``, with a seed from the split's range.

        Returns
        -------
        images : (count, size, size, 3) uint8 RGB.
        ids : the background id of each image.
        """
        self._check_split(split)
        photos = self._split_photos[split]
        kinds = self.params.kinds
        photo_probability = kinds.photo / (kinds.photo + kinds.procedural) if photos else 0.0
        procedural_names = list(PROCEDURAL_KINDS)
        weights = self.params.procedural.as_dict()
        procedural_p = np.array([weights[name] for name in procedural_names])
        procedural_p = procedural_p / procedural_p.sum()
        low, high = self.procedural_seed_range(split)
        images = np.empty((count, size, size, 3), dtype=np.uint8)
        ids: list[str] = []
        for i in range(count):
            if rng.uniform() < photo_probability:
                background_id = photos[int(rng.integers(len(photos)))].id
            else:
                kind = procedural_names[int(rng.choice(len(procedural_names), p=procedural_p))]
                background_id = f"{PROCEDURAL_SOURCE}/{kind}/{int(rng.integers(low, high))}"
            images[i] = self.load(background_id, size, rng)
            ids.append(background_id)
        return images, ids

    @staticmethod
    def _check_split(split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def _skimage_available() -> bool:
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        log.warning("scikit-image is not installed: no skimage background photos")
        return False
    return True


def sample_backgrounds(
    count: int,
    rng: np.random.Generator,
    split: str,
    size: int = 256,
    catalogue: BackgroundCatalogue | None = None,
) -> tuple[np.ndarray, list[str]]:
    """:meth:`BackgroundCatalogue.sample_backgrounds` on ``catalogue`` (default parameters if None)."""
    return (catalogue or BackgroundCatalogue()).sample_backgrounds(count, rng, split, size)
