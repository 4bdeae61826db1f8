"""The unit cell and the chemical composition: each parsed and checked once, into one typed record.

:class:`Cell` is the cell everywhere in powdersolve (edges in Angstrom, angles in degrees): parsed from
what a user types, checked, turned into the (3, 3) row matrix of pymatgen's standard orientation, and
classified into the metric families the models know, with ONE tolerance (:data:`LENGTH_TOL`,
:data:`ANGLE_TOL_DEG`). :class:`Composition` is the composition everywhere: parsed once from a
formula ("CaF2", "Fe2(SO4)3") or an element list ("Ca,F"), with pymatgen's Composition as its core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from pymatgen.core import Composition as PmgComposition
from pymatgen.core import Lattice
from pymatgen.core.periodic_table import Element

from powdersolve.errors import InputError

#: Relative tolerance on edge lengths for a cell to count as metrically cubic or hexagonal.
LENGTH_TOL = 1e-3
#: Tolerance (deg) on angles for a cell to count as metrically cubic or hexagonal.
ANGLE_TOL_DEG = 0.05
#: Crystal systems a structure in a cell of each metric family can have (:attr:`Cell.family`'s values),
#: for cells in the conventional standard setting (monoclinic unique axis b).
FAMILY_SYSTEMS = {"cubic": ("cubic",), "hexagonal": ("trigonal", "hexagonal"), "tetragonal": ("tetragonal",),
                  "orthorhombic": ("orthorhombic",), "monoclinic": ("monoclinic",), "triclinic": ("triclinic",)}


class Cell(NamedTuple):
    """A unit cell: a, b, c in Angstrom, alpha, beta, gamma in degrees.

    Build it checked with :meth:`of`, :meth:`parse` or :meth:`from_matrix`. It is a tuple of the six
    parameters, so it goes wherever cell parameters do (``Lattice.from_parameters(*cell)``).
    """

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float

    @classmethod
    def of(cls, values: tuple[float, ...] | list[float] | np.ndarray) -> Cell:
        """Checked cell from six numbers: edges 0.5-200 A, angles in (0, 180) deg, a real (positive-volume) cell."""
        vals = tuple(float(v) for v in values)
        if len(vals) != 6 or not all(np.isfinite(vals)):
            raise InputError(f"cell {tuple(values)} must be six finite numbers a b c alpha beta gamma")
        if not all(0.5 <= v <= 200 for v in vals[:3]):
            raise InputError(f"cell edges {vals[:3]} must lie in 0.5-200 A")
        if not all(0 < v < 180 for v in vals[3:]):
            raise InputError(f"cell angles {vals[3:]} must lie strictly between 0 and 180 deg")
        al, be, ga = np.radians(vals[3:])
        g = 1 - np.cos(al) ** 2 - np.cos(be) ** 2 - np.cos(ga) ** 2 + 2 * np.cos(al) * np.cos(be) * np.cos(ga)
        if g <= 1e-6:
            raise InputError(f"cell angles {vals[3:]} do not form a cell (zero or negative volume)")
        return cls(*vals)

    @classmethod
    def parse(cls, text: str) -> Cell:
        """Cell from "a b c alpha beta gamma" (Angstrom, degrees; spaces or commas) or "a" (cubic)."""
        parts = [p for p in text.replace(",", " ").split() if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"--cell '{text}' must be numbers: 'a b c alpha beta gamma' or 'a' for cubic") from None
        if len(values) == 1:
            values = values * 3 + [90.0, 90.0, 90.0]
        if len(values) != 6:
            raise InputError(f"--cell '{text}' has {len(values)} numbers; give 'a b c alpha beta gamma' or 'a'")
        return cls.of(values)

    @classmethod
    def from_matrix(cls, lattice: np.ndarray) -> Cell:
        """Cell of a (3, 3) matrix of row vectors a, b, c in Angstrom (unchecked: any real lattice)."""
        lat = Lattice(np.asarray(lattice, dtype=np.float64).reshape(3, 3))
        return cls(*(float(v) for v in (*lat.abc, *lat.angles)))

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) rows a, b, c in Angstrom, pymatgen's standard orientation (a along x for right angles)."""
        return np.asarray(Lattice.from_parameters(*self).matrix, dtype=np.float64)

    @property
    def volume(self) -> float:
        """Cell volume in Angstrom^3."""
        return float(abs(np.linalg.det(self.matrix)))

    @property
    def family(self) -> str:
        """Metric family of the cell as given (:func:`metric_family`)."""
        return metric_family(self)

    def lattice(self) -> Lattice:
        """The cell as a pymatgen Lattice."""
        return Lattice.from_parameters(*self)


