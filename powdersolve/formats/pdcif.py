"""Powder CIF (pdCIF, IUCr powder dictionary): measured or processed profile loops, via gemmi.cif.

2-theta, in order of preference: ``_pd_meas_2theta_scan``, ``_pd_proc_2theta_corrected``,
``_pd_meas_2theta_range_{min,max,inc}``, ``_pd_proc_2theta_range_{min,max,inc}`` (equal steps).
Intensity: ``_pd_meas_counts_total``, ``_pd_meas_intensity_total``, ``_pd_proc_intensity_total``,
``_pd_proc_intensity_net``. Standard uncertainties come from CIF ``value(su)`` notation or an
explicit ``*_su`` / ``*_esd`` column. Wavelength: ``_diffrn_radiation_wavelength`` (weighted by
``_diffrn_radiation_wavelength_wt`` when it is a loop of lines). The first data block holding a
profile is read (GSAS-II writes phase blocks before the powder block).
"""

from __future__ import annotations

import re
from pathlib import Path

import gemmi
import numpy as np

from powdersolve.errors import InputError
from powdersolve.formats.pattern import Pattern, make_pattern, read_text_file

_X_TAGS = ("_pd_meas_2theta_scan", "_pd_proc_2theta_corrected")
_RANGE_TAGS = ("_pd_meas_2theta_range_", "_pd_proc_2theta_range_")
_Y_TAGS = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total", "_pd_proc_intensity_net")
_NUM_SU = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((\d+)\))?$")


def _values_su(values: list[str], path: Path, tag: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Numbers and their standard uncertainties from CIF 'value(su)' strings."""
    out = np.empty(len(values))
    su = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        m = _NUM_SU.match(v.strip())
        if m is None:
            raise InputError(f"{path}: {tag} value '{v}' (row {i + 1}) is not a number; fill in or remove the row")
        num = m.group(1)
        out[i] = float(num)
        if m.group(2) is not None:
            mant = num.split("e")[0].split("E")[0]
            decimals = len(mant.split(".")[1]) if "." in mant else 0
            su[i] = int(m.group(2)) * 10.0 ** (-decimals)
    return out, (su if np.all(np.isfinite(su)) else None)


def _column(block: gemmi.cif.Block, tag: str) -> list[str] | None:
    col = block.find_values(tag)
    if len(col) == 0:
        return None
    return [str(v) for v in col]


def _wavelength(block: gemmi.cif.Block, path: Path) -> float | None:
    lam = _column(block, "_diffrn_radiation_wavelength")
    if not lam or all(v in ("?", ".") for v in lam):
        return None
    values, _ = _values_su(lam, path, "_diffrn_radiation_wavelength")
    wt = _column(block, "_diffrn_radiation_wavelength_wt")
    if wt and len(wt) == len(lam) and all(v not in ("?", ".") for v in wt):
        w, _ = _values_su(wt, path, "_diffrn_radiation_wavelength_wt")
        if w.sum() > 0:
            return float(np.sum(w * values) / w.sum())
    return float(values[0])


def _profile_block(doc: gemmi.cif.Document) -> gemmi.cif.Block | None:
    for block in doc:
        if any(len(block.find_values(t)) for t in _Y_TAGS):
            return block
    return None


def read_pdcif(path: str | Path) -> Pattern:
    """Read the powder profile of a pdCIF; 2-theta in degrees."""
    p, text = read_text_file(path)
    try:
        doc = gemmi.cif.read_string(text)
    except (RuntimeError, ValueError) as exc:
        msg = str(exc).splitlines()[0][:120]
        raise InputError(f"{p}: invalid CIF syntax ({msg}); the file is truncated or not a CIF") from None
    block = _profile_block(doc)
    if block is None:
        raise InputError(f"{p}: no powder profile loop (_pd_meas_counts_total, _pd_proc_intensity_total...) in the CIF")
    ytag = next(t for t in _Y_TAGS if len(block.find_values(t)))
    yraw = _column(block, ytag) or []
    y, ysu = _values_su(yraw, p, ytag)
    for su_tag in (ytag + "_su", ytag + "_esd"):
        su_raw = _column(block, su_tag)
        if su_raw is not None and len(su_raw) == len(yraw):
            ysu, _ = _values_su(su_raw, p, su_tag)
    n = y.size

    x = None
    for tag in _X_TAGS:
        col = _column(block, tag)
        if col is not None:
            if len(col) != n:
                raise InputError(f"{p}: {tag} has {len(col)} values but {ytag} has {n}; the loop is corrupt")
            x, _ = _values_su(col, p, tag)
            break
    if x is None:
        for prefix in _RANGE_TAGS:
            lo, hi, inc = (block.find_value(prefix + k) for k in ("min", "max", "inc"))
            if lo is not None and hi is not None:
                lo_v, _ = _values_su([lo], p, prefix + "min")
                hi_v, _ = _values_su([hi], p, prefix + "max")
                x = np.linspace(lo_v[0], hi_v[0], n)
                if inc is not None:
                    inc_v, _ = _values_su([inc], p, prefix + "inc")
                    if n > 1 and abs((hi_v[0] - lo_v[0]) / (n - 1) - inc_v[0]) > 1e-3 * abs(inc_v[0]):
                        raise InputError(f"{p}: {prefix}min/max/inc do not match {n} points; the file is corrupt")
                break
    if x is None:
        raise InputError(f"{p}: the CIF profile has no 2-theta (_pd_meas_2theta_scan or _pd_meas_2theta_range_*)")
    meta = {"block": block.name, "intensity_tag": ytag}
    return make_pattern(x, y, ysu, _wavelength(block, p), p, "pdcif", meta)
