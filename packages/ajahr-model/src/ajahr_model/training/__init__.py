"""Training of the 2D keypoint detector and of AJAHR (BPAC-Net + the mesh regressor)."""
