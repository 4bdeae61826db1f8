"""Candidates from density maps: atoms read from each map, refined and ranked against the observed pattern.

The first map is searched for its space group (:func:`powdersolve.solve.reading.symmetrised_maps`) and averaged
over the groups of the best extinction classes; those averaged maps, and any given priority maps, are read
before the rest (:func:`powdersolve.solve.reading.candidates_from_grids`). The distinct candidates are refined
and ranked (:func:`powdersolve.solve.rank.rank_structures`). Both the network path and the network-free path
of :func:`powdersolve.solve.pipeline.solve`, and Fourier recycling (:mod:`powdersolve.solve.recycling`), end here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from powdersolve.cell import metric_family
from powdersolve.indexing.extinction import ExtinctionClass
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.observed import Observed
from powdersolve.solve.rank import rank_structures
from powdersolve.solve.reading import (
    PriorityMap,
    candidates_from_grids,
    composition_for_atoms,
    extinction_maps,
    symmetrised_maps,
)
from powdersolve.solve.result import Progress, SolveResult


def solve_maps(grids: list[np.ndarray], labels: list[str], lattice: np.ndarray, composition: str | None,
               observed: Observed, config: SolveConfig, say: Progress, timings: dict[str, float],
               first: Sequence[PriorityMap] = (), extinctions: Sequence[ExtinctionClass] = (),
               deadline: float | None = None) -> SolveResult:
    """Candidates from ``grids`` ((N, N, N) maps on fractional coordinates of ``lattice``, rows in A; the first
    searched for its group, and averaged over the groups of the best of ``extinctions``) and ``first`` (read
    before all), refined against ``observed`` and ranked; ``timings`` (s) gains the stages' times. After
    ``deadline`` (``time.perf_counter``) only the first screening and full refinement begin
    (:func:`powdersolve.solve.rank.rank_structures`)."""
    t0 = time.perf_counter()
    comp, ratios_known = composition_for_atoms(composition)
    priority = list(first)
    if config.map_symmetry and grids:
        say(f"searching the map '{labels[0]}' for its space group")
        sym_maps, sym_labels, sym_groups = symmetrised_maps(grids[0], lattice, labels[0], config.symmetry_top)
        if config.extinction_groups and extinctions:
            say(f"averaging it over the groups of the extinction class {extinctions[0].label}")
            priority += extinction_maps(grids[0], lattice, labels[0], extinctions, config.extinction_groups,
                                        skip=sym_groups)
        priority += [PriorityMap(g, lab, n) for g, lab, n in zip(sym_maps, sym_labels, sym_groups)]
        timings["map_symmetry"] = timings.get("map_symmetry", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
    say(f"reading atoms from {len(priority) + len(grids)} density maps")
    read = candidates_from_grids([m.grid for m in priority] + list(grids), lattice, comp, ratios_known=ratios_known,
                                 labels=[m.label for m in priority] + list(labels),
                                 min_distance=config.min_distance, symprec=config.symprec, n_z=config.n_z,
                                 n_z_averaged=config.n_z_averaged, n_first=len(priority),
                                 spacegroups=[m.number for m in priority] + [None] * len(grids),
                                 skip_p1_pairs=config.skip_p1_pairs,
                                 lattices=[m.lattice for m in priority] + [None] * len(grids), workers=config.workers)
    species_note = read.species_note
    if not comp:
        species_note = species_note or "no composition given: species inferred from electrons per density peak"
    timings["atoms"] = timings.get("atoms", 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    say(f"refining {len(read.structures)} distinct candidate structures")
    ranking = rank_structures(read.structures, read.origins, observed, config.rank_config(),
                              metric_family(lattice), read.n_priority, deadline)
    timings["refine_rank"] = timings.get("refine_rank", 0.0) + time.perf_counter() - t0
    return SolveResult(ranking.candidates, ranking.origins, observed, None, composition, species_note,
                       read.notes + ranking.notes, len(priority) + len(grids), len(read.structures), timings, config)
