"""Pose sources behind one interface: the procedural sampler and SMPL-parameter files.

Every source yields :class:`PoseBatch` es of SMPL rotations in the body frame (y up, facing +z);
:func:`create_pose_source` builds the one ``PoseParams`` asks for.
"""

from __future__ import annotations

from pathlib import Path

from a3d_data.poses.base import PoseBatch, PoseSource
from a3d_data.poses.families import DEFAULT_FAMILY_WEIGHTS, FAMILY_NAMES
from a3d_data.poses.files import AmassPoseSource, HmrFitPoseSource, PoseFileError, find_pose_files
from a3d_data.poses.limits import JOINT_LIMITS, ConeLimit, EulerLimit, limit_excess
from a3d_data.poses.params import PoseParams
from a3d_data.poses.procedural import ProceduralPoseSource


def create_pose_source(params: PoseParams, root: Path) -> PoseSource:
    """The pose source ``params`` describes; file patterns are taken relative to ``root``.

    Raises :class:`PoseFileError` when no file matches or a file is malformed.
    """
    if params.source == "procedural":
        return ProceduralPoseSource(params)
    paths = find_pose_files(Path(root), params.files)
    if params.source == "amass":
        return AmassPoseSource(paths, root, frame_stride=params.frame_stride, use_betas=params.use_file_betas)
    return HmrFitPoseSource(paths, root, use_betas=params.use_file_betas)


__all__ = [
    "DEFAULT_FAMILY_WEIGHTS", "FAMILY_NAMES", "JOINT_LIMITS", "AmassPoseSource", "ConeLimit",
    "EulerLimit", "HmrFitPoseSource", "PoseBatch", "PoseFileError", "PoseParams", "PoseSource",
    "ProceduralPoseSource", "create_pose_source", "find_pose_files", "limit_excess",
]  # fmt: skip
