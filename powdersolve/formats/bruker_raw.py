"""Bruker DIFFRAC .raw binary scans, versions 3 ("RAW1.01") and 4 ("RAW4.00").

No maintained pip-installable reader exists (xylib-py is a C++ source build), so the two current
layouts are decoded here with :mod:`struct`, from the field offsets of the DIFFRAC^plus XCH manual
appendix A (v3) as implemented in xylib (LGPL), little-endian throughout:

- v3: 712-byte file header (range count at 12; K-alpha average/1/2 and ratio as float64 at
  616/624/632/648); per range a 304-byte header (steps u32 @4, start 2-theta f64 @16, step f64
  @176, time per step f32 @192, wavelength f64 @240, supplementary size u32 @256), then the
  supplementary headers, then ``steps`` float32 counts.
- v4: 61-byte header, then tagged segments (u32 type, u32 length; type 30 holds the K-alpha
  lines at +72..+104) until a range (type 0 or 160): start angle f64 @72, step f64 @80, steps u32
  @88, time per step f32 @92, wavelength f64 @112, datum size u32 @136, extra header size u32
  @140, 160-byte header, then the extra headers and the data.

Only coupled (2-theta/theta) ranges are read; several ranges are joined when they follow each
other in angle. Versions 1 and 2 ("RAW ", "RAW2") are refused with an export hint.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from powdersolve.errors import InputError
from powdersolve.fileio import check_input_file
from powdersolve.formats.pattern import Pattern, make_pattern

_V3_HEADER = 712
_V3_RANGE = 304
_V4_HEADER = 61
_V4_RANGE = 160


class _Buf:
    """Bounds-checked little-endian reads; running past the end means a truncated file."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path = data, path

    def need(self, offset: int, size: int) -> None:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise InputError(f"{self.path}: Bruker .raw ends early (needs byte {offset + size}); the file is truncated")

    def u32(self, offset: int) -> int:
        self.need(offset, 4)
        return struct.unpack_from("<I", self.data, offset)[0]

    def f32(self, offset: int) -> float:
        self.need(offset, 4)
        return struct.unpack_from("<f", self.data, offset)[0]

    def f64(self, offset: int) -> float:
        self.need(offset, 8)
        return struct.unpack_from("<d", self.data, offset)[0]

    def text(self, offset: int, size: int) -> str:
        self.need(offset, size)
        return self.data[offset:offset + size].split(b"\x00")[0].decode("latin-1").strip()

    def floats(self, offset: int, count: int) -> np.ndarray:
        self.need(offset, 4 * count)
        return np.frombuffer(self.data, dtype="<f4", count=count, offset=offset).astype(np.float64)


def _kalpha(avg: float, a1: float, a2: float, ratio: float) -> float | None:
    if 0.1 <= avg <= 5.0:
        return avg
    if 0.1 <= a1 <= 5.0:
        if 0.1 <= a2 <= 5.0 and 0 < ratio < 1:
            return (a1 + ratio * a2) / (1 + ratio)
        return a1
    return None


def _read_v3(b: _Buf) -> tuple[list[tuple[np.ndarray, np.ndarray]], float | None, dict]:
    nrange = b.u32(12)
    if not 0 < nrange <= 1000:
        raise InputError(f"{b.path}: Bruker .raw v3 declares {nrange} ranges; the file is corrupt")
    meta = {"version": 3, "sample_id": b.text(326, 60), "anode": b.text(608, 4)}
    file_lam = _kalpha(b.f64(616), b.f64(624), b.f64(632), b.f64(648))
    ranges, lam, off = [], None, _V3_HEADER
    for _ in range(nrange):
        hlen, steps = b.u32(off), b.u32(off + 4)
        if hlen != _V3_RANGE or steps > 10_000_000:
            raise InputError(f"{b.path}: Bruker .raw v3 range header is corrupt (length {hlen}, {steps} steps)")
        start, step = b.f64(off + 16), b.f64(off + 176)
        used = b.f64(off + 240)
        meta.setdefault("time_per_step_s", b.f32(off + 192))
        lam = lam if lam is not None else (used if 0.1 <= used <= 5.0 else None)
        data_at = off + hlen + b.u32(off + 256)
        ranges.append((start + step * np.arange(steps), b.floats(data_at, steps)))
        off = data_at + 4 * steps
    return ranges, (lam if lam is not None else file_lam), meta


def _read_v4(b: _Buf) -> tuple[list[tuple[np.ndarray, np.ndarray]], float | None, dict]:
    meta: dict = {"version": 4}
    off, lam_file = _V4_HEADER, None
    while True:
        seg = b.u32(off)
        if seg in (0, 160):
            break
        seglen = b.u32(off + 4)
        if seglen < 8:
            raise InputError(f"{b.path}: Bruker .raw v4 segment of length {seglen} at byte {off}; the file is corrupt")
        if seg == 30 and seglen >= 120:
            lam_file = _kalpha(b.f64(off + 72), b.f64(off + 80), b.f64(off + 88), b.f64(off + 104))
            meta["anode"] = b.text(off + 116, 4)
        off += seglen
    ranges, lam, skipped = [], None, []
    while off < len(b.data):
        seg = b.u32(off)
        if seg not in (0, 160):
            raise InputError(f"{b.path}: Bruker .raw v4 range marker {seg} at byte {off}; the file is corrupt")
        scan_type = b.text(off + 32, 24)
        start, step, steps = b.f64(off + 72), b.f64(off + 80), b.u32(off + 88)
        used, datum, extra = b.f64(off + 112), b.u32(off + 136), b.u32(off + 140)
        if steps > 10_000_000 or datum not in (4,):
            raise InputError(f"{b.path}: Bruker .raw v4 range is corrupt ({steps} steps of {datum} bytes)")
        data_at = off + _V4_RANGE + extra
        if scan_type in ("Locked Coupled", "Unlocked Coupled", "PSD fast", "Coupled TwoTheta/Theta"):
            meta.setdefault("time_per_step_s", b.f32(off + 92))
            lam = lam if lam is not None else (used if 0.1 <= used <= 5.0 else None)
            ranges.append((start + step * np.arange(steps), b.floats(data_at, steps)))
        else:
            b.need(data_at, datum * steps)
            skipped.append(scan_type)
        off = data_at + datum * steps
    if skipped:
        meta["skipped_scan_types"] = skipped
    if not ranges and skipped:
        raise InputError(f"{b.path}: Bruker .raw holds only '{skipped[0]}' scans, not 2-theta scans; export to .xy")
    return ranges, (lam if lam is not None else lam_file), meta


def read_bruker_raw(path: str | Path) -> Pattern:
    """Read a Bruker .raw v3/v4 file; 2-theta in degrees, counts as stored."""
    p = check_input_file(path)
    b = _Buf(p.read_bytes(), p)
    magic = b.data[:7]
    if magic == b"RAW1.01":
        ranges, lam, meta = _read_v3(b)
    elif magic == b"RAW4.00":
        ranges, lam, meta = _read_v4(b)
    elif magic[:4] in (b"RAW ", b"RAW2"):
        raise InputError(f"{p}: Bruker .raw version 1/2 is not supported; export the scan to .xy")
    else:
        raise InputError(f"{p}: not a Bruker .raw file (no RAW1.01/RAW4.00 signature); check the file or pass --format")
    if not ranges:
        raise InputError(f"{p}: Bruker .raw holds no data ranges")
    meta["ranges"] = len(ranges)
    x = np.concatenate([r[0] for r in ranges])
    y = np.concatenate([r[1] for r in ranges])
    return make_pattern(x, y, None, lam, p, "bruker_raw", meta)
