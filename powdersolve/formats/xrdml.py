"""PANalytical XRDML (.xrdml): the XML that Data Collector writes, any schema version 1.0-2.x.

Parsing ignores XML namespaces (they change with the schema version) and refuses any document
with a DOCTYPE/ENTITY declaration, so no external entity is ever resolved and entity expansion
bombs cannot occur. Read from the first ``scan`` of the first ``xrdMeasurement``:

- wavelength from ``usedWavelength``: ``intended="K-Alpha 1"`` -> kAlpha1, otherwise the
  intensity-weighted K-alpha mean (kAlpha1 + r kAlpha2) / (1 + r), r = ratioKAlpha2KAlpha1;
- 2-theta from ``positions axis="2Theta"``: ``listPositions`` or equally spaced
  ``startPosition``..``endPosition``;
- ``intensities`` (schema >= 1.5, attenuator-corrected) or raw ``counts`` (older) times
  ``beamAttenuationFactors`` if any;
- counting time (``commonCountingTime`` or ``countingTimes``) into metadata.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from powdersolve.errors import InputError
from powdersolve.fileio import check_input_file
from powdersolve.formats.pattern import Pattern, make_pattern


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _find(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem.iter():
        if _local(c.tag) == name:
            return c
    return None


def _numbers(elem: ET.Element, path: Path, what: str) -> np.ndarray:
    try:
        return np.array((elem.text or "").split(), dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: XRDML <{what}> holds a non-number; the file is corrupt") from None


def _float(elem: ET.Element | None, path: Path, what: str) -> float | None:
    if elem is None or not (elem.text or "").strip():
        return None
    try:
        return float(elem.text)
    except ValueError:
        raise InputError(f"{path}: XRDML <{what}> '{elem.text.strip()}' is not a number") from None


def _wavelength(meas: ET.Element, path: Path) -> tuple[float | None, dict]:
    used = _child(meas, "usedWavelength")
    if used is None:
        return None, {}
    a1 = _float(_child(used, "kAlpha1"), path, "kAlpha1")
    a2 = _float(_child(used, "kAlpha2"), path, "kAlpha2")
    ratio = _float(_child(used, "ratioKAlpha2KAlpha1"), path, "ratioKAlpha2KAlpha1")
    intended = used.get("intended", "")
    meta = {"kalpha1": a1, "kalpha2": a2, "ratio_kalpha2_kalpha1": ratio, "intended_wavelength": intended}
    if a1 is None:
        return None, meta
    if intended.replace(" ", "").lower() in ("k-alpha1", "kalpha1") or a2 is None or ratio is None or a2 <= 0:
        return a1, meta
    return (a1 + ratio * a2) / (1.0 + ratio), meta


def read_xrdml(path: str | Path) -> Pattern:
    """Read the first 2-theta scan of a PANalytical XRDML file; 2-theta in degrees."""
    p = check_input_file(path)
    raw = p.read_bytes()
    head = raw[:4096].lstrip()
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise InputError(f"{p}: XML DOCTYPE/ENTITY declarations are refused for safety; re-export from the instrument")
    if not head.startswith(b"<"):
        raise InputError(f"{p}: is not XML, so not an XRDML file; check the file or pass --format")
    try:
        root = ET.fromstring(raw)
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: unknown encoding="..." declaration
        raise InputError(f"{p}: invalid XRDML/XML ({exc}); the file is truncated or corrupt") from None
    if _local(root.tag) != "xrdMeasurements":
        raise InputError(f"{p}: XML root is <{_local(root.tag)}>, not <xrdMeasurements>; not an XRDML file")
    meas = _child(root, "xrdMeasurement")
    if meas is None:
        raise InputError(f"{p}: XRDML has no <xrdMeasurement>; the file holds no scan")
    scans = [c for c in meas if _local(c.tag) == "scan"]
    if not scans:
        raise InputError(f"{p}: XRDML has no <scan>; the file holds no data")
    scan = scans[0]
    data = _find(scan, "dataPoints")
    if data is None:
        raise InputError(f"{p}: XRDML scan has no <dataPoints>; the file is truncated")

    counts_el = _child(data, "intensities")
    if counts_el is None:
        counts_el = _child(data, "counts")
    if counts_el is None:
        raise InputError(f"{p}: XRDML scan has neither <intensities> nor <counts>")
    y = _numbers(counts_el, p, _local(counts_el.tag))
    atten = _child(data, "beamAttenuationFactors")
    # Schema >= 1.5 <intensities> are already corrected for the attenuator; old raw <counts> are not.
    if atten is not None and _local(counts_el.tag) == "counts":
        factors = _numbers(atten, p, "beamAttenuationFactors")
        if factors.size == y.size:
            y = y * factors
    n = y.size

    pos = None
    for c in data:
        if _local(c.tag) == "positions" and c.get("axis", "").lower() == "2theta":
            pos = c
    if pos is None:
        raise InputError(f"{p}: XRDML scan has no 2Theta positions (axis {scan.get('scanAxis')}); not a powder scan")
    listed = _child(pos, "listPositions")
    if listed is not None:
        x = _numbers(listed, p, "listPositions")
    else:
        start = _float(_child(pos, "startPosition"), p, "startPosition")
        end = _float(_child(pos, "endPosition"), p, "endPosition")
        if start is None or end is None:
            raise InputError(f"{p}: XRDML 2Theta positions lack start/end or list; the file is corrupt")
        x = np.linspace(start, end, n) if n > 1 else np.array([start])
    if x.size != n:
        raise InputError(f"{p}: XRDML has {x.size} 2Theta positions but {n} intensities; the file is corrupt")

    lam, meta = _wavelength(meas, p)
    meta["scans_in_file"] = len(scans)
    meta["scan_mode"] = scan.get("mode", "")
    common = _float(_child(data, "commonCountingTime"), p, "commonCountingTime")
    if common is not None:
        meta["counting_time_s"] = common
    times = _child(data, "countingTimes")
    if times is not None:
        meta["counting_times_s"] = _numbers(times, p, "countingTimes").tolist()
    sample = _find(root, "sample")
    if sample is not None:
        name = _child(sample, "name")
        meta["sample"] = (name.text or "").strip() if name is not None else ""
    meta["unit"] = counts_el.get("unit", "counts")
    return make_pattern(x, y, None, lam, p, "xrdml", meta)
