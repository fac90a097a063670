"""Loading body-model files: the A3D npz, an official SMPL pickle without chumpy, bad files."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from a3d_data.body_model import BodyModelFileError, bundled_model_path, load_body_model, read_body_model
from a3d_data.body_model.io import save_body_model_npz
from a3d_data.skeleton import SMPL_PARENTS

SMPL_VERTICES = 6890


def _official_smpl_arrays(seed: int = 0) -> dict:
    """Random arrays in the layout of SMPL_NEUTRAL.pkl (v1.1): 6890 vertices, 300 betas."""
    rng = np.random.default_rng(seed)
    weights = rng.random((SMPL_VERTICES, 24))
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((24, SMPL_VERTICES))
    for j in range(24):
        regressor[j, rng.choice(SMPL_VERTICES, 8, replace=False)] = 1 / 8
    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64), np.arange(24)])
    kintree[0, 0] = 4294967295  # how the official files store the root's missing parent
    return {
        "v_template": rng.normal(size=(SMPL_VERTICES, 3)) * 0.3,
        "shapedirs": rng.normal(size=(SMPL_VERTICES, 3, 300)) * 1e-3,
        "posedirs": rng.normal(size=(SMPL_VERTICES, 3, 207)) * 1e-3,
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights,
        "kintree_table": kintree.astype(np.uint32),
        "f": rng.integers(0, SMPL_VERTICES, size=(13776, 3)).astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


@pytest.fixture()
def official_smpl_pickle(tmp_path: Path, monkeypatch) -> tuple[Path, dict]:
    """A pickle written as the official files are: shapedirs a chumpy ``Ch`` holding ``x``.

    A stand-in ``chumpy`` module exists only while pickling, as chumpy is not installable here;
    the loader must then read the file with no chumpy importable.
    """
    arrays = _official_smpl_arrays()
    chumpy = types.ModuleType("chumpy")
    chumpy_ch = types.ModuleType("chumpy.ch")

    class Ch:  # the attributes chumpy keeps on a stored array
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()
            self._itr = None

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    chumpy_ch.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", chumpy_ch)
    stored = dict(arrays, shapedirs=Ch(arrays["shapedirs"]))
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(stored, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    return path, arrays


def test_official_smpl_pickle_loads_through_smplx_without_chumpy(official_smpl_pickle):
    path, arrays = official_smpl_pickle
    assert "chumpy" not in sys.modules
    model = load_body_model(path, num_betas=10)
    assert model.num_vertices == SMPL_VERTICES
    np.testing.assert_allclose(model.shapedirs.numpy(), arrays["shapedirs"][:, :, :10], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.J_regressor.numpy(), arrays["J_regressor"].toarray(), rtol=1e-6)
    assert model.parents.tolist() == list(SMPL_PARENTS)
    out = model.forward_rotmats(torch.eye(3).repeat(2, 24, 1, 1), torch.zeros(2, 10))
    assert out.vertices.shape == (2, SMPL_VERTICES, 3)
    assert out.joints.shape == (2, 45, 3)
    # SMPL's own keypoint vertices (smplx's table) and a COCO regressor built from its joints.
    assert model.vertex_joint_selector.extra_joints_idxs[0].item() == 332  # SMPL's nose vertex
    assert model.coco_keypoints(out.vertices).shape == (2, 17, 3)


def test_more_betas_than_the_file_has_is_an_error(official_smpl_pickle):
    path, _ = official_smpl_pickle
    assert load_body_model(path, num_betas=300).num_betas == 300
    with pytest.raises(BodyModelFileError, match="has 10 shape directions, 11 betas"):
        load_body_model(bundled_model_path(), num_betas=11)


def test_a_pickle_naming_other_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(BodyModelFileError, match=r"evil.pkl: not a readable SMPL pickle .*builtins.print"):
        read_body_model(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(BodyModelFileError, match=r"nowhere.npz: body-model file not found"):
        load_body_model(tmp_path / "nowhere.npz")


def test_unknown_suffix_is_named(tmp_path):
    path = tmp_path / "model.obj"
    path.write_text("v 0 0 0")
    with pytest.raises(BodyModelFileError, match=r"model.obj: unknown body-model format '.obj'"):
        read_body_model(path)


def test_truncated_npz_is_named(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(bundled_model_path().read_bytes()[:5000])
    with pytest.raises(BodyModelFileError, match="broken.npz: not a readable npz"):
        read_body_model(path)


def _bundled_arrays() -> dict:
    with np.load(bundled_model_path()) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("weights"), "missing field 'weights'"),
        (lambda a: a.update(shapedirs=a["shapedirs"][:100]), r"field 'shapedirs' has shape \(100, 3, 10\), expected \(13718, 3, \*\)"),
        (lambda a: a.update(weights=a["weights"] * 2), "field 'weights' rows must sum to 1"),
        (lambda a: a.update(v_template=a["v_template"] * np.nan), "field 'v_template' contains NaN"),
        (lambda a: a.update(kintree_table=a["kintree_table"][:, ::-1]), "field 'kintree_table' is not SMPL's"),
        (lambda a: a.update(f=a["f"] + 10**6), "field 'f' indexes vertices outside"),
        (lambda a: (a.pop("vertex_id_names"), a.pop("vertex_id_values")), "'vertex_id_names'/'vertex_id_values' are required"),
    ],
)  # fmt: skip
def test_malformed_model_files_name_the_field(tmp_path, change, message):
    arrays = _bundled_arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BodyModelFileError, match=f"bad.npz: .*{message}"):
        read_body_model(path)


def test_saved_model_round_trips(tmp_path):
    model = read_body_model(bundled_model_path())
    path = tmp_path / "copy.npz"
    save_body_model_npz(
        path, v_template=model.v_template, shapedirs=model.shapedirs, weights=model.weights,
        j_regressor=model.j_regressor, faces=model.faces, coco_regressor=model.coco_regressor,
        vertex_ids=model.vertex_ids, metadata=model.metadata, uv=model.uv, face_uv=model.face_uv,
    )  # fmt: skip
    again = read_body_model(path)
    for field in ("v_template", "shapedirs", "weights", "j_regressor", "faces", "coco_regressor", "uv"):
        np.testing.assert_array_equal(getattr(again, field), getattr(model, field))
    assert again.vertex_ids == model.vertex_ids
    assert [p.name for p in tmp_path.iterdir()] == ["copy.npz"]  # no temporary left behind


def test_a_refused_model_is_never_written(tmp_path):
    model = read_body_model(bundled_model_path())
    path = tmp_path / "bad.npz"
    with pytest.raises(BodyModelFileError):
        save_body_model_npz(
            path, v_template=model.v_template, shapedirs=model.shapedirs, weights=model.weights * 3,
            j_regressor=model.j_regressor, faces=model.faces, coco_regressor=model.coco_regressor,
            vertex_ids=model.vertex_ids, metadata={},
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
