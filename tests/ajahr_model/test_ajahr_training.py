"""AJAHR's loss and training: masked terms, TALS, optimisation that lowers the loss, exact
kill-and-resume, a NaN that stops the run and keeps the last good checkpoint, and the stages'
outputs."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from a3d_data.synthesis.schema import KeypointState
from ajahr_model.data.a3d import A3DDataset, BalancedBatches, collate, index_samples
from ajahr_model.networks.bpac import WeightsFileError
from ajahr_model.training.ajahr import build_ajahr, load_init_weights, load_trained_model, train_ajahr
from ajahr_model.training.detector import load_detector, train_detector
from ajahr_model.training.loop import NonFiniteLossError, fit, make_fabric, read_training_checkpoint
from ajahr_model.training.losses import LossWeights, ajahr_loss
from ajahr_model.training.params import AJAHRSection
from tests.ajahr_model.conftest_ajahr import make_truth_prior, tiny_ajahr, tiny_keypoints


@pytest.fixture(scope="module")
def batch(a3d_tiny):
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee", "non_amputee"]))
    sampler = BalancedBatches([r.part for r in dataset.refs], 4, 0.5, 0)
    return collate([dataset[i] for i in sampler.batch(0)])


def test_the_loss_has_every_term_and_ignores_absent_keypoints(tiny_tokenizers, body_model, batch):
    torch.manual_seed(0)
    model = build_ajahr(tiny_ajahr().settings(), tiny_tokenizers, body_model)
    out = model(batch["image"], batch["keypoints2d"], batch["head_labels"], switching="ground_truth")
    total, terms = ajahr_loss(out, batch, LossWeights())
    assert set(terms) == {
        "global_orient", "body_pose", "betas", "keypoints3d", "keypoints2d", "bpac", "joints_direct"
    }  # fmt: skip
    assert terms["joints_direct"] == 0  # no regressed joints without model.root_from_joints
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    absent = batch["keypoint_state"] == KeypointState.ABSENT
    assert absent.any()  # the amputee half of the batch has absent keypoints
    moved = out.keypoints2d.detach().clone()
    moved[absent] += 10.0
    out.keypoints2d = moved
    _, terms_moved = ajahr_loss(out, batch, LossWeights())
    assert terms_moved["keypoints2d"] == pytest.approx(float(terms["keypoints2d"]), rel=1e-6)


def test_tals_down_weights_joints_already_under_their_threshold(tiny_tokenizers, body_model, batch):
    torch.manual_seed(0)
    model = build_ajahr(tiny_ajahr().settings(), tiny_tokenizers, body_model)
    out = model(batch["image"], batch["keypoints2d"], batch["head_labels"], switching="ground_truth")
    _, plain = ajahr_loss(out, batch, LossWeights())
    _, all_under = ajahr_loss(out, batch, LossWeights(tals=True, tals_threshold_3d=1e3, tals_factor=0.05))
    _, none_under = ajahr_loss(out, batch, LossWeights(tals=True, tals_threshold_3d=1e-9, tals_factor=0.05))
    assert all_under["keypoints3d"] == pytest.approx(0.05 * float(plain["keypoints3d"]), rel=1e-5)
    assert none_under["keypoints3d"] == pytest.approx(float(plain["keypoints3d"]), rel=1e-6)
    # Per-joint thresholds (the brief's): the pelvis-relative pelvis error is 0, so only the other
    # 23 joints count; half of them under a huge threshold, half under a tiny one.
    mixed = tuple([1e3] * 12 + [1e-9] * 12)
    _, per_joint = ajahr_loss(out, batch, LossWeights(tals=True, tals_threshold_3d=mixed, tals_factor=0.05))
    assert float(all_under["keypoints3d"]) < float(per_joint["keypoints3d"]) < float(plain["keypoints3d"])
    same = LossWeights(tals=True, tals_threshold_3d=(1e3,) * 24, tals_factor=0.05)
    assert float(ajahr_loss(out, batch, same)[1]["keypoints3d"]) == float(all_under["keypoints3d"])


def _train(section: AJAHRSection, a3d, tokenizers, body_model, out, **limits):
    return train_ajahr(section.settings(), a3d, tokenizers, None, body_model, out, progress=False, **limits)


def test_a_few_steps_lower_the_loss(a3d_tiny, tiny_tokenizers, body_model, tmp_path):
    section = tiny_ajahr(train={"steps": 12, "batch_size": 4, "amputee_fraction": 0.5}, optim={"lr": 2e-3},
                         augmentation={"enabled": False})  # fmt: skip
    result = _train(section, a3d_tiny, tiny_tokenizers, body_model, tmp_path)
    losses = [row["loss"] for row in result.history]
    assert result.complete and len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_killing_and_resuming_gives_exactly_the_weights_of_one_run(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    section = tiny_ajahr(train={"steps": 4})
    _train(section, a3d_tiny, tiny_tokenizers, body_model, tmp_path / "whole")
    first = _train(section, a3d_tiny, tiny_tokenizers, body_model, tmp_path / "split", max_steps_this_run=2)
    assert not first.complete and first.step == 2
    saved = read_training_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert saved["step"] == 2 and not saved["complete"] and not (tmp_path / "split" / "metrics.json").exists()
    second = _train(section, a3d_tiny, tiny_tokenizers, body_model, tmp_path / "split")
    assert second.complete and second.step == 4
    a = read_training_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = read_training_checkpoint(tmp_path / "split" / "checkpoint.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    for key, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], b["optimizer"]["state"][key]["exp_avg"])
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert {"test", "per_class", "bpac", "checks", "train"} <= set(metrics)
    # The training time adds up over the resumes and survives a rerun over the finished checkpoint.
    assert second.total_seconds == pytest.approx(first.total_seconds + second.seconds, abs=1e-6)
    assert (
        metrics["train"]["seconds"] == round(second.total_seconds, 1) >= metrics["train"]["seconds_this_run"]
    )
    again = _train(section, a3d_tiny, tiny_tokenizers, body_model, tmp_path / "split")
    assert again.complete and again.seconds == 0.0 and again.total_seconds == second.total_seconds
    assert (tmp_path / "split" / "predictions.npz").exists()
    assert (tmp_path / "split" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_a_compiled_backbone_is_compiled_and_its_checkpoint_loads_and_resumes_uncompiled(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    """train.compile changes how fast, not what is learned: the checkpoint keeps the backbone's
    own parameter names, so a run resumes without compiling and the model loads for inference."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    first = _train(tiny_ajahr(train={"steps": 4, "compile": True}), a3d_tiny, tiny_tokenizers, body_model,
                   tmp_path, max_steps_this_run=2)  # fmt: skip
    assert counters["stats"]["unique_graphs"] >= 1  # the backbone's forward went through dynamo
    saved = read_training_checkpoint(tmp_path / "checkpoint.pt")
    assert first.step == 2 and not any("_orig_mod" in name for name in saved["model"])
    second = _train(tiny_ajahr(train={"steps": 4}), a3d_tiny, tiny_tokenizers, body_model, tmp_path)
    assert second.complete and second.step == 4 and not list(tmp_path.glob("checkpoint.settings-*"))
    model = load_trained_model(tmp_path / "checkpoint.pt", tiny_tokenizers, body_model)
    assert not model.training


