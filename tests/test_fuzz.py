"""Property-based fuzzing of every reader of user input: bytes or text in, a valid result or an InputError out.

The contract under test: whatever a user hands the tool, a reader returns a value that satisfies the
reader's documented invariants or raises a :class:`~powdersolve.errors.PowdersolveError` (a one-line
message, exit code 2). Any other exception is a bug that would surface as a traceback or an
"internal error". Inputs are arbitrary bytes/text and structured mutations of the valid fixtures
(truncation, byte flips, NaN/inf/negative numbers spliced in, duplicated and dropped lines).

Each target is a (strategy, check) pair in :data:`TARGETS`; the tests below run every target with
:data:`EXAMPLES` derandomized examples, and ``benchmarks/reliability.py`` reuses the same targets with
larger counts.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Element, Lattice, Structure

from powdersolve.cell import Composition
from powdersolve.diffraction.sticks import parse_wavelength
from powdersolve.errors import InputError, PowdersolveError
from powdersolve.formats import MAX_POINTS, Pattern, read_pattern
from powdersolve.formats.bruker_raw import read_bruker_raw
from powdersolve.formats.gsas import read_gsas
from powdersolve.formats.pattern import MIN_POINTS, WAVELENGTH_RANGE
from powdersolve.formats.patterns import EXTENSIONS, READERS
from powdersolve.formats.pdcif import read_pdcif
from powdersolve.formats.xrdml import read_xrdml
from powdersolve.formats.xy import read_xy
from powdersolve.structures import load_crystal, read_structure
from powdersolve.structures.io import MAX_ATOMS

FIXTURES = Path(__file__).parent / "fixtures" / "patterns"
#: Examples per fuzz test; total generated cases = EXAMPLES x len(TARGETS).
EXAMPLES = 200


def fuzz_settings(max_examples: int) -> settings:
    """Deterministic settings: same examples on every run, no per-example deadline (CPU is shared)."""
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --------------------------------------------------------------------------------------------------
# Structured mutations of a valid file
# --------------------------------------------------------------------------------------------------

#: Numbers spliced into files: non-finite, negative, zero, huge, tiny, malformed.
TOKENS = (b"nan", b"NaN", b"inf", b"-inf", b"-1", b"-0.5", b"0", b"1e308", b"-1e308", b"1e-320", b"1e400",
          b"99999999999", b"", b"1..2", b"0x10", b"\xff\xfe", b"<", b"&", b"(", b"\x00")
_NUMBER = re.compile(rb"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?")
OPS = ("truncate", "flip", "insert", "replace_number", "duplicate_line", "drop_line", "swap_lines")


def mutate(data: bytes, ops: list[tuple[str, int, int, bytes]]) -> bytes:
    """Apply mutation ops (name, position, byte value, token) to ``data``; positions wrap around."""
    buf = bytearray(data)
    for op, pos, value, token in ops:
        if not buf:
            break
        at = pos % len(buf)
        if op == "truncate":
            del buf[at:]
        elif op == "flip":
            buf[at] = value
        elif op == "insert":
            buf[at:at] = token
        elif op == "replace_number":
            nums = list(_NUMBER.finditer(bytes(buf)))
            if nums:
                m = nums[pos % len(nums)]
                buf[m.start():m.end()] = token
        else:
            lines = bytes(buf).split(b"\n")
            i, j = pos % len(lines), value % len(lines)
            if op == "duplicate_line":
                lines.insert(i, lines[i])
            elif op == "drop_line":
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)


def mutations(originals: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mutated copies of ``originals`` (1-4 mutation ops each)."""
    op = st.tuples(st.sampled_from(OPS), st.integers(0, 2**20), st.integers(0, 255), st.sampled_from(TOKENS))
    return st.builds(mutate, st.sampled_from(originals), st.lists(op, min_size=1, max_size=4))


def fixture_bytes(*names: str) -> list[bytes]:
    return [(FIXTURES / n).read_bytes() for n in names]


# --------------------------------------------------------------------------------------------------
# Checks: run one input through a reader and assert the contract
# --------------------------------------------------------------------------------------------------


