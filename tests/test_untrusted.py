"""Untrusted files: weights are never unpickled or loaded unverified; readers never reach outside the named file."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from powdersolve.errors import InputError
from powdersolve.formats import read_pattern
from powdersolve.formats.gsas import read_gsas
from powdersolve.model import ModelConfig, build_model
from powdersolve.weights import load_model, save_model

FIXTURES = Path(__file__).parent / "fixtures" / "patterns"


class _Marker:
    """Unpickling this object creates a file: the proof that a pickle was executed."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt"])
def test_pickle_weights_are_refused_unopened(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    weights = tmp_path / f"model{suffix}"
    torch.save({"state": _Marker(marker)}, weights)
    assert not marker.exists()
    with pytest.raises(InputError, match="pickle"):
        load_model(weights)
    assert not marker.exists()
    # The refusal is by content too: a pickle renamed to .safetensors is not a safetensors file.
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(pickle.dumps(_Marker(marker)))
    (tmp_path / "model.json").write_text(json.dumps({"sha256": "0" * 64, "config": {}}))
    with pytest.raises(InputError):
        load_model(renamed)
    assert not marker.exists()


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**_small_config()))
    return save_model(model, tmp_path / "m.safetensors", {"note": "test"})


def _small_config() -> dict:
    import dataclasses

    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    small = {"xrd_encoder": "strided", "xrd_growth": 2, "latent": 8, "hidden": 8, "film_width": 8, "n_fourier": 4}
    return {k: v for k, v in small.items() if k in fields}


def test_saved_weights_round_trip(saved: Path) -> None:
    model, side = load_model(saved)
    assert side["metadata"] == {"note": "test"}
    assert not model.training


def test_flipped_byte_fails_the_checksum(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        load_model(saved)


def test_missing_sidecar_is_refused(saved: Path) -> None:
    saved.with_suffix(".json").unlink()
    with pytest.raises(InputError, match="sidecar"):
        load_model(saved)


def test_sidecar_that_is_not_json_is_refused(saved: Path) -> None:
    saved.with_suffix(".json").write_bytes(b"\x80\x04not json")
    with pytest.raises(InputError):
        load_model(saved)


def _xrdml_with_doctype(target: str) -> str:
    body = (FIXTURES / "datacollector.xrdml").read_text()
    decl_end = body.index("?>") + 2
    return (body[:decl_end] + f'\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "{target}">]>' + body[decl_end:]
            ).replace("<name>", "<name>&xxe;", 1)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "/etc/passwd", "http://127.0.0.1:1/x"])
def test_xrdml_external_entity_is_refused(tmp_path: Path, target: str) -> None:
    path = tmp_path / "evil.xrdml"
    path.write_text(_xrdml_with_doctype(target))
    with pytest.raises(InputError, match="DOCTYPE"):
        read_pattern(path)


def test_xrdml_entity_expansion_bomb_is_refused(tmp_path: Path) -> None:
    lol = '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)) + "]>"
    path = tmp_path / "bomb.xrdml"
    path.write_text(f'<?xml version="1.0"?>{lol}<xrdMeasurements>&i;</xrdMeasurements>')
    with pytest.raises(InputError, match="DOCTYPE"):
        read_pattern(path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/cu_lab.prm", "..\\\\cu_lab.prm"])
def test_gsas_instrument_file_outside_the_data_folder_is_not_read(tmp_path: Path, name: str) -> None:
    """The instrument parameter file is only looked up beside the data file, under its own plain name."""
    data = tmp_path / "data" / "scan.gsa"
    data.parent.mkdir()
    text = (FIXTURES / "cons_std.gsa").read_text().splitlines()
    text[1] = f"Instrument parameter      {name}".ljust(80)
    data.write_text("\n".join(text) + "\n")
    # A decoy .prm with a distinctive wavelength where each path-like name would resolve outside data/.
    decoy = (FIXTURES / "cu_lab.prm").read_text().replace("1.54", "0.71", 1)
    (tmp_path / "cu_lab.prm").write_text(decoy)
    (tmp_path / "data" / "sub").mkdir()
    (tmp_path / "data" / "sub" / "cu_lab.prm").write_text(decoy)
    pat = read_gsas(data)
    assert pat.wavelength is None or abs(pat.wavelength - 0.71) > 0.05
    assert pat.metadata.get("instrument_parameter_file", "") in ("", name)


def test_gsas_plain_instrument_name_beside_the_data_is_read(tmp_path: Path) -> None:
    for n in ("cons_std.gsa", "cu_lab.prm"):
        (tmp_path / n).write_bytes((FIXTURES / n).read_bytes())
    assert read_gsas(tmp_path / "cons_std.gsa").wavelength == pytest.approx(1.5405, abs=1e-3)


def test_pattern_above_the_point_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import powdersolve.formats.pattern as pattern_module

    monkeypatch.setattr(pattern_module, "MAX_POINTS", 50)
    with pytest.raises(InputError, match="limit"):
        read_pattern(FIXTURES / "topas.xye")


def test_file_above_the_byte_limit_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import powdersolve.structures.io as io_module
    from powdersolve.structures import read_structure

    cif = tmp_path / "big.cif"
    cif.write_text("data_x\n" + "# padding\n" * 200)
    monkeypatch.setattr(io_module, "MAX_STRUCTURE_BYTES", 1000)
    with pytest.raises(InputError, match="limit"):
        read_structure(cif)


def test_fifo_is_not_read(tmp_path: Path) -> None:
    """A named pipe would block a reader forever; it must be refused without opening it."""
    fifo = tmp_path / "pipe.xy"
    os.mkfifo(fifo)
    with pytest.raises(InputError):
        read_pattern(fifo)
