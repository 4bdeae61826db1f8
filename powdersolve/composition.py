"""The model's composition encodings (parsing what users type is :class:`powdersolve.cell.Composition`).

Encodings (all length :data:`N_ELEMENTS`, indexed by atomic number Z, index 0 unused):

- ``fractions``: atom fractions summing to 1 (the paper's encoding);
- ``presence``: 1 for each element present, 0 otherwise (no ratios);
- ``drop``: presence flags with ``k`` present elements removed at random (drawn afresh per call);
- ``none``: all zeros (no formula given).
"""

from __future__ import annotations

import numpy as np
from pymatgen.core.periodic_table import Element

from powdersolve.errors import InputError

#: Length of the composition vectors (Z = 0..118).
N_ELEMENTS = 119
ENCODINGS = ("fractions", "presence", "drop", "none")


def encode(
    amounts: dict[int, float] | dict[str, float],
    kind: str = "fractions",
    rng: np.random.Generator | None = None,
    drop: int = 1,
) -> np.ndarray:
    """Encode element amounts (keys Z or symbols) as a float32 vector of length 119.

    ``kind`` is one of :data:`ENCODINGS`. ``drop`` elements are removed for ``kind='drop'``
    (at least one is always kept); ``rng`` chooses which.
    """
    if kind not in ENCODINGS:
        raise InputError(f"unknown composition encoding '{kind}'; choose one of {', '.join(ENCODINGS)}")
    vec = np.zeros(N_ELEMENTS, dtype=np.float32)
    if kind == "none":
        return vec
    zs = [Element(k).Z if isinstance(k, str) else int(k) for k in amounts]
    vals = np.array(list(amounts.values()), dtype=np.float64)
    if kind == "fractions":
        np.add.at(vec, zs, (vals / vals.sum()).astype(np.float32))
        return vec
    vec[zs] = 1.0
    if kind == "drop" and len(zs) > 1:
        rng = rng or np.random.default_rng()
        k = min(drop, len(zs) - 1)
        vec[rng.choice(zs, size=k, replace=False)] = 0.0
    return vec
