"""The A3D renderer: what a rendered image, depth map and face-id map mean, on both backends.

Scenes use the OpenCV camera of HMR2 crops: focal 5000 px, a 256 px square, the body about 40 m
away. Every behaviour is checked on the torch rasterizer and on the OpenGL (EGL) renderer; the
OpenGL cases are skipped on machines without EGL.
"""

from __future__ import annotations

import pickle
import threading

import pytest
import torch

from a3d_data.amputation import amputate, collapsed_vertex_mask, head_labels_from_classes, zeroed_joint_mask
from a3d_data.render import (
    EGL_DEBIAN_PACKAGES,
    Lights,
    OpenGLRenderer,
    RendererUnavailableError,
    TorchRenderer,
    create_renderer,
    egl_available,
)
from a3d_data.render import opengl as opengl_module
from tests.conftest import random_rotmats

SIZE = 256  # pixels
FOCAL = 5000.0  # pixels
DISTANCE = 40.0  # metres from the camera to the body
# The body model is upright and faces +z in its own frame (y up); a half turn about x makes it
# upright in the OpenCV camera (y down) and facing the camera (-z).
BODY_TO_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
RIGHT_ELBOW_AMPUTATION = 1  # AJAHR index: forearm and hand removed

NO_EGL = f"no EGL context here (Debian packages {', '.join(EGL_DEBIAN_PACKAGES)})"
BACKENDS = [
    pytest.param("torch", id="torch"),
    pytest.param("opengl", id="opengl", marks=pytest.mark.skipif(not egl_available(), reason=NO_EGL)),
]


@pytest.fixture(scope="module", params=BACKENDS)
def renderer(request):
    return create_renderer(request.param)


def _render(renderer, vertices, faces, colours=None, background=None, lights=None, size=SIZE, focal=FOCAL):
    batch = vertices.shape[0]
    return renderer.render(
        vertices,
        faces,
        torch.full_like(vertices, 0.8) if colours is None else colours,
        torch.full((batch,), focal),
        torch.full((batch, 2), size / 2),
        size,
        Lights.headlight(batch) if lights is None else lights,
        background,
    )


def _pixel_rays(size=SIZE, focal=FOCAL):
    """Directions (S, S, 3) through each pixel centre, scaled to z = 1."""
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([(u - size / 2) / focal, (v - size / 2) / focal, torch.ones_like(u)], dim=-1)


def _project(points, size=SIZE, focal=FOCAL):
    """Pixel coordinates (..., 2) of camera-frame points (..., 3)."""
    return focal * points[..., :2] / points[..., 2:] + size / 2


def _square(z: float, half_width: float, x0: float = 0.0) -> torch.Tensor:
    """Corners (4, 3) of a fronto-parallel square at depth z (metres), for SQUARE_FACES."""
    return torch.tensor(
        [[x0 - half_width, -half_width, z], [x0 + half_width, -half_width, z],
         [x0 + half_width, half_width, z], [x0 - half_width, half_width, z]]
    )  # fmt: skip


# Wound so that the outward normal, (c1 - c0) x (c2 - c0), points at the camera (-z).
SQUARE_FACES = torch.tensor([[0, 2, 1], [0, 3, 2]])


def _body(body_model, classes=(12,), max_angle=0.0, seed=0):
    """Posed bodies (B, V, 3) in the camera frame, ~40 m away and centred in the crop.

    ``classes``: one AJAHR index per body (12 = intact); ``max_angle`` > 0 adds a random pose.
    The placement depends only on the intact pose, so intact and amputee renders line up.
    """
    batch = len(classes)
    if max_angle > 0:
        rotmats = random_rotmats(torch.Generator().manual_seed(seed), batch, max_angle)
    else:
        rotmats = torch.eye(3).expand(batch, 24, 3, 3).clone()
    rotmats[:, 0] = BODY_TO_CAMERA
    with torch.no_grad():
        intact = body_model.forward_rotmats(rotmats).vertices
        labels = head_labels_from_classes(torch.tensor(classes))
        posed = body_model.forward_rotmats(amputate(rotmats, labels)).vertices
    centre = (intact.amin(1) + intact.amax(1)) / 2
    return posed - centre[:, None] + torch.tensor([0.0, 0.0, DISTANCE])


