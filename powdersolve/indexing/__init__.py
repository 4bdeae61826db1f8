"""Powder indexing: unit cells of all seven crystal systems from peak positions, and extinction symbols.

Modules: :mod:`.metric` (Q = 1/d^2 parameterisations, calculated lines), :mod:`.observations`,
:mod:`.trials` (trial cells and screening), :mod:`.refine` (least squares, M20, F_N),
:mod:`.reduction` (Niggli cells, Bravais lattices), :mod:`.extinction` (space-group candidates),
:mod:`.api` (the search).
"""

from powdersolve.indexing.api import (
    M20_THRESHOLD,
    CellSolution,
    IndexConfig,
    best_cell,
    index_counts,
    index_pattern,
    index_peaks,
)
from powdersolve.indexing.metric import SYSTEMS
from powdersolve.indexing.observations import MIN_LINES, REFERENCE_WAVELENGTH

__all__ = ["M20_THRESHOLD", "MIN_LINES", "REFERENCE_WAVELENGTH", "SYSTEMS", "CellSolution", "IndexConfig",
           "best_cell", "index_counts", "index_pattern", "index_peaks"]
