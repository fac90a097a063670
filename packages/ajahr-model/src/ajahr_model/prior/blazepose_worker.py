"""BlazePose over the crops of A3D shards: run in the BlazePose environment (.venv-blazepose).

Not imported by the package: ``ajahr keypoint-prior`` starts it as a script with the
environment's own Python, because MediaPipe pins numpy 1.26. It imports only the standard
library, numpy, Pillow and MediaPipe, and reads the shards' tar members directly.

Usage: python blazepose_worker.py --output OUT.npz [--model-complexity 1]
       [--min-detection-confidence 0.3] SHARD.tar [SHARD.tar ...]

Writes OUT.npz (keys, keypoints (N, 17, 2) crop px, confidence (N, 17), found (N,)), under a
temporary name renamed when complete, and prints ``progress N`` every few crops on stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile

import numpy as np
from PIL import Image

# BlazePose's 33 landmarks -> COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees,
# ankles; the person's left first, as in COCO).
COCO_FROM_BLAZEPOSE = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
PROGRESS_EVERY = 25
# A found person's joints keep a confidence above 0, which the readers take for "not found".
MIN_CONFIDENCE = 1e-3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shards", nargs="+")
    parser.add_argument("--output", required=True)
    parser.add_argument("--model-complexity", type=int, default=1, choices=(0, 1))
    parser.add_argument("--min-detection-confidence", type=float, default=0.3)
    args = parser.parse_args()
    # Import here: a wrong interpreter fails with a message, not a traceback at the top.
    try:
        import mediapipe as mp
    except ImportError as err:
        print(f"error: {sys.executable} has no mediapipe ({err}); run make install", file=sys.stderr)
        return 2
    pose = mp.solutions.pose.Pose(
        static_image_mode=True,
        model_complexity=args.model_complexity,
        min_detection_confidence=args.min_detection_confidence,
    )
    keys, keypoints, confidence, found = [], [], [], []
    done = 0
    for shard in args.shards:
        try:
            tar = tarfile.open(shard, "r:")  # noqa: SIM115 - closed by the with below
        except (OSError, tarfile.TarError) as err:
            print(f"error: {shard}: not a readable tar shard ({err})", file=sys.stderr)
            return 2
        with tar:
            for member in tar.getmembers():
                if not member.name.endswith(".jpg"):
                    continue
                keys.append(member.name[: -len(".jpg")])
                try:
                    image = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                    result = pose.process(image)
                except (OSError, ValueError) as err:
                    # A corrupt crop gets no prior; the training loader counts it on its own.
                    print(f"warning: {shard}: {member.name}: {err}", file=sys.stderr)
                    result = None
                if result is None or result.pose_landmarks is None:
                    keypoints.append(np.zeros((17, 2), np.float32))
                    confidence.append(np.zeros(17, np.float32))
                    found.append(False)
                else:
                    height, width = image.shape[:2]
                    marks = result.pose_landmarks.landmark
                    keypoints.append(
                        np.array(
                            [[marks[i].x * width, marks[i].y * height] for i in COCO_FROM_BLAZEPOSE],
                            np.float32,
                        )
                    )
                    confidence.append(
                        np.clip(
                            [marks[i].visibility for i in COCO_FROM_BLAZEPOSE], MIN_CONFIDENCE, 1.0
                        ).astype(np.float32)
                    )
                    found.append(True)
                done += 1
                if done % PROGRESS_EVERY == 0:
                    print(f"progress {PROGRESS_EVERY}", flush=True)
    print(f"progress {done % PROGRESS_EVERY}", flush=True)
    temporary = f"{args.output}.tmp.{os.getpid()}.npz"
    np.savez(
        temporary,
        keys=np.array(keys, dtype=str),
        keypoints=np.array(keypoints, np.float32).reshape(-1, 17, 2),
        confidence=np.array(confidence, np.float32).reshape(-1, 17),
        found=np.array(found, bool),
    )
    os.replace(temporary, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
