"""From a density map to a refined, ranked crystal structure: atoms, refinement, ranking and CIF output."""

from powdersolve.solve.atoms import AtomsResult, PeakTable, density_to_structure
from powdersolve.solve.candidate import Candidate, write_solutions
from powdersolve.solve.rank import RankConfig, rank_candidates
from powdersolve.solve.refine import RefineConfig, RefineResult, plot_fit, refine, simulate_pattern

__all__ = [
    "AtomsResult",
    "Candidate",
    "PeakTable",
    "RankConfig",
    "RefineConfig",
    "RefineResult",
    "density_to_structure",
    "plot_fit",
    "rank_candidates",
    "refine",
    "simulate_pattern",
    "write_solutions",
]
