"""A3D data: the body model, the AJAHR amputation core and (later) the synthetic A3D dataset.

Nothing is built at import time; call :func:`a3d_data.body_model.load_body_model` to get a model.
"""

__version__ = "0.1.0"
