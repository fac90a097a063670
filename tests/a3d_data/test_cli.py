"""The ``a3d`` command line: the class figure stage and its failure modes."""

from __future__ import annotations

from pathlib import Path

import yaml
from PIL import Image
from typer.testing import CliRunner

from a3d_data.cli import app

runner = CliRunner()


def _params(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def test_amputation_figure_writes_a_png_of_all_classes(tmp_path):
    params = _params(tmp_path, amputation_figure={"output": "out/classes.png", "panel_pixels": 96})
    result = runner.invoke(app, ["amputation-figure", "--params", str(params)])
    assert result.exit_code == 0, result.output
    output = tmp_path / "out" / "classes.png"
    assert f"wrote {output}" in result.output
    with Image.open(output) as image:
        assert image.format == "PNG"
        assert image.width == 5 * 96  # five columns of panels
        pixels = image.convert("L").getextrema()
        assert pixels[0] < 128 < pixels[1]  # something was drawn on the white page
    assert sorted(p.name for p in output.parent.iterdir()) == ["classes.png"]


def test_bad_params_stop_before_any_work_naming_the_key(tmp_path):
    params = _params(tmp_path, amputation_figure={"columns": 0})
    result = runner.invoke(app, ["amputation-figure", "--params", str(params)])
    assert result.exit_code == 2
    assert "amputation_figure.columns" in result.output
    assert not (tmp_path / "outputs").exists()


def test_a_missing_body_model_file_is_named(tmp_path):
    params = _params(tmp_path, body_model={"path": "models/SMPL_NEUTRAL.pkl"})
    result = runner.invoke(app, ["amputation-figure", "--params", str(params)])
    assert result.exit_code == 2
    assert "SMPL_NEUTRAL.pkl: body-model file not found" in result.output


def test_synthesize_refuses_out_of_range_params_before_any_work(tmp_path):
    params = _params(tmp_path, synthesize={"workers": 0, "output": "data"})
    result = runner.invoke(app, ["synthesize", "--params", str(params)])
    assert result.exit_code == 2
    assert "synthesize.workers: Input should be greater than or equal to 1" in result.output
    assert not (tmp_path / "data").exists()


def test_synthesize_names_a_bad_pose_file_and_its_field(tmp_path):
    import numpy as np

    (tmp_path / "poses").mkdir()
    np.savez(tmp_path / "poses" / "clip.npz", poses=np.full((5, 72), np.nan), betas=np.zeros(10))
    params = _params(
        tmp_path,
        synthesize={"output": "data", "poses": {"source": "amass", "files": ["poses/*.npz"]},
                    "sizes": {"test": {"amputee": 2, "non_amputee": 2, "occlusion": 2}}},
    )  # fmt: skip
    result = runner.invoke(app, ["synthesize", "--params", str(params)])
    assert result.exit_code == 2
    assert "clip.npz" in result.output and "poses" in result.output and "NaN" in result.output
    assert not (tmp_path / "data").exists()


def test_the_contact_sheet_asks_for_a_dataset_when_there_is_none(tmp_path):
    params = _params(tmp_path, synthesize={"output": "nowhere"})
    result = runner.invoke(app, ["contact-sheet", "--params", str(params)])
    assert result.exit_code == 2
    assert "no readable A3D dataset" in result.output and "a3d synthesize" in result.output
