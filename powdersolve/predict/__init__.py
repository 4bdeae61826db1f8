"""Prediction: a measured powder pattern -> the electron density (CMED) of its unit cell.

- :mod:`~powdersolve.predict.config`: :class:`PredictConfig`, the settings, checked once;
- :mod:`~powdersolve.predict.steps`: read -> preprocess -> peaks -> cell -> model input;
- :mod:`~powdersolve.predict.sampling`: latent samples -> mean and std maps, on the absolute scale;
- :mod:`~powdersolve.predict.postprocess`: space-group averaging, density modification and charge flipping of the mean
  map;
- :mod:`~powdersolve.predict.result`: :class:`Prediction` and its output folder;
- :mod:`~powdersolve.predict.pipeline`: :func:`predict`, the steps in order.
"""

from powdersolve.predict.config import MAX_SAMPLES, MIN_GRID, SYSTEMS, PredictConfig
from powdersolve.predict.pipeline import predict
from powdersolve.predict.postprocess import flip_prediction, modify_prediction
from powdersolve.predict.result import Prediction, Wavelength

__all__ = ["MAX_SAMPLES", "MIN_GRID", "SYSTEMS", "PredictConfig", "Prediction", "Wavelength", "flip_prediction",
           "modify_prediction", "predict"]
