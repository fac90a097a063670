"""AJAHR model package: pose tokenizers, BPAC-Net, the AJAHR regressor, training, evaluation.

It depends on a3d-data (body model, amputation core, A3D shards) and nothing depends on it but
the pipelines. Its modules arrive with the issues that build them.
"""

__version__ = "0.1.0"
