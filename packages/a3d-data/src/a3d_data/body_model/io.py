"""Reading and writing body-model files: the A3D npz and the official SMPL pickle.

Both end as one :class:`BodyModelArrays` that :mod:`a3d_data.body_model.model` hands to
``smplx.SMPL``. Official SMPL ``.pkl`` files hold chumpy objects; chumpy does not import on
Python 3.11, so :func:`read_smpl_pickle` unpickles them with a restricted unpickler that turns each
chumpy object into the numpy array it wraps, and refuses any class outside numpy and scipy.
"""

from __future__ import annotations

import json
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from a3d_data.atomic import atomic_path
from a3d_data.skeleton import (
    COCO_TO_SMPL_JOINT,
    NUM_COCO_KEYPOINTS,
    NUM_SMPL_JOINTS,
    SMPL_PARENTS,
    VERTEX_KEYPOINT_NAMES,
)

SMPL_NUM_VERTICES = 6890
NUM_POSE_BASIS = 9 * (NUM_SMPL_JOINTS - 1)


class BodyModelFileError(ValueError):
    """A body-model file that is missing, unreadable or not in the expected layout."""


@dataclass(frozen=True)
class BodyModelArrays:
    """Everything a body model is made of, as numpy arrays in SMPL's layout.

    Shapes: ``v_template`` (V, 3) metres; ``shapedirs`` (V, 3, S); ``posedirs`` (V, 3, 207);
    ``j_regressor`` (24, V); ``weights`` (V, 24), rows summing to 1; ``faces`` (F, 3);
    ``coco_regressor`` (17, V); ``vertex_ids`` name -> vertex index for the extra keypoints.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    coco_regressor: np.ndarray
    vertex_ids: dict[str, int]
    source: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    uv: np.ndarray | None = None
    face_uv: np.ndarray | None = None

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])


def _require(arrays: dict[str, Any], key: str, path: Path) -> np.ndarray:
    if key not in arrays:
        raise BodyModelFileError(f"{path}: missing field {key!r}")
    value = arrays[key]
    if scipy.sparse.issparse(value):
        value = value.toarray()
    return np.asarray(value)


def _check_shape(value: np.ndarray, expected: tuple[int | None, ...], key: str, path: Path) -> None:
    ok = value.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, value.shape, strict=True)
    )
    if not ok:
        shown = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise BodyModelFileError(f"{path}: field {key!r} has shape {value.shape}, expected {shown}")
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
        raise BodyModelFileError(f"{path}: field {key!r} contains NaN or infinite values")


def coco_regressor_from_joints(j_regressor: np.ndarray, vertex_ids: dict[str, int]) -> np.ndarray:
    """COCO-17 regressor (17, V) for a model without one (a licensed SMPL).

    Face keypoints are the vertices named in ``vertex_ids``; limb keypoints are the SMPL joints
    that carry them, regressed from the posed vertices with ``j_regressor``.
    """
    face_vertices = [vertex_ids[name] for name in ("nose", "leye", "reye", "lear", "rear")]
    rows = np.zeros((NUM_COCO_KEYPOINTS, j_regressor.shape[1]), dtype=j_regressor.dtype)
    for k in range(NUM_COCO_KEYPOINTS):
        if k < len(face_vertices):
            rows[k, face_vertices[k]] = 1.0
        else:
            rows[k] = j_regressor[COCO_TO_SMPL_JOINT[k]]
    return rows


def assemble(arrays: dict[str, Any], path: Path) -> BodyModelArrays:
    """Check and assemble raw arrays (from an npz or an SMPL pickle) into BodyModelArrays."""
    v_template = _require(arrays, "v_template", path).astype(np.float32)
    _check_shape(v_template, (None, 3), "v_template", path)
    num_vertices = v_template.shape[0]
    shapedirs = _require(arrays, "shapedirs", path).astype(np.float32)
    _check_shape(shapedirs, (num_vertices, 3, None), "shapedirs", path)
    if "posedirs" in arrays:
        posedirs = _require(arrays, "posedirs", path).astype(np.float32)
        _check_shape(posedirs, (num_vertices, 3, NUM_POSE_BASIS), "posedirs", path)
    else:  # the A3D model has no pose correctives
        posedirs = np.zeros((num_vertices, 3, NUM_POSE_BASIS), dtype=np.float32)
    j_regressor = _require(arrays, "J_regressor", path).astype(np.float32)
    _check_shape(j_regressor, (NUM_SMPL_JOINTS, num_vertices), "J_regressor", path)
    weights = _require(arrays, "weights", path).astype(np.float32)
    _check_shape(weights, (num_vertices, NUM_SMPL_JOINTS), "weights", path)
    if not np.allclose(weights.sum(1), 1.0, atol=1e-4):
        worst = int(np.argmax(np.abs(weights.sum(1) - 1.0)))
        raise BodyModelFileError(
            f"{path}: field 'weights' rows must sum to 1; vertex {worst} sums to {weights[worst].sum():.6f}"
        )
    kintree = _require(arrays, "kintree_table", path).astype(np.int64)
    _check_shape(kintree, (2, NUM_SMPL_JOINTS), "kintree_table", path)
    parents = kintree[0].copy()
    parents[0] = -1  # official files store the root's parent as 2**32 - 1
    if tuple(parents) != SMPL_PARENTS:
        raise BodyModelFileError(
            f"{path}: field 'kintree_table' is not SMPL's 24-joint tree: parents {parents.tolist()}"
        )
    faces = _require(arrays, "f", path).astype(np.int64)
    _check_shape(faces, (None, 3), "f", path)
    if faces.min() < 0 or faces.max() >= num_vertices:
        raise BodyModelFileError(f"{path}: field 'f' indexes vertices outside [0, {num_vertices - 1}]")

    if "vertex_id_names" in arrays:
        names = [str(n) for n in _require(arrays, "vertex_id_names", path)]
        values = _require(arrays, "vertex_id_values", path).astype(np.int64)
        if len(names) != len(values):
            raise BodyModelFileError(
                f"{path}: fields 'vertex_id_names' ({len(names)}) and 'vertex_id_values' "
                f"({len(values)}) must have the same length"
            )
        vertex_ids = {name: int(value) for name, value in zip(names, values, strict=True)}
    elif num_vertices == SMPL_NUM_VERTICES:
        vertex_ids = dict(SMPLX_VERTEX_IDS["smplh"])
    else:
        raise BodyModelFileError(
            f"{path}: fields 'vertex_id_names'/'vertex_id_values' are required for a mesh of "
            f"{num_vertices} vertices (only SMPL's 6890-vertex mesh has known keypoint vertices)"
        )
    missing = [n for n in VERTEX_KEYPOINT_NAMES if n not in vertex_ids]
    if missing:
        raise BodyModelFileError(f"{path}: vertex ids lack the keypoints {missing}")
    if any(not 0 <= v < num_vertices for v in vertex_ids.values()):
        raise BodyModelFileError(f"{path}: a vertex id lies outside [0, {num_vertices - 1}]")

    if "coco_regressor" in arrays:
        coco_regressor = _require(arrays, "coco_regressor", path).astype(np.float32)
        _check_shape(coco_regressor, (NUM_COCO_KEYPOINTS, num_vertices), "coco_regressor", path)
    else:
        coco_regressor = coco_regressor_from_joints(j_regressor, vertex_ids)

    metadata: dict[str, Any] = {}
    if "metadata" in arrays:
        try:
            metadata = json.loads(str(_require(arrays, "metadata", path)))
        except json.JSONDecodeError as err:
            raise BodyModelFileError(f"{path}: field 'metadata' is not JSON ({err})") from err
    uv = np.asarray(arrays["uv"], dtype=np.float32) if "uv" in arrays else None
    face_uv = np.asarray(arrays["face_uv"], dtype=np.int64) if "face_uv" in arrays else None
    return BodyModelArrays(
        v_template=v_template, shapedirs=shapedirs, posedirs=posedirs, j_regressor=j_regressor,
        weights=weights, faces=faces, coco_regressor=coco_regressor, vertex_ids=vertex_ids,
        source=path, metadata=metadata, uv=uv, face_uv=face_uv,
    )  # fmt: skip


class _ChumpyArray:
    """Stands in for any chumpy class while unpickling; keeps the array chumpy stored as ``x``."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_numpy(self, path: Path, key: str) -> np.ndarray:
        state = getattr(self, "state", None)
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise BodyModelFileError(
            f"{path}: field {key!r} is a chumpy expression, not a stored array; "
            "only chumpy objects holding their values ('x') can be read without chumpy"
        )


