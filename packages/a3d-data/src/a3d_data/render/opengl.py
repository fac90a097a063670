"""The OpenGL renderer: moderngl on a headless EGL context (Mesa llvmpipe on CPU machines).

A batch is drawn into one atlas framebuffer, one tile of ``image_size`` pixels per sample: the
vertex buffer holds every sample's posed vertices back to back, the index buffer repeats the faces
with each sample's vertex offset, and each sample is one indexed draw into its own viewport, with
its camera as uniforms. Drawing per viewport rather than into atlas coordinates keeps a sample's
coverage identical whatever else is in the batch.

Three colour targets come back: the shaded colour (RGBA8), the camera-z of the surface (R32F,
interpolated perspective-correctly, so metric depth needs no depth-buffer decoding) and the face
index + 1 (R32I, from ``gl_PrimitiveID``, which restarts at 0 with each draw). The hardware depth
buffer only orders surfaces; its near/far planes are fitted to each sample's depth range, so a body
20-80 m away (HMR2 cameras: focal 5000 px at 256 px) is ordered to well under a micrometre.

An EGL context is created on first use, once per thread and process (a forked worker or another
thread makes its own), so a renderer may be shared by the threads of a worker pool.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from typing import TYPE_CHECKING

import numpy as np
import torch

from a3d_data.render.base import (
    MIN_DEPTH,
    Lights,
    RendererUnavailableError,
    RenderOutput,
    check_render_inputs,
    composite,
)
from a3d_data.render.shading import shade_vertices

if TYPE_CHECKING:
    import moderngl

logger = logging.getLogger(__name__)

EGL_DEBIAN_PACKAGES = ("libegl1", "libgl1-mesa-dri", "libegl-mesa0")
_GL_VERSION = 330
_MAX_ATLAS_SIDE = 4096  # pixels; an atlas this size holds 4096^2 * 16 bytes = 256 MiB of targets

# Per thread: (process id, the context or the reason it could not be made, which is not retried).
_THREAD = threading.local()

_VERTEX_SHADER = """
#version 330
uniform vec4 intrinsics;  // focal, cx, cy (pixels), near (metres) of the sample being drawn
uniform float far;  // metres
uniform float image_size;  // pixels
uniform float min_depth;  // metres

in vec3 in_position;
in vec3 in_color;
out vec3 v_color;
out float v_depth;
out float v_behind;

void main() {
    float z = in_position.z;
    float near = intrinsics.w;
    // Pixel coordinates times z (homogeneous). Image row v maps to viewport row v (no y flip),
    // so read-back rows are image rows.
    vec2 pixel = intrinsics.x * in_position.xy + intrinsics.yz * z;
    gl_Position = vec4(2.0 * pixel / image_size - z, ((far + near) * z - 2.0 * far * near) / (far - near), z);
    v_color = in_color;
    v_depth = z;
    v_behind = z > min_depth ? 0.0 : 1.0;
}
"""

_FRAGMENT_SHADER = """
#version 330
in vec3 v_color;
in float v_depth;
in float v_behind;
layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_depth;
layout(location = 2) out int f_face;

