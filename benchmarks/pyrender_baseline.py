"""Render-only throughput of pyrender + OSMesa: the baseline that bench_synth.py compares against.

Runs in its own environment (.cache/bench-venv: pyrender 0.1.45 with PyOpenGL 3.1.10, since
pyrender's own PyOpenGL==3.1.0 pin does not work with OSMesa here), never in the project's: it
imports nothing from the project. bench_synth.py writes the meshes to an npz and reads one JSON
line from stdout.

Usage: PYOPENGL_PLATFORM=osmesa python pyrender_baseline.py MESHES.npz FRAMES

MESHES.npz holds vertices (N, V, 3) in the OpenCV camera frame (metres), faces (F, 3), colours
(N, V, 3) in [0, 1], focal (pixels), image_size (pixels). Each frame builds a new mesh from the
next pose (as a synthesis loop must) and renders colour and depth.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import sys
import time

import numpy as np

# OpenCV camera (y down, z forward) to pyrender's OpenGL camera (y up, looking down -z).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def main(meshes_path: str, frames: int) -> dict:
    if os.environ.get("PYOPENGL_PLATFORM") != "osmesa":
        raise SystemExit("set PYOPENGL_PLATFORM=osmesa before running the pyrender baseline")
    if ctypes.util.find_library("OSMesa") is None:
        return {"error": "libOSMesa is missing (Debian: apt-get install -y libosmesa6)"}
    import pyrender

    data = np.load(meshes_path)
    vertices = data["vertices"] @ OPENCV_TO_OPENGL.T
    faces, colours = data["faces"], data["colours"]
    focal, size = float(data["focal"]), int(data["image_size"])
    near, far = 0.5 * float(data["vertices"][..., 2].min()), 2.0 * float(data["vertices"][..., 2].max())

    scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[0.3, 0.3, 0.3])
    camera = pyrender.IntrinsicsCamera(fx=focal, fy=focal, cx=size / 2, cy=size / 2, znear=near, zfar=far)
    scene.add(camera, pose=np.eye(4))
    scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=3.0), pose=np.eye(4))
    renderer = pyrender.OffscreenRenderer(size, size)

    def render(index: int) -> np.ndarray:
        pose = index % len(vertices)
        primitive = pyrender.Primitive(
            positions=vertices[pose].astype(np.float32),
            indices=faces.astype(np.uint32),
            color_0=np.concatenate([colours[pose], np.ones_like(colours[pose][:, :1])], 1).astype(np.float32),
        )
        node = scene.add(pyrender.Mesh([primitive]))
        _, depth = renderer.render(scene)
        scene.remove_node(node)
        return depth

    depth = render(0)  # warm-up: compiles shaders
    start = time.perf_counter()
    for index in range(frames):
        render(index)
    elapsed = time.perf_counter() - start
    renderer.delete()
    return {
        "ms_per_frame": 1000.0 * elapsed / frames,
        "frames": frames,
        "coverage": float((depth > 0).mean()),
        "pyrender": pyrender.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
