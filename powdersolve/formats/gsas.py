"""GSAS standard powder data files (.gsa, .gss, .fxye): the first constant-wavelength BANK.

Layout (GSAS manual, "Powder data file"): line 1 title; optional ``Instrument parameter <file>``
line; ``#`` comments; then ``BANK ibank nchan nrec BINTYP bcoef1 bcoef2 bcoef3 bcoef4 TYPE``.
Supported here:

- ``CONS``: 2-theta(i) = (bcoef1 + i bcoef2) / 100 (centidegrees); ``STD`` records hold 10 fields
  (I2 number-of-counters, F6.0 counts), sigma = sqrt(counts / ncounters); ``ESD`` records hold 5
  (F8.0 counts, F8.0 sigma) pairs; ``ALT`` is refused.
- ``FXYE``: free-format ``x y e`` per line, x in centidegrees.

The wavelength is read from a ``# Wavelength`` style comment, else from the ``INS  1 ICONS``
line of the named instrument parameter file when it sits beside the data file, else None.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from powdersolve.errors import InputError
from powdersolve.formats.pattern import Pattern, make_pattern, read_text_file, wavelength_from_text

_RECORD = 80


def _float(text: str, path: Path, lineno: int) -> float:
    try:
        return float(text) if text.strip() else 0.0
    except ValueError:
        raise InputError(f"{path}: line {lineno}: '{text.strip()}' is not a number; the GSAS file is corrupt") from None


def _prm_wavelength(path: Path, name: str) -> float | None:
    prm = path.parent / Path(name.strip()).name
    if not name.strip() or not prm.is_file() or prm.stat().st_size > 1_000_000:
        return None
    for line in prm.read_text(errors="replace").splitlines():
        # "INS  1 ICONS  1.540500  1.544300 ..." : lambda1, lambda2 (0 for a single line)
        if line.startswith("INS") and "ICONS" in line[:16]:
            try:
                return float(line[12:].split()[0])
            except (ValueError, IndexError):
                return None
    return None


def read_gsas(path: str | Path) -> Pattern:
    """Read the first BANK of a GSAS powder data file; 2-theta returned in degrees."""
    p, text = read_text_file(path)
    lines = text.splitlines()
    title = lines[0].strip() if lines else ""
    instrument = ""
    comments: list[str] = []
    bank_at = None
    for i, line in enumerate(lines[1:], start=1):
        if line.startswith("Instrument parameter"):
            m = re.match(r"Instrument parameter(?:\s+file)?\s*:?\s*(\S*)", line)
            instrument = m.group(1) if m else ""
        elif line.startswith("#"):
            comments.append(line[1:].strip())
        elif line.startswith("BANK"):
            bank_at = i
            break
    if bank_at is None:
        raise InputError(f"{p}: no BANK line; not a GSAS powder data file (export .xy or pass --format)")
    bank = lines[bank_at].split()
    if len(bank) < 5:
        raise InputError(f"{p}: line {bank_at + 1}: BANK line is incomplete; the GSAS file is corrupt")
    try:
        nchan = int(bank[2])
    except ValueError:
        raise InputError(f"{p}: line {bank_at + 1}: BANK nchan '{bank[2]}' is not an integer") from None
    bintyp = bank[4].upper()
    if not 0 < nchan <= 10_000_000:
        raise InputError(f"{p}: BANK declares {nchan} channels; must be 1-10000000")
    body = []
    for k, line in enumerate(lines[bank_at + 1:], start=bank_at + 2):
        if line.startswith("BANK"):
            break
        body.append((k, line))
    comment_text = "\n".join(comments)
    metadata: dict = {"title": title, "bank": bank[1], "bintyp": bintyp}

    if bintyp == "CONS":
        if len(bank) < 7:
            raise InputError(f"{p}: CONS BANK line lacks start/step (BCOEF1, BCOEF2)")
        start, step = _float(bank[5], p, bank_at + 1), _float(bank[6], p, bank_at + 1)
        layout = bank[-1].upper() if len(bank) > 9 else "STD"
        y, s = [], []
        for k, line in body:
            rec = line[:_RECORD].rstrip()
            if layout == "ESD":
                for j in range(0, len(rec), 16):
                    y.append(_float(rec[j:j + 8], p, k))
                    s.append(_float(rec[j + 8:j + 16], p, k))
            elif layout == "STD":
                for j in range(0, len(rec), 8):
                    field = rec[j:j + 8]
                    ncount = max(int(_float(field[:2], p, k)), 1)
                    count = _float(field[2:8], p, k)
                    y.append(count)
                    s.append(math.sqrt(max(count, 0.0) / ncount))
            else:
                raise InputError(f"{p}: GSAS CONS layout '{layout}' is not supported; export STD, ESD or FXYE")
            if len(y) >= nchan:
                break
        if len(y) < nchan:
            raise InputError(f"{p}: BANK declares {nchan} points but {len(y)} were found; the file is truncated")
        y, s = y[:nchan], s[:nchan]
        x = (start + step * np.arange(nchan)) / 100.0
        metadata["layout"] = layout
    elif bintyp == "FXYE":
        rows = []
        for k, line in body:
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) < 3:
                raise InputError(f"{p}: line {k}: FXYE record needs x y e; the file is truncated")
            rows.append([_float(v, p, k) for v in parts[:3]])
            if len(rows) >= nchan:
                break
        if len(rows) < nchan:
            raise InputError(f"{p}: BANK declares {nchan} points but {len(rows)} were found; the file is truncated")
        arr = np.asarray(rows, dtype=np.float64)
        x, y, s = arr[:, 0] / 100.0, arr[:, 1], arr[:, 2]
    else:
        raise InputError(f"{p}: GSAS BINTYP '{bintyp}' is not supported (time-of-flight?); give CONS or FXYE data")

    lam = wavelength_from_text(comment_text + "\n" + title)
    if lam is None and instrument:
        lam = _prm_wavelength(p, instrument)
    if instrument:
        metadata["instrument_parameter_file"] = instrument
    return make_pattern(x, np.asarray(y), np.asarray(s), lam, p, "gsas", metadata)
