"""A torch Dataset of query points with their exact density, for the paper's query decoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from powdersolve.dataset.shards import Record
from powdersolve.density import DEFAULT_B, density_at, stratified_points


class QueryPointDataset(torch.utils.data.Dataset):
    """Items for the paper's query-point model: the pattern encoding and CMED at random points.

    Each item is a dict of float32 tensors: ``xrd`` (1024,) paper encoding, ``points`` (P, 3)
    fractional coordinates, one uniformly jittered point in each of ``points_side``^3 strata
    (P = 1000 by default), ``density`` (P,) exact CMED in e/A^3 at overall B ``b_iso`` (A^2),
    plus ``lattice`` (3, 3) in Angstrom. Points are drawn from seed [seed, epoch, index], so an
    epoch is reproducible; call :meth:`set_epoch` to draw new points.
    """

    def __init__(self, records: Sequence[Record], points_side: int = 10, b_iso: float = DEFAULT_B,
                 seed: int = 0) -> None:
        self.records = list(records)
        self.points_side = points_side
        self.b_iso = b_iso
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh set of query points for every item from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        r = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        pts = stratified_points(self.points_side, rng)
        rho = density_at(r.crystal, pts, self.b_iso)
        return {
            "xrd": torch.from_numpy(np.asarray(r.xrd_paper, dtype=np.float32)),
            "points": torch.from_numpy(pts.astype(np.float32)),
            "density": torch.from_numpy(rho.astype(np.float32)),
            "lattice": torch.from_numpy(r.crystal.lattice.astype(np.float32)),
        }