def metric_family(cell: tuple[float, ...] | np.ndarray) -> str:
    """Crystal family of a cell's metric, read as given (a conventional standard setting is assumed):
    'cubic' (a = b = c, all 90 deg), 'hexagonal' (a = b, 90, 90, 120), 'tetragonal' (a = b, all 90),
    'orthorhombic' (all 90), 'monoclinic' (alpha = gamma = 90, unique axis b) or 'triclinic'.

    ``cell``: six parameters (Angstrom, degrees) or a (3, 3) row matrix (Angstrom). Lengths agree within
    :data:`LENGTH_TOL` (relative), angles within :data:`ANGLE_TOL_DEG`.
    """
    arr = np.asarray(cell, dtype=np.float64)
    a, b, c, al, be, ga = Cell.from_matrix(arr) if arr.shape == (3, 3) else arr.tolist()

    def same(x: float, y: float) -> bool:
        return abs(x - y) <= LENGTH_TOL * max(x, y)

    def right(angle: float) -> bool:
        return abs(angle - 90) < ANGLE_TOL_DEG

    if right(al) and right(be) and right(ga):
        if same(a, b):
            return "cubic" if same(b, c) else "tetragonal"
        return "orthorhombic"
    if right(al) and right(be) and same(a, b) and abs(ga - 120) < ANGLE_TOL_DEG:
        return "hexagonal"
    return "monoclinic" if right(al) and right(ga) else "triclinic"


_TOKEN = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d+)?)?")
_SYMBOLS = {e.symbol for e in Element}


