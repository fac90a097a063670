"""``ajahr``: the command line of ajahr-model. Each command reads its sections of ``params.yaml``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import typer

from a3d_data.cli import resolve_model_path
from a3d_data.params import BodyModelParams, ParamsError, load_section

app = typer.Typer(help="AJAHR model: pose tokenizers, BPAC-Net, the regressor.", no_args_is_help=True)
log = logging.getLogger("ajahr_model")

PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="The project's params.yaml.")
DATASET_OPTION = typer.Option(
    Path("data/a3d"), "--dataset", help="The A3D folder (relative to the params file)."
)
TOKENIZERS_OPTION = typer.Option(
    Path("models/tokenizers"), "--tokenizers", help="Folder of the two tokenizers."
)
# Exit status of a run that stopped before its last step (time or step limit): not a failure, but
# its outputs are not complete, so an orchestrator (DVC) must not record them as the stage's.
EXIT_INCOMPLETE = 3


@app.callback()
def main() -> None:
    """AJAHR model: pose tokenizers, BPAC-Net, the regressor."""


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(err: Exception) -> NoReturn:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def _relative_to(params_file: Path, path: Path) -> Path:
    return path if path.is_absolute() else params_file.parent / path


@app.command("train-tokenizer")
def train_tokenizer(
    name: str = typer.Argument(..., help="Which tokenizer: non_amputee or amputee."),
    params_file: Path = PARAMS_OPTION,
    max_minutes: float | None = typer.Option(
        None,
        "--max-minutes",
        min=0.0,
        envvar="AJAHR_MAX_TRAIN_MINUTES",
        help="Stop after this many minutes of training, save, and exit with status 3; rerun to resume.",
    ),
    max_steps_this_run: int | None = typer.Option(
        None,
        "--max-steps-this-run",
        min=1,
        help="Stop after this many steps, save, and exit with status 3; rerun to resume.",
    ),
    output_dir: Path = typer.Option(
        Path("models/tokenizers"),
        "--output-dir",
        help="Parent folder of the tokenizer folders, relative to the params file's folder.",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch (default: torch's own choice)."
    ),
) -> None:
    """Train pose tokenizer NAME (section ``tokenizer``), resuming from its checkpoint if there is one.

    Exit status 0: trained (or already trained), outputs written; 3: stopped at a limit, checkpoint
    saved, run again to continue; 2: bad input, nothing done.
    """
    _setup_logging()
    from ajahr_model.tokenizer.params import TOKENIZER_NAMES, TokenizerSection

    if name not in TOKENIZER_NAMES:
        _fail(ValueError(f"unknown tokenizer {name!r}; expected one of {', '.join(TOKENIZER_NAMES)}"))
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        body = load_section(params_file, "body_model", BodyModelParams)
        section = load_section(params_file, "tokenizer", TokenizerSection)
    except ParamsError as err:
        _fail(err)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from a3d_data.body_model import BodyModelFileError, load_body_model
    from ajahr_model.tokenizer.train import resolve_device
    from ajahr_model.tokenizer.train import train_tokenizer as run

    settings = section.settings()
    try:
        device = resolve_device(settings.device)
        body_model = load_body_model(resolve_model_path(body, params_file), num_betas=body.num_betas)
    except (BodyModelFileError, RuntimeError) as err:
        _fail(err)
    folder = _relative_to(params_file, output_dir)
    with logging_redirect_tqdm():
        outcome = run(
            name,
            settings,
            section.role(name),
            body_model,
            folder,
            profile=section.profile,
            device=device,
            max_seconds=None if max_minutes is None else 60.0 * max_minutes,
            max_steps=max_steps_this_run,
            progress=progress,
        )
    if not outcome.complete:
        typer.echo(
            f"stopped at step {outcome.step} of {outcome.total_steps}; saved {outcome.checkpoint} "
            "(run the same command again to resume)"
        )
        raise typer.Exit(code=EXIT_INCOMPLETE)
    held_out = outcome.results["held_out"]
    typer.echo(
        f"tokenizer {name}: held-out MPJPE {held_out['normal']['mpjpe_mm']:.2f} mm normal, "
        f"{held_out['amputee']['mpjpe_mm']:.2f} mm amputee; trained {outcome.results['train_seconds']:.0f} s"
    )
    typer.echo(f"wrote {outcome.checkpoint}, {outcome.metrics}, {outcome.figure}")


@app.command("train-tokenizers")
def train_tokenizers(
    params_file: Path = PARAMS_OPTION,
    jobs: int = typer.Option(2, "--jobs", min=1, help="Tokenizers trained at once, each in its own process."),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", min=0.0, envvar="AJAHR_MAX_TRAIN_MINUTES", help="Passed to each run."
    ),
    output_dir: Path = typer.Option(
        Path("models/tokenizers"),
        "--output-dir",
        help="Parent folder of the tokenizer folders, relative to the params file's folder.",
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train both pose tokenizers (stage ``train_tokenizers``), ``--jobs`` at a time.

    Each tokenizer is an ``ajahr train-tokenizer NAME`` process with the CPU cores split between
    the processes: the tokenizers are small, and on 2 cores two one-thread runs side by side do
    more steps per second than one two-thread run after the other. Each run resumes and is
    checked on its own, as with ``train-tokenizer``. Exit status: 2 if a run failed, 3 if one
    stopped at a limit (rerun to resume), else 0.
    """
    import os
    import subprocess
    import sys

    from ajahr_model.tokenizer.params import TOKENIZER_NAMES

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = min(jobs, len(TOKENIZER_NAMES))
    threads = max(1, cores // jobs)
    commands = {
        name: [
            sys.executable, "-m", "ajahr_model.cli", "train-tokenizer", name,
            "--params", str(params_file), "--output-dir", str(output_dir), "--threads", str(threads),
            *(["--max-minutes", str(max_minutes)] if max_minutes is not None else []),
            "--progress" if progress else "--no-progress",
        ]
        for name in TOKENIZER_NAMES
    }  # fmt: skip
    codes: dict[str, int] = {}
    pending = list(TOKENIZER_NAMES)
    running: dict[str, subprocess.Popen] = {}
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            typer.echo(f"tokenizer {name}: starting ({threads} thread(s))")
            running[name] = subprocess.Popen(commands[name])
        name, process = next(iter(running.items()))
        codes[name] = process.wait()
        del running[name]
    failed = [name for name, code in codes.items() if code not in (0, EXIT_INCOMPLETE)]
    if failed:
        typer.echo(f"error: tokenizer run(s) failed: {', '.join(failed)}", err=True)
        raise typer.Exit(code=2)
    if any(code == EXIT_INCOMPLETE for code in codes.values()):
        raise typer.Exit(code=EXIT_INCOMPLETE)


PRIOR_OPTION = typer.Option(
    Path("data/keypoint_prior"),
    "--keypoint-prior",
    help="The keypoint_prior stage's folder (relative to the params file), read if the detector needs it.",
)

LIMIT_OPTIONS_HELP = (
    "Stop after this many minutes of training, save, and exit with status 3; rerun to resume."
)


def _run_limits_note(result, total: int) -> None:
    if not result.complete:
        typer.echo(f"stopped at step {result.step} of {total}; run the same command again to resume")
        raise typer.Exit(code=EXIT_INCOMPLETE)


@app.command("keypoint-prior")
def keypoint_prior(
    params_file: Path = PARAMS_OPTION,
    dataset_dir: Path = DATASET_OPTION,
    output_dir: Path = typer.Option(
        Path("data/keypoint_prior"), "--output-dir", help="Where blazepose.npz goes."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """BlazePose's COCO-17 keypoints for every crop of A3D (stage ``keypoint_prior``), run in the
    BlazePose environment (.venv-blazepose, or AJAHR_BLAZEPOSE_PYTHON). Exit status 2: bad input
    or a failed worker."""
    _setup_logging()
    from ajahr_model.prior.run import (
        KeypointPriorError,
        KeypointPriorParams,
        blazepose_python,
        compute_keypoint_prior,
    )

    try:
        params = load_section(params_file, "keypoint_prior", KeypointPriorParams)
        python = blazepose_python(params_file.resolve().parent)
        summary = compute_keypoint_prior(
            _relative_to(params_file, dataset_dir),
            _relative_to(params_file, output_dir),
            params,
            python,
            progress,
        )
    except (ParamsError, KeypointPriorError, ValueError) as err:
        _fail(err)
    typer.echo(
        f"keypoint prior: {summary['samples']} crops, a person found in {summary['found_fraction']:.1%}; "
        f"wrote {output_dir}/blazepose.npz"
    )


@app.command("train-keypoints")
def train_keypoints(
    params_file: Path = PARAMS_OPTION,
    dataset_dir: Path = DATASET_OPTION,
    output_dir: Path = typer.Option(
        Path("models/keypoints"), "--output-dir", help="Where checkpoint, metrics and curve go."
    ),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", min=0.0, envvar="AJAHR_MAX_TRAIN_MINUTES", help=LIMIT_OPTIONS_HELP
    ),
    max_steps_this_run: int | None = typer.Option(
        None, "--max-steps-this-run", min=1, help="Stop after this many steps (status 3)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    prior_dir: Path = PRIOR_OPTION,
) -> None:
    """Train the 2D keypoint detector (section ``keypoints``) on A3D, resuming from its checkpoint.

    Exit status 0: trained and evaluated; 3: stopped at a limit (rerun to resume); 2: bad input.
    """
    _setup_logging()
    from ajahr_model.data.a3d import DataError
    from ajahr_model.training.params import KeypointsSection

    try:
        section = load_section(params_file, "keypoints", KeypointsSection)
    except ParamsError as err:
        _fail(err)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ajahr_model.training.detector import train_detector

    settings = section.settings()
    try:
        with logging_redirect_tqdm():
            result = train_detector(
                settings,
                _relative_to(params_file, dataset_dir),
                _relative_to(params_file, output_dir),
                max_minutes=max_minutes,
                max_steps_this_run=max_steps_this_run,
                progress=progress,
                prior_path=_relative_to(params_file, prior_dir),
            )
    except (DataError, RuntimeError, ValueError) as err:
        _fail(err)
    _run_limits_note(result, settings.train.steps)
    typer.echo(
        f"keypoint detector: {result.step} steps; "
        f"wrote {output_dir}/checkpoint.pt, metrics.json, loss_curve.png"
    )


@app.command("train-ajahr")
def train_ajahr(
    params_file: Path = PARAMS_OPTION,
    dataset_dir: Path = DATASET_OPTION,
    tokenizer_dir: Path = TOKENIZERS_OPTION,
    detector: Path | None = typer.Option(
        Path("models/keypoints/checkpoint.pt"),
        "--detector",
        help="Keypoint detector for the test-split evaluation.",
    ),
    output_dir: Path = typer.Option(
        Path("models/ajahr"), "--output-dir", help="Where checkpoint, metrics and curve go."
    ),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", min=0.0, envvar="AJAHR_MAX_TRAIN_MINUTES", help=LIMIT_OPTIONS_HELP
    ),
    max_steps_this_run: int | None = typer.Option(
        None, "--max-steps-this-run", min=1, help="Stop after this many steps (status 3)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    evaluation_dir: Path | None = typer.Option(
        None,
        "--evaluation-dir",
        help="Where the test-split metrics.json and predictions.npz go (default: the output dir).",
    ),
    variant: str = typer.Option(
        "ajahr",
        "--variant",
        help="Which model of ajahr.variants: ajahr, or a baseline/ablation (hmr2, tokenhmr, ...).",
    ),
    prior_dir: Path = PRIOR_OPTION,
) -> None:
    """Train BPAC-Net and the AJAHR regressor jointly (section ``ajahr``), resuming from the checkpoint;
    or, with ``--variant``, a baseline or ablation of ``ajahr.variants`` by the same code.

    With ``train.devices: N`` > 1 (the paper profile: 2) Lightning Fabric starts one DDP process
    per GPU from this same command. Exit status 0: trained and evaluated on the test split; 3:
    stopped at a limit (rerun to resume); 2: bad input.
    """
    _setup_logging()
    from ajahr_model.data.a3d import DataError
    from ajahr_model.networks.bpac import WeightsFileError
    from ajahr_model.tokenizer.checkpoint import CheckpointError
    from ajahr_model.training.params import AJAHRSection

    try:
        body = load_section(params_file, "body_model", BodyModelParams)
        section = load_section(params_file, "ajahr", AJAHRSection)
    except ParamsError as err:
        _fail(err)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from a3d_data.body_model import BodyModelFileError, load_body_model
    from ajahr_model.training.ajahr import train_ajahr as run
    from ajahr_model.training.loop import TrainingCheckpointError

    try:
        settings = section.settings(variant=variant)
    except ValueError as err:
        _fail(ParamsError(f"{params_file}: ajahr: {err}"))
    weights = settings.bpac_imagenet_weights
    try:
        body_model = load_body_model(resolve_model_path(body, params_file), num_betas=body.num_betas)
        with logging_redirect_tqdm():
            result = run(
                settings,
                _relative_to(params_file, dataset_dir),
                _relative_to(params_file, tokenizer_dir),
                _relative_to(params_file, detector) if detector is not None else None,
                body_model,
                _relative_to(params_file, output_dir),
                bpac_weights=_relative_to(params_file, Path(weights)) if weights else None,
                init_weights=(
                    _relative_to(params_file, Path(settings.init_weights)) if settings.init_weights else None
                ),
                max_minutes=max_minutes,
                max_steps_this_run=max_steps_this_run,
                progress=progress,
                variant=variant,
                evaluation_dir=_relative_to(params_file, evaluation_dir) if evaluation_dir else None,
                prior_path=_relative_to(params_file, prior_dir),
            )
    except (
        BodyModelFileError,
        DataError,
        WeightsFileError,
        CheckpointError,
        TrainingCheckpointError,
        RuntimeError,
        ValueError,
    ) as err:
        _fail(err)
    _run_limits_note(result, settings.train.steps)
    typer.echo(
        f"{variant}: {result.step} steps; wrote {output_dir}/checkpoint.pt and loss_curve.png, "
        f"{evaluation_dir or output_dir}/metrics.json and predictions.npz"
    )


@app.command("report")
def report(
    params_file: Path = PARAMS_OPTION,
    dataset_dir: Path = DATASET_OPTION,
    evaluations: Path = typer.Option(
        Path("models/evaluation"),
        "--evaluations",
        help="Folder of the models' <variant>/metrics.json and predictions.npz.",
    ),
    output_dir: Path = typer.Option(
        Path("reports/evaluation"), "--output-dir", help="Where the report and its pictures go."
    ),
) -> None:
    """The evaluation report over ``ajahr.trained_variants``: markdown, HTML, metrics JSON, PNGs.

    Exit status 0: written; 2: bad input (a model not yet evaluated, bad params).
    """
    _setup_logging()
    from ajahr_model.evaluation.report import ReportInputError, ReportParams, load_evaluations, write_report
    from ajahr_model.training.params import AJAHRSection

    try:
        body = load_section(params_file, "body_model", BodyModelParams)
        section = load_section(params_file, "ajahr", AJAHRSection)
        options = load_section(params_file, "report", ReportParams)
    except ParamsError as err:
        _fail(err)
    from a3d_data.body_model import BodyModelFileError, load_body_model

    try:
        body_model = load_body_model(resolve_model_path(body, params_file), num_betas=body.num_betas)
        found = load_evaluations(_relative_to(params_file, evaluations), list(section.trained_variants))
        facts = write_report(
            found,
            _relative_to(params_file, dataset_dir),
            body_model,
            _relative_to(params_file, output_dir),
            options.render_backend,
            section.profile,
        )
    except (BodyModelFileError, ReportInputError) as err:
        _fail(err)
    typer.echo(f"wrote {output_dir}/report.md, report.html, metrics.json and the PNGs")
    for key, value in facts.get("findings", {}).items():
        typer.echo(f"  {key}: {value}")


@app.command("seed-study")
def seed_study(
    params_file: Path = PARAMS_OPTION,
    dataset_dir: Path = DATASET_OPTION,
    tokenizer_dir: Path = TOKENIZERS_OPTION,
    detector: Path = typer.Option(
        Path("models/keypoints/checkpoint.pt"), "--detector", help="The trained keypoint detector."
    ),
    prior_dir: Path = PRIOR_OPTION,
    pipeline_models: Path = typer.Option(
        Path("models"),
        "--pipeline-models",
        help="The pipeline's <variant>/checkpoint.pt folders: a run of the same fingerprint is reused.",
    ),
    pipeline_evaluations: Path = typer.Option(
        Path("models/evaluation"), "--pipeline-evaluations", help="The pipeline's <variant>/ evaluations."
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train the models of ``seed_study.variants`` at each of ``seed_study.seeds`` (section
    ``ajahr``, only ``train.seed`` changed) and write the spread over seeds and AJAHR's gain over
    each baseline with a 95% interval over seeds (``seed_study.output``: JSON, markdown, PNG).

    Finished runs under ``seed_study.work_dir`` are kept, and the pipeline's own run (``dvc repro``)
    is copied in for its seed; rerunning resumes an interrupted study.
    Exit status 0: written; 2: bad input.
    """
    _setup_logging()
    from ajahr_model.evaluation.report import ReportInputError
    from ajahr_model.evaluation.seed_study import (
        SeedStudyParams,
        load_study,
        run_seed_study,
        summarise,
        write_study,
    )
    from ajahr_model.training.params import AJAHRSection

    try:
        body = load_section(params_file, "body_model", BodyModelParams)
        section = load_section(params_file, "ajahr", AJAHRSection)
        study = load_section(params_file, "seed_study", SeedStudyParams)
    except ParamsError as err:
        _fail(err)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from a3d_data.body_model import BodyModelFileError, load_body_model
    from ajahr_model.data.a3d import DataError
    from ajahr_model.tokenizer.checkpoint import CheckpointError
    from ajahr_model.training.loop import TrainingCheckpointError

    work_dir = _relative_to(params_file, study.work_dir)
    try:
        body_model = load_body_model(resolve_model_path(body, params_file), num_betas=body.num_betas)
        with logging_redirect_tqdm():
            run_seed_study(
                section,
                study,
                dataset_dir=_relative_to(params_file, dataset_dir),
                tokenizer_dir=_relative_to(params_file, tokenizer_dir),
                detector_path=_relative_to(params_file, detector),
                prior_dir=_relative_to(params_file, prior_dir),
                body_model=body_model,
                work_dir=work_dir,
                pipeline_dirs=(
                    _relative_to(params_file, pipeline_models),
                    _relative_to(params_file, pipeline_evaluations),
                ),
                progress=progress,
            )
        facts = summarise(load_study(work_dir, study.seeds, study.variants))
        write_study(facts, _relative_to(params_file, study.output), section.profile)
    except (
        BodyModelFileError,
        DataError,
        CheckpointError,
        TrainingCheckpointError,
        ReportInputError,
        RuntimeError,
        ValueError,
    ) as err:
        _fail(err)
    typer.echo(f"wrote {study.output}/seed_study.md, seed_study.json and seed_study.png")
    for key, value in facts.get("findings", {}).items():
        typer.echo(f"  {key}: {value}")


@app.command("evaluate-real")
def evaluate_real(
    sequence_file: Path = typer.Argument(..., help="An EMDB *_data.pkl or a 3DPW sequence .pkl."),
    images: Path = typer.Option(..., "--images", help="The folder of the sequence's frames."),
    format: str = typer.Option(..., "--format", help="emdb or 3dpw."),
    params_file: Path = PARAMS_OPTION,
    model_path: Path = typer.Option(Path("models/ajahr/checkpoint.pt"), "--model", help="A trained model."),
    tokenizer_dir: Path = typer.Option(Path("models/tokenizers"), "--tokenizers"),
    detector: Path = typer.Option(Path("models/keypoints/checkpoint.pt"), "--detector"),
    h36m_regressor: Path | None = typer.Option(
        None,
        "--h36m-regressor",
        help="The licensed SMPL's J_regressor_h36m (.npy, 17 x V): 14-joint protocol.",
    ),
    output: Path | None = typer.Option(None, "--output", help="Write the figures as JSON here too."),
) -> None:
    """MVE / MPJPE / PA-MPJPE of a trained model on one real sequence with SMPL ground truth.

    The ground truth is posed with the params' body model: set ``body_model.path`` to the
    licensed SMPL the dataset was fitted with. Exit status 0: printed; 2: bad input.
    """
    _setup_logging()
    import json

    import numpy as np
    import torch

    from a3d_data.body_model import BodyModelFileError, load_body_model
    from ajahr_model.evaluation.real_data import SequenceFileError, evaluate_sequence, read_sequence
    from ajahr_model.tokenizer.checkpoint import CheckpointError
    from ajahr_model.training.ajahr import load_trained_model
    from ajahr_model.training.detector import load_detector
    from ajahr_model.training.loop import TrainingCheckpointError

    if format not in ("emdb", "3dpw"):
        _fail(ValueError(f"--format: expected emdb or 3dpw, got {format!r}"))
    try:
        body = load_section(params_file, "body_model", BodyModelParams)
    except ParamsError as err:
        _fail(err)
    if body.path is None:
        logging.getLogger(__name__).warning(
            "body_model.path is empty: the ground truth is posed with the bundled A3D model, not SMPL"
        )
    try:
        body_model = load_body_model(resolve_model_path(body, params_file), num_betas=body.num_betas)
        model = load_trained_model(model_path, tokenizer_dir, body_model)
        keypoints = load_detector(detector)
        regressor = None
        if h36m_regressor is not None:
            try:
                regressor = torch.from_numpy(np.load(h36m_regressor)).float()
            except (OSError, ValueError) as err:
                raise SequenceFileError(f"{h36m_regressor}: cannot read the H36M regressor ({err})") from err
        prior = None
        if keypoints.config.prior_input:
            # The detector reads BlazePose's keypoints: run it on the frames' crops.
            from functools import partial

            from ajahr_model.prior.run import KeypointPriorParams, blazepose_on_crops, blazepose_python

            prior_params = load_section(params_file, "keypoint_prior", KeypointPriorParams)
            prior = partial(
                blazepose_on_crops, params=prior_params, python=blazepose_python(params_file.resolve().parent)
            )
        sequence = read_sequence(format, sequence_file, images)  # type: ignore[arg-type]
        figures = evaluate_sequence(model, keypoints, sequence, regressor, prior=prior)
    except (
        BodyModelFileError,
        CheckpointError,
        TrainingCheckpointError,
        SequenceFileError,
        ParamsError,
        RuntimeError,
        ValueError,
    ) as err:
        _fail(err)
    text = json.dumps(figures, indent=2)
    typer.echo(text)
    if output is not None:
        from a3d_data.atomic import atomic_path

        with atomic_path(output) as temporary:
            temporary.write_text(text + "\n")


if __name__ == "__main__":
    app()
