"""The networks: BPAC-Net, the AJAHR mesh regressor, the 2D keypoint detector."""