@dataclass(frozen=True)
class Composition:
    """A composition: element amounts, and whether the amounts (ratios) are known.

    ``amounts`` maps symbol -> count (formula units as written, e.g. Ce4O8 keeps 4 and 8).
    ``ratios_known`` is False for an elements-only input such as "Ce,O" (amounts are then 1 each).
    ``text`` is what was parsed.
    """

    amounts: dict[str, float]
    ratios_known: bool
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Composition:
        """Parse a formula ("NaCl", "Na1 Cl1", "Ce4O8", "Fe2(SO4)3") or an element list ("Ce,O").

        Raises :class:`InputError` with a one-line message for non-stoichiometric formulas
        ("Ba2YCu3O7-x"), unknown elements, or anything else that is not a composition.
        """
        return _parse(text)

    @classmethod
    def of(cls, amounts: dict[str, float]) -> Composition:
        """A composition with known ratios from element -> amount (checked through pymatgen)."""
        try:
            core = PmgComposition({k: float(v) for k, v in amounts.items()})
        except Exception as exc:
            raise InputError(f"composition {amounts}: {exc}") from None
        return cls({el.symbol: float(n) for el, n in core.items()}, True, core.formula)

    @property
    def elements(self) -> list[str]:
        """Element symbols in order of first appearance."""
        return list(self.amounts)

    def fractions(self) -> dict[str, float]:
        """Atom fractions summing to 1 (equal shares when ratios are unknown)."""
        total = sum(self.amounts.values())
        return {el: v / total for el, v in self.amounts.items()}

    def atomic_numbers(self) -> np.ndarray:
        """Atomic numbers of the elements, int64 array."""
        return np.array([Element(el).Z for el in self.amounts], dtype=np.int64)

    def pymatgen(self) -> PmgComposition:
        """The amounts as a pymatgen Composition (the formula as written, not reduced)."""
        return PmgComposition(self.amounts)

    @property
    def reduced_formula(self) -> str:
        """pymatgen's reduced formula ('CaF2' for Ca4F8)."""
        return self.pymatgen().reduced_formula

    def cell_atoms(self, formula_units: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Atomic numbers and occupancies of the atoms in a cell of ``formula_units`` formula units, or None
        without ratios or Z.

        One site per atom; fractional amounts share their sites (Mg0.5 -> one site at occupancy 0.5), which
        is what the sums over occupancy squared (Wilson, the absolute scale) need.
        """
        if not self.ratios_known or formula_units is None:
            return None
        per_cell = np.array(list(self.amounts.values()), dtype=np.float64) * formula_units
        sites = np.maximum(1, np.ceil(per_cell - 1e-9)).astype(int)
        return np.repeat(self.atomic_numbers(), sites), np.repeat(per_cell / sites, sites)


def _parse(text: str) -> Composition:
    raw = text.strip()
    # Error messages must stay one line whatever the user typed (newlines, tabs, control characters).
    shown = _one_line(text)
    if not raw:
        raise InputError("composition is empty; give a formula like 'NaCl' or elements like 'Na,Cl'")
    if re.search(r"[-+]|δ|(?<![A-Z])[xyz]", raw):
        raise InputError(
            f"composition '{shown}': non-stoichiometric formulas (e.g. 'O7-x') are not supported; "
            "give definite numbers such as 'O6.5'"
        )
    if "," in raw or ";" in raw:
        parts = [p.strip() for p in re.split(r"[,;]", raw) if p.strip()]
        if not parts:
            raise InputError(f"composition '{shown}' names no element; give a formula like 'NaCl' or 'Na,Cl'")
        for p in parts:
            if p not in _SYMBOLS:
                raise InputError(f"composition '{shown}': '{_one_line(p)}' is not an element symbol")
        if len(set(parts)) != len(parts):
            raise InputError(f"composition '{shown}': an element is listed twice")
        return Composition({p: 1.0 for p in parts}, ratios_known=False, text=text)
    compact = re.sub(r"\s+", "", _expand_parentheses(raw, shown))
    pos = 0
    amounts: dict[str, float] = {}
    for m in _TOKEN.finditer(compact):
        if m.start() != pos:
            break
        sym, num = m.group(1), m.group(2)
        if sym not in _SYMBOLS:
            raise InputError(f"composition '{shown}': unknown element '{sym}'")
        n = float(num) if num else 1.0
        if n <= 0:
            raise InputError(f"composition '{shown}': amount of {sym} must be positive")
        amounts[sym] = amounts.get(sym, 0.0) + n
        pos = m.end()
    if pos != len(compact) or not amounts:
        bad = compact[pos:] or compact
        raise InputError(f"composition '{shown}': cannot read '{bad[:20]}'; write e.g. 'NaCl' or 'Na,Cl'")
    if any(not np.isfinite(v) or v > 1e4 for v in amounts.values()):
        raise InputError(f"composition '{shown}': element amounts must be finite and below 10^4")
    return Composition(amounts, ratios_known=True, text=text)


def _one_line(text: str, limit: int = 60) -> str:
    """``text`` with every run of white space or control characters shown as one space, cut to ``limit``."""
    flat = re.sub(r"[\s\x00-\x1f\x7f-\x9f]+", " ", text).strip()
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _expand_parentheses(s: str, original: str) -> str:
    """Expand '(SO4)3' groups into plain tokens."""
    for _ in range(10):
        m = re.search(r"\(([^()]*)\)(\d+(?:\.\d+)?)?", s)
        if not m:
            break
        mult = float(m.group(2)) if m.group(2) else 1.0
        inner = re.sub(r"\s+", "", m.group(1))
        tokens = _TOKEN.findall(inner)
        # Positional digits, never %g: %g drops digits past the 6th and writes 1e+20, which the tokenizer cannot read.
        rebuilt = "".join(f"{el}{np.format_float_positional((float(n) if n else 1.0) * mult, trim='-')}"
                          for el, n in tokens)
        s = s[: m.start()] + rebuilt + s[m.end() :]
    if "(" in s or ")" in s:
        raise InputError(f"composition '{original}': unbalanced parentheses")
    return s