def _faces(body_model):
    return body_model.faces_tensor.long()


# --- the two backends draw the same thing --------------------------------------------------------


@pytest.mark.skipif(not egl_available(), reason=NO_EGL)
def test_opengl_and_torch_draw_the_same_body(body_model):
    vertices = torch.cat([_body(body_model), _body(body_model, max_angle=0.5, seed=3)])
    gl = _render(create_renderer("opengl"), vertices, _faces(body_model))
    reference = _render(create_renderer("torch"), vertices, _faces(body_model))

    both, either = gl.mask & reference.mask, gl.mask | reference.mask
    for image in range(2):
        assert both[image].sum() / either[image].sum() > 0.97  # mask IoU per image
    assert reference.mask.sum() > 0.08 * vertices.shape[0] * SIZE**2  # the body fills the crop
    depth_gap = (gl.depth[both] - reference.depth[both]).abs()
    assert depth_gap.median() < 1e-4  # metres: the same surface under nearly every pixel
    assert torch.quantile(depth_gap, 0.99) < 0.02  # the rest: which side of an edge wins
    colour_gap = (gl.rgb[both].float() - reference.rgb[both].float()).abs()
    assert colour_gap.mean() < 1.0  # 8-bit levels


# --- depth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("z", [0.5, 5.0, 40.0, 80.0])
def test_depth_of_a_fronto_parallel_square_is_its_distance(renderer, z):
    # A square filling the middle half of the crop at any HMR2-like distance.
    half_width = z * (SIZE / 4) / FOCAL
    out = _render(renderer, _square(z, half_width)[None], SQUARE_FACES)
    inside = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    inside[SIZE // 4 : 3 * SIZE // 4, SIZE // 4 : 3 * SIZE // 4] = True
    assert torch.equal(out.mask[0], inside)
    torch.testing.assert_close(out.depth[0][inside], torch.full((int(inside.sum()),), z), rtol=1e-6, atol=0)
    assert torch.isinf(out.depth[0][~inside]).all()
    assert (out.face_id[0][~inside] == -1).all()


def test_depth_of_a_slanted_triangle_is_where_each_pixel_ray_meets_its_plane(renderer):
    # Corners from 3 m to 7 m deep: depth varies strongly across the image.
    corners = torch.tensor([[-0.2, -0.15, 3.0], [0.35, -0.05, 7.0], [-0.05, 0.4, 5.0]])
    out = _render(renderer, corners[None], torch.tensor([[0, 1, 2]]), focal=1500.0)

    normal = torch.linalg.cross(corners[1] - corners[0], corners[2] - corners[0]).double()
    offset = normal @ corners[0].double()
    rays = _pixel_rays(focal=1500.0)
    expected = offset / (rays @ normal)  # camera z where the ray through the pixel meets the plane
    mask = out.mask[0]
    assert mask.sum() > 2000
    torch.testing.assert_close(out.depth[0][mask].double(), expected[mask], rtol=1e-5, atol=0)


def test_the_nearer_square_hides_the_farther_one_whatever_the_drawing_order(renderer):
    near = _square(4.0, 4.0 * 40 / FOCAL, x0=-4.0 * 20 / FOCAL)  # 80 px wide, shifted left
    far = _square(8.0, 8.0 * 40 / FOCAL, x0=8.0 * 20 / FOCAL)  # 80 px wide, shifted right
    vertices = torch.cat([near, far])[None]
    near_first = torch.cat([SQUARE_FACES, SQUARE_FACES + 4])
    far_first = torch.cat([SQUARE_FACES + 4, SQUARE_FACES])
    for faces, near_ids in ((near_first, (0, 1)), (far_first, (2, 3))):
        out = _render(renderer, vertices, faces)
        overlap = out.depth[0] < 6.0
        shown_near = torch.isin(out.face_id[0], torch.tensor(near_ids))
        assert torch.equal(overlap, shown_near)
        # The overlap, 40 px wide, shows the near square; the far one shows only beside it.
        assert (shown_near.sum(0) > 0).sum() == 80
        assert ((out.face_id[0] >= 0) & ~shown_near).sum(0).gt(0).sum() == 40
        torch.testing.assert_close(out.depth[0][shown_near], torch.full((int(shown_near.sum()),), 4.0))


# --- face ids -------------------------------------------------------------------------------------


def test_each_face_id_names_a_triangle_that_contains_the_pixel_centre(renderer, body_model):
    vertices = _body(body_model, max_angle=0.5, seed=1)
    faces = _faces(body_model)
    out = _render(renderer, vertices, faces)
    rows, cols = torch.nonzero(out.mask[0], as_tuple=True)
    corners = _project(vertices[0].double())[faces[out.face_id[0, rows, cols]]]  # (P, 3, 2)
    centres = torch.stack([cols, rows], dim=1).double() + 0.5

    def cross(a, b):
        return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]

    double_area = cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    for k in range(3):
        a, b = corners[:, (k + 1) % 3], corners[:, (k + 2) % 3]
        # Signed distance (pixels) of the centre from edge k, positive on the triangle's side.
        distance = cross(b - a, centres - a) * double_area.sign() / (b - a).norm(dim=1)
        assert distance.min() > -0.01  # rasterizers snap to 1/256 px or so


