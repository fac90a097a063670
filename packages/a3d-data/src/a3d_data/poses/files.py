"""Pose sources reading SMPL-parameter files: AMASS sequences and HMR pseudo-ground-truth fits.

Both read ``.npz`` files, check every field they use, turn the poses into rotation matrices in the
body frame of :class:`a3d_data.poses.base.PoseBatch` (y up) and keep them in memory (about 0.9 KB
per kept frame). A bad file raises :class:`PoseFileError` naming the file, the field and what was
expected, before any pose is drawn.

- AMASS layout: ``poses`` (T, 72) SMPL or (T, 156) SMPL-H axis-angle, ``betas`` (B,) or (T, B)
  with B >= 10, optional ``trans`` (not used). AMASS worlds are z up, so the root is pre-rotated
  by -90 degrees about x. From SMPL-H only the 22 body joints are used and SMPL's hand joints
  22/23 are identity; an SMPL file keeps its own 22/23. Every ``frame_stride``-th frame is kept.
- HMR fits (e.g. ScoreHMR, CameraHMR pseudo-ground truth): ``global_orient`` (N, 3) / (N, 1, 3)
  axis-angle or (N, 3, 3) / (N, 1, 3, 3) rotation matrices, ``body_pose`` (N, 69) / (N, 23, 3) or
  (N, 23, 3, 3), ``betas`` (N, B >= 10). The root is in the camera frame (y down, z forward), so
  it is left-multiplied by a rotation of 180 degrees about x to give the body's y-up orientation.
"""

from __future__ import annotations

import abc
import glob
import logging
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import numpy as np
from scipy.spatial.transform import Rotation

from a3d_data.poses.base import PoseBatch
from a3d_data.poses.rotations import axis_rotation, orthonormalize
from a3d_data.skeleton import NUM_SMPL_JOINTS

log = logging.getLogger(__name__)

NUM_BETAS: Final[int] = 10
NUM_BODY_JOINTS_SMPLH: Final[int] = 22  # SMPL-H's body joints: SMPL's 0..21, then the hands' own
# z-up world -> y-up world (AMASS), and camera (y down, z forward) -> y-up body frame (HMR fits).
Z_UP_TO_Y_UP: Final[np.ndarray] = axis_rotation("x", -90.0)
CAMERA_TO_Y_UP: Final[np.ndarray] = axis_rotation("x", 180.0)
_ROTATION_TOLERANCE: Final[float] = 1e-2  # largest |R^T R - I| entry accepted as a rotation


class PoseFileError(ValueError):
    """A pose file that cannot be used, worded for the person who supplied it."""


def find_pose_files(root: Path, patterns: Sequence[str]) -> list[Path]:
    """Files matching glob ``patterns`` (``**`` allowed) relative to ``root``, sorted, no repeats.

    Raises :class:`PoseFileError` when no file matches any pattern.
    """
    root = Path(root)
    found: set[Path] = set()
    for pattern in patterns:
        matches = [Path(p) for p in glob.glob(str(root / pattern), recursive=True) if Path(p).is_file()]
        if not matches:
            log.warning("no pose file matches %s under %s", pattern, root)
        found.update(matches)
    if not found:
        raise PoseFileError(f"{root}: no file matches the pose file patterns {list(patterns)}")
    return sorted(found)


