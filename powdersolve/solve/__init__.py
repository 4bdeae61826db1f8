"""From a density map to a refined, ranked crystal structure: atoms, refinement, ranking and CIF output."""

from powdersolve._callable import make_module_callable
from powdersolve.solve.atoms import AtomsResult, PeakTable, density_to_structure
from powdersolve.solve.rank import Candidate, RankConfig, rank_candidates, write_solutions
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


def _solve(*args, **kwargs):
    """``powdersolve.solve(...)`` is :func:`powdersolve.solve.pipeline.solve`."""
    from powdersolve.solve.pipeline import solve

    return solve(*args, **kwargs)


make_module_callable(__name__, _solve)
