"""params.yaml: every section validated before work; errors name the file and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from a3d_data.params import (
    AmputationFigureParams,
    BodyModelParams,
    ConvertBodyModelParams,
    ParamsError,
    load_section,
)

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _section_models() -> dict:
    from a3d_data.synthesis.params import ContactSheetParams, SynthesizeParams
    from a3d_data.validation import ValidateA3DParams

    return {"body_model": BodyModelParams, "convert_body_model": ConvertBodyModelParams,
            "amputation_figure": AmputationFigureParams, "synthesize": SynthesizeParams,
            "validate_a3d": ValidateA3DParams, "contact_sheet": ContactSheetParams}  # fmt: skip


def test_every_section_of_the_committed_params_file_is_valid():
    sections = yaml.safe_load(REPO_PARAMS.read_text())
    models = _section_models()
    for name in sections:
        if name in models:  # sections of later packages are checked by their own tests
            load_section(REPO_PARAMS, name, models[name])
    assert set(models) <= set(sections)


def test_a_device_that_torch_does_not_know_is_refused(tmp_path):
    from a3d_data.synthesis.params import SynthesizeParams

    path = _write(tmp_path, {"synthesize": {"device": "cudaa"}})
    with pytest.raises(ParamsError, match=r"synthesize\.device: .*not a torch device name"):
        load_section(path, "synthesize", SynthesizeParams)


def test_a_missing_section_takes_the_defaults(tmp_path):
    path = _write(tmp_path, {"other": {"x": 1}})
    assert load_section(path, "body_model", BodyModelParams) == BodyModelParams()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"amputation_figure": {"panel_pixels": "big"}}, r"amputation_figure\.panel_pixels: .*integer.*'big'"),
        ({"amputation_figure": {"panel_pixels": -5}}, r"amputation_figure\.panel_pixels: .*greater than or equal to 64"),
        ({"amputation_figure": {"colums": 3}}, r"amputation_figure\.colums: Extra inputs are not permitted"),
        ({"amputation_figure": [1, 2]}, r"amputation_figure: expected a mapping"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(ParamsError, match=message) as info:
        load_section(path, "amputation_figure", AmputationFigureParams)
    assert str(path) in str(info.value)


def test_nested_keys_are_named_with_dots(tmp_path):
    path = _write(tmp_path, {"convert_body_model": {"age": {"low": 0.9, "high": 0.2}, "num_betas": 0}})
    with pytest.raises(ParamsError) as info:
        load_section(path, "convert_body_model", ConvertBodyModelParams)
    message = str(info.value)
    assert "convert_body_model.age: Value error, low (0.9) must not exceed high (0.2)" in message
    assert "convert_body_model.num_betas: Input should be greater than or equal to 1" in message


def test_unreadable_or_malformed_files_are_named(tmp_path):
    with pytest.raises(ParamsError, match="nope.yaml: cannot read"):
        load_section(tmp_path / "nope.yaml", "body_model", BodyModelParams)
    bad = tmp_path / "bad.yaml"
    bad.write_text("body_model: [unclosed\n")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        load_section(bad, "body_model", BodyModelParams)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="list.yaml: expected a mapping of sections"):
        load_section(top, "body_model", BodyModelParams)
