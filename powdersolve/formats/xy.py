"""Column text patterns (.xy, .xye, .dat, .csv, .txt): 2-theta, intensity and optional sigma.

Accepts comment lines (#, !, ;, %, //), a leading non-numeric header (column names, instrument
blurb), and any delimiter among white space, comma, semicolon and tab. A semicolon-delimited file
whose numbers carry decimal commas (European CSV) is read as such. A third column is taken as
sigma only when the file has exactly three columns (Topas/GSAS-II .xye); wider tables are usually
x, y_obs, y_calc, ... and only their first two columns are used.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from powdersolve.errors import InputError
from powdersolve.formats.pattern import Pattern, make_pattern, read_text_file, wavelength_from_text

_COMMENT_PREFIXES = ("#", "!", ";", "%", "//", "'")
_SPLIT = re.compile(r"[\s,;]+")


def _fields(line: str, decimal_comma: bool) -> list[str]:
    if decimal_comma:
        return [f.replace(",", ".") for f in re.split(r"[\s;]+", line.strip()) if f]
    return [f for f in _SPLIT.split(line.strip()) if f]


def _parse_row(fields: list[str]) -> list[float] | None:
    try:
        return [float(f) for f in fields]
    except ValueError:
        return None


def read_xy(path: str | Path) -> Pattern:
    """Read a column text pattern; 2-theta in degrees. Wavelength from a header comment if any."""
    p, text = read_text_file(path)
    head = text.lstrip()[:200].lower()
    if head.startswith("<?xml") or head.startswith("<"):
        raise InputError(f"{p}: holds XML, not columns; name it .xrdml or pass --format xrdml")
    lines = text.splitlines()
    data_lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith(_COMMENT_PREFIXES)]
    decimal_comma = bool(data_lines) and all(";" in ln and "." not in ln for ln in data_lines[-5:])

    header: list[str] = []
    rows: list[list[float]] = []
    ncol = 0
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(_COMMENT_PREFIXES):
            header.append(stripped.lstrip("#!;%/' "))
            continue
        values = _parse_row(_fields(stripped, decimal_comma))
        if values is None:
            if not rows:
                header.append(stripped)
                continue
            raise InputError(f"{p}: line {lineno} is not numeric ('{stripped[:40]}'); remove it or fix the file")
        if not rows:
            ncol = len(values)
            if ncol < 2:
                raise InputError(f"{p}: line {lineno} has one column; need 2-theta and intensity columns")
        elif len(values) < ncol:
            raise InputError(f"{p}: line {lineno} has {len(values)} of {ncol} columns; the file is truncated")
        rows.append(values[:ncol])
        if len(rows) > 10_000_000:
            raise InputError(f"{p}: more than 10000000 points; rebin the pattern")
    if not rows:
        raise InputError(f"{p}: no numeric 2-theta/intensity rows found; is this a pattern file?")
    arr = np.asarray(rows, dtype=np.float64)
    sigma = arr[:, 2] if ncol == 3 else None
    header_text = "\n".join(header)
    if decimal_comma:
        header_text = re.sub(r"(\d),(\d)", r"\1.\2", header_text)
    metadata = {"columns": ncol, "header": header_text[:2000]}
    return make_pattern(arr[:, 0], arr[:, 1], sigma, wavelength_from_text(header_text), p, "xy", metadata)
