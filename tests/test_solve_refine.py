"""Refinement: the torch pattern equals the project's sticks; perturbed structures refine back; ranking and CIFs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifParser
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.symmetry.groups import SpaceGroup

from powdersolve.diffraction import sticks, to_two_theta
from powdersolve.diffraction.refinable_cell import metric_ties
from powdersolve.diffraction.reflections import symmetry_equivalents
from powdersolve.errors import NoSolutionError
from powdersolve.scattering import hkl_sphere
from powdersolve.solve import (
    RankConfig,
    RefineConfig,
    plot_fit,
    rank_candidates,
    refine,
    simulate_pattern,
    write_solutions,
)
from powdersolve.solve.rank import _full_start, merge_coincident
from powdersolve.solve.refine import build_model
from powdersolve.structures import Crystal

LAM = 1.54056
TT = np.linspace(15.0, 100.0, 1700)


def pyrite(a: float = 5.417, x: float = 0.385) -> Structure:
    return Structure.from_spacegroup("Pa-3", Lattice.cubic(a), ["Fe", "S"], [[0, 0, 0], [x, x, x]])


def zincite(a: float = 3.25, c: float = 5.21, z: float = 0.382) -> Structure:
    return Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(a, c), ["Zn", "O"],
                                     [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, z]])


@pytest.fixture(scope="module")
def pyrite_counts() -> np.ndarray:
    """Pyrite with x = 0.385, zero shift -0.06 deg, B = 0.7 A^2, ~100-1000 counts of Poisson noise."""
    calc = simulate_pattern(pyrite(), TT, LAM, RefineConfig(b_iso=0.7), zero_shift=-0.06, scale=1e-2, background=30)
    return np.random.default_rng(1).poisson(calc).astype(np.float64)


@pytest.mark.parametrize("structure", [pyrite(), zincite()], ids=["FeS2", "ZnO"])
def test_sticks_equal_project_sticks(structure: Structure) -> None:
    b = 0.7
    model = build_model(structure, TT, LAM, RefineConfig(b_iso=b))
    with torch.no_grad():
        tt, inten = (t.numpy() for t in model.reflection_intensities())
    order = np.argsort(tt)
    tt, inten = tt[order], inten[order]
    # Merge coinciding groups and drop absences exactly as sticks() does.
    new = np.concatenate([[True], np.diff(tt) > 1e-7 * tt[1:]])
    gid = np.cumsum(new) - 1
    tt, inten = tt[new], np.bincount(gid, weights=inten)
    keep = (inten > 1e-7 * inten.max()) & (tt <= TT.max())
    ref_tt, ref_i = to_two_theta(sticks(Crystal.from_structure(structure), q_max=8.0, b_iso=b), LAM)
    sel = ref_tt <= TT.max()
    np.testing.assert_allclose(tt[keep], ref_tt[sel], rtol=1e-10)
    np.testing.assert_allclose(inten[keep], ref_i[sel], rtol=1e-9)


def test_refine_recovers_pyrite_x_and_zero_shift(pyrite_counts: np.ndarray) -> None:
    res = refine(pyrite(a=5.43, x=0.372), TT, pyrite_counts, LAM)
    s_frac = [site.frac_coords for site in res.structure if site.specie.symbol == "S"]
    x = min(abs(((np.asarray(s_frac)[:, 0] - 0.385 + 0.5) % 1) - 0.5).min(),
            abs(((np.asarray(s_frac)[:, 0] - 0.615 + 0.5) % 1) - 0.5).min())
    assert x < 2e-3
    assert res.zero_shift == pytest.approx(-0.06, abs=0.01)
    assert res.structure.lattice.a == pytest.approx(5.417, abs=2e-3)
    assert res.b_iso == pytest.approx(0.7, abs=0.3)
    # Poisson noise only: a correct model fits to the noise level.
    assert res.gof < 1.3 and res.rwp < 0.1
    assert SpacegroupAnalyzer(res.structure, 0.01).get_space_group_number() == 205


def test_refine_hexagonal_lattice_and_free_z() -> None:
    obs = simulate_pattern(zincite(), TT, LAM, RefineConfig(b_iso=1.0), zero_shift=0.03, scale=1.0, background=5.0)
    res = refine(zincite(a=3.26, c=5.20, z=0.37), TT, obs, LAM, sigma=np.ones_like(obs))
    a, b, c = res.structure.lattice.abc
    assert a == pytest.approx(3.25, abs=1e-4) and b == pytest.approx(a) and c == pytest.approx(5.21, abs=1e-4)
    assert res.structure.lattice.gamma == pytest.approx(120.0)
    assert res.zero_shift == pytest.approx(0.03, abs=2e-3)
    assert res.rwp < 1e-3


def test_wrong_structure_is_abstained(pyrite_counts: np.ndarray) -> None:
    fluorite_like = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.417), ["Fe", "S"], [[0, 0, 0], [0.25] * 3])
    with pytest.raises(NoSolutionError, match="abstain threshold"):
        rank_candidates([fluorite_like], TT, pyrite_counts, LAM, config=RankConfig(max_rwp=0.35))


def test_rank_dedupe_and_cif_output(pyrite_counts: np.ndarray, tmp_path) -> None:
    wrong = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.417), ["Fe", "S"], [[0, 0, 0], [0.25] * 3])
    cands = rank_candidates([wrong, pyrite(5.43, 0.375), pyrite(5.41, 0.392)], TT, pyrite_counts, LAM)
    # The two pyrite starts refine to one structure; the best is pyrite.
    assert [c.spacegroup for c in cands] == [205, 225]
    assert cands[0].result.rwp < cands[1].result.rwp
    paths = write_solutions(cands, tmp_path)
    assert [p.name for p in paths] == ["rank_01.cif", "rank_02.cif"]
    reread = CifParser(paths[0]).parse_structures(primitive=False)[0]
    assert SpacegroupAnalyzer(reread, 0.01).get_space_group_number() == 205
    assert "Pa-3" in paths[0].read_text()
    doc = json.loads((tmp_path / "solution.json").read_text())
    first = doc["candidates"][0]
    assert first["formula"] == "FeS2" and first["spacegroup"] == 205 and first["n_atoms"] == 12
    assert first["rwp"] == pytest.approx(cands[0].result.rwp, abs=1e-6)
    plot_fit(TT, pyrite_counts, cands[0].result.calc, cands[0].result.ticks, tmp_path / "fit.png")
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_density_to_refined_structure(pyrite_counts: np.ndarray) -> None:
    # The whole chain: exact CMED -> atoms -> refinement against the pattern.
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from powdersolve.density import density_grid
    from powdersolve.solve import density_to_structure

    c = Crystal.from_structure(pyrite())
    atoms = density_to_structure(density_grid(c), c.lattice, {"Fe": 1, "S": 2})
    res = refine(atoms.structure, TT, pyrite_counts, LAM)
    assert res.gof < 1.3
    assert StructureMatcher().fit(res.structure, pyrite())


def test_windowed_profile_equals_dense_within_the_tail_cut() -> None:
    """Peaks computed within 15 FWHM of their centre: the pattern differs from the dense one by < 1%."""
    dense = simulate_pattern(pyrite(), TT, LAM, RefineConfig(u=0.004, w=0.002, window_fwhm=0.0))
    windowed = simulate_pattern(pyrite(), TT, LAM, RefineConfig(u=0.004, w=0.002))
    assert np.sqrt(np.sum((dense - windowed) ** 2) / np.sum(dense**2)) < 0.01
    assert np.abs(dense - windowed).max() < 0.01 * dense.max()
    # Gradients flow through the windowed evaluation as through the dense one.
    model = build_model(pyrite(), TT, LAM, RefineConfig(u=0.004, w=0.002))
    model.p_xyz.requires_grad_(True)
    y, _ = model.profile()
    (y**2).sum().backward()
    assert model.p_xyz.grad is not None and torch.all(torch.isfinite(model.p_xyz.grad))
    assert model.p_xyz.grad.abs().max() > 0


def test_cif_of_a_degenerate_candidate_falls_back_to_p1() -> None:
    """Near-overlapping atoms make spglib give up; the CIF is still written, in P1."""
    from powdersolve.solve.candidate import cif_text

    s = Structure(Lattice.cubic(4.0), ["Ca", "Ca"], [[0, 0, 0], [0.001, 0, 0]], validate_proximity=False)
    text = cif_text(s)
    assert "P 1" in text
    assert "_cell_length_a   4.0" in text or "_cell_length_a 4.0" in text or "4.00000000" in text


@pytest.mark.parametrize("name", ["NaCl", "Bi"])
def test_true_structure_fits_an_independent_pattern(name: str) -> None:
    """Regression for patterns we did not simulate: pymatgen sticks broadened in tests/independent.py,
    preprocessed as predict does. NaCl refined to Rwp 0.37 before K-alpha2 stripping became data-driven."""
    from independent import CU_KA1, bismuth, pattern, rock_salt

    from powdersolve.preprocess import PreprocessConfig, preprocess

    truth = rock_salt() if name == "NaCl" else bismuth()
    tt, y = pattern(truth)
    t2, processed, _ = preprocess(tt, y, CU_KA1, PreprocessConfig(strip_kalpha2=True, background="snip"))
    cfg = RefineConfig(refine_profile=True, w=0.08**2)
    start = truth.copy()
    start.scale_lattice(truth.volume * 1.003)
    assert refine(start, t2, processed, CU_KA1, config=cfg).rwp < 0.02
    # On the raw counts (Poisson weights) the Chebyshev background takes the flat 1000 counts: noise-level fit.
    raw = refine(start, tt, y, CU_KA1, config=cfg)
    assert raw.gof < 1.1 and raw.rwp < 0.031
    assert raw.structure.lattice.a == pytest.approx(truth.lattice.a, abs=2e-4)


def test_kalpha_doublet_refines_against_an_independent_doublet_pattern() -> None:
    from independent import CU_KA1, CU_KA2, pattern, rock_salt

    tt, y = pattern(rock_salt(), kalpha2=True, seed=5)
    cfg = RefineConfig(refine_profile=True, w=0.08**2, lambda2=CU_KA2)
    res = refine(rock_salt(), tt, y, CU_KA1, config=cfg)
    assert res.gof < 1.1
    single = refine(rock_salt(), tt, y, CU_KA1, config=RefineConfig(refine_profile=True, w=0.08**2))
    assert single.rwp > 2 * res.rwp


def test_displacement_and_preferred_orientation_are_recovered() -> None:
    """Parameters come back from a pattern of the same model (no noise): the derivatives are right."""
    truth = RefineConfig(b_iso=0.7, preferred_orientation=(1, 1, 1))
    model = build_model(pyrite(), TT, LAM, truth)
    with torch.no_grad():
        model.peak.p_disp.fill_(-0.08 / 0.05)
        model.p_po.fill_(np.log(0.85) / 0.05)
        obs = (model.profile()[0] * 1e-2 + 20).numpy()
    # The cell stays fixed: zero, displacement (cos theta) and a (~tan theta) together are nearly degenerate.
    cfg = RefineConfig(b_iso=0.7, refine_displacement=True, preferred_orientation=(1, 1, 1), refine_coords=False,
                       refine_lattice=False)
    res = refine(pyrite(), TT, obs, LAM, sigma=np.ones_like(obs), config=cfg)
    assert res.displacement == pytest.approx(-0.08, abs=5e-3)
    assert res.po_ratio == pytest.approx(0.85, abs=0.01)
    assert res.rwp < 1e-3


def test_coincident_atoms_are_merged_and_the_candidate_refined_again() -> None:
    """A candidate with every atom doubled fits as well as the truth (the scale absorbs the factor 2);
    the ranker keeps one atom of each coincident pair. Pattern from the independent simulator."""
    from independent import CU_KA1, pattern, rock_salt

    truth = rock_salt()
    assert merge_coincident(truth) is None
    doubled = Structure.from_sites(list(truth) + [site for site in truth])
    doubled.translate_sites(list(range(len(truth), 2 * len(truth))), [0.01, 0.0, 0.0])
    merged = merge_coincident(doubled)
    assert merged is not None and merged.composition == truth.composition
    # Different species this close stay (another kind of wrong candidate, not a doubled atom).
    mixed = Structure(truth.lattice, ["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]])
    assert merge_coincident(mixed) is None
    tt, y = pattern(truth)
    best = rank_candidates([doubled], tt, y, CU_KA1, config=RankConfig(refine=RefineConfig(w=0.08**2)),
                           abstain=False)[0]
    assert best.result.structure.composition == truth.composition


def test_a_merge_that_would_change_the_formula_is_not_made() -> None:
    from independent import CU_KA1, pattern, rock_salt

    truth = rock_salt()
    # One extra Cl on top of another: merging it would leave Na4Cl3, another compound.
    extra = Structure.from_sites(list(truth) + [truth[4]])
    extra.translate_sites([len(truth)], [0.01, 0.0, 0.0])
    assert merge_coincident(extra) is not None
    tt, y = pattern(truth)
    best = rank_candidates([extra], tt, y, CU_KA1, config=RankConfig(refine=RefineConfig(w=0.08**2)),
                           abstain=False)[0]
    assert best.result.structure.composition.reduced_composition == extra.composition.reduced_composition


@pytest.mark.parametrize(("lengths", "angles", "n_lengths", "n_angles"), [
    ((5.0, 5.0, 5.0), (90.0, 90.0, 90.0), 1, 0),  # cube
    ((3.5, 3.5, 3.5), (60.0, 60.0, 60.0), 1, 0),  # Niggli cell of a cubic F lattice
    ((5.0, 5.0, 5.0), (80.0, 80.0, 80.0), 1, 1),  # rhombohedral
    ((6.0, 4.0, 4.0), (90.0, 90.0, 90.0), 2, 0),  # tetragonal, unique axis a
    ((4.0, 4.0, 6.0), (90.0, 90.0, 120.0), 2, 0),  # hexagonal
    ((3.0, 4.0, 5.0), (90.0, 100.0, 90.0), 3, 1),  # monoclinic
    ((3.0, 4.0, 5.0), (91.0, 92.0, 93.0), 3, 3),  # triclinic
])
def test_metric_ties_keep_every_equality_of_the_cell(lengths, angles, n_lengths: int, n_angles: int) -> None:
    length_tie, angle_tie = metric_ties(np.array(lengths), np.array(angles))
    assert length_tie.max() + 1 == n_lengths
    assert angle_tie.max() + 1 == n_angles
    assert np.all(angle_tie[np.isin(angles, (60.0, 90.0, 120.0))] == -1)


def test_a_p1_reading_of_a_cubic_crystal_refines_in_the_cubic_metric() -> None:
    """A candidate read in P1 from a map in an indexed cubic cell keeps the cubic metric (one length, no
    angle), and renders the cubic lattice's distinct reflections only; without ``keep_metric`` its cell
    would have six free parameters and the profile ~5x the reflections. Pattern from the independent simulator."""
    from independent import CU_KA1, pattern, rock_salt

    truth = rock_salt()
    tt, y = pattern(truth)
    p1 = truth.copy()
    p1.perturb(0.05, min_distance=0.02)
    strict = RefineConfig(w=0.08**2, symprec=1e-3)
    kept = build_model(p1, tt, CU_KA1, strict)
    split = build_model(p1, tt, CU_KA1, RefineConfig(w=0.08**2, symprec=1e-3, keep_metric=False))
    assert kept.cell.n_free == 1 and split.cell.n_free == 6
    assert kept.n_groups == build_model(truth, tt, CU_KA1, strict).n_groups < split.n_groups / 3
    res = refine(p1, tt, y, CU_KA1, config=strict)
    a, b, c = res.structure.lattice.abc
    assert a == pytest.approx(b, rel=1e-9) and b == pytest.approx(c, rel=1e-9)
    assert np.allclose(res.structure.lattice.angles, 90.0, atol=1e-9)
    assert a == pytest.approx(truth.lattice.a, abs=2e-3)
    assert res.rwp < 0.05


def test_a_full_refinement_starts_where_its_screening_fit_ended(pyrite_counts: np.ndarray) -> None:
    cfg = RefineConfig(w=0.02)
    screened = refine(pyrite(x=0.37), TT, pyrite_counts, LAM, config=replace(cfg, max_iter=5))
    start, warm = _full_start(pyrite(x=0.37), screened, cfg, warm=True)
    assert start is screened.structure
    assert (warm.zero_start, warm.zero_search, warm.b_iso) == (screened.zero_shift, 0.0, screened.b_iso)
    given = pyrite(x=0.37)
    assert _full_start(given, screened, cfg, warm=False) == (given, cfg)
    cold_start, cold = _full_start(given, None, cfg, warm=True)
    assert cold_start is given and cold is cfg
    assert refine(start, TT, pyrite_counts, LAM, config=warm).rwp == pytest.approx(
        refine(cold_start, TT, pyrite_counts, LAM, config=cold).rwp, abs=2e-3)


def test_symmetry_equivalent_sets_are_the_point_group_orbits() -> None:
    """Under m-3m with Friedel's law, {100}, {111}, {123} hold 6, 8 and 48 reflections: one Friedel half of
    each is 3, 4 and 24 rows."""
    rots = np.array([op.rotation_matrix for op in SpaceGroup.from_int_number(225).symmetry_ops])
    hkl = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 1], [1, -1, 1], [1, 2, 3], [3, -2, 1], [2, 0, 0]])
    label, first = symmetry_equivalents(hkl, rots)
    assert len(first) == 4 and len(set(label[:3])) == 1 and label[3] == label[4] and label[5] == label[6]
    full = hkl_sphere(np.eye(3), 3.9)
    full = full[full[:, 0] * 1_000_000 + full[:, 1] * 1000 + full[:, 2] > 0]
    counts = dict(zip(map(tuple, full[symmetry_equivalents(full, rots)[1]]),
                      np.bincount(symmetry_equivalents(full, rots)[0])))
    assert {counts[k] for k in counts if sorted(map(abs, k)) == [0, 0, 1]} == {3}
    assert {counts[k] for k in counts if sorted(map(abs, k)) == [1, 1, 1]} == {4}
    assert {counts[k] for k in counts if sorted(map(abs, k)) == [1, 2, 3]} == {24}


@pytest.mark.parametrize("structure", [
    Structure.from_spacegroup("Fd-3m", Lattice.cubic(8.08), ["Co", "Co", "O"],
                              [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [0.263, 0.263, 0.263]]),
    Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]]),
    Structure.from_spacegroup("C2/m", Lattice.monoclinic(12.1, 3.74, 6.53, 107.3), ["Ti", "O", "O"],
                              [[0.115, 0, 0.31], [0.36, 0, 0.29], [0.06, 0, 0.64]]),
    Structure.from_spacegroup("R-3m", Lattice.hexagonal(3.76, 10.55), ["As"], [[0, 0, 0.227]]),
])
def test_merged_equivalents_give_the_same_pattern_and_gradient(structure: Structure) -> None:
    """|F|^2 computed once per set of equivalents (the refinement's default) equals every reflection
    computed, pattern and coordinate gradient, to rounding; it computes fewer reflections."""
    tt = np.arange(5.0, 120.0, 0.02)
    out = []
    for merge in (True, False):
        model = build_model(structure, tt, 1.5406, RefineConfig(merge_equivalents=merge))
        with torch.no_grad():
            model.p_xyz.add_(0.01)  # off the starting positions, still symmetric
        y, _ = model.profile()
        (y**2).sum().backward()
        out.append((y.detach().numpy(), model.p_xyz.grad.numpy(), len(model.hkl)))
    (y_m, g_m, n_m), (y_a, g_a, n_a) = out
    assert n_m < n_a
    assert np.abs(y_m - y_a).max() <= 1e-12 * np.abs(y_a).max()
    assert np.abs(g_m - g_a).max() <= 1e-10 * max(np.abs(g_a).max(), 1e-30)
