"""The licence-free SMPL-format body model and the loader of licensed SMPL files."""

from a3d_data.body_model.io import BodyModelArrays, BodyModelFileError, read_body_model
from a3d_data.body_model.model import BodyModel, bundled_model_path, load_body_model

__all__ = [
    "BodyModel",
    "BodyModelArrays",
    "BodyModelFileError",
    "bundled_model_path",
    "load_body_model",
    "read_body_model",
]
