"""A3D synthesis: poses, amputations, appearance, rendering, labels and shards.

The layout on disk is in :mod:`a3d_data.synthesis.schema`; the stage entry point is
:func:`a3d_data.synthesis.run.run_synthesis`.
"""
