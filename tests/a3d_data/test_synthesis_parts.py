"""Pieces of the A3D synthesis: camera framing, keypoint states, occluders, splits, shards."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from a3d_data.skeleton import COCO_LIMB_CHAINS
from a3d_data.synthesis.camera import BODY_TO_CAMERA, place_in_crop, project, yaw_of
from a3d_data.synthesis.keypoints import keypoint_segments, keypoint_states, state_bitmask
from a3d_data.synthesis.occlusion import draw_occluders
from a3d_data.synthesis.schema import BBOX_SCALE_UNIT, KeypointState
from a3d_data.synthesis.shards import Sample, file_sha256, write_shard
from a3d_data.synthesis.splits import pose_group_split


def _upright_bodies(body_model, count: int) -> torch.Tensor:
    rotmats = torch.eye(3).repeat(count, 24, 1, 1)
    rotmats[:, 0] = BODY_TO_CAMERA
    with torch.no_grad():
        return body_model.forward_rotmats(rotmats).vertices


def test_body_to_camera_turns_an_upright_body_head_up_in_the_image(body_model):
    vertices = _upright_bodies(body_model, 1)
    camera = place_in_crop(vertices, np.random.default_rng(0), (0.8, 0.8), 0.0, 0.0, (0.2, 0.3))
    pixels = project(vertices + camera.cam_t[:, None], camera.focal, camera.principal)[0]
    head_top, feet = pixels[vertices[0, :, 1].argmin()], pixels[vertices[0, :, 1].argmax()]
    assert head_top[1] < feet[1]  # image y grows downwards: the head is above the feet


def test_the_body_fills_the_requested_share_of_the_crop_at_the_hmr2_focal(body_model):
    vertices = _upright_bodies(body_model, 4)
    rng = np.random.default_rng(1)
    camera = place_in_crop(vertices, rng, (0.7, 0.7), 0.0, 0.0, (0.2, 0.3))
    assert camera.focal == 5000.0 and camera.crop_size == 256
    pixels = project(vertices + camera.cam_t[:, None], camera.focal, camera.principal)
    side = (pixels.amax(1) - pixels.amin(1)).amax(1)
    torch.testing.assert_close(side, torch.full((4,), 0.7 * 256), atol=3.0, rtol=0)
    torch.testing.assert_close(camera.bbox_scale, side / BBOX_SCALE_UNIT)
    torch.testing.assert_close(camera.bbox_center, torch.full((4, 2), 128.0), atol=2.0, rtol=0)
    assert (camera.cam_t[:, 2] > 20).all()  # focal 5000 puts people tens of metres away


def test_truncation_pushes_the_body_across_the_crop_edge(body_model):
    vertices = _upright_bodies(body_model, 16)
    camera = place_in_crop(vertices, np.random.default_rng(2), (0.9, 0.9), 0.0, 1.0, (0.4, 0.4))
    pixels = project(vertices + camera.cam_t[:, None], camera.focal, camera.principal)
    outside = ((pixels < 0) | (pixels >= 256)).any(-1).any(-1)
    assert outside.all()


def test_yaw_reads_where_the_body_faces():
    angle = torch.deg2rad(torch.tensor(30.0))
    c, s = torch.cos(angle), torch.sin(angle)
    rotation = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])[None]
    assert yaw_of(rotation).item() == pytest.approx(30.0, abs=1e-4)


def _render_stub(batch: int, face: int, depth: float, size: int = 8):
    face_id = torch.full((batch, size, size), face, dtype=torch.long)
    return face_id, torch.full((batch, size, size), depth)


def test_keypoint_states_follow_their_precedence():
    segments = torch.zeros(10, dtype=torch.long)
    segments[3] = 20  # triangle 3 belongs to the left wrist
    keypoints = torch.full((1, 17, 2), 4.0)
    keypoints[0, 1] = torch.tensor([-3.0, 4.0])  # left eye outside the crop
    depth = torch.full((1, 17), 40.0)
    absent = torch.zeros(1, 17, dtype=torch.bool)
    absent[0, 10] = True  # right wrist amputated (and at a pixel where something is shown)
    face_id, shown_depth = _render_stub(1, 3, 39.95)
    states = keypoint_states(keypoints, depth, absent, face_id, shown_depth, segments)[0]
    assert states[9] == KeypointState.VISIBLE  # the left wrist shows its own triangle
    assert states[1] == KeypointState.OUTSIDE
    assert states[10] == KeypointState.ABSENT
    assert states[11] == KeypointState.OCCLUDED  # the left hip is behind the left wrist's triangle


def test_a_surface_well_in_front_of_its_own_keypoint_hides_it():
    segments = torch.full((10,), 15, dtype=torch.long)  # everything is head
    keypoints = torch.full((1, 17, 2), 4.0)
    face_id, shown_depth = _render_stub(1, 0, 39.5)  # the back of the head, 50 cm in front
    states = keypoint_states(keypoints, torch.full((1, 17), 40.0), torch.zeros(1, 17, dtype=torch.bool),
                             face_id, shown_depth, segments)  # fmt: skip
    assert states[0, 0] == KeypointState.OCCLUDED  # the nose on the far side of the head


def test_empty_pixels_and_occluders():
    segments = torch.zeros(10, dtype=torch.long)
    keypoints = torch.full((2, 17, 2), 4.0)
    face_id, shown_depth = _render_stub(2, -1, float("inf"))
    occluder = torch.zeros(2, 8, 8, dtype=torch.bool)
    occluder[1] = True
    states = keypoint_states(keypoints, torch.full((2, 17), 40.0), torch.zeros(2, 17, dtype=torch.bool),
                             face_id, shown_depth, segments, occluder)  # fmt: skip
    assert (states[0] == KeypointState.VISIBLE).all()
    assert (states[1] == KeypointState.OCCLUDED).all()


def test_a_keypoint_segment_includes_the_neighbouring_bones():
    allowed = keypoint_segments()
    assert allowed[9, 20] and allowed[9, 18] and allowed[9, 22]  # left wrist: wrist, elbow, hand
    assert not allowed[9, 21]


def test_state_bitmask_sets_one_bit_per_keypoint():
    states = np.zeros((1, 17), dtype=np.uint8)
    states[0, [9, 7]] = KeypointState.ABSENT
    assert state_bitmask(states, KeypointState.ABSENT)[0] == (1 << 9) | (1 << 7)


def test_occluders_cover_the_keypoints_they_hide():
    rng = np.random.default_rng(3)
    images = np.zeros((12, 256, 256, 3), dtype=np.uint8)
    keypoints = rng.uniform(60, 200, (12, 17, 2))
    out, occluders = draw_occluders(images, keypoints, rng)
    for i, occluder in enumerate(occluders):
        chain = COCO_LIMB_CHAINS[occluder.limb][2 - occluder.level :]
        for k in chain:
            x, y = keypoints[i, k].astype(int)
            assert occluder.mask[y, x]
        assert (out[i][~occluder.mask] == 0).all()  # nothing drawn outside the mask
    assert {o.level for o in occluders} == {0, 1, 2}


def test_file_pose_groups_go_to_one_split_and_all_splits_get_some():
    splits = [pose_group_split(f"amass/clip_{i}.npz#{frame}") for i in range(300) for frame in (0, 7)]
    assert all(splits[2 * i] == splits[2 * i + 1] for i in range(300))  # frames follow their file
    shares = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert shares["train"] > 0.7 and shares["val"] > 0.05 and shares["test"] > 0.05


def test_shards_are_written_whole_with_their_checksum(tmp_path):
    samples = [Sample(key=f"s-{i:03d}", jpeg=b"j" * (i + 1), labels=b"n" * 3, row={}) for i in range(5)]
    path = tmp_path / "shards" / "train" / "amputee-00000.tar"
    count, checksum, size = write_shard(path, samples)
    assert (count, size) == (5, path.stat().st_size)
    assert checksum == file_sha256(path)
    with tarfile.open(path) as tar:
        assert tar.getnames()[:4] == ["s-000.jpg", "s-000.npz", "s-001.jpg", "s-001.npz"]
    again = tmp_path / "again.tar"
    assert write_shard(again, samples)[1] == checksum  # same content, same bytes


def test_a_shard_killed_mid_write_leaves_nothing(tmp_path):
    def dying():
        yield Sample(key="a", jpeg=b"1", labels=b"2", row={})
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / "x.tar", dying())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("yaw_degrees", [0.0, 180.0])
def test_a_standing_body_shows_its_shoulders_and_hips_from_the_front_and_from_behind(body_model, yaw_degrees):
    from a3d_data.figures.painter import yaw_rotation
    from a3d_data.render import create_renderer
    from a3d_data.render.base import Lights
    from a3d_data.synthesis.keypoints import face_segments

    rotmats = torch.eye(3).repeat(1, 24, 1, 1)
    rotmats[0, 0] = BODY_TO_CAMERA @ yaw_rotation(yaw_degrees)
    with torch.no_grad():
        out = body_model.forward_rotmats(rotmats)
    camera = place_in_crop(out.vertices, np.random.default_rng(0), (0.8, 0.8), 0.0, 0.0, (0.2, 0.3))
    vertices = out.vertices + camera.cam_t[:, None]
    coco = body_model.coco_keypoints(vertices)
    faces = torch.as_tensor(body_model.faces.astype(np.int64))
    rendered = create_renderer("torch").render(
        vertices, faces, torch.full_like(vertices, 0.5), torch.full((1,), camera.focal), camera.principal,
        256, Lights.headlight(1),
    )  # fmt: skip
    states = keypoint_states(
        project(coco, camera.focal, camera.principal), coco[..., 2], torch.zeros(1, 17, dtype=torch.bool),
        rendered.face_id, rendered.depth, face_segments(body_model.lbs_weights, faces),
    )[0]  # fmt: skip
    for k in (5, 6, 11, 12):  # shoulders and hips
        assert states[k] == KeypointState.VISIBLE, k
    face = states[:5]
    if yaw_degrees == 0.0:
        assert (face == KeypointState.VISIBLE).all()
    else:  # the nose and eyes are on the far side of the head
        assert face[0] == KeypointState.OCCLUDED and (face[1:3] == KeypointState.OCCLUDED).all()