def test_depth_matches_the_face_the_pixel_shows(renderer, body_model):
    vertices = _body(body_model, max_angle=0.5, seed=2)
    faces = _faces(body_model)
    out = _render(renderer, vertices, faces)
    rows, cols = torch.nonzero(out.mask[0], as_tuple=True)
    corners = vertices[0].double()[faces[out.face_id[0, rows, cols]]]  # (P, 3, 3)
    normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    rays = _pixel_rays()[rows, cols]
    expected = (normal * corners[:, 0]).sum(1) / (normal * rays).sum(1)
    torch.testing.assert_close(out.depth[0, rows, cols].double(), expected, rtol=1e-5, atol=0)


# --- degenerate input: amputation, zero-area triangles, points behind the camera ---------------


def test_zero_area_triangles_draw_nothing_and_do_not_disturb_the_rest(renderer):
    square = _square(5.0, 5.0 * 40 / FOCAL)
    point = torch.tensor([[0.0, 0.0, 4.0]] * 3)  # three corners on one point, in front of the square
    line = torch.tensor([[-0.1, 0.0, 4.0], [0.0, 0.0, 4.0], [0.1, 0.0, 4.0]])  # collinear
    vertices = torch.cat([point, line, square])[None]
    faces = torch.cat([torch.tensor([[0, 1, 2], [3, 4, 5]]), SQUARE_FACES + 6])
    out = _render(renderer, vertices, faces)
    alone = _render(renderer, square[None], SQUARE_FACES)
    assert torch.equal(out.face_id[0][out.mask[0]] - 2, alone.face_id[0][alone.mask[0]])
    assert torch.equal(out.mask, alone.mask)
    assert torch.equal(out.depth, alone.depth)


def test_triangles_with_a_corner_behind_the_camera_are_skipped(renderer):
    square = _square(5.0, 5.0 * 40 / FOCAL)
    crossing = torch.tensor([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 1.0, -3.0]])  # reaches behind
    behind = torch.tensor([[-1.0, -1.0, -2.0], [1.0, -1.0, -2.0], [0.0, 1.0, -2.0]])
    vertices = torch.cat([square, crossing, behind])[None]
    faces = torch.cat([SQUARE_FACES, torch.tensor([[4, 5, 6], [7, 8, 9]])])
    out = _render(renderer, vertices, faces)
    assert set(out.face_id[0].unique().tolist()) == {-1, 0, 1}


def test_an_amputated_limb_collapses_to_a_point_and_leaves_no_pixels(renderer, body_model):
    faces = _faces(body_model)
    intact = _render(renderer, _body(body_model), faces)
    amputee = _render(renderer, _body(body_model, classes=(RIGHT_ELBOW_AMPUTATION,)), faces)

    zeroed = zeroed_joint_mask(head_labels_from_classes(torch.tensor([RIGHT_ELBOW_AMPUTATION])))
    collapsed_faces = collapsed_vertex_mask(body_model.lbs_weights, zeroed)[0][faces].all(1)  # (F,)
    assert collapsed_faces.sum() > 500  # forearm and hand
    # No pixel shows a collapsed triangle, and where the intact forearm was, there is background.
    assert not collapsed_faces[amputee.face_id[0][amputee.mask[0]]].any()
    forearm = torch.zeros_like(intact.mask[0])
    forearm[intact.mask[0]] = collapsed_faces[intact.face_id[0][intact.mask[0]]]
    assert forearm.sum() > 200
    assert (~amputee.mask[0][forearm]).float().mean() > 0.95
    assert amputee.mask.sum() < intact.mask.sum() - 200


