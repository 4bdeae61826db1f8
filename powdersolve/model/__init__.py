"""The variational query-based multi-branch network (Guo et al.) and a Fourier-decoder variant.

Both architectures share the encoders: an XRD branch (1-D CNN over the binned pattern) and a
formula branch (MLP over the 119-element composition vector), each with a mean and a standard
deviation head, sampled once per crystal (``z = mu + eps * sigma``). They differ in the decoder:

- ``arch="query"`` (the paper): Gaussian Fourier features of a fractional query point, FiLM-modulated
  by the latent condition, then a skip-connected MLP regressor -> density at that point. The FiLM
  scale and bias are computed once per crystal and broadcast to its points (the paper's code
  recomputed them per point: same result, ~60% more FLOPs).
- ``arch="fourier"`` (ours, the CPU default): an MLP maps the latent condition to the density's
  Fourier coefficients on a fixed box of Miller indices |h| <= H (half-space; Friedel mates are
  conjugates). The density at any query point is the Fourier series, and the loss can be taken on
  the coefficients directly (Parseval: the coefficient L2 equals the map's mean-squared error).

Departure from the paper: sigma = softplus(raw) + 1e-4 instead of an unconstrained raw output,
which can be negative (the KL term then uses log(sigma^2) of a meaningless value).

Modules: :mod:`~powdersolve.model.config` (settings), :mod:`~powdersolve.model.encoders`,
:mod:`~powdersolve.model.decoders`, :mod:`~powdersolve.model.network` (:class:`CMEDNet`).
"""

from powdersolve.model.config import (
    CONFIGS,
    ModelConfig,
    cpu_config,
    cpu_free_config,
    half_space_hkl,
    model_band,
    paper_config,
    tiny_config,
    with_overrides,
)
from powdersolve.model.decoders import FourierDecoder, QueryDecoder, coefficients_to_grid, shift_invariant_l2
from powdersolve.model.encoders import DenseXRDEncoder, FormulaEncoder, StridedXRDEncoder, VariationalBranch
from powdersolve.model.network import CMEDNet, build_model

__all__ = [
    "CMEDNet",
    "CONFIGS",
    "DenseXRDEncoder",
    "FormulaEncoder",
    "FourierDecoder",
    "ModelConfig",
    "QueryDecoder",
    "StridedXRDEncoder",
    "VariationalBranch",
    "build_model",
    "coefficients_to_grid",
    "cpu_config",
    "cpu_free_config",
    "half_space_hkl",
    "model_band",
    "paper_config",
    "shift_invariant_l2",
    "tiny_config",
    "with_overrides",
]