def test_init_weights_load_a_backbone_or_a_whole_checkpoint_and_say_what_does_not_fit(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    settings = tiny_ajahr().settings()
    torch.manual_seed(1)
    source = build_ajahr(settings, tiny_tokenizers, body_model)
    torch.manual_seed(2)
    model = build_ajahr(settings, tiny_tokenizers, body_model)
    decoder_before = {k: v.clone() for k, v in model.layers.state_dict().items()}
    # A bare timm ViT state dict (ViT names without the prefix) goes to the backbone only.
    torch.save(source.backbone.state_dict(), tmp_path / "vit.pt")
    left = load_init_weights(model, tmp_path / "vit.pt")
    assert all(
        torch.equal(v, source.backbone.state_dict()[k]) for k, v in model.backbone.state_dict().items()
    )
    assert all(torch.equal(v, decoder_before[k]) for k, v in model.layers.state_dict().items())
    assert left and not any(name.startswith("backbone.") for name in left)
    # The same under "backbone." inside a "state_dict" entry, as ViTPose / HMR2.0 files keep it.
    prefixed = {f"backbone.{k}": v for k, v in source.backbone.state_dict().items()}
    torch.save({"state_dict": prefixed, "meta": {}}, tmp_path / "vitpose.pth")
    assert load_init_weights(model, tmp_path / "vitpose.pth") == left
    # A finished checkpoint of the stage: the whole trained model.
    _train(tiny_ajahr(train={"steps": 1}), a3d_tiny, tiny_tokenizers, body_model, tmp_path / "run")
    assert load_init_weights(model, tmp_path / "run" / "checkpoint.pt") == []
    trained = read_training_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    assert all(torch.equal(p, trained[n]) for n, p in model.trainable_named_parameters())
    with pytest.raises(WeightsFileError, match=r"vit\.pt: fields \['backbone\.pos_embed'\] do not fit"):
        torch.save({"pos_embed": torch.zeros(1, 7, 3)}, tmp_path / "vit.pt")
        load_init_weights(model, tmp_path / "vit.pt")
    torch.save({"kind": "keypoint_detector", "complete": True, "model": {}}, tmp_path / "detector.pt")
    with pytest.raises(WeightsFileError, match=r"detector\.pt: field 'kind' is 'keypoint_detector'"):
        load_init_weights(model, tmp_path / "detector.pt")
    torch.save(b"not a state dict", tmp_path / "bytes.pt")
    with pytest.raises(WeightsFileError, match=r"bytes\.pt: expected a state dict"):
        load_init_weights(model, tmp_path / "bytes.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(WeightsFileError, match=r"other\.pt: no tensor fits this model"):
        load_init_weights(model, tmp_path / "other.pt")


def test_partial_finetuning_needs_init_weights_and_then_moves_only_the_unfrozen_layers(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    partial = tiny_ajahr(
        train={"steps": 2}, finetune={"mode": "partial", "vit_blocks": 1, "decoder_layers": 1}
    )
    with pytest.raises(ValueError, match="init_weights"):
        _train(partial, a3d_tiny, tiny_tokenizers, body_model, tmp_path / "partial")
    _train(tiny_ajahr(train={"steps": 1}), a3d_tiny, tiny_tokenizers, body_model, tmp_path / "start")
    start = read_training_checkpoint(tmp_path / "start" / "checkpoint.pt")["model"]
    result = _train(partial, a3d_tiny, tiny_tokenizers, body_model, tmp_path / "partial",
                    init_weights=tmp_path / "start" / "checkpoint.pt")  # fmt: skip
    assert result.complete
    tuned = read_training_checkpoint(tmp_path / "partial" / "checkpoint.pt")["model"]
    last = max(int(name.split(".")[2]) for name in tuned if name.startswith("backbone.blocks."))
    frozen, trained = "backbone.blocks.0.attn.qkv.weight", f"backbone.blocks.{last}.attn.qkv.weight"
    assert torch.equal(tuned[frozen], start[frozen]) and not torch.equal(tuned[trained], start[trained])


def test_changed_settings_set_the_old_checkpoint_aside_instead_of_resuming(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    _train(tiny_ajahr(train={"steps": 2}), a3d_tiny, tiny_tokenizers, body_model, tmp_path)
    _train(
        tiny_ajahr(train={"steps": 2}, optim={"lr": 5e-4}), a3d_tiny, tiny_tokenizers, body_model, tmp_path
    )
    assert len(list(tmp_path.glob("checkpoint.settings-*.pt"))) == 1


def test_an_unreadable_checkpoint_is_set_aside_once_and_the_run_starts_over(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path, caplog
):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        result = _train(tiny_ajahr(train={"steps": 1}), a3d_tiny, tiny_tokenizers, body_model, tmp_path)
    assert result.complete and result.step == 1
    assert (tmp_path / "checkpoint.unreadable.pt").read_bytes() == b"not a checkpoint"
    assert [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()] == [
        f"set aside {tmp_path / 'checkpoint.pt'} as checkpoint.unreadable.pt (unreadable)"
    ]


def test_a_nan_loss_stops_naming_the_step_and_samples_and_keeps_the_last_checkpoint(a3d_tiny, tmp_path):
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee", "non_amputee"]))
    settings = tiny_keypoints(steps=6, checkpoint_every=2).settings()
    model = torch.nn.Linear(3, 1)

    def loss_fn(wrapped, batch, step):
        value = wrapped(batch["image"].float().mean((2, 3))).mean()
        return (value * float("nan") if step == 3 else value), {}

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(NonFiniteLossError, match=r"step 3: the loss is nan .* on samples \['train-"):
        fit(fabric=make_fabric(settings.train), model=model, parameters=list(model.parameters()), loss_fn=loss_fn,
            dataset=dataset, parts=[r.part for r in dataset.refs], run=settings.train, optim=settings.optim,
            checkpoint=checkpoint, settings_fp="x", progress=False)  # fmt: skip
    assert read_training_checkpoint(checkpoint)["step"] == 2


def test_finite_loss_with_non_finite_gradients_stops_before_the_step(a3d_tiny, tmp_path):
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee", "non_amputee"]))
    settings = tiny_keypoints(steps=6, checkpoint_every=2).settings()
    model = torch.nn.Linear(3, 1)

    def loss_fn(wrapped, batch, step):
        value = wrapped(batch["image"].float().mean((2, 3))).mean()
        if step == 3:  # sqrt'(0) = inf: the loss stays finite (0 added), its gradients do not
            value = value + torch.sqrt(value - value.detach())
        return value, {}

    for clip in (1.0, None):  # the norm comes from the clipping, or is computed for the check
        checkpoint = tmp_path / f"clip-{clip}.pt"
        optim = settings.optim.model_copy(update={"grad_clip": clip})
        with pytest.raises(
            NonFiniteLossError, match=r"step 3: the loss is .* but its gradients are not finite"
        ):
            fit(fabric=make_fabric(settings.train), model=model, parameters=list(model.parameters()),
                loss_fn=loss_fn, dataset=dataset, parts=[r.part for r in dataset.refs], run=settings.train,
                optim=optim, checkpoint=checkpoint, settings_fp="x", progress=False)  # fmt: skip
        saved = read_training_checkpoint(checkpoint)
        assert saved["step"] == 2 and all(torch.isfinite(t).all() for t in saved["model"].values())


def test_a_resumed_run_continues_the_global_random_stream_of_the_uninterrupted_one(a3d_tiny, tmp_path):
    """Dropout, drop-path and the like draw from torch's global stream; starting the loader must
    not draw from it, or a resumed run would continue one draw off the uninterrupted one."""
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee", "non_amputee"]))
    settings = tiny_keypoints(steps=4, batch_size=2).settings()

    def run(checkpoint, **limits):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)

        def loss_fn(wrapped, batch, step):
            features = batch["image"].float().mean((2, 3)) / 255
            return wrapped(torch.nn.functional.dropout(features, 0.5)).square().mean(), {}

        return fit(fabric=make_fabric(settings.train), model=model, parameters=list(model.parameters()),
                   loss_fn=loss_fn, dataset=dataset, parts=[r.part for r in dataset.refs], run=settings.train,
                   optim=settings.optim, checkpoint=checkpoint, settings_fp="x", progress=False, **limits)  # fmt: skip

    run(tmp_path / "whole.pt")
    run(tmp_path / "split.pt", max_steps_this_run=2)
    torch.manual_seed(123)  # whatever the process drew in between is restored from the checkpoint
    run(tmp_path / "split.pt")
    a, b = (read_training_checkpoint(tmp_path / name)["model"] for name in ("whole.pt", "split.pt"))
    assert all(torch.equal(a[name], b[name]) for name in a)


_KILLED_RUN = """
import sys, torch
from pathlib import Path
from ajahr_model.training.detector import train_detector
from tests.ajahr_model.conftest_ajahr import tiny_keypoints
torch.set_num_threads(int(sys.argv[3]))
train_detector(tiny_keypoints(steps=int(sys.argv[4]), checkpoint_every=1).settings(), Path(sys.argv[1]),
               Path(sys.argv[2]), progress=False)
"""


def test_a_run_killed_by_sigkill_resumes_to_exactly_the_weights_of_one_run(a3d_tiny, tmp_path):
    """A real kill (SIGKILL, no handler runs) at whatever moment: the checkpoint on disk is a
    whole one (written to a temporary name, then renamed), and resuming from it gives the
    uninterrupted run's weights bit for bit."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    steps = 80  # a checkpoint every step: killed after the third, long before the end
    repo = Path(__file__).resolve().parents[2]
    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoint.pt"
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(a3d_tiny), str(killed), str(torch.get_num_threads()), str(steps)],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    deadline, saves, last = time.monotonic() + 300, 0, None
    try:
        while saves < 3 and process.poll() is None:  # three saves seen: a few steps in
            if time.monotonic() > deadline:
                pytest.fail(f"the training subprocess wrote no checkpoint in 300 s ({checkpoint})")
            stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            if stamp is not None and stamp != last:
                saves, last = saves + 1, stamp
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    at_kill = read_training_checkpoint(checkpoint)
    assert 1 <= at_kill["step"] < steps and not at_kill["complete"]
    # checkpoint_every only says how often a run saves: not part of what it learns.
    settings = tiny_keypoints(steps=steps, checkpoint_every=steps).settings()
    resumed = train_detector(settings, a3d_tiny, killed, progress=False)
    assert resumed.complete and not list(killed.glob("checkpoint.settings-*"))
    train_detector(settings, a3d_tiny, tmp_path / "whole", progress=False)
    a = read_training_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = read_training_checkpoint(killed / "checkpoint.pt")
    assert all(torch.equal(a["model"][name], b["model"][name]) for name in a["model"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_a_batch_lost_to_corrupt_images_is_skipped_and_a_resumed_run_draws_the_next_one(a3d_tiny, tmp_path):
    """The sampler's batch number runs ahead of the step by one for each skipped batch; the
    checkpoint keeps it, so resuming after a skip continues with the batch the whole run drew."""
    copy = tmp_path / "a3d"
    shutil.copytree(a3d_tiny, copy)
    refs = index_samples(copy, "train", ["amputee", "non_amputee"])
    settings = tiny_keypoints(steps=4, batch_size=2, max_corrupt_fraction=1.0).settings()
    for index, _ in BalancedBatches([r.part for r in refs], 2, 0.5, settings.train.seed).batch(1):
        offset, size = refs[index].image
        with open(refs[index].shard, "r+b") as shard:  # batch 1 loses both its images
            shard.seek(offset)
            shard.write(b"\x00" * size)
    dataset = A3DDataset(refs)

    def run(checkpoint, **limits):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)

        def loss_fn(wrapped, batch, step):
            return wrapped(batch["image"].float().mean((2, 3)) / 255).square().mean(), {}

        return fit(fabric=make_fabric(settings.train), model=model, parameters=list(model.parameters()),
                   loss_fn=loss_fn, dataset=dataset, parts=[r.part for r in refs], run=settings.train,
                   optim=settings.optim, checkpoint=checkpoint, settings_fp="x", progress=False, **limits)  # fmt: skip

    whole = run(tmp_path / "whole.pt")
    assert whole.complete and whole.corrupt >= 2
    assert read_training_checkpoint(tmp_path / "whole.pt")["batches_drawn"] >= 5  # 4 steps, 1 skip
    first = run(tmp_path / "split.pt", max_steps_this_run=2)  # steps on batches 0 and 2
    assert read_training_checkpoint(tmp_path / "split.pt")["batches_drawn"] == 3 and first.step == 2
    run(tmp_path / "split.pt")
    a, b = (read_training_checkpoint(tmp_path / name)["model"] for name in ("whole.pt", "split.pt"))
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_the_detector_stage_writes_its_checkpoint_metrics_and_curve(a3d_tiny, tmp_path):
    result = train_detector(tiny_keypoints(steps=2).settings(), a3d_tiny, tmp_path, progress=False)
    assert result.complete
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["amputee"]["state_confusion"]) == {"present", "occluded", "absent"}
    assert 0.0 <= metrics["occlusion"]["state_accuracy"] <= 1.0
    assert (tmp_path / "loss_curve.png").exists()


def test_a_finished_detector_is_retrained_when_its_training_data_changed(a3d_tiny, tmp_path):
    """DVC reruns the stage when the dataset changes; a finished checkpoint of the same settings
    must not then be taken as already trained on the new data."""
    copy = tmp_path / "a3d"
    shutil.copytree(a3d_tiny, copy)
    out = tmp_path / "detector"
    settings = tiny_keypoints(steps=1).settings()
    train_detector(settings, copy, out, progress=False)
    train_detector(settings, copy, out, progress=False)  # the same data: resumed, nothing set aside
    assert not list(out.glob("checkpoint.settings-*.pt"))
    refs = index_samples(copy, "train", ["amputee", "non_amputee"])
    offset, _ = refs[0].image
    with open(refs[0].shard, "r+b") as shard:  # new bytes, as a new synthesis writes
        shard.seek(offset + 100)
        shard.write(b"\x00" * 16)
    (copy / "shards.parquet").unlink()  # no record: the file's own hash counts
    result = train_detector(settings, copy, out, progress=False)
    assert result.complete and len(list(out.glob("checkpoint.settings-*.pt"))) == 1


def test_loading_a_detector_leaves_the_random_stream_of_the_next_model_alone(a3d_tiny, tmp_path):
    # Otherwise the initial weights of the model trained next would depend on which detector
    # (which architecture) the run loaded.
    train_detector(tiny_keypoints(steps=1).settings(), a3d_tiny, tmp_path, progress=False)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    load_detector(tmp_path / "checkpoint.pt")
    assert torch.equal(torch.rand(4), expected)


def test_the_keypoint_query_trains_on_the_detectors_keypoints(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    detector = tmp_path / "detector"
    train_detector(tiny_keypoints(steps=2).settings(), a3d_tiny, detector, progress=False)
    settings = tiny_ajahr(train={"steps": 2}, model={"keypoint_query": True}).settings(variant="hmr2")
    assert settings.query_keypoints == "detector"
    with pytest.raises(ValueError, match="query_keypoints is 'detector'"):
        train_ajahr(settings, a3d_tiny, tiny_tokenizers, None, body_model, tmp_path / "run", progress=False)
    result = train_ajahr(
        settings, a3d_tiny, tiny_tokenizers, detector / "checkpoint.pt", body_model, tmp_path / "run",
        progress=False, variant="hmr2",
    )  # fmt: skip
    assert result.complete and (tmp_path / "run" / "metrics.json").exists()
    # Without the query, or with the query on the true keypoints, training needs no detector.
    plain = tiny_ajahr(train={"steps": 1}).settings(variant="hmr2")
    on_truth = tiny_ajahr(
        train={"steps": 1}, model={"keypoint_query": True}, query_keypoints="ground_truth"
    ).settings(variant="hmr2")
    for name, run in (("plain", plain), ("on_truth", on_truth)):
        assert train_ajahr(
            run, a3d_tiny, tiny_tokenizers, None, body_model, tmp_path / name, progress=False
        ).complete


def test_bpac_net_can_train_on_the_detectors_keypoints_and_a_new_detector_restarts_the_run(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    first, second = tmp_path / "detector1", tmp_path / "detector2"
    train_detector(tiny_keypoints(steps=2).settings(), a3d_tiny, first, progress=False)
    train_detector(tiny_keypoints(steps=3).settings(), a3d_tiny, second, progress=False)
    settings = tiny_ajahr(train={"steps": 2}, bpac_keypoints="detector").settings()
    with pytest.raises(ValueError, match="bpac_keypoints is 'detector'"):
        train_ajahr(settings, a3d_tiny, tiny_tokenizers, None, body_model, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    result = train_ajahr(
        settings, a3d_tiny, tiny_tokenizers, first / "checkpoint.pt", body_model, run, progress=False
    )
    assert result.complete and (run / "metrics.json").exists()
    # The detector is part of what BPAC-Net learned from: another one sets the run aside.
    train_ajahr(
        settings, a3d_tiny, tiny_tokenizers, second / "checkpoint.pt", body_model, run, progress=False
    )
    assert len(list(run.glob("checkpoint.settings-*.pt"))) == 1


def test_the_cpu_lifting_path_trains_end_to_end_on_a_keypoint_prior(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    """The cpu profile's wiring: a detector reading the prior, AJAHR's query reading the
    detector's located keypoints, the orientation from regressed joints; each stage without the
    prior names the option and the stage that makes it."""
    prior = make_truth_prior(a3d_tiny, tmp_path / "prior")
    detector = tmp_path / "detector"
    keypoints = tiny_keypoints(steps=2)
    keypoints = keypoints.model_copy(
        update={
            "profiles": {
                "cpu": {**keypoints.profiles["cpu"], "model": {"input_size": 32, "prior_input": True}}
            }
        }
    )
    with pytest.raises(ValueError, match="keypoint_prior stage"):
        train_detector(keypoints.settings(), a3d_tiny, detector, progress=False)
    assert train_detector(keypoints.settings(), a3d_tiny, detector, progress=False, prior_path=prior).complete
    metrics = json.loads((detector / "metrics.json").read_text())
    assert metrics["non_amputee"]["pck_0.05_visible"] > 0.5  # positions from the (3 px) prior
    settings = tiny_ajahr(
        train={"steps": 2},
        model={"keypoint_query": True, "root_from_joints": True, "rest_pose_token_logit": 6.0},
        loss={"joints_direct": 0.05},
        optim={"lr": 5e-4, "bpac_lr": 1e-3},
    ).settings()
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="keypoint_prior stage"):
        train_ajahr(
            settings, a3d_tiny, tiny_tokenizers, detector / "checkpoint.pt", body_model, run, progress=False
        )
    result = train_ajahr(
        settings, a3d_tiny, tiny_tokenizers, detector / "checkpoint.pt", body_model, run, progress=False,
        prior_path=prior,
    )  # fmt: skip
    assert result.complete
    history = read_training_checkpoint(run / "checkpoint.pt")["history"]
    assert all(row["joints_direct"] > 0 for row in history)
    assert json.loads((run / "metrics.json").read_text())["test"]["amputee"]["samples"] == 4
