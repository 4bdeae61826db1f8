"""The indexing search itself (:class:`Search`): trial cells per crystal system, screened, refined and merged."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from powdersolve.indexing.metric import (
    CENTRINGS,
    cell_from_p6,
    lattice_from_cell,
    metric_from_p6,
    p6_from_lattice,
    param_map,
    primitive_lattice,
)
from powdersolve.indexing.observations import Observed
from powdersolve.indexing.reduction import bravais_lattices, niggli, same_lattice
from powdersolve.indexing.refine import Fit, figures, refine
from powdersolve.indexing.solution import CENTRING_POINTS, CellSolution, IndexConfig, solution_of
from powdersolve.indexing.trials import (
    assignment_trials,
    chance_matches,
    metric_trials,
    reduced_basis_trials,
    screen,
)

#: Systems searched by the one/two-parameter trial assignment and by the reduced-basis search.
HIGH_SYSTEMS = ("cubic", "hexagonal", "trigonal", "tetragonal")
LOW_SYSTEMS = ("orthorhombic", "monoclinic", "triclinic")
#: Centrings tried on every refined primitive orthorhombic or monoclinic cell (the lattice is then
#: re-found by spglib in its standard setting).
SUBLATTICE_CENTRINGS = {"orthorhombic": ("P", "A", "B", "C", "I", "F"), "monoclinic": ("P", "A", "C", "I")}
#: (centring, reflections per assignment, first lines, largest index) of the assignment trials: a
#: centred lattice's first lines have higher indices than a primitive one's.
ASSIGNMENT_ROWS = {"orthorhombic": (("P", 20, 7, 2), ("C", 14, 7, 3), ("I", 14, 7, 3), ("F", 14, 7, 4)),
                   "monoclinic": (("P", 20, 5, 2), ("C", 12, 6, 3))}
#: Reflections per distinct line of a general hkl (Friedel pairs and mirrors merge).
LINE_MULTIPLICITY = {"orthorhombic": 8, "monoclinic": 4}
#: A trial cell may predict at most this many times as many lines as are observed up to the 20th:
#: beyond it the cell indexes lines by chance and its M20 is hopeless.
MAX_LINE_RATIO = 3.0


def _index2_transforms() -> np.ndarray:
    """(14, 3, 3) matrices T taking primitive rows L to the rows T @ L of the lattices that contain L,
    or that L contains, with index 2: the 7 supercells (det 2) and the 7 subcells (det 1/2).

    A supercell keeps the translations n.L with v.n even, for each v in {0, 1}^3 \\ {0}; a subcell adds
    (v.L) / 2. Any lattice of twice or half the volume sharing the translations of the other is one of them.
    """
    out = []
    for v in np.array([(i >> 2 & 1, i >> 1 & 1, i & 1) for i in range(1, 8)]):
        i = int(np.argmax(v))
        sup = np.eye(3)
        sup[:, i] += v  # rows e_j + v_j e_i (2 e_i for j = i): each keeps v.n even
        sub = np.eye(3)
        sub[i] = v / 2
        out += [sup, sub]
    return np.array(out)


#: Supercell and subcell transforms of :meth:`Search.neighbours`.
INDEX2 = _index2_transforms()


class Search:
    """Collects refined candidates of one pattern (one job; no state outside it)."""

    def __init__(self, obs: Observed, config: IndexConfig, say: Callable[[str], None], lenient: bool = False
                 ) -> None:
        # Only a lenient search lets a candidate leave weak lines (an impurity's?) unindexed.
        self.obs = obs if lenient else replace(obs, weak=None)
        self.config, self.say = config, say
        self.q = obs.q()
        # Trials are screened on the first 20 lines that count.
        counted = np.flatnonzero(self.obs.counted())
        n_s = min(20, counted.size)
        self.q_s = self.q[counted[:n_s]]
        self.tol_s = obs.tol_q(obs.max_zero)[counted[:n_s]]
        # Lines a cell may leave unindexed: at most one in five (few-line patterns leave no room).
        self.max_unindexed = min(config.max_unindexed, self.q.size // 5)
        self.need = n_s - self.max_unindexed
        self.found: list[CellSolution] = []

    def _fit(self, system: str, centring: str, p0: np.ndarray) -> Fit | None:
        """A trial refined, or None when it leaves more lines unindexed than the search allows: at most
        ``max_unindexed`` of the first 20 and twice that in all, weak lines (lenient search) not counted,
        and at most ``config.impurity_fraction`` of all lines (a present standard's lines not counted)."""
        ref = refine(system, centring, np.asarray(p0, dtype=np.float64), self.obs, max_unindexed=self.max_unindexed)
        if ref is None:
            return None
        fit = figures(system, centring, ref[0], ref[1], self.obs)
        if fit is None or fit.n_unindexed20 > self.max_unindexed:
            return None
        unindexed = np.all(fit.hkl == 0, axis=1)
        limit = 2 * max(self.max_unindexed, 1)
        strays = max(limit, self.config.impurity_fraction * fit.n_lines)
        if (unindexed & self.obs.counted()).sum() > limit or (unindexed & self.obs.capped()).sum() > strays:
            return None
        return fit

    def solution(self, system: str, centring: str, p0: np.ndarray) -> tuple[Fit, CellSolution] | None:
        """A trial refined: its fit and candidate when it indexes enough lines and passes the volume and
        edge limits of the configuration, else None."""
        fit = self._fit(system, centring, p0)
        sol = None if fit is None else solution_of(fit, self.obs, self.config.occam)
        if fit is None or sol is None or not (self.config.min_volume * CENTRING_POINTS[centring] <= sol.volume
                                              <= self.config.max_volume):
            return None
        if float(niggli(sol.lattice(), centring)[0].min()) < self.config.min_edge:
            return None
        return fit, sol

    def add(self, system: str, centring: str, p0: np.ndarray, keep: bool = True) -> Fit | None:
        """Refine a trial; keep it as a candidate (unless ``keep`` is False) when it indexes enough lines."""
        if not keep:
            fit = self._fit(system, centring, p0)
            return fit if fit is not None and solution_of(fit, self.obs, self.config.occam) is not None else None
        out = self.solution(system, centring, p0)
        if out is None:
            return None
        self.found.append(out[1])
        return out[0]

    def best_trials(self, system: str, centring: str, trials: np.ndarray) -> np.ndarray:
        """Up to ``n_refine`` trials that index most of the first lines, smallest cells first."""
        if len(trials) == 0:
            return trials
        vol = _volume(trials @ param_map(system).T)
        trials, vol = trials[vol <= self.config.max_volume], vol[vol <= self.config.max_volume]
        counts = screen(system, centring, trials, self.q_s, self.tol_s)
        return trials[_pick(counts, vol, self.need, self.config.n_refine, self.q_s, self.tol_s)]

    def high(self, systems: Sequence[str]) -> None:
        t0 = time.monotonic()
        for system in systems:
            for centring in CENTRINGS[system]:
                if time.monotonic() - t0 > self.config.time_budget_s:
                    self.say(f"indexing: time budget spent before {system} {centring}")
                    return
                trials = assignment_trials(system, centring, self.q[self.obs.counted()])
                for p0 in self.best_trials(system, centring, trials):
                    self.add(system, centring, p0)
                self.say(f"indexing: {system} {centring}: {len(trials)} trials, {len(self.found)} candidates so far")

    def assigned(self, system: str, systems: Sequence[str], max_primitive_volume: float = np.inf) -> None:
        """Orthorhombic or monoclinic search by exhaustive low-index assignment (:func:`metric_trials`).

        Trials are screened smallest cell first (principle of the smallest cell) on the first 12 lines,
        then on the first 20; the best are refined as primitive cells, then with every centring their
        lines allow, in the standard setting spglib gives the centred lattice. Only trials whose
        primitive cell is smaller than ``max_primitive_volume`` (A^3) are tried.
        """
        t0 = time.monotonic()
        budget = self.config.time_budget_s
        mp = param_map(system)
        sets = [(metric_trials(system, c, self.q, n_first=n_first, n_rows=n_rows, max_index=mi), c)
                for c, n_rows, n_first, mi in ASSIGNMENT_ROWS[system]]
        trials = np.concatenate([t for t, _ in sets])
        points = np.concatenate([np.full(len(t), CENTRING_POINTS[c]) for t, c in sets])
        vol = _volume(trials @ mp.T)
        m = self.q_s.size
        # Lines a cell predicts up to the 20th line, taking the centring its trial was made for.
        n_est = 4 * np.pi / 3 * vol / points * self.q_s[-1] ** 1.5 / LINE_MULTIPLICITY[system]
        ok = ((vol >= self.config.min_volume) & (vol <= self.config.max_volume) & (n_est <= MAX_LINE_RATIO * m)
              & (vol / points < max_primitive_volume))
        order = np.flatnonzero(ok)[np.argsort(vol[ok], kind="stable")]
        trials, vol = trials[order], vol[order]
        n1 = min(12, m)
        need1 = n1 - min(self.max_unindexed, 2)
        kept = []
        step = 20000
        for c0 in range(0, len(trials), step):
            if time.monotonic() - t0 > 0.6 * budget:
                self.say(f"indexing: {system} screening stopped at {c0} of {len(trials)} trials (time budget)")
                break
            sel = np.arange(c0, min(c0 + step, len(trials)))
            sel = sel[screen(system, "P", trials[sel], self.q_s[:n1], self.tol_s[:n1]) >= need1]
            kept.append(sel)
        sel = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        counts = screen(system, "P", trials[sel], self.q_s, self.tol_s)
        pick = sel[_pick(counts, vol[sel], self.need, self.config.n_refine, self.q_s, self.tol_s)]
        self.say(f"indexing: {system}: {len(order)} trial cells, refining {len(pick)}")
        seen: list[tuple[np.ndarray, np.ndarray]] = []
        for p0 in trials[pick]:
            if time.monotonic() - t0 > budget:
                self.say(f"indexing: time budget spent in the {system} refinement")
                break
            fit = self.add(system, "P", p0, keep=False)
            if fit is None:
                continue
            cell = cell_from_p6(mp @ fit.p)
            red = niggli(lattice_from_cell(*cell))
            if any(same_lattice(red, r) for r in seen):
                continue
            seen.append(red)
            lat = lattice_from_cell(*cell)
            for centring in SUBLATTICE_CENTRINGS[system]:
                if screen(system, centring, fit.p[None], self.q_s, self.tol_s)[0] < self.need:
                    continue
                for sub_system, sub_centring, std in bravais_lattices(primitive_lattice(lat, centring)):
                    if sub_system in systems and sub_system != "triclinic":
                        sp = np.linalg.lstsq(param_map(sub_system), p6_from_lattice(std), rcond=None)[0]
                        self.add(sub_system, sub_centring, sp)

    def low(self, systems: Sequence[str]) -> None:
        t0 = time.monotonic()
        groups = reduced_basis_trials(self.q, self.obs.tol_q(self.obs.max_zero))
        # Two-stage screening: the first 10 lines (few reflections to generate) weed out most trials.
        n1 = min(10, self.q_s.size)
        q1, tol1, need1 = self.q_s[:n1], self.tol_s[:n1], n1 - min(self.max_unindexed, 2)
        kept = []
        for i, trials in enumerate(groups):
            if time.monotonic() - t0 > self.config.time_budget_s * 0.6:
                self.say(f"indexing: reduced-basis screening stopped at {i} of {len(groups)} axis choices "
                         "(time budget)")
                break
            trials = trials[_volume(trials) <= self.config.max_volume]
            trials = trials[screen("triclinic", "P", trials, q1, tol1) >= need1]
            counts = screen("triclinic", "P", trials, self.q_s, self.tol_s)
            ok = counts >= self.need
            if ok.any():
                kept.append(np.column_stack([trials[ok], counts[ok]]))
        if not kept:
            self.say("indexing: no primitive trial cell indexes enough lines")
            return
        allk = np.concatenate(kept)
        trials, counts = allk[:, :6], allk[:, 6]
        _, first = np.unique(np.round(trials / trials[:, :1] * 2000), axis=0, return_index=True)
        trials, counts = trials[first], counts[first]
        trials = trials[_pick(counts, _volume(trials), self.need, self.config.n_refine * 2, self.q_s, self.tol_s)]
        self.say(f"indexing: {sum(len(g) for g in groups)} primitive trials, refining {len(trials)}")
        seen: list[tuple[np.ndarray, np.ndarray]] = []
        for p0 in trials:
            if time.monotonic() - t0 > self.config.time_budget_s:
                self.say("indexing: time budget spent in the reduced-basis refinement")
                break
            fit = self.add_triclinic(p0, "triclinic" in systems)
            if fit is None:
                continue
            lat = lattice_from_cell(*cell_from_p6(fit.p))
            red = niggli(lat)
            if any(same_lattice(red, s) for s in seen):
                continue
            seen.append(red)
            for system, centring, std in bravais_lattices(lat):
                if system == "triclinic" or (system not in systems and system not in HIGH_SYSTEMS):
                    continue
                mp = param_map(system)
                p = np.linalg.lstsq(mp, p6_from_lattice(std), rcond=None)[0]
                self.add(system, centring, p)

    def polish(self, candidates: Sequence[CellSolution]) -> None:
        """Refine ``candidates`` once more, starting from their refined cells.

        A trial far from the right metric may stop, after the fixed iterations of :func:`.refine.refine`,
        in a false minimum that leaves lines at high angle unindexed (the zero shift and a slightly
        wrong edge compensating at low angle); restarted from there, the assignment takes those lines in
        and the fit converges. Both versions stay candidates; the merge keeps the better.
        """
        for sol in candidates:
            self.add(sol.system, sol.centring, np.linalg.lstsq(param_map(sol.system), sol.p6(), rcond=None)[0])

    def neighbours(self, candidates: Sequence[CellSolution], systems: Sequence[str]) -> None:
        """Refine the index-2 supercells and subcells of ``candidates`` in every Bravais lattice of their metric.

        The trial generators start from a few low-index lines, so a superstructure whose doubling shows
        only in weak lines (its subcell, of half the volume, indexes most lines) may never be tried,
        while the subcell is; likewise a cell may be missed while a supercell of it is found. A
        subcell is kept as any candidate (if it indexes the same lines, M20 prefers it); a supercell
        only as :meth:`explains` allows, since a cell of twice the volume indexes stray lines by
        chance. Each is refined from the parent's metric, then once more from the result (as
        :meth:`polish`), and the better of the two taken: its many lines make the first assignment
        ambiguous.
        """
        seen: list[tuple[np.ndarray, np.ndarray]] = [niggli(s.lattice(), s.centring) for s in self.found]
        n_before = len(self.found)
        for sol in candidates:
            prim = primitive_lattice(sol.lattice(), sol.centring)
            for t in INDEX2:
                red = niggli(t @ prim)
                lat = lattice_from_cell(*red[0], *red[1])
                vol = abs(float(np.linalg.det(lat)))
                if not (self.config.min_volume <= vol <= self.config.max_volume) or any(
                        same_lattice(red, r) for r in seen):
                    continue
                seen.append(red)
                for system, centring, std in bravais_lattices(lat):
                    if system == "triclinic":
                        if sol.system != "triclinic" or "triclinic" not in systems:
                            continue
                        p = p6_from_lattice(lat)  # the Niggli cell, as the reduced-basis search reports
                    elif system in systems:
                        p = np.linalg.lstsq(param_map(system), p6_from_lattice(std), rcond=None)[0]
                    else:
                        continue
                    first = self.solution(system, centring, p)
                    if first is None:
                        continue
                    again = self.solution(system, centring, first[0].p)
                    best = first[1] if again is None or again[1].score <= first[1].score else again[1]
                    if np.linalg.det(t) < 1 or self.explains(best, sol):
                        self.found.append(best)
        self.say(f"indexing: {len(self.found) - n_before} candidates from the supercells and subcells of the "
                 f"{len(candidates)} leading ones")

    def explains(self, sup: CellSolution, parent: CellSolution) -> bool:
        """Whether a supercell ``sup`` of ``parent`` (twice its primitive volume) explains the lines better
        than chance: it fits better outright (a higher M20 although it predicts about twice the lines),
        or it indexes at least one more of the lines the parent leaves unindexed than a cell of its
        volume would by chance (the excess over chance that :func:`_pick` ranks trials by).

        The chance count takes the reflections the supercell adds, pi dV sqrt(Q) per unit Q for a
        primitive volume increase dV (A^3), each matching a line within its tolerance
        (:func:`.trials.chance_matches`). One stray line a supercell happens to index is thus no
        reason to prefer it (p ~ 0.2-0.4 at twice the volume), while a subcell that leaves two lines
        of a superstructure unexplained loses to it.
        """
        if sup.m20 >= parent.m20:
            return True
        unindexed = ~parent.hkl.any(axis=1)
        k = int(np.sum(unindexed & sup.hkl.any(axis=1)))
        dv = sup.volume / CENTRING_POINTS[sup.centring] - parent.volume / CENTRING_POINTS[parent.centring]
        lam = float(chance_matches(np.array([max(dv, 0.0)]), self.q[unindexed], self.obs.tol_q()[unindexed])[0])
        return k - lam >= 1.0

    def add_triclinic(self, p0: np.ndarray, keep: bool) -> Fit | None:
        ref = refine("triclinic", "P", p0, self.obs, max_unindexed=self.max_unindexed)
        if ref is None:
            return None
        cell = cell_from_p6(ref[0])
        if cell is None:
            return None
        # Report the Niggli cell: refine once more from it so the indices refer to it.
        from_lat = lattice_from_cell(*cell)
        lengths, angles = niggli(from_lat)
        p = p6_from_lattice(lattice_from_cell(*lengths, *angles))
        if keep:
            return self.add("triclinic", "P", p)
        fit = figures("triclinic", "P", ref[0], ref[1], self.obs)
        return fit if fit is not None and fit.n_unindexed20 <= self.max_unindexed else None


def _volume(p6: np.ndarray) -> np.ndarray:
    """Cell volumes (A^3) of (T, 6) metric coefficients; inf where not positive definite."""
    det = np.linalg.det(metric_from_p6(p6))
    return np.where(det > 0, 1 / np.sqrt(np.maximum(det, 1e-300)), np.inf)


def _pick(counts: np.ndarray, vol: np.ndarray, need: int, n: int, q: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Indices of up to ``n`` trials indexing at least ``need`` lines, most lines above chance first
    (a large cell indexes many lines by chance, e.g. a supercell an impurity line)."""
    ok = np.flatnonzero(counts >= need)
    merit = counts[ok] - chance_matches(vol[ok], q, tol)
    return ok[np.argsort(-merit, kind="stable")[:n]]