# --- colour and background ------------------------------------------------------------------------


def test_background_shows_exactly_where_no_triangle_is_drawn(renderer, body_model):
    vertices = _body(body_model)
    background = torch.randint(
        0, 256, (1, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    out = _render(renderer, vertices, _faces(body_model), background=background)
    assert out.rgb.dtype == torch.uint8 and out.rgb.shape == (1, SIZE, SIZE, 3)
    assert torch.equal(out.rgb[~out.mask], background[~out.mask])
    assert (out.rgb[out.mask] != background[out.mask]).any(1).float().mean() > 0.95
    black = _render(renderer, vertices, _faces(body_model))
    assert (black.rgb[~black.mask] == 0).all()
    assert torch.equal(black.rgb[black.mask], out.rgb[out.mask])


def test_a_surface_facing_the_light_gets_ambient_plus_diffuse_times_the_cosine(renderer):
    square = _square(5.0, 5.0 * 64 / FOCAL)  # normal towards the camera, (0, 0, -1)
    albedo = torch.tensor([0.9, 0.5, 0.2]).expand(1, 4, 3)
    direction = torch.tensor([[0.0, 0.6, -0.8]])  # towards the light: cosine 0.8 with the normal
    lights = Lights(direction, torch.tensor([0.3]), torch.tensor([0.5]), torch.tensor([[1.0, 1.0, 0.5]]))
    out = _render(renderer, square[None], SQUARE_FACES, colours=albedo, lights=lights)
    expected = torch.tensor([0.9, 0.5, 0.2]) * torch.tensor([1.0, 1.0, 0.5]) * (0.3 + 0.5 * 0.8)
    pixels = out.rgb[out.mask].float()
    assert len(pixels) == (SIZE // 2) ** 2
    assert (pixels - expected * 255).abs().max() <= 1.0


def test_a_surface_facing_away_from_the_light_gets_ambient_light_only(renderer):
    square = _square(5.0, 5.0 * 40 / FOCAL)
    lights = Lights(
        torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([0.25]), torch.tensor([0.75]), torch.ones(1, 3)
    )
    out = _render(renderer, square[None], SQUARE_FACES, colours=torch.ones(1, 4, 3), lights=lights)
    assert (out.rgb[out.mask].float() - 0.25 * 255).abs().max() <= 1.0


# --- batches ----------------------------------------------------------------------------------------


def test_batch_elements_are_rendered_independently(renderer, body_model):
    vertices = torch.cat([_body(body_model, max_angle=0.6, seed=s) for s in range(3)])
    vertices[1] += torch.tensor([0.2, 0.0, 25.0])  # another distance: near/far planes differ
    faces = _faces(body_model)
    generator = torch.Generator().manual_seed(5)
    colours = torch.rand(3, 1, 3, generator=generator).expand_as(vertices).contiguous()
    background = torch.randint(0, 256, (3, SIZE, SIZE, 3), dtype=torch.uint8, generator=generator)
    together = _render(renderer, vertices, faces, colours, background)
    for i in range(3):
        alone = _render(renderer, vertices[i : i + 1], faces, colours[i : i + 1], background[i : i + 1])
        # Coverage is exact. OpenGL interpolates from window coordinates, which differ with the
        # sample's tile of the atlas: a colour may round to the next 8-bit level and depth may
        # change in the last bit of float32 (a few micrometres at 40 m), nothing more.
        assert torch.equal(together.face_id[i], alone.face_id[0])
        assert (together.rgb[i].int() - alone.rgb[0].int()).abs().max() <= 1
        torch.testing.assert_close(together.depth[i], alone.depth[0], rtol=1e-6, atol=0)


def test_a_renderer_can_be_shared_by_threads(renderer, body_model):
    # Worker pools run tasks on threads other than the one that built the renderer; OpenGL gives
    # each thread its own context.
    vertices = _body(body_model, max_angle=0.5, seed=4)
    here = _render(renderer, vertices, _faces(body_model))
    there = {}
    worker = threading.Thread(
        target=lambda: there.update(out=_render(renderer, vertices, _faces(body_model)))
    )
    worker.start()
    worker.join()
    assert torch.equal(there["out"].face_id, here.face_id)
    assert torch.equal(there["out"].rgb, here.rgb)


def test_a_renderer_can_be_sent_to_a_worker_process(renderer):
    # Worker pools pickle what they are given; GL objects are rebuilt on the other side.
    copy = pickle.loads(pickle.dumps(renderer))
    vertices = _square(5.0, 0.2)[None]
    assert torch.equal(
        _render(copy, vertices, SQUARE_FACES).face_id, _render(renderer, vertices, SQUARE_FACES).face_id
    )


def test_outputs_have_the_documented_types(renderer):
    out = _render(renderer, _square(5.0, 0.2)[None].expand(2, 4, 3), SQUARE_FACES, size=64)
    assert out.rgb.shape == (2, 64, 64, 3) and out.rgb.dtype == torch.uint8
    assert out.depth.shape == (2, 64, 64) and out.depth.dtype == torch.float32
    assert out.face_id.shape == (2, 64, 64) and out.face_id.dtype == torch.int64
    assert out.mask.dtype == torch.bool


def test_the_torch_rasterizer_gives_the_same_image_in_small_memory_chunks(body_model):
    vertices = torch.cat([_body(body_model, max_angle=0.5, seed=s) for s in range(2)])
    whole = _render(TorchRenderer(), vertices, _faces(body_model))
    chunked = _render(TorchRenderer(max_candidates=1000), vertices, _faces(body_model))
    assert torch.equal(whole.face_id, chunked.face_id)
    assert torch.equal(whole.depth, chunked.depth)
    assert torch.equal(whole.rgb, chunked.rgb)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_torch_rasterizer_on_cuda_matches_the_cpu(body_model):
    vertices = _body(body_model, max_angle=0.5)
    cpu = _render(TorchRenderer("cpu"), vertices, _faces(body_model))
    cuda = _render(TorchRenderer("cuda"), vertices.cuda(), _faces(body_model).cuda())
    assert cuda.rgb.device.type == "cuda"
    mask_agreement = (cpu.mask == cuda.mask.cpu()).float().mean()
    assert mask_agreement > 0.999  # fused multiply-adds may move a pixel on an edge


# --- choosing a backend -------------------------------------------------------------------------------


def test_create_renderer_picks_torch_on_cuda_and_opengl_on_a_cpu_with_egl():
    assert isinstance(create_renderer("torch"), TorchRenderer)
    assert isinstance(create_renderer("auto", "cuda"), TorchRenderer)  # nothing touches CUDA yet
    expected = OpenGLRenderer if egl_available() else TorchRenderer
    assert isinstance(create_renderer("auto", "cpu"), expected)


def test_create_renderer_rejects_unknown_backends_and_opengl_on_cuda():
    with pytest.raises(ValueError, match="one of auto, opengl, torch"):
        create_renderer("vulkan")
    with pytest.raises(RendererUnavailableError, match="use backend='torch'"):
        create_renderer("opengl", "cuda")


def test_without_egl_opengl_fails_naming_the_debian_packages_and_auto_falls_back(monkeypatch):
    import moderngl

    def no_egl(*args, **kwargs):
        raise Exception("libEGL.so: cannot open shared object file")

    monkeypatch.setattr(opengl_module, "_THREAD", threading.local())  # forget this thread's context
    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    with pytest.raises(RendererUnavailableError, match="libegl1, libgl1-mesa-dri, libegl-mesa0"):
        create_renderer("opengl")
    assert isinstance(create_renderer("auto"), TorchRenderer)


def test_bad_input_names_the_argument(renderer):
    vertices = _square(5.0, 0.2)[None]
    with pytest.raises(ValueError, match="faces: vertex indices"):
        _render(renderer, vertices, SQUARE_FACES + 10)
    with pytest.raises(ValueError, match="background: expected shape"):
        _render(renderer, vertices, SQUARE_FACES, background=torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="vertices: expected shape"):
        _render(renderer, vertices[0], SQUARE_FACES)
