"""Benchmarks of the A3D synthesis, printed as one table (``make bench-synth``).

Sections, each a function returning rows:

- ``render``: render-only throughput of each backend of :mod:`a3d_data.render` at batch sizes 1
  and 32 on the bundled body model (13,718 vertices, 27,420 triangles) in random poses, 256 px
  HMR2 crops (focal 5000 px, the body 30-50 m away), and pyrender + OSMesa rendering the same
  meshes in a subprocess of its own environment (.cache/bench-venv), in the same run.

On a machine shared with other jobs, read the load averages printed with the table: torch's
OpenMP threads spin while they wait, so when other processes take cores, torch's default of one
thread per core runs several times slower (and slows llvmpipe, which shares the cores);
``--threads 1`` is robust to that and matches the synthesis workers' default.

To add a section, write ``def my_section(config: BenchConfig) -> list[Row]`` and append it to
:data:`SECTIONS`. Posing, colours and backgrounds are prepared outside the timed regions.

Usage: .venv/bin/python benchmarks/bench_synth.py [--sections render] [--seconds 2] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from a3d_data.body_model import BodyModel, load_body_model
from a3d_data.render import Lights, OpenGLRenderer, Renderer, TorchRenderer, egl_available

logger = logging.getLogger("bench_synth")

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = REPO_ROOT / ".cache" / "bench-venv" / "bin" / "python"
BASELINE_SCRIPT = Path(__file__).resolve().with_name("pyrender_baseline.py")

IMAGE_SIZE = 256  # pixels, HMR2 crop
FOCAL = 5000.0  # pixels at 256 px, HMR2 convention
DEPTH_RANGE = (30.0, 50.0)  # metres from the camera to the body
POSE_ANGLE = 0.5  # radians, largest random rotation per joint
# The body model is upright facing +z (y up); a half turn about x faces the OpenCV camera.
BODY_TO_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


@dataclass(frozen=True)
class BenchConfig:
    """What every section may use: the body model, poses to draw from and the timing budget."""

    model: BodyModel
    seconds: float  # least time spent timing each row
    repeats: int  # timed blocks per row; the median block is reported
    baseline: bool  # run the pyrender + OSMesa baseline
    bench_python: Path
    seed: int = 0
    pool: int = 64  # distinct poses prepared once
    _scenes: dict[int, Scene] = field(default_factory=dict)

    def scene(self, batch: int) -> Scene:
        if batch not in self._scenes:
            self._scenes[batch] = Scene.random(self.model, batch, self.pool, self.seed)
        return self._scenes[batch]


@dataclass(frozen=True)
class Row:
    """One measurement: ``frames_per_second`` is images (not batches) per second."""

    section: str
    name: str
    device: str
    batch: int
    ms_per_frame: float | None
    note: str = ""

    @property
    def frames_per_second(self) -> float | None:
        return None if self.ms_per_frame is None else 1000.0 / self.ms_per_frame


@dataclass(frozen=True)
class Scene:
    """Batches of posed bodies ready to render: ``pool`` poses cut into batches of ``batch``."""

    batches: list[tuple[torch.Tensor, ...]]  # vertices, colours, focal, principal, background
    lights: Lights
    faces: torch.Tensor

    @staticmethod
    def random(model: BodyModel, batch: int, pool: int, seed: int) -> Scene:
        generator = torch.Generator().manual_seed(seed)
        vertices = random_bodies(model, max(pool, batch), generator)
        colours = 0.4 + 0.5 * torch.rand(len(vertices), 1, 3, generator=generator).expand_as(vertices)
        backgrounds = torch.randint(0, 256, (len(vertices), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
        batches = []
        for start in range(0, len(vertices) - batch + 1, batch):
            part = slice(start, start + batch)
            batches.append(
                (
                    vertices[part].contiguous(),
                    colours[part].contiguous(),
                    torch.full((batch,), FOCAL),
                    torch.full((batch, 2), IMAGE_SIZE / 2),
                    backgrounds[part].contiguous(),
                )
            )
        return Scene(batches, Lights.headlight(batch), model.faces_tensor.long())


def random_bodies(model: BodyModel, count: int, generator: torch.Generator) -> torch.Tensor:
    """Bodies (count, V, 3) in random poses and shapes, in the camera frame, centred in the crop."""
    from smplx.lbs import batch_rodrigues

    axes = torch.randn(count * 24, 3, generator=generator)
    angles = POSE_ANGLE * torch.rand(count * 24, 1, generator=generator)
    rotmats = batch_rodrigues(axes / axes.norm(dim=1, keepdim=True) * angles).view(count, 24, 3, 3)
    rotmats[:, 0] = BODY_TO_CAMERA
    betas = torch.randn(count, model.num_betas, generator=generator)
    with torch.no_grad():
        vertices = model.forward_rotmats(rotmats, betas).vertices
    centre = (vertices.amin(1) + vertices.amax(1)) / 2
    depth = DEPTH_RANGE[0] + (DEPTH_RANGE[1] - DEPTH_RANGE[0]) * torch.rand(count, generator=generator)
    offset = torch.stack([-centre[:, 0], -centre[:, 1], depth - centre[:, 2]], dim=1)
    return vertices + offset[:, None, :]


def time_per_frame(run: Callable[[int], object], batch: int, config: BenchConfig, sync=lambda: None) -> float:
    """Median milliseconds per image over ``config.repeats`` blocks of about ``config.seconds``."""
    run(0)  # warm-up: contexts, shaders, buffers, allocator
    sync()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < config.seconds / config.repeats or calls < 2:
        run(calls)
        calls += 1
    sync()
    per_block = max(2, calls)
    blocks = []
    for _ in range(config.repeats):
        start = time.perf_counter()
        for call in range(per_block):
            run(call)
        sync()
        blocks.append((time.perf_counter() - start) / (per_block * batch))
    return 1000.0 * statistics.median(blocks)


def measure_renderer(
    renderer: Renderer, name: str, device: torch.device, batch: int, config: BenchConfig
) -> Row:
    scene = config.scene(batch)
    on_device = [tuple(t.to(device) for t in part) for part in scene.batches]
    faces, lights = scene.faces.to(device), scene.lights

    def run(call: int) -> object:
        vertices, colours, focal, principal, background = on_device[call % len(on_device)]
        return renderer.render(vertices, faces, colours, focal, principal, IMAGE_SIZE, lights, background)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return Row("render", name, str(device), batch, time_per_frame(run, batch, config, sync))


def pyrender_baseline(config: BenchConfig, frames: int) -> Row:
    """pyrender + OSMesa on the same meshes, one at a time, in the bench environment."""
    name, device = "pyrender 0.1.45 + OSMesa", "cpu"
    if not config.baseline:
        return Row("render", name, device, 1, None, "skipped (--no-baseline)")
    if not config.bench_python.exists():
        return Row("render", name, device, 1, None, "skipped: no bench venv (run `make bench-synth`)")
    scene = config.scene(1)
    vertices = torch.cat([part[0] for part in scene.batches])
    colours = torch.cat([part[1] for part in scene.batches])
    with tempfile.TemporaryDirectory() as folder:
        meshes = Path(folder) / "meshes.npz"
        np.savez(
            meshes, vertices=vertices.numpy(), faces=scene.faces.numpy(), colours=colours.numpy(),
            focal=FOCAL, image_size=IMAGE_SIZE,
        )  # fmt: skip
        environment = {**os.environ, "PYOPENGL_PLATFORM": "osmesa"}
        command = [str(config.bench_python), str(BASELINE_SCRIPT), str(meshes), str(frames)]
        result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if result.returncode != 0:
        logger.error("pyrender baseline failed:\n%s", result.stderr[-3000:])
        return Row("render", name, device, 1, None, f"failed (exit {result.returncode}), see the log above")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if "error" in report:
        return Row("render", name, device, 1, None, f"skipped: {report['error']}")
    return Row("render", name, device, 1, report["ms_per_frame"], f"coverage {report['coverage']:.0%}")


def render_throughput(config: BenchConfig) -> list[Row]:
    """Render-only frames/s of each backend at batch 1 and 32, and the pyrender + OSMesa baseline."""
    cpu = torch.device("cpu")
    candidates: list[tuple[str, Callable[[], Renderer], torch.device]] = [
        ("torch rasterizer", lambda: TorchRenderer(cpu), cpu),
    ]
    if egl_available():
        candidates.append(("opengl (EGL)", OpenGLRenderer, cpu))
    else:
        logger.warning("no EGL context: the opengl backend is not measured")
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        candidates.append(("torch rasterizer", lambda: TorchRenderer(cuda), cuda))

    rows = []
    for name, make, device in candidates:
        renderer = make()
        for batch in (1, 32):
            logger.info("timing %s on %s at batch %d", name, device, batch)
            rows.append(measure_renderer(renderer, name, device, batch, config))
    logger.info("timing the pyrender + OSMesa baseline")
    rows.append(pyrender_baseline(config, frames=max(20, int(config.seconds / 0.02))))
    return rows


def end_to_end_throughput(config: BenchConfig, samples: int = 768) -> list[Row]:
    """Samples/s of the whole synthesis, pose to JPEG and labels in shards on disk.

    Runs the ``synthesize`` stage's own code (default params, a half amputee / half non-amputee
    train split) with one worker process and with one per core; worker start-up is included.
    """
    from a3d_data.synthesis.params import PartSizes, SynthesizeParams
    from a3d_data.synthesis.run import run_synthesis

    rows = []
    for workers in sorted({1, os.cpu_count() or 1}):
        params = SynthesizeParams(
            seed=config.seed,
            sizes={"train": PartSizes(amputee=samples // 2, non_amputee=samples // 2)},
            shard_size=max(1, samples // (4 * workers)),
            workers=workers,
            output=Path("a3d"),
        )
        with tempfile.TemporaryDirectory(prefix="bench-a3d-") as folder:
            started = time.perf_counter()
            summary = run_synthesis(params, Path(folder))
            seconds = time.perf_counter() - started
        rows.append(
            Row("e2e", f"synthesize ({workers} worker{'s' if workers > 1 else ''})", "cpu",
                params.batch_size, 1000.0 * seconds / summary["samples"],
                f"{summary['samples']} samples, {summary['bytes'] / summary['samples'] / 1024:.1f} KiB each")
        )  # fmt: skip
    return rows


# Every section, in the order they run; each returns its rows.
SECTIONS: dict[str, Callable[[BenchConfig], list[Row]]] = {
    "render": render_throughput,
    "e2e": end_to_end_throughput,
}


def format_table(rows: list[Row]) -> str:
    """Rows as a text table, with each row's speed-up over the pyrender render-only baseline."""
    measured = [r.frames_per_second for r in rows if r.name.startswith("pyrender") and r.ms_per_frame]
    header = (
        f"{'section':8} {'renderer':26} {'device':7} {'batch':>5} {'ms/frame':>9} {'frames/s':>9} "
        f"{'vs pyrender':>11}  note"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        baseline = measured[0] if measured else None
        if row.ms_per_frame is None:
            speed, ratio = f"{'-':>9} {'-':>9}", f"{'-':>11}"
        else:
            speed = f"{row.ms_per_frame:9.2f} {row.frames_per_second:9.1f}"
            ratio = f"{row.frames_per_second / baseline:10.1f}x" if baseline else f"{'-':>11}"
        lines.append(
            f"{row.section:8} {row.name:26} {row.device:7} {row.batch:5d} {speed} {ratio}  {row.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--seconds", type=float, default=3.0, help="least seconds of timing per row")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per row (median reported)")
    parser.add_argument("--no-baseline", action="store_true", help="skip pyrender + OSMesa")
    parser.add_argument("--bench-python", type=Path, default=BENCH_PYTHON, help="python of the bench venv")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's, one per core)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    config = BenchConfig(
        model=load_body_model(),
        seconds=args.seconds,
        repeats=args.repeats,
        baseline=not args.no_baseline,
        bench_python=args.bench_python,
    )
    load_before = os.getloadavg()[0]
    rows = [row for section in args.sections for row in SECTIONS[section](config)]
    print(
        f"A3D synthesis benchmark: {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), image {IMAGE_SIZE} px, "
        f"{config.model.num_vertices} vertices / {len(config.model.faces)} triangles; "
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