void main() {
    // Positive anywhere inside a triangle with a corner behind the camera: such triangles are
    // skipped whole, as the torch backend does, instead of being clipped at the near plane.
    if (v_behind > 0.0) discard;
    f_color = vec4(v_color, 1.0);
    f_depth = v_depth;
    f_face = gl_PrimitiveID + 1;  // one draw per sample; 0 = empty after the clear
}
"""


def _missing_egl_message(error: BaseException) -> str:
    return (
        f"the OpenGL renderer needs a headless EGL context with OpenGL {_GL_VERSION // 100}."
        f"{_GL_VERSION % 100 // 10}, which could not be created ({type(error).__name__}: {error}). "
        f"On Debian/Ubuntu install {', '.join(EGL_DEBIAN_PACKAGES)} "
        f"(apt-get install -y {' '.join(EGL_DEBIAN_PACKAGES)}), or use the 'torch' backend"
    )


def egl_context() -> moderngl.Context:
    """The calling thread's standalone EGL context, created on its first call.

    One context per thread (an OpenGL context is current in one thread at a time) and per process
    (a forked child cannot use its parent's). Raises :class:`RendererUnavailableError`, naming the
    Debian packages, when moderngl or EGL is missing; the failure is remembered, so later calls
    fail fast.
    """
    pid = os.getpid()
    cached = getattr(_THREAD, "egl", None)
    if cached is not None and cached[0] == pid:
        if isinstance(cached[1], RendererUnavailableError):
            raise cached[1]
        return cached[1]
    try:
        import moderngl

        context = moderngl.create_standalone_context(backend="egl", require=_GL_VERSION)
    except Exception as error:  # moderngl raises plain Exceptions for a missing libEGL or driver
        failure = RendererUnavailableError(_missing_egl_message(error))
        _THREAD.egl = (pid, failure)
        raise failure from error
    logger.info("EGL context: %s, OpenGL %s", context.info.get("GL_RENDERER"), context.info.get("GL_VERSION"))
    _THREAD.egl = (pid, context)
    return context


def egl_available() -> bool:
    """Whether :func:`egl_context` works here (creates the calling thread's context if it can)."""
    try:
        egl_context()
    except RendererUnavailableError:
        return False
    return True


class OpenGLRenderer:
    """The :class:`~a3d_data.render.base.Renderer` on OpenGL 3.3 (core) through headless EGL.

    Inputs may live on any device; the mesh is shaded (:mod:`a3d_data.render.shading`) and drawn on
    the CPU side of the GL driver, and the outputs are returned on the input's device. Each thread
    that renders gets its own context and GL objects, created on its first call.

    Parameters
    ----------
    max_batch_per_pass : samples drawn into one atlas before it is read back; larger batches
        take several passes. 64 tiles of 256 px make a 2048 x 2048 atlas (the atlas is kept
        within 4096 px a side whatever the image size).
    """

    def __init__(self, max_batch_per_pass: int = 64):
        if max_batch_per_pass < 1:
            raise ValueError(f"max_batch_per_pass must be positive, got {max_batch_per_pass}")
        self.max_batch_per_pass = int(max_batch_per_pass)
        self._local = threading.local()

    @torch.no_grad()
    def render(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        vertex_colors: torch.Tensor,
        focal: torch.Tensor,
        principal: torch.Tensor,
        image_size: int,
        lights: Lights,
        background: torch.Tensor | None = None,
    ) -> RenderOutput:
        """Render B meshes sharing one topology; see :meth:`Renderer.render` (not differentiable)."""
        check_render_inputs(vertices, faces, vertex_colors, focal, principal, image_size, lights, background)
        device = vertices.device
        cpu = torch.device("cpu")
        vertices = vertices.to(cpu, torch.float32)
        colours = shade_vertices(vertices, faces.to(cpu), vertex_colors.to(cpu), lights)
        cameras = _camera_table(vertices, focal.to(cpu, torch.float32), principal.to(cpu, torch.float32))

        batch, size = vertices.shape[0], image_size
        rgb = np.empty((batch, size, size, 3), np.uint8)
        depth = np.empty((batch, size, size), np.float32)
        face_plus_one = np.empty((batch, size, size), np.int32)
        pipeline = self._pipeline()
        pipeline.set_faces(faces)
        # Big images take fewer tiles per pass, so the atlas stays within _MAX_ATLAS_SIDE.
        per_pass = min(self.max_batch_per_pass, max(1, _MAX_ATLAS_SIDE // size) ** 2)
        for start in range(0, batch, per_pass):
            stop = min(batch, start + per_pass)
            pipeline.draw(
                vertices[start:stop], colours[start:stop], cameras[start:stop], size,
                rgb[start:stop], depth[start:stop], face_plus_one[start:stop],
            )  # fmt: skip

        face_id = torch.from_numpy(face_plus_one).to(torch.int64) - 1
        depth_out = torch.from_numpy(depth).masked_fill_(face_id < 0, torch.inf)
        shaded = composite(torch.from_numpy(rgb), face_id, None if background is None else background.cpu())
        return RenderOutput(rgb=shaded.to(device), depth=depth_out.to(device), face_id=face_id.to(device))

    def __getstate__(self) -> dict:
        # GL objects live in one process: a pickled renderer (sent to a worker) starts afresh there.
        return {"max_batch_per_pass": self.max_batch_per_pass}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def close(self) -> None:
        """Release the calling thread's GL objects of this renderer (its context stays)."""
        pipeline = getattr(self._local, "pipeline", None)
        if pipeline is not None and pipeline.pid == os.getpid():
            pipeline.release()
        self._local.pipeline = None

    def _pipeline(self) -> _Pipeline:
        pipeline = getattr(self._local, "pipeline", None)
        if pipeline is None or pipeline.pid != os.getpid():
            pipeline = _Pipeline(egl_context())
            self._local.pipeline = pipeline
        return pipeline


class _Pipeline:
    """One thread's GL objects: program, buffers, framebuffers, on that thread's context."""

    def __init__(self, ctx: moderngl.Context):
        self.pid = os.getpid()
        self.ctx = ctx
        self.program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self.faces: np.ndarray | None = None  # the topology the index buffer was built for
        self.index_buffer: moderngl.Buffer | None = None
        self.index_capacity = 0  # samples
        self.vertex_buffer: moderngl.Buffer | None = None
        self.vertex_array: moderngl.VertexArray | None = None
        self.framebuffers: dict[tuple[int, int], moderngl.Framebuffer] = {}

    def release(self) -> None:
        resources = [self.vertex_array, self.vertex_buffer, self.index_buffer, self.program]
        for resource in resources + list(self.framebuffers.values()):
            if resource is not None:
                resource.release()
        self.framebuffers.clear()
        self.vertex_array = self.vertex_buffer = self.index_buffer = None
        self.faces, self.index_capacity = None, 0

    def set_faces(self, faces: torch.Tensor) -> None:
        """Use this topology; the index buffer is rebuilt only when it changes."""
        faces_np = faces.detach().cpu().numpy().astype(np.int32)
        if self.faces is None or not np.array_equal(self.faces, faces_np):
            self.faces = faces_np
            self.index_capacity = 0

    def _ensure_buffers(self, samples: int, num_vertices: int) -> None:
        ctx = self.ctx
        assert self.faces is not None
        rebuilt = False
        if samples > self.index_capacity:
            if self.index_buffer is not None:
                self.index_buffer.release()
            offsets = (np.arange(samples, dtype=np.int64) * num_vertices)[:, None, None]
            indices = (self.faces[None].astype(np.int64) + offsets).astype(np.int32)
            self.index_buffer = ctx.buffer(indices.tobytes())
            self.index_capacity = samples
            rebuilt = True
        vertex_bytes = samples * num_vertices * 6 * 4
        if self.vertex_buffer is None or self.vertex_buffer.size < vertex_bytes:
            if self.vertex_buffer is not None:
                self.vertex_buffer.release()
            self.vertex_buffer = ctx.buffer(reserve=vertex_bytes)
            rebuilt = True
        if rebuilt or self.vertex_array is None:
            if self.vertex_array is not None:
                self.vertex_array.release()
            self.vertex_array = ctx.vertex_array(
                self.program,
                [(self.vertex_buffer, "3f 3f", "in_position", "in_color")],
                index_buffer=self.index_buffer,
                index_element_size=4,
            )

    def _framebuffer(self, columns: int, rows: int, size: int) -> moderngl.Framebuffer:
        key = (columns * size, rows * size)
        framebuffer = self.framebuffers.get(key)
        if framebuffer is None:
            ctx = self.ctx
            if len(self.framebuffers) >= 4:  # batch sizes vary little; keep memory bounded
                for stale in self.framebuffers.values():
                    stale.release()
                self.framebuffers.clear()
            framebuffer = ctx.framebuffer(
                color_attachments=[
                    ctx.renderbuffer(key, components=4),
                    ctx.renderbuffer(key, components=1, dtype="f4"),
                    ctx.renderbuffer(key, components=1, dtype="i4"),
                ],
                depth_attachment=ctx.depth_renderbuffer(key),
            )
            self.framebuffers[key] = framebuffer
        return framebuffer

    def draw(
        self,
        vertices: torch.Tensor,
        colours: torch.Tensor,
        cameras: np.ndarray,
        size: int,
        rgb: np.ndarray,
        depth: np.ndarray,
        face_plus_one: np.ndarray,
    ) -> None:
        """Draw samples (n, V, 3) into one atlas and read the three targets into the out arrays."""
        import moderngl

        ctx, program = self.ctx, self.program
        assert self.faces is not None
        samples, num_vertices = vertices.shape[:2]
        num_faces = self.faces.shape[0]
        columns = math.ceil(math.sqrt(samples))
        rows = math.ceil(samples / columns)

        self._ensure_buffers(samples, num_vertices)
        self.vertex_buffer.write(torch.cat([vertices, colours], dim=-1).numpy().tobytes())
        program["image_size"].value = float(size)
        program["min_depth"].value = MIN_DEPTH

        framebuffer = self._framebuffer(columns, rows, size)
        framebuffer.use()
        ctx.scissor = None
        framebuffer.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable_only(moderngl.DEPTH_TEST)
        for tile in range(samples):
            # One draw per sample into its own viewport: the clip volume keeps it inside its tile,
            # and its coverage is computed exactly as if it were drawn alone, whatever the batch.
            corner = ((tile % columns) * size, (tile // columns) * size, size, size)
            ctx.viewport = corner
            ctx.scissor = corner  # in case the driver's guard band lets a triangle spill over
            program["intrinsics"].value = tuple(cameras[tile, :4])
            program["far"].value = cameras[tile, 4]
            self.vertex_array.render(moderngl.TRIANGLES, vertices=num_faces * 3, first=tile * num_faces * 3)
        ctx.scissor = None

        width, height = columns * size, rows * size
        colour = np.frombuffer(framebuffer.read(components=4, attachment=0), np.uint8)
        metric = np.frombuffer(framebuffer.read(components=1, attachment=1, dtype="f4"), np.float32)
        faces = np.frombuffer(framebuffer.read(components=1, attachment=2, dtype="i4"), np.int32)
        rgb[...] = _tiles(colour.reshape(height, width, 4), size, samples)[..., :3]
        depth[...] = _tiles(metric.reshape(height, width), size, samples)
        face_plus_one[...] = _tiles(faces.reshape(height, width), size, samples)


def _camera_table(vertices: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> np.ndarray:
    """Per-sample camera uniforms (B, 5) float64: focal, cx, cy (pixels), near, far (metres).

    near and far bracket the sample's vertices in front of the camera with a small margin, so the
    24-bit depth buffer spends its precision on the body, not on empty space.
    """
    z = vertices[..., 2]
    in_front = z > MIN_DEPTH
    nearest = torch.where(in_front, z, torch.inf).amin(1)
    farthest = torch.where(in_front, z, -torch.inf).amax(1)
    empty = ~in_front.any(1)
    nearest = torch.where(empty, 1.0, nearest)
    farthest = torch.where(empty, 2.0, farthest)
    margin = 0.01 * (farthest - nearest) + 1e-4 * farthest + 1e-6
    near = torch.maximum(nearest - margin, torch.full_like(nearest, 0.5 * MIN_DEPTH))
    far = farthest + margin
    return torch.stack([focal, principal[:, 0], principal[:, 1], near, far], dim=1).double().numpy()


def _tiles(atlas: np.ndarray, size: int, samples: int) -> np.ndarray:
    """Cut an atlas (rows * S, columns * S, ...) into its first ``samples`` tiles (n, S, S, ...)."""
    rows, columns = atlas.shape[0] // size, atlas.shape[1] // size
    tiles = atlas.reshape(rows, size, columns, size, *atlas.shape[2:]).swapaxes(1, 2)
    return tiles.reshape(rows * columns, size, size, *atlas.shape[2:])[:samples]
