"""Inference: ``birnn.load(run_dir)`` -> a ``Predictor`` for whatever task the run trained."""

from birnn.serve.predictor import Predictor, load

__all__ = ["Predictor", "load"]
