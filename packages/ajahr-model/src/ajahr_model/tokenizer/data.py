"""Training and validation poses of the tokenizers, and the part-noise augmentation (brief §4.1).

Poses come from a3d-data's procedural sampler, drawn on the fly. An *amputee* pose is a sampled
pose with the joints of a random AJAHR class (0..11) zeroed by :mod:`a3d_data.amputation`; the
non-amputee tokenizer sees none, the amputee tokenizer half of every batch.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch

from a3d_data.amputation import NON_AMPUTEE, amputate_rotmats, head_labels_from_classes, zeroed_joint_mask
from a3d_data.poses import PoseSource
from a3d_data.skeleton import BODY_JOINTS, SMPL_JOINT_NAMES
from ajahr_model.tokenizer.rotation6d import matrix_to_rotation_6d

NUM_AMPUTATIONS: Final[int] = NON_AMPUTEE  # classes 0..11 amputate, 12 does not
# Second word of every seed sequence: training chunks and held-out sets never share a random
# stream, whatever seeds the params give them.
TRAINING_STREAM: Final[int] = 0
HELD_OUT_STREAM: Final[int] = 1

# Body parts of the noise augmentation, as SMPL joint names. The spine is in no part: noise there
# would move everything at once rather than imitate one badly seen part.
NOISE_PARTS: Final[dict[str, tuple[str, ...]]] = {
    "head": ("neck", "head"),
    "arms": ("L_collar", "R_collar", "L_shoulder", "R_shoulder", "L_elbow", "R_elbow", "L_wrist", "R_wrist"),
    "legs": ("L_hip", "R_hip", "L_knee", "R_knee", "L_ankle", "R_ankle", "L_foot", "R_foot"),
}


def part_masks() -> torch.Tensor:
    """(parts, 21) bool: which body joints (positions in BODY_JOINTS) each noise part covers."""
    masks = torch.zeros(len(NOISE_PARTS), len(BODY_JOINTS), dtype=torch.bool)
    for row, names in enumerate(NOISE_PARTS.values()):
        for name in names:
            masks[row, BODY_JOINTS.index(SMPL_JOINT_NAMES.index(name))] = True
    return masks


@dataclass(frozen=True)
class TokenizerPoses:
    """A batch of tokenizer poses.

    Attributes
    ----------
    pose6d : (N, 21, 6) float32 6D rotations of SMPL joints 1..21; amputated joints are zeros.
    classes : (N,) long AJAHR class, 12 for a non-amputee.
    pose_ids : (N,) str ids of the sampled poses (unique per procedural draw).
    """

    pose6d: torch.Tensor
    classes: torch.Tensor
    pose_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.pose6d.shape[0])

    @property
    def amputee(self) -> torch.Tensor:
        """(N,) bool, True for the amputee poses."""
        return self.classes != NON_AMPUTEE


def sample_poses(source: PoseSource, amputee: np.ndarray, rng: np.random.Generator) -> TokenizerPoses:
    """One pose per entry of ``amputee`` (N,) bool; amputee entries get a class drawn uniformly from 0..11.

    Deterministic for a given generator state.
    """
    amputee = np.asarray(amputee, dtype=bool)
    batch = source.sample(amputee.size, rng)
    classes = np.full(amputee.size, NON_AMPUTEE, dtype=np.int64)
    classes[amputee] = rng.integers(0, NUM_AMPUTATIONS, size=int(amputee.sum()))
    classes_t = torch.from_numpy(classes)
    rotmats = torch.from_numpy(batch.rotmats)
    zeroed = zeroed_joint_mask(head_labels_from_classes(classes_t))
    rotmats = amputate_rotmats(rotmats, zeroed)
    pose6d = matrix_to_rotation_6d(rotmats[:, list(BODY_JOINTS)])
    return TokenizerPoses(pose6d=pose6d.contiguous(), classes=classes_t, pose_ids=batch.pose_ids)


def amputee_layout(batches: int, batch_size: int, amputee_fraction: float) -> np.ndarray:
    """(batches * batch_size,) bool: in every batch, the first ``round(batch_size * fraction)`` are amputees.

    A fixed count per batch, not a coin per pose: the paper mixes 50/50 *per batch*.
    """
    row = np.arange(batch_size) < round(batch_size * amputee_fraction)
    return np.tile(row, batches)


class TrainingPoseStream:
    """Training batches drawn on the fly, in chunks of ``chunk_batches`` batches.

    The procedural sampler has a fixed cost per call that dominates small draws (about 40 ms for
    64 poses, 4 ms per 64 in a draw of 1024), so poses are drawn a chunk at a time. Chunk ``c``
    is drawn from ``np.random.default_rng([seed, TRAINING_STREAM, c])``: the stream's whole state
    is the index of the next batch (:attr:`position`), and a resumed run draws exactly the
    batches it would have drawn.

    Parameters
    ----------
    source : the pose source.
    batch_size : poses per batch.
    amputee_fraction : share of each batch that is amputated (0 or 0.5 for the two tokenizers).
    seed : seed of the stream; validation sets use other seeds.
    chunk_batches : batches drawn per call of the sampler.
    prefetch : draw the next chunk in a background thread while this one is consumed. The
        sampler runs on the CPU (about 8 ms per batch of 256 on one core here), which on a GPU
        would otherwise sit in every step; chunks have their own seeds, so the batches are the
        same either way.
    """

    def __init__(
        self,
        source: PoseSource,
        batch_size: int,
        amputee_fraction: float,
        seed: int,
        chunk_batches: int = 16,
        prefetch: bool = False,
    ):
        self.source = source
        self.batch_size = batch_size
        self.amputee_fraction = amputee_fraction
        self.seed = seed
        self.chunk_batches = chunk_batches
        self.prefetch = prefetch
        self.position = 0
        self._chunk_index = -1
        self._chunk: TokenizerPoses | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Future[TokenizerPoses]] | None = None

    def state_dict(self) -> dict:
        return {"position": self.position, "seed": self.seed, "chunk_batches": self.chunk_batches}

    def load_state_dict(self, state: dict) -> None:
        if (state["seed"], state["chunk_batches"]) != (self.seed, self.chunk_batches):
            raise ValueError(
                f"pose stream state is for seed {state['seed']}, chunk_batches {state['chunk_batches']}; "
                f"this stream has seed {self.seed}, chunk_batches {self.chunk_batches}"
            )
        self.position = int(state["position"])

    def _draw_chunk(self, index: int) -> TokenizerPoses:
        rng = np.random.default_rng([self.seed, TRAINING_STREAM, index])
        layout = amputee_layout(self.chunk_batches, self.batch_size, self.amputee_fraction)
        return sample_poses(self.source, layout, rng)

    def _chunk_at(self, index: int) -> TokenizerPoses:
        """Chunk ``index``: the one prefetched if it is that one, else drawn now; then queue the next."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == index:
            chunk = pending[1].result()
        else:
            if pending is not None:
                pending[1].cancel()
            chunk = self._draw_chunk(index)
        if self.prefetch:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pose-prefetch")
            self._pending = (index + 1, self._executor.submit(self._draw_chunk, index + 1))
        return chunk

    def close(self) -> None:
        """Stop the prefetch thread (a later batch starts it again)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor, self._pending = None, None

    def next_batch(self) -> TokenizerPoses:
        """The next batch of ``batch_size`` poses."""
        chunk_index, offset = divmod(self.position, self.chunk_batches)
        if chunk_index != self._chunk_index:
            self._chunk = self._chunk_at(chunk_index)
            self._chunk_index = chunk_index
        rows = slice(offset * self.batch_size, (offset + 1) * self.batch_size)
        self.position += 1
        chunk = self._chunk
        return TokenizerPoses(chunk.pose6d[rows], chunk.classes[rows], chunk.pose_ids[rows])


def held_out_poses(source: PoseSource, normal: int, amputee: int, seed: int) -> dict[str, TokenizerPoses]:
    """The fixed held-out sets ``{"normal": ..., "amputee": ...}`` drawn from ``[seed, HELD_OUT_STREAM]``."""
    rng = np.random.default_rng([seed, HELD_OUT_STREAM])
    return {
        "normal": sample_poses(source, np.zeros(normal, dtype=bool), rng),
        "amputee": sample_poses(source, np.ones(amputee, dtype=bool), rng),
    }


def noise_amplitude(step: int, ramp_steps: int, start: float, end: float) -> float:
    """Noise amplitude at ``step``: linear from ``start`` to ``end`` over ``ramp_steps``, then ``end``."""
    if ramp_steps <= 0:
        return end
    return start + (end - start) * min(step, ramp_steps) / ramp_steps


def add_part_noise(
    pose6d: torch.Tensor, amplitude: float, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Gaussian noise (std ``amplitude``) on the 6D values of one random body part, in a fraction of poses.

    Parameters
    ----------
    pose6d : (B, 21, 6) clean poses.
    amplitude : noise standard deviation, in 6D units (a rotation's 6D columns are unit vectors).
    fraction : share of the batch that gets noise (the first ``round(B * fraction)`` of a random
        permutation); each of those poses gets it on one part drawn from :data:`NOISE_PARTS`.
    generator : the random stream (CPU).

    Amputated joints (zero 6D) stay zero: zeros mean "no limb" to the amputee tokenizer. The input
    is not changed.
    """
    batch = pose6d.shape[0]
    chosen = torch.randperm(batch, generator=generator)[: round(batch * fraction)]
    parts = torch.randint(0, len(NOISE_PARTS), (chosen.numel(),), generator=generator)
    noise = torch.randn(pose6d.shape, generator=generator, dtype=pose6d.dtype)
    mask = torch.zeros(pose6d.shape[:2], dtype=torch.bool)
    mask[chosen] = part_masks()[parts]
    mask = mask.to(pose6d.device) & (pose6d.abs().sum(-1) > 0)
    return pose6d + amplitude * noise.to(pose6d.device) * mask[..., None]
