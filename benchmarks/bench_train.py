"""Benchmark of AJAHR training throughput, printed as one table (``make bench-train``).

In one process, with the same batch (A3D samples from ``data/a3d``, or random crops when the
dataset is absent):

- ``full step``: the whole AJAHR training step (BPAC-Net, ViT, decoder, token classifier, both
  frozen tokenizer decoders, body model, loss, backward, AdamW, and the frozen keypoint detector's
  forward when the profile trains on its keypoints and ``models/keypoints`` holds one), images/s;
- ``bare backbone`` (the baseline): the same ViT alone, forward + a mean loss + backward + AdamW;
  ``full / bare`` is the share of the backbone's throughput the whole model keeps (goal on a GPU:
  at least 0.85);
- ``loader``: the data loader alone (shard reads, JPEG decoding, augmentation, collation) with the
  profile's workers, images/s, against the full step's rate (it must not be the bottleneck).
On CUDA it also reports the model FLOPs utilisation (FLOPs of a step counted by
``torch.utils.flop_counter`` / time / ``--peak-tflops``).

The profile is the params file's, or ``gpu`` on a machine with CUDA when none is given; the step
runs in the profile's precision (bf16 autocast for ``bf16-mixed``, on CPU too, as training does).

Usage: .venv/bin/python benchmarks/bench_train.py [--profile cpu|gpu|paper] [--backbone NAME]
       [--seconds 10] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from a3d_data.body_model import load_body_model
from a3d_data.params import load_section
from ajahr_model.data.a3d import A3DDataset, BalancedBatches, collate, index_samples
from ajahr_model.data.keypoint_prior import load_keypoint_prior
from ajahr_model.networks.keypoints import detect_batch
from ajahr_model.networks.regressor import AJAHR
from ajahr_model.tokenizer.params import TokenizerSection
from ajahr_model.tokenizer.vqvae import PoseVQVAE
from ajahr_model.training.common import TRAIN_PARTS
from ajahr_model.training.detector import load_detector
from ajahr_model.training.losses import ajahr_loss
from ajahr_model.training.params import AJAHRSection

REPO_ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(step, batch_size: int, seconds: float, device: torch.device, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    _sync(device)
    return count * batch_size / (time.perf_counter() - start)


def _batch(dataset: A3DDataset | None, batch_size: int, device: torch.device) -> dict:
    if dataset is None:
        g = torch.Generator().manual_seed(0)
        batch = {
            "image": torch.randint(0, 256, (batch_size, 3, 256, 256), generator=g, dtype=torch.uint8),
            "keypoints2d": torch.rand(batch_size, 17, 2, generator=g) * 256,
            "keypoint_state": torch.zeros(batch_size, 17, dtype=torch.long),
            "head_labels": torch.full((batch_size, 4), 3),
            "rotmats": torch.eye(3).expand(batch_size, 24, 3, 3).clone(),
            "betas": torch.zeros(batch_size, 10),
            "joints3d_smpl": torch.zeros(batch_size, 24, 3),
        }
    else:
        sampler = BalancedBatches([r.part for r in dataset.refs], batch_size, 0.5, 0)
        batch = collate([dataset[i] for i in sampler.batch(0)])
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument("--profile", default=None, help="ajahr profile (default: the params file's)")
    parser.add_argument("--backbone", default=None, help="override the profile's timm ViT name")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator bf16 dense peak")
    args = parser.parse_args()

    section = load_section(args.params, "ajahr", AJAHRSection)
    if args.profile is None and torch.cuda.is_available():
        args.profile = "gpu"  # the params file's default (cpu) would leave the accelerator idle
    settings = section.settings(args.profile)
    model_settings = (
        settings.model
        if args.backbone is None
        else settings.model.model_copy(update={"backbone": args.backbone})
    )
    batch_size = args.batch_size or settings.train.batch_size
    device = torch.device(
        "cuda" if torch.cuda.is_available() and settings.train.accelerator != "cpu" else "cpu"
    )
    dtype = torch.bfloat16 if settings.train.precision.startswith("bf16") else None
    tok_settings = load_section(args.params, "tokenizer", TokenizerSection).settings(
        "cpu" if device.type == "cpu" else "gpu"
    )
    # Untrained tokenizers of the profile's shape: the step's cost does not depend on their weights.
    tokenizers = {r: PoseVQVAE(tok_settings.model.config()) for r in ("non_amputee", "amputee")}
    model = AJAHR(model_settings.config(), tokenizers, load_body_model()).to(device)
    if settings.finetune.mode == "partial":  # the paper profile: as training freezes it
        model.freeze_for_partial_finetuning(settings.finetune.vit_blocks, settings.finetune.decoder_layers)
    dataset_dir = REPO_ROOT / "data" / "a3d"
    # The frozen detector, when training reads its keypoints (BPAC-Net's or the query's) and the
    # pipeline has trained one: its forward is part of every training step then.
    detector, prior = None, None
    detector_path = REPO_ROOT / "models" / "keypoints" / "checkpoint.pt"
    reads_detector = (settings.bpac_keypoints == "detector" and model_settings.use_bpac) or (
        settings.query_keypoints == "detector" and model_settings.keypoint_query
    )
    if reads_detector and detector_path.exists() and (dataset_dir / "index.parquet").exists():
        detector = load_detector(detector_path, device)
        if detector.config.prior_input:
            prior = load_keypoint_prior(REPO_ROOT / "data" / "keypoint_prior")
    dataset = None
    if (dataset_dir / "index.parquet").exists():
        dataset = A3DDataset(
            index_samples(dataset_dir, "train", TRAIN_PARTS),
            settings.augmentation.augmentation(),
            prior=prior,
        )
    batch = _batch(dataset, batch_size, device)
    weights = settings.loss.weights()
    full_params = [p for _, p in model.trainable_named_parameters()]
    full_opt = torch.optim.AdamW(full_params, lr=1e-5, fused=True)  # as training does
    backbone = model.backbone
    if settings.train.compile and device.type == "cuda":
        backbone.compile()  # in place, as training does: the full step and the bare one both use it

    def autocast():
        return (
            torch.autocast(device.type, dtype=dtype)
            if dtype is not None
            else torch.autocast(device.type, enabled=False)
        )

    def full_step() -> None:
        with autocast():
            bpac_keypoints = query_keypoints = batch["keypoints2d"]
            if detector is not None:
                with torch.no_grad():
                    detections = detect_batch(detector, batch)
                if settings.bpac_keypoints == "detector":
                    bpac_keypoints = detections.keypoints.float()
                if settings.query_keypoints == "detector":
                    query_keypoints = detections.located.float()
            out = model(batch["image"], bpac_keypoints, batch["head_labels"], switching="ground_truth",
                        query_keypoints=query_keypoints)  # fmt: skip
            loss, _ = ajahr_loss(out, batch, weights)
        full_opt.zero_grad(set_to_none=True)
        loss.backward()
        full_opt.step()

    bare = backbone
    bare_opt = torch.optim.AdamW(bare.parameters(), lr=1e-5, fused=True)
    h, w = model_settings.image_height, model_settings.image_width
    crops = torch.randn(batch_size, 3, h, w, device=device)

    def bare_step() -> None:
        with autocast():
            loss = bare(crops).float().mean()  # the ViT's forward: its tokens, as the regressor calls it
        bare_opt.zero_grad(set_to_none=True)
        loss.backward()
        bare_opt.step()

    torch.manual_seed(0)
    rows = []
    full = _rate(full_step, batch_size, args.seconds, device)
    base = _rate(bare_step, batch_size, args.seconds, device)
    rows.append(("full step", full, full / base))
    rows.append(("bare backbone (baseline)", base, 1.0))
    if dataset is not None:
        sampler = BalancedBatches([r.part for r in dataset.refs], batch_size, 0.5, 0)
        loader = DataLoader(
            dataset, batch_sampler=sampler, num_workers=settings.train.num_workers, collate_fn=collate
        )
        iterator = iter(loader)
        loaded = _rate(lambda: next(iterator), batch_size, args.seconds, torch.device("cpu"), warmup=1)
        rows.append((f"loader ({settings.train.num_workers} workers)", loaded, loaded / base))
    used_detector = ""
    if detector is not None:
        used_detector = f", with the frozen detector {detector_path} ({detector.config.input_size} px input)"
    print(f"AJAHR training throughput: profile {args.profile or section.profile}, backbone "
          f"{model_settings.backbone} at {h}x{w}, batch {batch_size}, {device.type}"
          f"{', bf16' if dtype else ''}, {torch.get_num_threads()} threads"
          f"{', partial fine-tuning' if settings.finetune.mode == 'partial' else ''}"
          f"{used_detector}")  # fmt: skip
    print(f"{'':28s}{'images/s':>12s}{'x bare':>10s}")
    for name, rate, ratio in rows:
        print(f"{name:28s}{rate:12.1f}{ratio:10.2f}")
    if dataset is not None:
        print(f"loader / full step: {rows[-1][1] / full:.2f} (above 1: the loader keeps up)")
    if device.type == "cuda":
        with FlopCounterMode(display=False) as counter:
            full_step()
        flops = counter.get_total_flops()
        print(
            f"full step: {flops / batch_size / 1e9:.1f} GFLOP per image; "
            f"MFU {flops / batch_size * full / (args.peak_tflops * 1e12):.1%} "
            f"of {args.peak_tflops:.0f} TFLOP/s"
        )


if __name__ == "__main__":
    main()
