"""The network: paper sizes, shapes, decoders agree with their Fourier series, loss invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from powdersolve.density import DensityConfig, density_grid
from powdersolve.inputs import fourier_targets
from powdersolve.model import (
    CMEDNet,
    build_model,
    coefficients_to_grid,
    cpu_config,
    half_space_hkl,
    paper_config,
    shift_invariant_l2,
    tiny_config,
    with_overrides,
)
from powdersolve.structures import Crystal


def test_paper_config_parameter_count() -> None:
    n = build_model(paper_config()).n_parameters()
    assert abs(n - 14.8e6) / 14.8e6 < 0.03, n


@pytest.mark.parametrize("arch", ["query", "fourier"])
def test_shapes(arch: str) -> None:
    m = build_model(tiny_config(arch)).eval()
    x = torch.rand(3, 2, 256)
    c = torch.rand(3, 119)
    cond, kl = m.encode(x, c)
    assert cond.shape == (3, 2 * m.cfg.latent) and kl.ndim == 0
    assert m.density_at(cond, torch.rand(3, 7, 3)).shape == (3, 7)
    assert m.grid(cond, 6).shape == (3, 6, 6, 6)


def test_paper_input_channels() -> None:
    cfg = with_overrides(paper_config(), wavelengths=(0.71073, 1.54184), xrd_channels=2)
    m = build_model(cfg).eval()
    cond, _ = m.encode(torch.rand(2, 2, 1024), torch.rand(2, 119))
    assert cond.shape == (2, 1024)


@pytest.mark.parametrize("flag", ["use_xrd", "use_formula"])
def test_ablation_switches(flag: str) -> None:
    m = build_model(with_overrides(tiny_config(), **{flag: False})).eval()
    cond, _ = m.encode(torch.rand(2, 2, 256), torch.rand(2, 119))
    half = m.cfg.latent
    dead = cond[:, :half] if flag == "use_xrd" else cond[:, half:]
    assert torch.all(dead == 0)


def test_fourier_grid_equals_point_series() -> None:
    m = build_model(tiny_config("fourier")).eval()
    with torch.no_grad():
        cond, _ = m.encode(torch.rand(1, 2, 256), torch.rand(1, 119), sample=False)
        g = m.grid(cond, 8)
        idx = torch.tensor([[0, 0, 0], [1, 2, 3], [7, 5, 4]])
        pts = m.density_at(cond, (idx.float() / 8)[None])
    torch.testing.assert_close(pts[0], g[0, idx[:, 0], idx[:, 1], idx[:, 2]], rtol=1e-4, atol=1e-4)


def _perovskite() -> Crystal:
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return Crystal.from_structure(s, 221)


def test_fourier_targets_reproduce_the_density() -> None:
    c = _perovskite()
    cfg = cpu_config("cubic")
    dc, coef = fourier_targets(c, cfg)
    hkl = torch.as_tensor(half_space_hkl(cfg.hkl_box))
    g = coefficients_to_grid(torch.tensor([dc]), torch.from_numpy(coef)[None], hkl, 24)[0].numpy()
    truth = density_grid(c, DensityConfig(grid=24))
    cc = np.corrcoef(g.ravel(), truth.ravel())[0, 1]
    assert cc > 0.999
    assert g.mean() == pytest.approx(truth.mean(), rel=1e-4)


def test_shift_invariant_loss() -> None:
    c = _perovskite()
    cfg = cpu_config("cubic")
    dc, coef = fourier_targets(c, cfg)
    hkl = torch.as_tensor(half_space_hkl(cfg.hkl_box))
    dc_t, coef_t = torch.tensor([dc]), torch.from_numpy(coef)[None]
    # The truth moved by half a cell along a scores ~0 with the shift search, not without it.
    phase = torch.exp(-2j * np.pi * hkl[:, 0].double() * 0.5).to(coef_t.dtype)
    moved = coef_t * phase
    with_search = shift_invariant_l2(dc_t, moved, dc_t, coef_t, hkl, 8)
    without = shift_invariant_l2(dc_t, moved, dc_t, coef_t, hkl, 0)
    same = shift_invariant_l2(dc_t, coef_t, dc_t, coef_t, hkl, 0)
    assert abs(float(with_search)) < 1e-5 * float(without)
    assert abs(float(same)) < 1e-5 * float(without)
    # Parseval: the coefficient loss equals the grid's mean-squared difference.
    g1 = coefficients_to_grid(dc_t, moved, hkl, 24)
    g0 = coefficients_to_grid(dc_t, coef_t, hkl, 24)
    assert float(without) == pytest.approx(float(((g1 - g0) ** 2).mean()), rel=1e-4)


def test_model_is_a_module() -> None:
    assert isinstance(build_model(tiny_config()), CMEDNet)


def test_indexed_amplitudes_track_the_target() -> None:
    """Powder intensities shared among equivalent reflections give the target's |F| on the decoder box."""
    from powdersolve.diffraction import sticks
    from powdersolve.inputs import box_amplitudes, reflection_table

    c = _perovskite()
    cfg = cpu_config("cubic")
    table = reflection_table(c.lattice, cfg.hkl_box, cfg.q_max)
    s = sticks(c, q_max=cfg.q_max)
    amp, mask = box_amplitudes(table, s.q, s.intensity, cfg.q_max, cfg.b_iso)
    _, coef = fourier_targets(c, cfg)
    seen = mask > 0
    assert np.corrcoef(amp[seen], np.abs(coef[seen]))[0, 1] > 0.999
    # A truncated measurement masks what it did not reach and leaves those amplitudes at 0.
    amp_t, mask_t = box_amplitudes(table, s.q, s.intensity, 4.0, cfg.b_iso)
    assert np.all(amp_t[table.q_box > 4.0] == 0) and mask_t.sum() < mask.sum()


def test_amplitude_decoder_needs_and_uses_aux() -> None:
    m = build_model(tiny_config(amplitudes=True)).eval()
    n = m.decoder.n_coef
    x, c = torch.rand(2, 2, 256), torch.rand(2, 119)
    cond, _ = m.encode(x, c, sample=False)
    aux = {"amp": torch.rand(2, n), "mask": torch.ones(2, n), "logv": torch.full((2,), 5.0)}
    g = m.grid(cond, 8, aux=aux)
    assert g.shape == (2, 8, 8, 8) and torch.isfinite(g).all()
    with pytest.raises(Exception, match="cell"):
        m.grid(cond, 8)