_ALLOWED_MODULE_PREFIXES = ("numpy", "scipy.sparse", "copy_reg", "copyreg", "_codecs")
_ALLOWED_BUILTINS = {"object", "set", "frozenset", "list", "dict", "tuple", "slice", "complex"}


class _SmplUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _ChumpyArray
        if module in ("__builtin__", "builtins") and name in _ALLOWED_BUILTINS:
            return super().find_class("builtins", name)
        if module.startswith(_ALLOWED_MODULE_PREFIXES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a body-model pickle")


def read_smpl_pickle(path: Path) -> BodyModelArrays:
    """Read an official SMPL ``.pkl`` (Python 2 pickle, chumpy objects) without chumpy."""
    try:
        with open(path, "rb") as handle:
            raw = _SmplUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise BodyModelFileError(f"{path}: body-model file not found") from None
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as err:
        raise BodyModelFileError(f"{path}: not a readable SMPL pickle ({err})") from err
    if not isinstance(raw, dict):
        raise BodyModelFileError(f"{path}: expected a pickled dict of arrays, got {type(raw).__name__}")
    arrays = {
        key: value.to_numpy(path, key) if isinstance(value, _ChumpyArray) else value
        for key, value in raw.items()
    }
    return assemble(arrays, path)


def read_body_model_npz(path: Path) -> BodyModelArrays:
    """Read a body model stored as npz: the A3D layout, or an SMPL file saved as npz."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise BodyModelFileError(f"{path}: body-model file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise BodyModelFileError(f"{path}: not a readable npz archive ({err})") from err
    return assemble(arrays, path)


def read_body_model(path: Path) -> BodyModelArrays:
    """Read a body-model file, choosing the reader by suffix (``.npz`` or ``.pkl``)."""
    path = Path(path)
    if path.suffix == ".npz":
        return read_body_model_npz(path)
    if path.suffix == ".pkl":
        return read_smpl_pickle(path)
    raise BodyModelFileError(f"{path}: unknown body-model format {path.suffix!r}; expected .npz or .pkl")


def save_body_model_npz(
    path: Path,
    *,
    v_template: np.ndarray,
    shapedirs: np.ndarray,
    weights: np.ndarray,
    j_regressor: np.ndarray,
    faces: np.ndarray,
    coco_regressor: np.ndarray,
    vertex_ids: dict[str, int],
    metadata: dict[str, Any],
    uv: np.ndarray | None = None,
    face_uv: np.ndarray | None = None,
) -> None:
    """Write a model in the A3D npz layout (float32, compressed), atomically.

    Posedirs are not stored: the A3D model has none and smplx gets zeros at load time.
    """
    names = sorted(vertex_ids)
    arrays: dict[str, np.ndarray] = {
        "v_template": v_template.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "weights": weights.astype(np.float32),
        "J_regressor": j_regressor.astype(np.float32),
        "kintree_table": np.stack([np.array(SMPL_PARENTS), np.arange(NUM_SMPL_JOINTS)]).astype(np.int64),
        "f": faces.astype(np.int32),
        "coco_regressor": coco_regressor.astype(np.float32),
        "vertex_id_names": np.array(names),
        "vertex_id_values": np.array([vertex_ids[n] for n in names], dtype=np.int64),
        "metadata": np.array(json.dumps(metadata, sort_keys=True)),
    }
    if uv is not None and face_uv is not None:
        arrays |= {"uv": uv.astype(np.float32), "face_uv": face_uv.astype(np.int32)}
    assemble(arrays, Path(path))  # never write a file the reader would refuse
    with atomic_path(path) as temporary:
        np.savez_compressed(temporary, **arrays)
