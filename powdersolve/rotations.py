"""Proper rotations of a crystal lattice acting on density grids (axes a, b, c, N^3 voxels).

A map is only defined up to the re-labellings of the cell's axes that keep its metric: the proper
rotations of the holohedry of the lattice family, in its conventional setting
(:func:`lattice_rotations`): 24 cubic, 12 hexagonal (trigonal crystals too, on hexagonal axes),
8 tetragonal, 4 orthorhombic, 2 monoclinic, 1 triclinic. The scores of
:mod:`powdersolve.metrics` search over them.

Rotations that permute and flip axes (:class:`Rotation`) act on the grid indices exactly as
compositions of ``np.rot90`` do (index i -> N-1-i on a flipped axis), i.e. about the grid centre,
as the paper's protocol does. The hexagonal rotations that mix a and b (x, y -> x - y, x) have no
grid-centre action on an even grid, so the whole hexagonal group acts about voxel 0 (i -> M i mod N;
:class:`LatticeRotation`). Integer origin shifts make the two the same for a map correlation.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import spglib
import torch

from powdersolve.errors import InputError

ArrayLike = np.ndarray | torch.Tensor

#: Space group (international number) of each lattice family's holohedry; its first Hall setting in
#: spglib's table is the conventional one (monoclinic: unique axis b; hexagonal: hexagonal axes).
HOLOHEDRY = {"triclinic": 2, "monoclinic": 10, "orthorhombic": 47, "tetragonal": 123, "hexagonal": 191,
             "cubic": 221}
#: Crystal system -> lattice family (trigonal crystals are read on hexagonal axes).
FAMILY_OF_SYSTEM = {"triclinic": "triclinic", "monoclinic": "monoclinic", "orthorhombic": "orthorhombic",
                    "tetragonal": "tetragonal", "trigonal": "hexagonal", "hexagonal": "hexagonal",
                    "cubic": "cubic"}


@dataclass(frozen=True)
class Rotation:
    """A proper rotation that permutes and flips the grid axes, acting about the grid centre.

    ``rotate(g, r)`` transposes the three grid axes by ``perm`` and then reverses the axes whose
    sign is -1: output index j (centred) = ``matrix`` @ input index i (centred).
    """

    perm: tuple[int, int, int]
    signs: tuple[int, int, int]

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) signed permutation matrix, det +1."""
        m = np.zeros((3, 3), dtype=np.int64)
        for d in range(3):
            m[d, self.perm[d]] = self.signs[d]
        return m

    def compose(self, first: Rotation) -> Rotation:
        """The rotation ``self`` applied after ``first`` (matrix ``self.matrix @ first.matrix``)."""
        perm = tuple(first.perm[self.perm[d]] for d in range(3))
        signs = tuple(self.signs[d] * first.signs[self.perm[d]] for d in range(3))
        return Rotation(perm, signs)  # type: ignore[arg-type]

    def inverse(self) -> Rotation:
        """The rotation undoing ``self``."""
        m = self.matrix.T
        return _from_matrix(m)


@dataclass(frozen=True)
class LatticeRotation:
    """A proper rotation given by an integer matrix on fractional coordinates, acting about voxel 0.

    ``rotate(g, r)[M i mod N] = g[i]``: the map's density at x moves to M x.
    """

    rows: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) integer matrix, det +1."""
        return np.array(self.rows, dtype=np.int64)


GridRotation = Rotation | LatticeRotation


def _from_matrix(m: np.ndarray) -> Rotation:
    perm = tuple(int(np.flatnonzero(m[d])[0]) for d in range(3))
    signs = tuple(int(m[d, perm[d]]) for d in range(3))
    return Rotation(perm, signs)  # type: ignore[arg-type]


@functools.cache
def cube_rotations() -> tuple[Rotation, ...]:
    """The 24 proper rotations of the cube (signed axis permutations with det +1), identity first."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            r = Rotation(perm, signs)  # type: ignore[arg-type]
            if round(np.linalg.det(r.matrix)) == 1:
                out.append(r)
    # permutations() and product() start with the identity, so out[0] is the identity.
    return tuple(out)


def _is_signed_permutation(m: np.ndarray) -> bool:
    return bool(np.all(np.abs(m).sum(axis=0) == 1) and np.all(np.abs(m).sum(axis=1) == 1))