def check_pattern(pat: Pattern) -> None:
    """Invariants every Pattern a reader returns must satisfy (powdersolve.formats.pattern)."""
    assert isinstance(pat, Pattern)
    x, y = pat.two_theta, pat.counts
    assert MIN_POINTS <= x.size <= MAX_POINTS and y.shape == x.shape
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    assert np.all(np.diff(x) > 0) and x[0] > 0 and x[-1] < 180
    assert np.all(y >= 0) and np.any(y > 0)
    if pat.sigma is not None:
        assert pat.sigma.shape == x.shape and np.all(np.isfinite(pat.sigma)) and np.all(pat.sigma >= 0)
    if pat.wavelength is not None:
        assert WAVELENGTH_RANGE[0] <= pat.wavelength <= WAVELENGTH_RANGE[1]


def _workdir() -> Path:
    # One scratch folder per process: hypothesis forbids function-scoped fixtures inside @given.
    return Path(tempfile.mkdtemp(prefix="powdersolve-fuzz-"))


_WORK = _workdir()
(_WORK / "cu_lab.prm").write_bytes((FIXTURES / "cu_lab.prm").read_bytes())


def run_file_reader(reader: Callable[[Path], object], name: str, data: bytes) -> object | None:
    """Write ``data`` to ``name`` in the scratch folder and read it; None when refused with a PowdersolveError."""
    path = _WORK / name
    path.write_bytes(data)
    try:
        return reader(path)
    except PowdersolveError as exc:
        msg = str(exc)
        assert len(msg.splitlines()) == 1, f"error message must be one line: {msg!r}"
        return None


def pattern_check(reader: Callable[[Path], Pattern], name: str) -> Callable[[bytes], None]:
    def check(data: bytes) -> None:
        pat = run_file_reader(reader, name, data)
        if pat is not None:
            check_pattern(pat)
    return check


def read_pattern_check(args: tuple[str, bytes]) -> None:
    suffix, data = args
    pat = run_file_reader(read_pattern, f"fuzz{suffix}", data)
    if pat is not None:
        check_pattern(pat)


def check_structure(args: tuple[str, bytes]) -> None:
    """read_structure then load_crystal: a bounded, finite, physical cell or an InputError."""
    name, data = args
    s = run_file_reader(read_structure, name, data)
    if s is None:
        return
    assert isinstance(s, Structure) and 1 <= len(s) <= MAX_ATOMS
    assert np.all(np.isfinite(s.lattice.matrix)) and np.all(np.isfinite(s.frac_coords))
    assert s.volume >= 1.0
    c = run_file_reader(load_crystal, name, data)
    if c is not None:
        assert np.all(np.isfinite(c.lattice)) and np.all(np.isfinite(c.frac)) and len(c.numbers) >= 1
        assert np.all(c.numbers >= 1)


def check_composition(text: str) -> None:
    try:
        comp = Composition.parse(text)
    except PowdersolveError as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)
        return
    assert isinstance(comp, Composition) and comp.amounts
    for sym, amount in comp.amounts.items():
        assert Element.is_valid_symbol(sym)
        assert np.isfinite(amount) and 0 < amount <= 1e4
    assert abs(sum(comp.fractions().values()) - 1) < 1e-9
    assert comp.atomic_numbers().min() >= 1


def check_wavelength(value: str | float) -> None:
    # The one-line property of its messages is tested separately (test_parse_wavelength_message_is_one_line).
    try:
        lam = parse_wavelength(value)
    except PowdersolveError as exc:
        assert str(exc)
        return
    assert 0.1 <= lam <= 5.0


# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------

_NACL_CIF = """data_NaCl
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
_cell_length_a 5.64
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
'-x, -y, -z'
'x+1/2, y+1/2, z'
'x, y+1/2, z+1/2'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0 0 0 1
Cl1 Cl 0.5 0.5 0.5 1
"""


def _structure_fixtures() -> dict[str, list[bytes]]:
    s = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return {
        "fuzz.cif": [_NACL_CIF.encode()],
        "fuzz.json": [json.dumps(s.as_dict()).encode()],
        "POSCAR": [s.to(fmt="poscar").encode()],
    }


def _structure_inputs() -> st.SearchStrategy[tuple[str, bytes]]:
    fx = _structure_fixtures()
    named = [st.tuples(st.just(name), mutations(orig) | st.binary(max_size=600)) for name, orig in fx.items()]
    return st.one_of(*named)


_ELEMENTS = [Element.from_Z(z).symbol for z in range(1, 104)]
_COUNTS = st.one_of(
    st.just(""), st.integers(0, 50).map(str), st.integers(10**4, 10**40).map(str),
    st.decimals(min_value=0, max_value=100, places=3, allow_nan=False).map(str),
    st.sampled_from(["0", "00", "0.0", "1e3", ".5", "5.", "\u0663", "\uff12", "1_0", "-1", "+2", "\u00bd"]),
)
_SPACE = st.sampled_from(["", "", " ", "\t", "\u00a0", "\n", "\u2009"])


