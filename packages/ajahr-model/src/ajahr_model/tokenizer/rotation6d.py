"""The 6D rotation representation (the first two columns of a rotation matrix) and its inverse.

Amputated joints are zero matrices (brief §2), and a zero matrix's 6D form is six zeros. The way
back keeps that meaning: a 6D vector shorter than ``zero_below`` decodes to the zero matrix, never
to NaN and never to an arbitrary rotation that Gram-Schmidt would make of a tiny vector. The 6D form
of any rotation has length sqrt(2), so the default threshold, half of that, separates "a rotation"
from "no rotation" with equal margins on both sides.
"""

from __future__ import annotations

import math
from typing import Final

import torch

SIX_D: Final[int] = 6
# Half the length of any rotation's 6D form (two unit columns): below it a joint is "zeroed".
ZERO_NORM: Final[float] = math.sqrt(2.0) / 2.0
# Floor of the norms Gram-Schmidt divides by: keeps values and gradients finite on zero input.
_EPS: Final[float] = 1e-8


def matrix_to_rotation_6d(rotmats: torch.Tensor) -> torch.Tensor:
    """6D form (..., 6) of rotation matrices (..., 3, 3): column 0, then column 1.

    A zero matrix (an amputated joint) gives six zeros.
    """
    if rotmats.shape[-2:] != (3, 3):
        raise ValueError(f"rotmats: expected shape (..., 3, 3), got {tuple(rotmats.shape)}")
    return torch.cat([rotmats[..., :, 0], rotmats[..., :, 1]], dim=-1)


def rotation_6d_to_matrix(sixd: torch.Tensor, zero_below: float = ZERO_NORM) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from 6D vectors (..., 6) by Gram-Schmidt.

    Parameters
    ----------
    sixd : (..., 6) two 3-vectors, the first and second column of the matrix up to
        normalisation; they need not be unit or orthogonal.
    zero_below : a vector whose 6D length is below this gives the zero matrix (an amputated
        joint). 0 keeps only exact zeros as zeros.

    Returns
    -------
    (..., 3, 3) proper rotations, or zero matrices. Differentiable; finite gradients everywhere.
    """
    if sixd.shape[-1] != SIX_D:
        raise ValueError(f"6D rotations: expected shape (..., 6), got {tuple(sixd.shape)}")
    a1, a2 = sixd[..., :3], sixd[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 / u2.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    rotmats = torch.stack([b1, b2, b3], dim=-1)
    if zero_below <= 0.0:
        # Exact zeros already give zero columns above (0 / eps = 0); nothing else is zeroed.
        return rotmats
    present = ~zeroed_joints_6d(sixd, zero_below)
    return rotmats * present[..., None, None].to(rotmats.dtype)


def zeroed_joints_6d(sixd: torch.Tensor, zero_below: float = ZERO_NORM) -> torch.Tensor:
    """(...) bool: which 6D vectors (..., 6) decode to a zero matrix (an amputated joint)."""
    return sixd.norm(dim=-1) < zero_below
