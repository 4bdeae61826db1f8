"""Pattern readers: every fixture format gives the same scan, and bad files fail with one-line InputErrors."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import xrayutilities as xu

from powdersolve.errors import InputError
from powdersolve.formats import Pattern, read_pattern, sniff_format

FIX = Path(__file__).parent / "fixtures" / "patterns"
X_REF = 10.0 + 0.2 * np.arange(101)
Y_REF = np.round(
    100 + 900 * np.exp(-0.5 * ((np.round(X_REF, 4) - 20.0) / 0.3) ** 2)
    + 300 * np.exp(-0.5 * ((np.round(X_REF, 4) - 26.4) / 0.25) ** 2)
)

# file -> (format, wavelength in A or None, has sigma)
CASES = {
    "topas.xye": ("xy", None, True),
    "european.csv": ("xy", 1.5406, False),
    "descending.dat": ("xy", 0.7093, False),
    "cons_std.gsa": ("gsas", 1.5405, True),
    "cons_esd.gsa": ("gsas", 1.54056, True),
    "gsas2.fxye": ("gsas", 1.5405, True),
    "datacollector.xrdml": ("xrdml", (1.5405980 + 0.5 * 1.5444260) / 1.5, False),
    "gsas2_pdcif.cif": ("pdcif", (1.540593 + 0.5 * 1.544427) / 1.5, True),
    "proc_loop.cif": ("pdcif", 0.6199, True),
    "bruker_v3.raw": ("bruker_raw", 1.5406, False),
    "bruker_v4.raw": ("bruker_raw", 1.541874, False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_reads_the_reference_scan(name: str) -> None:
    fmt, lam, has_sigma = CASES[name]
    p = read_pattern(FIX / name)
    assert isinstance(p, Pattern) and p.format == fmt
    assert p.two_theta.dtype == np.float64 and np.all(np.diff(p.two_theta) > 0)
    np.testing.assert_allclose(p.two_theta, X_REF, atol=1e-4)
    np.testing.assert_allclose(p.counts, Y_REF, rtol=1e-6)
    if lam is None:
        assert p.wavelength is None
    else:
        assert p.wavelength == pytest.approx(lam, abs=1e-5)
    assert (p.sigma is not None) == has_sigma
    if has_sigma:
        # every fixture writes Poisson sigma, rounded to at most 2 decimals (pdCIF su: integer)
        np.testing.assert_allclose(p.sigma, np.sqrt(Y_REF), atol=0.51)


def test_xrdml_matches_xrayutilities_reader() -> None:
    ref = xu.io.XRDMLFile(str(FIX / "datacollector.xrdml")).scan
    p = read_pattern(FIX / "datacollector.xrdml")
    np.testing.assert_allclose(p.two_theta, ref["2Theta"], rtol=1e-12)
    # xrayutilities reports counts per second
    np.testing.assert_allclose(p.counts, ref["detector"] * ref["countTime"], rtol=1e-12)
    assert p.metadata["counting_time_s"] == pytest.approx(float(np.ravel(ref["countTime"])[0]))


def test_xrdml_kalpha1_list_positions_and_raw_counts(tmp_path: Path) -> None:
    text = (FIX / "datacollector.xrdml").read_text()
    xs = " ".join(f"{v:.4f}" for v in X_REF)
    text = text.replace('intended="K-Alpha"', 'intended="K-Alpha 1"')
    start = text.index("<startPosition>")
    end = text.index("</endPosition>") + len("</endPosition>")
    text = text[:start] + f"<listPositions>{xs}</listPositions>" + text[end:]
    counts = " ".join(str(int(v // 2)) for v in Y_REF)
    atten = " ".join("2" for _ in Y_REF)
    s, e = text.index("<intensities"), text.index("</intensities>") + len("</intensities>")
    text = text[:s] + f"<beamAttenuationFactors>{atten}</beamAttenuationFactors><counts>{counts}</counts>" + text[e:]
    # namespace of an older schema version must not matter
    text = text.replace("XRDMeasurement/1.5", "XRDMeasurement/1.0")
    f = tmp_path / "old.xrdml"
    f.write_text(text)
    p = read_pattern(f)
    assert p.wavelength == pytest.approx(1.5405980)
    np.testing.assert_allclose(p.two_theta, X_REF, atol=1e-4)
    np.testing.assert_allclose(p.counts, 2 * (Y_REF // 2))


def test_xrdml_entities_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "evil.xrdml"
    f.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xrdMeasurements>&e;'
                 "</xrdMeasurements>")
    with pytest.raises(InputError, match="DOCTYPE"):
        read_pattern(f)


@pytest.mark.parametrize("name,fmt", [("topas.xye", "xy"), ("cons_esd.gsa", "gsas"), ("datacollector.xrdml", "xrdml"),
                                      ("gsas2_pdcif.cif", "pdcif"), ("bruker_v4.raw", "bruker_raw")])
def test_content_sniffing_for_generic_extensions(tmp_path: Path, name: str, fmt: str) -> None:
    f = tmp_path / "scan.dat"
    shutil.copy(FIX / name, f)
    if name == "cons_esd.gsa":  # the instrument file name is resolved beside the data
        shutil.copy(FIX / "cu_lab.prm", tmp_path)
    assert sniff_format(f) == fmt
    np.testing.assert_allclose(read_pattern(f).counts, Y_REF)


def test_forced_format_and_unknown_format() -> None:
    assert read_pattern(FIX / "topas.xye", format="xy").format == "xy"
    with pytest.raises(InputError, match="unknown pattern format"):
        read_pattern(FIX / "topas.xye", format="foo")


def test_gsas_without_instrument_file_has_no_wavelength(tmp_path: Path) -> None:
    shutil.copy(FIX / "cons_std.gsa", tmp_path)
    assert read_pattern(tmp_path / "cons_std.gsa").wavelength is None


def _write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def _rows(x: np.ndarray, y: np.ndarray) -> str:
    return "".join(f"{a} {b}\n" for a, b in zip(x, y))


X = np.linspace(10, 20, 20)
Y = np.full(20, 5.0)
BAD_TEXT = {
    "nan": (_rows(X, np.r_[Y[:-1], np.nan]), "not finite"),
    "inf": (_rows(np.r_[X[:-1], np.inf], Y), "not finite"),
    "negative": (_rows(X, np.r_[-1.0, Y[1:]]), "negative intensity"),
    "zeros": (_rows(X, 0 * Y), "all intensities are zero"),
    "duplicate": (_rows(np.r_[X[:5], X[4:19]], Y), "appears twice"),
    "unsorted": (_rows(np.r_[X[5:], X[:5]], Y), "not sorted"),
    "outside": (_rows(X + 170, Y), "outside \\(0, 180\\)"),
    "one_column": ("".join(f"{v}\n" for v in Y), "one column"),
    "truncated_row": (_rows(X, Y) + "21.0\n", "columns; the file is truncated"),
    "garbage_after": (_rows(X, Y) + "hello world\n", "not numeric"),
    "no_numbers": ("just some words\nand more\n", "no numeric"),
    "too_few": (_rows(X[:3], Y[:3]), "only 3 data points"),
    "xml_in_xy": ("<?xml version='1.0'?><a/>", "holds XML"),
    "blank": ("   \n\n", "white space"),
    "bad_wavelength": ("# wavelength = 54.06\n" + _rows(X, Y), "outside 0.1-5"),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_bad_text_files_raise_one_line_input_errors(tmp_path: Path, case: str) -> None:
    text, match = BAD_TEXT[case]
    f = _write(tmp_path, f"{case}.xy", text)
    with pytest.raises(InputError, match=match) as info:
        read_pattern(f)
    assert "\n" not in str(info.value) and str(f) in str(info.value)


def test_wavelength_in_nm_and_lambda_keyword(tmp_path: Path) -> None:
    assert read_pattern(_write(tmp_path, "a.xy", "# lambda: 0.15406 nm\n" + _rows(X, Y))).wavelength == pytest.approx(
        1.5406)
    assert read_pattern(_write(tmp_path, "b.xy", "# Wavelength (A) = 1.0\n" + _rows(X, Y))).wavelength == 1.0


def test_missing_empty_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_pattern(tmp_path / "nope.xy")
    (tmp_path / "empty.xy").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_pattern(tmp_path / "empty.xy")
    (tmp_path / "bin.xy").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="binary"):
        read_pattern(tmp_path / "bin.xy")


@pytest.mark.parametrize("name", ["cons_std.gsa", "cons_esd.gsa", "gsas2.fxye", "datacollector.xrdml",
                                  "gsas2_pdcif.cif", "bruker_v3.raw", "bruker_v4.raw"])
def test_truncated_files_are_refused(tmp_path: Path, name: str) -> None:
    data = (FIX / name).read_bytes()
    f = tmp_path / name
    f.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(InputError) as info:
        read_pattern(f)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("ext", [".xrdml", ".raw", ".gsa", ".cif"])
def test_wrong_content_for_extension(tmp_path: Path, ext: str) -> None:
    f = tmp_path / f"scan{ext}"
    shutil.copy(FIX / "topas.xye", f)
    with pytest.raises(InputError):
        read_pattern(f)


def test_unsupported_gsas_bintyp_and_raw_version(tmp_path: Path) -> None:
    f = _write(tmp_path, "tof.gsa", "title\nBANK 1 20 4 RALF 1 2 3 4 ALT\n" + "1 2 3\n" * 4)
    with pytest.raises(InputError, match="RALF"):
        read_pattern(f)
    g = tmp_path / "old.raw"
    g.write_bytes(b"RAW2" + bytes(400))
    with pytest.raises(InputError, match="version 1/2"):
        read_pattern(g)


def test_raw_v4_corrupt_step_count_is_refused(tmp_path: Path) -> None:
    data = bytearray((FIX / "bruker_v4.raw").read_bytes())
    struct.pack_into("<I", data, 61 + 120 + 88, 4_000_000)
    f = tmp_path / "big.raw"
    f.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated"):
        read_pattern(f)


def test_descending_scan_is_reversed_and_pairs_kept() -> None:
    p = read_pattern(FIX / "descending.dat")
    assert p.two_theta[0] < p.two_theta[-1]
    assert p.counts[np.argmin(np.abs(p.two_theta - 20.0))] == Y_REF.max()


def test_too_many_points_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import powdersolve.formats.pattern as pat

    monkeypatch.setattr(pat, "MAX_POINTS", 15)
    with pytest.raises(InputError, match="above the 15 limit"):
        read_pattern(_write(tmp_path, "long.xy", _rows(X, Y)))