class _FilePoseSource(abc.ABC):
    """Frames of several files, drawn uniformly with replacement."""

    name = "files"

    def __init__(self, paths: Sequence[Path], root: Path | None = None, use_betas: bool = True):
        if not paths:
            raise PoseFileError(f"{self.name}: no pose files given")
        rotmats, betas, pose_ids = [], [], []
        for path in paths:
            path = Path(path)
            frames, file_rotmats, file_betas = self._read(path)
            label = _label(path, root)
            rotmats.append(file_rotmats)
            betas.append(file_betas)
            pose_ids.extend(f"{self.name}/{label}#{frame}" for frame in frames)
        self.rotmats = np.concatenate(rotmats).astype(np.float32)
        self.betas = np.concatenate(betas).astype(np.float32) if use_betas else None
        self.pose_ids = np.array(pose_ids)
        log.info("%s: %d poses from %d files", self.name, len(self.pose_ids), len(paths))

    def __len__(self) -> int:
        return len(self.pose_ids)

    @abc.abstractmethod
    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame numbers (T,), rotations (T, 24, 3, 3) in the body frame, betas (T, 10)."""

    def sample(self, count: int, rng: np.random.Generator) -> PoseBatch:
        """``count`` frames drawn uniformly (with replacement) from all files' kept frames."""
        if count < 0:
            raise ValueError(f"count must be non-negative, got {count}")
        rows = rng.integers(0, len(self), size=count)
        return PoseBatch(
            rotmats=self.rotmats[rows],
            betas=None if self.betas is None else self.betas[rows],
            pose_ids=self.pose_ids[rows],
            activities=np.full(count, self.name),
        )


class AmassPoseSource(_FilePoseSource):
    """Poses of AMASS-layout sequences (see the module docstring), every ``frame_stride``-th frame.

    Parameters
    ----------
    paths : the npz files.
    root : folder the pose ids are relative to (``amass/<path under root>#<frame>``).
    frame_stride : keep frames 0, stride, 2 * stride, ... of every file.
    use_betas : False drops the files' betas (the batch then has none).
    """

    name = "amass"

    def __init__(
        self, paths: Sequence[Path], root: Path | None = None, frame_stride: int = 10, use_betas: bool = True
    ):
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {frame_stride}")
        self.frame_stride = frame_stride
        super().__init__(paths, root, use_betas)

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with _open_npz(path) as data:
            poses = _field(data, path, "poses", "(T, 72) SMPL or (T, 156) SMPL-H axis-angle")
            if poses.ndim != 2 or poses.shape[1] not in (72, 156) or poses.shape[0] == 0:
                raise _shape_error(path, "poses", "(T, 72) SMPL or (T, 156) SMPL-H axis-angle, T >= 1", poses)
            betas = _field(data, path, "betas", f"(B,) or (T, B) with B >= {NUM_BETAS}")
        num_frames = poses.shape[0]
        if betas.ndim == 1 and betas.shape[0] >= NUM_BETAS:
            betas = np.broadcast_to(betas[:NUM_BETAS], (num_frames, NUM_BETAS))
        elif betas.ndim == 2 and betas.shape[0] == num_frames and betas.shape[1] >= NUM_BETAS:
            betas = betas[:, :NUM_BETAS]
        else:
            raise _shape_error(path, "betas", f"(B,) or ({num_frames}, B) with B >= {NUM_BETAS}", betas)

        frames = np.arange(0, num_frames, self.frame_stride)
        poses = poses[frames].astype(np.float64)
        axis_angle = np.zeros((len(frames), NUM_SMPL_JOINTS, 3))
        if poses.shape[1] == 72:
            axis_angle[:] = poses.reshape(-1, NUM_SMPL_JOINTS, 3)
        else:
            # SMPL-H's joints 22+ are its finger joints; SMPL's hand joints 22/23 stay identity.
            axis_angle[:, :NUM_BODY_JOINTS_SMPLH] = poses[:, : 3 * NUM_BODY_JOINTS_SMPLH].reshape(-1, 22, 3)
        rotmats = (
            Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix().reshape(-1, NUM_SMPL_JOINTS, 3, 3)
        )
        rotmats[:, 0] = Z_UP_TO_Y_UP @ rotmats[:, 0]
        return frames, rotmats, np.asarray(betas)[frames]


