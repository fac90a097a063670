"""The keypoint prior stage: BlazePose over A3D in its own environment (``ajahr keypoint-prior``)."""