@st.composite
def _odd_formula(draw: st.DrawFn, depth: int = 0) -> str:
    """Formula-like text: element symbols, odd counts, whitespace, (possibly deep or unbalanced) parentheses."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        if depth < 12 and draw(st.integers(0, 3)) == 0:
            inner = draw(_odd_formula(depth + 1))
            opening, closing = draw(st.sampled_from(["(", "(", "[", ""])), draw(st.sampled_from([")", ")", "]", ""]))
            parts.append(opening + inner + closing)
        else:
            parts.append(draw(st.sampled_from(_ELEMENTS + ["Xx", "D", "T", "Uuo", "x", "\u0394"])))
        parts.append(draw(_COUNTS) + draw(_SPACE))
    return "".join(parts)


_COMPOSITIONS = st.one_of(
    st.text(max_size=60),
    _odd_formula(),
    st.lists(st.sampled_from(_ELEMENTS + ["Q", "", " ", "na"]), max_size=6).map(",".join),
)
_WAVELENGTHS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["CuKa", "Cu K-alpha", "MoKa1", "cu", "Ag", "1.5406", "0", "-1.5", "nan", "inf", "1e400", "5.0001",
                     "0.0999", " 1.54 ", "1,54", "\u0661.\u0665"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.09, max_value=5.01).map(repr),
)


@dataclass(frozen=True)
class Target:
    """One fuzz target: what to generate and how to check it."""

    strategy: st.SearchStrategy
    check: Callable[[object], None]


def _pattern_target(reader: Callable[[Path], Pattern], name: str, *fixtures: str) -> Target:
    data = st.one_of(mutations(fixture_bytes(*fixtures)), st.binary(max_size=2048),
                     st.text(max_size=800).map(lambda t: t.encode("utf-8")))
    return Target(data, pattern_check(reader, name))


#: Every fuzz target, by name.
TARGETS: dict[str, Target] = {
    "xy": _pattern_target(read_xy, "fuzz.xy", "topas.xye", "descending.dat", "european.csv"),
    "gsas": _pattern_target(read_gsas, "fuzz.gsa", "cons_std.gsa", "cons_esd.gsa", "gsas2.fxye"),
    "xrdml": _pattern_target(read_xrdml, "fuzz.xrdml", "datacollector.xrdml"),
    "pdcif": _pattern_target(read_pdcif, "fuzz.cif", "gsas2_pdcif.cif", "proc_loop.cif"),
    "bruker_raw": _pattern_target(read_bruker_raw, "fuzz.raw", "bruker_v3.raw", "bruker_v4.raw"),
    "read_pattern": Target(
        st.tuples(st.sampled_from(sorted(EXTENSIONS) + [".unknown", ""]),
                  st.binary(max_size=1024) | mutations(fixture_bytes(*sorted(p.name for p in FIXTURES.iterdir())))),
        read_pattern_check),
    "read_structure": Target(_structure_inputs(), check_structure),
    "parse_composition": Target(_COMPOSITIONS, check_composition),
    "parse_wavelength": Target(_WAVELENGTHS, check_wavelength),
}


def fuzz_test(target: Target, max_examples: int) -> Callable[[], None]:
    """A runnable hypothesis test of ``target`` with ``max_examples`` derandomized examples."""

    @fuzz_settings(max_examples)
    @given(target.strategy)
    def run(value: object) -> None:
        target.check(value)

    return run


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name: str) -> None:
    fuzz_test(TARGETS[name], EXAMPLES)()


def test_every_pattern_reader_is_fuzzed() -> None:
    """A reader added to the registry without a fuzz target of its own fails here."""
    assert set(READERS) <= set(TARGETS), sorted(set(READERS) - set(TARGETS))


# --------------------------------------------------------------------------------------------------
# Well-formed but odd formulas: exact reference amounts
# --------------------------------------------------------------------------------------------------


@st.composite
def _formula_with_amounts(draw: st.DrawFn) -> tuple[str, dict[str, float]]:
    """A formula with integer/decimal counts and one level of parenthesised groups, and its amounts."""
    text, amounts = [], {}
    for _ in range(draw(st.integers(1, 4))):
        group = draw(st.lists(st.tuples(st.sampled_from(_ELEMENTS), st.integers(1, 40)), min_size=1, max_size=3))
        mult = draw(st.sampled_from([1, 2, 3, 0.5, 1.25, 7]))
        paren = draw(st.booleans())
        body = "".join(f"{el}{n if n > 1 else ''}" for el, n in group)
        text.append(f"({body}){mult if mult != 1 else ''}" if paren else body)
        for el, n in group:
            amounts[el] = amounts.get(el, 0.0) + n * (mult if paren else 1)
        text.append(draw(st.sampled_from(["", " "])))
    return "".join(text), amounts


@fuzz_settings(EXAMPLES)
@given(_formula_with_amounts())
def test_parse_composition_matches_reference_amounts(case: tuple[str, dict[str, float]]) -> None:
    text, expected = case
    comp = Composition.parse(text)
    assert comp.ratios_known and set(comp.amounts) == set(expected)
    for el, v in expected.items():
        assert comp.amounts[el] == pytest.approx(v, rel=1e-12)


@pytest.mark.parametrize("text, expected", [
    ("(H2O)0.3333333", {"H": 0.6666666, "O": 0.3333333}),
    ("Ca(O1.234567)1", {"Ca": 1.0, "O": 1.234567}),
    (" Fe2 O3 ", {"Fe": 2.0, "O": 3.0}),
    ("Fe2(SO4)3", {"Fe": 2.0, "S": 3.0, "O": 12.0}),
    ("((CH3)2)2", {"C": 4.0, "H": 12.0}),
])
def test_parse_composition_odd_but_valid(text: str, expected: dict[str, float]) -> None:
    comp = Composition.parse(text)
    assert comp.amounts == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text", ["Na0Cl", "Na1e3Cl", "O10001", "C" + "9" * 400, "(SO4)123456789",
                                  "(((((((((((((H)))))))))))))", "Na(Cl", "Na)Cl(", "Ce,Ce", "Ce,Xx", "", "   ",
                                  "Ba2YCu3O7-x", "\u00bd", "NaCl\x00", ",", " ; ,"])
def test_parse_composition_refuses(text: str) -> None:
    with pytest.raises(PowdersolveError) as info:
        Composition.parse(text)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("value", ["Cu\nKa", "\x1e", "1.5\r\n2"])
def test_parse_wavelength_message_is_one_line(value: str) -> None:
    """Whitespace inside a name is ignored ('Cu\nKa' is CuKa); any error is one line."""
    try:
        assert 0.1 <= parse_wavelength(value) <= 5.0
    except PowdersolveError as exc:
        assert len(str(exc).splitlines()) == 1


def _cif_with(cell: str) -> bytes:
    return _NACL_CIF.replace("_cell_angle_beta 90", cell).encode()


@pytest.mark.parametrize("name, data", [
    ("flat.cif", _cif_with("_cell_angle_beta 0.5")),  # stalled spglib for ~15 s before the lattice check
    ("nan.cif", _cif_with("_cell_angle_beta nan")),
    ("huge.cif", _NACL_CIF.replace("5.64", "1e300").encode()),
    ("nan.json", json.dumps(Structure(Lattice.cubic(4.0), ["Mg"], [[0, 0, 0]]).as_dict())
     .replace("4.0", "NaN").encode()),
])
def test_read_structure_refuses_unphysical_cells(name: str, data: bytes) -> None:
    path = _WORK / name
    path.write_bytes(data)
    with pytest.raises(PowdersolveError):
        read_structure(path)


def test_xrdml_unknown_encoding_is_an_input_error() -> None:
    """Found by the 1000-example run: an unknown XML encoding raised LookupError (an internal error)."""
    data = (FIXTURES / "datacollector.xrdml").read_bytes()
    data = re.sub(rb'encoding="[^"]*"', b'encoding="UTFnan"', data, count=1)
    assert b"UTFnan" in data
    assert run_file_reader(read_xrdml, "enc.xrdml", data) is None


def test_a_sheared_cell_with_a_huge_edge_is_refused_in_one_line(tmp_path: Path) -> None:
    """Found by the fuzzer: a 1e308 A off-diagonal entry keeps the volume small and overflowed the reduction."""
    poscar = ("Mg1 O1\n1.0\n4.2 1e308 0\n0 4.2 0\n0 0 4.2\nMg O\n1 1\ndirect\n"
              "0 0 0 Mg\n0.5 0.5 0.5 O\n")
    path = tmp_path / "POSCAR"
    path.write_text(poscar)
    with pytest.raises(InputError, match="cell edge") as err:
        read_structure(path)
    assert "\n" not in str(err.value)
