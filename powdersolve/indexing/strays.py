"""Weak stray lines: a more symmetric cell that explains every line but a few weak ones (an impurity's).

The ranking of :mod:`.solution` weighs every unindexed line alike, so a few lines of a minor second
phase can let a lower-symmetry cell that indexes them by chance (at a poor figure of merit) out-rank the
right cell, which explains every other line far better. When the line intensities are known (weak lines
marked in :class:`~powdersolve.indexing.observations.Observed`), :func:`prefer_despite_weak_strays` puts
such a cell first again; beside a recognised standard, the one of several such cells that explains most of the
sample's own lines (:func:`_best`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from powdersolve.indexing.metric import SYSTEMS, param_map
from powdersolve.indexing.observations import Observed
from powdersolve.indexing.reduction import niggli, same_lattice
from powdersolve.indexing.solution import CellSolution

#: The more symmetric cell must reach this many times the leader's M20 on the lines it indexes.
M20_RATIO = 3.0
#: With a standard recognised, a cell within this factor of the best M20 that leaves fewer of the sample's own
#: lines unindexed goes first (:func:`_best`).
M20_CLOSE = 0.25
#: A leader of the alternative's own metric family is challenged only below this M20: an unconvincing cell
#: (a large one indexing an impurity's lines by chance); a convincing one may be a real superstructure whose
#: extra lines are weak, and its subcell must not displace it.
UNCONVINCING_M20 = 20.0


def challengers(leader: CellSolution, systems: Sequence[str]) -> list[str]:
    """The ``systems`` whose cells may displace ``leader``: fewer free metric parameters, or as many when the
    leader's M20 is below :data:`UNCONVINCING_M20`."""
    n = param_map(leader.system).shape[1]
    return [s for s in systems if param_map(s).shape[1] < n
            or (param_map(s).shape[1] == n and leader.m20 < UNCONVINCING_M20)]


def prefer_despite_weak_strays(ranked: Sequence[CellSolution], alternatives: Sequence[CellSolution],
                               obs: Observed, max_fraction: float = 0.5) -> list[CellSolution]:
    """``ranked`` (best first) with the best (by M20) of ``alternatives`` put first that is of a system that
    may displace the leader (:func:`challengers`), leaves only weak lines unindexed (:attr:`Observed.weak`; at most
    ``max_fraction`` of all lines, a present standard's lines not counted) and has at least
    :data:`M20_RATIO` times the leader's M20; unchanged when none does or ``obs`` has no weak lines.

    ``alternatives``: candidates of a search that let weak lines go unindexed, indexed on ``obs``.
    """
    ranked = list(ranked)
    weak = obs.weak
    if not ranked or weak is None:
        return ranked
    top = ranked[0]
    capped = obs.capped()
    systems = challengers(top, SYSTEMS)
    ok = []
    for cand in alternatives:
        stray = _unindexed(cand)
        if (cand.system in systems and cand.m20 >= M20_RATIO * top.m20
                and len(stray) == len(weak) and (stray & capped).sum() <= max_fraction * len(weak)
                and not np.any(stray & ~weak)):
            ok.append(cand)
    if not ok:
        return ranked
    best = _best(ok, obs)
    red = niggli(best.lattice(), best.centring)
    # The strict search may have found the same cell (with fewer lines allowed unindexed): keep one.
    return [best] + [s for s in ranked if not (s.system == best.system and same_lattice(
        niggli(s.lattice(), s.centring), red))]


def _best(ok: Sequence[CellSolution], obs: Observed) -> CellSolution:
    """The candidate to put first: the best M20; with a standard recognised (:attr:`Observed.foreign`), of those
    within :data:`M20_CLOSE` of it the one leaving fewest of the sample's own lines unindexed.

    A standard's lines count as weak, and so do the sample's own weak lines; beside a 20% standard a subcell that
    leaves the sample's weak lines out (cubic I under a CsCl-type P cell, whose odd lines are weak) reaches twice
    the right cell's M20 on the few lines it keeps. Once the standard is known, the sample's unindexed lines are
    the sample's, and a cell that explains them is the better description. Exact ties (the same predicted lines:
    cubic P a/sqrt(2) and I a below N = 14) go to the centred cell, as in the ranking.
    """
    best = max(ok, key=lambda c: (float(f"{c.m20:.9g}"), c.centring != "P"))
    if obs.foreign is None or not np.any(obs.foreign):
        return best
    own = obs.capped()
    close = [c for c in ok if c.m20 >= M20_CLOSE * best.m20]
    return min(close, key=lambda c: (int((_unindexed(c) & own).sum()), -float(f"{c.m20:.9g}"), c.centring == "P"))


def _unindexed(cand: CellSolution) -> np.ndarray:
    """(n,) bool: the observed lines ``cand`` leaves unindexed (hkl 0 0 0)."""
    return np.all(np.asarray(cand.hkl) == 0, axis=1)
