"""Orchestration: flows that run the DVC stages (``dvc repro STAGE``), push to S3 and register
models. Data flows one way: a3d-data -> ajahr-model -> pipelines.
"""

__version__ = "0.1.0"