@functools.cache
def lattice_rotations(family: str) -> tuple[GridRotation, ...]:
    """Proper rotations of a lattice family's holohedry in its conventional setting, identity first.

    Read from spglib's operations of the holohedry's space group (P-1, P2/m, Pmmm, P4/mmm, P6/mmm,
    Pm-3m). Families whose rotations all permute and flip axes get :class:`Rotation` objects in the
    order of :func:`cube_rotations` (so cubic indices are the cube's); the hexagonal family gets
    :class:`LatticeRotation` objects. ``family`` may also be a crystal system ('trigonal' ->
    hexagonal).
    """
    fam = FAMILY_OF_SYSTEM.get(family)
    if fam is None:
        raise InputError(f"unknown crystal family '{family}' (one of {', '.join(HOLOHEDRY)})")
    hall = next(h for h in range(1, 531) if spglib.get_spacegroup_type(h).number == HOLOHEDRY[fam])
    ops = spglib.get_symmetry_from_database(hall)["rotations"]
    mats = {m.astype(np.int64).tobytes(): m.astype(np.int64) for m in ops if round(np.linalg.det(m)) == 1}
    if all(_is_signed_permutation(m) for m in mats.values()):
        return tuple(r for r in cube_rotations() if r.matrix.tobytes() in mats)
    ordered = sorted(mats.values(), key=lambda m: (not np.array_equal(m, np.eye(3, dtype=np.int64)), m.tobytes()))
    return tuple(LatticeRotation(tuple(tuple(int(v) for v in row) for row in m)) for m in ordered)  # type: ignore[misc]


def rotations_or_cube(rotations: Sequence[GridRotation] | None) -> Sequence[GridRotation]:
    """``rotations``, or the cube's 24 when None."""
    return cube_rotations() if rotations is None else rotations


def rotate(grid: ArrayLike, r: GridRotation) -> ArrayLike:
    """Rotate the last three (cubic) axes of a numpy array or torch tensor by ``r``."""
    if isinstance(r, LatticeRotation):
        return _rotate_about_origin(grid, r)
    lead = grid.ndim - 3
    axes = tuple(range(lead)) + tuple(lead + p for p in r.perm)
    flips = tuple(lead + d for d in range(3) if r.signs[d] < 0)
    if isinstance(grid, torch.Tensor):
        out = grid.permute(axes)
        return out.flip(flips) if flips else out
    out = np.transpose(grid, axes)
    return np.flip(out, flips) if flips else out


@functools.lru_cache(maxsize=64)
def _source_voxels(r: LatticeRotation, n: int) -> np.ndarray:
    """Flat index of the voxel each output voxel j of an n^3 grid reads: (M^-1 j) mod n."""
    inv = np.rint(np.linalg.inv(r.matrix)).astype(np.int64)
    j = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    i = np.mod(j @ inv.T, n)
    return (i[:, 0] * n + i[:, 1]) * n + i[:, 2]


def _rotate_about_origin(grid: ArrayLike, r: LatticeRotation) -> ArrayLike:
    n = grid.shape[-1]
    src = _source_voxels(r, n)
    flat = grid.reshape(*grid.shape[:-3], n**3)
    if isinstance(grid, torch.Tensor):
        return flat[..., torch.from_numpy(src)].reshape(grid.shape)
    return flat[..., src].reshape(grid.shape)


def align(pred: ArrayLike, rotation: int | GridRotation, shift: tuple[int, int, int],
          rotations: Sequence[GridRotation] | None = None) -> ArrayLike:
    """The prediction rotated then rolled by ``shift`` voxels, as matched by :func:`map_correlation_batch`.

    ``align(pred, r, s)[x] = rotate(pred, r)[x - s]`` (periodic), so it overlays the truth. An integer
    ``rotation`` indexes ``rotations`` (default: the cube's).
    """
    r = rotations_or_cube(rotations)[rotation] if isinstance(rotation, int) else rotation
    out = rotate(pred, r)
    dims = (-3, -2, -1)
    if isinstance(out, torch.Tensor):
        return torch.roll(out, tuple(int(s) for s in shift), dims)
    return np.roll(out, tuple(int(s) for s in shift), dims)
