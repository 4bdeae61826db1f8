"""``read_pattern``: one entry point that picks the reader by extension or, for generic names, by content."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from powdersolve.errors import InputError
from powdersolve.fileio import check_input_file
from powdersolve.formats.bruker_raw import read_bruker_raw
from powdersolve.formats.gsas import read_gsas
from powdersolve.formats.pattern import Pattern
from powdersolve.formats.pdcif import read_pdcif
from powdersolve.formats.xrdml import read_xrdml
from powdersolve.formats.xy import read_xy

#: Reader per format name.
READERS: dict[str, Callable[[str | Path], Pattern]] = {
    "xy": read_xy,
    "gsas": read_gsas,
    "xrdml": read_xrdml,
    "bruker_raw": read_bruker_raw,
    "pdcif": read_pdcif,
}
#: Format per file extension; None means "sniff the content".
EXTENSIONS: dict[str, str | None] = {
    ".xy": "xy", ".xye": "xy", ".csv": "xy", ".asc": "xy", ".chi": None,
    ".dat": None, ".txt": None,
    ".gsa": "gsas", ".gss": "gsas", ".gsas": "gsas", ".fxye": "gsas",
    ".xrdml": "xrdml",
    ".raw": "bruker_raw",
    ".cif": "pdcif", ".rtv": "pdcif", ".pdcif": "pdcif",
}


def sniff_format(path: str | Path) -> str:
    """Guess the format of a file from its first bytes (binary signature, XML, CIF, GSAS BANK, else columns)."""
    p = check_input_file(path)
    with open(p, "rb") as fh:
        head = fh.read(8192)
    if head[:7] in (b"RAW1.01", b"RAW4.00") or head[:4] in (b"RAW ", b"RAW2"):
        return "bruker_raw"
    text = head.decode("latin-1")
    stripped = text.lstrip("\ufeff\xef\xbb\xbf \t\r\n")
    if stripped.startswith("<"):
        return "xrdml"
    lines = text.splitlines()
    if any(ln.startswith("BANK") for ln in lines[1:60]):
        return "gsas"
    if any(ln.strip().lower().startswith("data_") for ln in lines) and "_pd_" in text:
        return "pdcif"
    return "xy"


def read_pattern(path: str | Path, format: str | None = None) -> Pattern:  # noqa: A002 - mirrors the CLI option
    """Read a measured powder pattern.

    Args:
        path: the file.
        format: one of :data:`READERS` to force a reader; by default the extension decides and
            ambiguous extensions (.dat, .txt, .chi, unknown) are sniffed.

    Returns:
        The validated :class:`Pattern` (2-theta in degrees, wavelength in Angstrom or None).
    """
    p = check_input_file(path)
    if format is None:
        fmt = EXTENSIONS.get(p.suffix.lower())
        if fmt is None:
            fmt = sniff_format(p)
    else:
        fmt = format.lower().replace("-", "_")
        if fmt not in READERS:
            raise InputError(f"unknown pattern format '{format}'; choose one of {', '.join(sorted(READERS))}")
    return READERS[fmt](p)