class HmrFitPoseSource(_FilePoseSource):
    """Poses of HMR pseudo-ground-truth fit files (see the module docstring), every fit.

    Parameters
    ----------
    paths : the npz files.
    root : folder the pose ids are relative to (``hmr/<path under root>#<index>``).
    use_betas : False drops the files' betas (the batch then has none).
    """

    name = "hmr"

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with _open_npz(path) as data:
            orient_expected = "(N, 3) or (N, 1, 3) axis-angle, or (N, 3, 3) or (N, 1, 3, 3) rotation matrices"
            pose_expected = "(N, 69) or (N, 23, 3) axis-angle, or (N, 23, 3, 3) rotation matrices"
            global_orient = _field(data, path, "global_orient", orient_expected)
            body_pose = _field(data, path, "body_pose", pose_expected)
            betas = _field(data, path, "betas", f"(N, B) with B >= {NUM_BETAS}")
        num_fits = global_orient.shape[0] if global_orient.ndim else 0
        if num_fits == 0:
            raise _shape_error(path, "global_orient", orient_expected + ", N >= 1", global_orient)
        root = _rotations(path, "global_orient", global_orient, num_fits, 1, orient_expected)
        body = _rotations(path, "body_pose", body_pose, num_fits, NUM_SMPL_JOINTS - 1, pose_expected)
        if betas.ndim != 2 or betas.shape[0] != num_fits or betas.shape[1] < NUM_BETAS:
            raise _shape_error(path, "betas", f"({num_fits}, B) with B >= {NUM_BETAS}", betas)
        rotmats = np.concatenate([CAMERA_TO_Y_UP @ root, body], axis=1)
        return np.arange(num_fits), rotmats, betas[:, :NUM_BETAS]


def _rotations(
    path: Path, field: str, value: np.ndarray, count: int, joints: int, expected: str
) -> np.ndarray:
    """Rotations (count, joints, 3, 3) from any accepted axis-angle or matrix layout of a field."""
    value = value.astype(np.float64)
    if value.shape in ((count, 3 * joints), (count, joints, 3)):
        flat = value.reshape(-1, 3)
        return Rotation.from_rotvec(flat).as_matrix().reshape(count, joints, 3, 3)
    if value.shape in ((count, joints, 3, 3),) or (joints == 1 and value.shape == (count, 3, 3)):
        matrices = value.reshape(count, joints, 3, 3)
        error = np.abs(np.swapaxes(matrices, -1, -2) @ matrices - np.eye(3)).max(axis=(-1, -2))
        bad = (error > _ROTATION_TOLERANCE) | (np.linalg.det(matrices) <= 0.0)
        if bad.any():
            index = int(np.argwhere(bad)[0, 0])
            raise PoseFileError(
                f"{path}: field '{field}': expected rotation matrices (orthonormal, determinant +1); "
                f"entry {index} is not one"
            )
        # Fits stored in float32 drift from orthonormality; project them back exactly.
        return orthonormalize(matrices)
    raise _shape_error(path, field, expected.replace("N", str(count)), value)


@contextmanager
def _open_npz(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """An open npz archive, or PoseFileError saying why the file cannot be read as one."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise PoseFileError(f"{path}: cannot read the file as npz ({err})") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise PoseFileError(f"{path}: expected an npz archive of named arrays, got a single array")
    try:
        yield data
    finally:
        data.close()


def _field(data: np.lib.npyio.NpzFile, path: Path, name: str, expected: str) -> np.ndarray:
    """Field ``name`` as a finite numeric array, or PoseFileError naming file, field and layout."""
    if name not in data.files:
        raise PoseFileError(f"{path}: field '{name}' is missing; expected {expected}")
    try:
        value = np.asarray(data[name])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise PoseFileError(f"{path}: field '{name}' cannot be read ({err})") from err
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise PoseFileError(f"{path}: field '{name}': expected numbers ({expected}), got dtype {value.dtype}")
    if not np.isfinite(value).all():
        where = np.argwhere(~np.isfinite(value))[0].tolist()
        raise PoseFileError(
            f"{path}: field '{name}': contains NaN or infinite values (first at index {where})"
        )
    return value


def _shape_error(path: Path, field: str, expected: str, value: np.ndarray) -> PoseFileError:
    return PoseFileError(f"{path}: field '{field}': expected shape {expected}, got {value.shape}")


def _label(path: Path, root: Path | None) -> str:
    """The file's name in pose ids: its path under ``root`` when it is there, else its full path."""
    if root is not None:
        try:
            return path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()
