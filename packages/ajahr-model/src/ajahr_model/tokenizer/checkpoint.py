"""Tokenizer checkpoints: one file with the config, the weights and (while training) the run's state.

Later stages load a finished checkpoint frozen with :func:`load_tokenizer`; the config inside is
checked against what the consumer expects, field by field, before any weight is copied, so a
tokenizer of another shape is an error that names the difference, never a silent broadcast.
Files are written atomically (temporary name, then rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import torch

from a3d_data.atomic import atomic_path
from ajahr_model.tokenizer.vqvae import PoseVQVAE, TokenizerConfig, TokenizerConfigError, config_mismatches

CHECKPOINT_FORMAT: Final[str] = "ajahr-pose-tokenizer-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable, not a tokenizer checkpoint, or unfinished."""


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` (see :func:`checkpoint_state`) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    return path


def checkpoint_state(model: PoseVQVAE, *, name: str, complete: bool, **extra: Any) -> dict[str, Any]:
    """The consumer-facing part of a checkpoint; ``extra`` adds the training state and metadata.

    Keys: ``format``, ``name``, ``complete``, ``config`` (:meth:`TokenizerConfig.to_dict`),
    ``quantizer`` (decay, dead-code threshold), ``model`` (the state dict, codebook included).
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "name": name,
        "complete": complete,
        "config": model.config.to_dict(),
        "quantizer": {"decay": model.quantizer.decay, "dead_threshold": model.quantizer.dead_threshold},
        "model": model.state_dict(),
        **extra,
    }


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """The checkpoint mapping at ``path`` (tensors on CPU); CheckpointError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: tokenizer checkpoint not found")
    try:
        # weights_only: a checkpoint holds tensors and plain values, never code to run.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: not a pose-tokenizer checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    return state


def checkpoint_config(state: dict[str, Any], path: Path | str = "checkpoint") -> TokenizerConfig:
    """The :class:`TokenizerConfig` stored in a checkpoint mapping."""
    try:
        return TokenizerConfig.from_dict(state["config"])
    except (KeyError, TypeError, TokenizerConfigError) as err:
        raise CheckpointError(f"{path}: field 'config' is missing or invalid ({err})") from err


def load_into(model: PoseVQVAE, state: dict[str, Any], path: Path | str = "checkpoint") -> None:
    """Copy a checkpoint's weights into ``model`` after checking that the configs agree.

    Raises
    ------
    TokenizerConfigError
        naming every differing field (``tokens: the model has 160, the checkpoint has 320``).
    """
    found = checkpoint_config(state, path)
    problems = config_mismatches(model.config, found)
    if problems:
        raise TokenizerConfigError(f"{path}: checkpoint does not fit this tokenizer: " + "; ".join(problems))
    # strict: a missing or extra tensor is an error too, not a partial load.
    model.load_state_dict(state["model"], strict=True)


def load_tokenizer(
    path: Path | str,
    expected: TokenizerConfig | None = None,
    device: torch.device | str = "cpu",
    allow_incomplete: bool = False,
) -> PoseVQVAE:
    """A frozen tokenizer (eval mode, no gradients) from a checkpoint.

    Parameters
    ----------
    path : the ``checkpoint.pt`` of a tokenizer stage.
    expected : the config the caller was built for; every shape field must match.
    device : where to put the model.
    allow_incomplete : accept a checkpoint of an unfinished run (for inspection only).

    Raises
    ------
    CheckpointError
        missing, unreadable or unfinished file.
    TokenizerConfigError
        the checkpoint's config differs from ``expected`` (the differences are named).
    """
    state = read_checkpoint(path)
    if not state.get("complete", False) and not allow_incomplete:
        raise CheckpointError(
            f"{path}: training stopped at step {state.get('step')} of {state.get('total_steps')}; "
            "run the stage again to finish it"
        )
    found = checkpoint_config(state, path)
    if expected is not None:
        problems = config_mismatches(expected, found)
        if problems:
            raise TokenizerConfigError(
                f"{path}: checkpoint does not fit the expected tokenizer: " + "; ".join(problems)
            )
    quantizer = state.get("quantizer", {})
    model = PoseVQVAE(found, quantizer.get("decay", 0.99), quantizer.get("dead_threshold", 1.0))
    load_into(model, state, path)
    model.eval().requires_grad_(False)
    return model.to(device)
