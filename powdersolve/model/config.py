"""Model settings: :class:`ModelConfig`, the named configurations, the decoder's Miller-index box."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from powdersolve.errors import InputError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one model; stored beside the weights as JSON.

    Attributes:
        arch: 'query' (paper decoder) or 'fourier' (coefficient decoder).
        xrd_input: 'paper' (2-theta 0-180 deg channels at fixed wavelengths) or 'q' (Q axis +
            coverage mask, see :mod:`powdersolve.diffraction.encoding`).
        xrd_channels: channels of the XRD input (paper: wavelengths; q: 2).
        xrd_bins: length of the XRD input.
        xrd_encoder: 'dense' (the paper's DenseNet-style CNN) or 'strided' (a cheaper CNN).
        xrd_growth: channels added per dense layer (paper: 8).
        composition: composition encoding used in training ('fractions', 'presence', 'drop', 'none').
        use_xrd / use_formula: ablation switches (a disabled branch contributes a zero latent).
        latent: latent width per branch.
        hidden: decoder width.
        film_width: width of the FiLM MLPs (query decoder).
        n_fourier: number of Gaussian Fourier features per sin/cos (query decoder).
        fourier_sigma: std of the Fourier feature matrix (paper: 3).
        regressor_blocks: skip blocks of the query regressor (paper: 3).
        decoder_layers: hidden layers of the coefficient decoder.
        hkl_box: largest |h|, |k|, |l| of predicted coefficients (fourier decoder).
        amplitudes: (fourier decoder) also read the observed amplitude of every box index, from the
            pattern's peaks indexed with the cell, and predict phases and a scale: the coefficient is
            scale * amplitude * u_h. Needs the cell at prediction time (given or indexed).
        b_iso: B (A^2) of the target density; recorded so predictions match their training target.
        q_max: upper edge of the Q axis (1/A) for xrd_input='q'.
        wavelengths: wavelengths (A) of the 2-theta channels for xrd_input='paper'.
        system: crystal system the model was trained on.
    """

    arch: str = "fourier"
    xrd_input: str = "q"
    xrd_channels: int = 2
    xrd_bins: int = 1024
    xrd_encoder: str = "strided"
    xrd_growth: int = 8
    composition: str = "fractions"
    use_xrd: bool = True
    use_formula: bool = True
    latent: int = 256
    hidden: int = 512
    film_width: int = 1024
    n_fourier: int = 128
    fourier_sigma: float = 3.0
    regressor_blocks: int = 3
    decoder_layers: int = 3
    hkl_box: tuple[int, int, int] = (8, 8, 8)
    amplitudes: bool = False
    b_iso: float = 8.0
    q_max: float = 8.0
    wavelengths: tuple[float, ...] = (0.71073,)
    system: str = "cubic"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hkl_box"] = list(self.hkl_box)
        d["wavelengths"] = list(self.wavelengths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "hkl_box" in known:
            known["hkl_box"] = tuple(int(x) for x in known["hkl_box"])
        if "wavelengths" in known:
            known["wavelengths"] = tuple(float(x) for x in known["wavelengths"])
        cfg = cls(**known)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.arch not in ("query", "fourier"):
            raise InputError(f"unknown model arch '{self.arch}' (query or fourier)")
        if self.xrd_input not in ("paper", "q"):
            raise InputError(f"unknown xrd_input '{self.xrd_input}' (paper or q)")
        if self.xrd_encoder not in ("dense", "strided"):
            raise InputError(f"unknown xrd_encoder '{self.xrd_encoder}' (dense or strided)")
        if not (self.use_xrd or self.use_formula):
            raise InputError("a model needs at least one of the XRD and formula branches")


def model_band(cfg: ModelConfig) -> tuple[int, int, int] | None:
    """The Miller-index box a model's maps are band-limited to (``fourier`` decoder), else None (the
    paper's query decoder can put density at any frequency the grid holds)."""
    return tuple(cfg.hkl_box) if cfg.arch == "fourier" else None


def paper_config(system: str = "cubic", wavelengths: tuple[float, ...] = (0.71073,)) -> ModelConfig:
    """The paper's sizes: about 14.8 M parameters, query decoder, Mo 2-theta input."""
    return ModelConfig(arch="query", xrd_input="paper", xrd_channels=len(wavelengths), xrd_encoder="dense",
                       latent=512, hidden=512, film_width=1024, composition="fractions",
                       wavelengths=wavelengths, system=system, extra={"separate_std": True})


#: Crystal systems whose models work on hexagonal axes (a = b, gamma = 120 deg).
HEXAGONAL_AXES = ("trigonal", "hexagonal")


def cpu_config(system: str = "cubic") -> ModelConfig:
    """The shipped default: Q-axis input, strided CNN, Fourier decoder reading indexed amplitudes.

    The Miller-index box is |h|, |k|, |l| <= 8, except on hexagonal axes (trigonal and hexagonal
    systems): |h|, |k| <= 6, |l| <= 16, because their c axes are often long (layer stackings).
    """
    box = (6, 6, 16) if system in HEXAGONAL_AXES else (8, 8, 8)
    return ModelConfig(arch="fourier", xrd_input="q", xrd_channels=2, xrd_encoder="strided", latent=256,
                       hidden=512, decoder_layers=3, hkl_box=box, amplitudes=True, system=system)


def cpu_free_config(system: str = "cubic") -> ModelConfig:
    """The Fourier decoder without amplitude input (the paper's information: no cell given)."""
    return replace(cpu_config(system), amplitudes=False)


def tiny_config(arch: str = "fourier", amplitudes: bool = False) -> ModelConfig:
    """A few-thousand-parameter model for tests."""
    return ModelConfig(arch=arch, amplitudes=amplitudes, xrd_input="q", xrd_channels=2, xrd_bins=256,
                       xrd_encoder="strided", latent=16, hidden=32, film_width=32, n_fourier=16,
                       regressor_blocks=1, decoder_layers=1, hkl_box=(3, 3, 3), q_max=8.0)


CONFIGS = {
    "paper": paper_config,
    "cpu": cpu_config,
    "cpu-free": cpu_free_config,
    "tiny": lambda system="cubic": tiny_config(),
    "tiny-amp": lambda system="cubic": tiny_config(amplitudes=True),
}


def half_space_hkl(box: tuple[int, int, int]) -> np.ndarray:
    """Miller indices of one Friedel half of the box |h|<=H (first nonzero index positive), no (0,0,0).

    Shape (M, 3), int64, in a fixed order: the coefficient layout of the fourier decoder.
    """
    ranges = [np.arange(-b, b + 1) for b in box]
    hkl = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
    h, k, l = hkl.T
    keep = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l > 0))
    return hkl[keep].astype(np.int64)


def with_overrides(cfg: ModelConfig, **kw) -> ModelConfig:
    """A copy of ``cfg`` with fields replaced (ablation switches, system)."""
    out = replace(cfg, **kw)
    out.validate()
    return out
