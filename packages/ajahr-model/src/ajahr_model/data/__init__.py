"""A3D data for the networks."""
