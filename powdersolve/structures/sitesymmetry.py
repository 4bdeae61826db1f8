"""Site symmetry: which space-group operations fix a site, and the directions it may move along.

A site x is fixed by the operations (R, t) of its stabiliser, R x + t = x modulo lattice translations.
The mean of the stabiliser's rotation matrices is the projector onto the displacements that keep
the site on its special position: averaging a displacement over the stabiliser removes the
components a symmetric structure cannot have. Both the generators' symmetric perturbation and the
refinement's coordinate constraints need exactly this. Conventions: fractional coordinates,
rotations (n_ops, 3, 3) acting on column vectors, lattice rows in A.
"""

from __future__ import annotations

import numpy as np


def site_stabiliser(rotations: np.ndarray, translations: np.ndarray, x: np.ndarray, lattice: np.ndarray,
                    tol: float = 0.006) -> np.ndarray:
    """Boolean mask (n_ops,) of the operations that map fractional site ``x`` onto itself within ``tol`` A."""
    images = np.einsum("oij,j->oi", rotations, x) + translations
    d = images - x
    d -= np.round(d)
    return np.linalg.norm(d @ np.asarray(lattice, dtype=np.float64), axis=1) < tol


def site_projector(rotations: np.ndarray, translations: np.ndarray, x: np.ndarray, lattice: np.ndarray,
                   tol: float = 0.006) -> np.ndarray:
    """The (3, 3) projector onto the fractional displacements of ``x`` that keep its site symmetry
    (the mean of its stabiliser's rotations); its trace is the site's number of free coordinates."""
    return rotations[site_stabiliser(rotations, translations, x, lattice, tol)].mean(axis=0)
