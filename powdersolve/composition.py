"""Chemical compositions: parsing what users type, and the model's composition encodings.

Encodings (all length :data:`N_ELEMENTS`, indexed by atomic number Z, index 0 unused):

- ``fractions``: atom fractions summing to 1 (the paper's encoding);
- ``presence``: 1 for each element present, 0 otherwise (no ratios);
- ``drop``: presence flags with ``k`` present elements removed at random (drawn afresh per call);
- ``none``: all zeros (no formula given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from pymatgen.core.periodic_table import Element

from powdersolve.errors import InputError

#: Length of the composition vectors (Z = 0..118).
N_ELEMENTS = 119
ENCODINGS = ("fractions", "presence", "drop", "none")

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d+)?)?")
_SYMBOLS = {e.symbol for e in Element}


@dataclass(frozen=True)
class ParsedComposition:
    """A user composition: element amounts, and whether the amounts are known.

    ``amounts`` maps symbol -> count (formula units as written, e.g. Ce4O8 keeps 4 and 8).
    ``ratios_known`` is False for an elements-only input such as "Ce,O".
    """

    amounts: dict[str, float]
    ratios_known: bool

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


def parse_composition(text: str) -> ParsedComposition:
    """Parse a formula ("NaCl", "Na1 Cl1", "Ce4O8", "Fe2(SO4)3") or an element list ("Ce,O").

    Raises :class:`InputError` with a one-line message for non-stoichiometric formulas
    ("Ba2YCu3O7-x"), unknown elements, or anything else that is not a composition.
    """
    raw = text.strip()
    # Error messages must stay one line whatever the user typed (newlines, tabs, control characters).
    text = _one_line(text)
    if not raw:
        raise InputError("composition is empty; give a formula like 'NaCl' or elements like 'Na,Cl'")
    if re.search(r"[-+]|δ|(?<![A-Z])[xyz]", raw):
        raise InputError(
            f"composition '{text}': non-stoichiometric formulas (e.g. 'O7-x') are not supported; "
            "give definite numbers such as 'O6.5'"
        )
    if "," in raw or ";" in raw:
        parts = [p.strip() for p in re.split(r"[,;]", raw) if p.strip()]
        if not parts:
            raise InputError(f"composition '{text}' names no element; give a formula like 'NaCl' or 'Na,Cl'")
        for p in parts:
            if p not in _SYMBOLS:
                raise InputError(f"composition '{text}': '{_one_line(p)}' is not an element symbol")
        if len(set(parts)) != len(parts):
            raise InputError(f"composition '{text}': an element is listed twice")
        return ParsedComposition({p: 1.0 for p in parts}, ratios_known=False)
    expanded = _expand_parentheses(raw, text)
    compact = re.sub(r"\s+", "", expanded)
    pos = 0
    amounts: dict[str, float] = {}
    for m in _TOKEN.finditer(compact):
        if m.start() != pos:
            break
        sym, num = m.group(1), m.group(2)
        if sym not in _SYMBOLS:
            raise InputError(f"composition '{text}': unknown element '{sym}'")
        n = float(num) if num else 1.0
        if n <= 0:
            raise InputError(f"composition '{text}': amount of {sym} must be positive")
        amounts[sym] = amounts.get(sym, 0.0) + n
        pos = m.end()
    if pos != len(compact) or not amounts:
        bad = compact[pos:] or compact
        raise InputError(f"composition '{text}': cannot read '{bad[:20]}'; write e.g. 'NaCl' or 'Na,Cl'")
    if any(not np.isfinite(v) or v > 1e4 for v in amounts.values()):
        raise InputError(f"composition '{text}': element amounts must be finite and below 10^4")
    return ParsedComposition(amounts, ratios_known=True)


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
