"""Saving and loading model weights: safetensors + a JSON config, checksummed, never pickle.

A weights file ``NAME.safetensors`` travels with ``NAME.json`` holding the :class:`ModelConfig`,
the SHA-256 of the safetensors file and free-form metadata (training data card hash, steps, ...).
Loading verifies the checksum and refuses pickle-based formats (.pt, .pth, .pkl, .ckpt), which
can run arbitrary code when opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from powdersolve.errors import InputError
from powdersolve.fileio import atomic_path, atomic_write_text, sha256_file
from powdersolve.model import CMEDNet, ModelConfig, build_model

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
WEIGHTS_DIR = Path(__file__).parent / "weights"


#: Models that may serve a lattice, best first, keyed by the lattice's crystal system as indexing names
#: it: 'hexagonal' is a hexagonal P lattice (trigonal P groups included), 'trigonal' a rhombohedral one.
#: The two models on hexagonal axes stand in for each other; no other model serves another system.
SERVING_MODELS: dict[str, tuple[str, ...]] = {
    "cubic": ("cubic",),
    "hexagonal": ("hexagonal", "trigonal"),
    "trigonal": ("trigonal", "hexagonal"),
    "tetragonal": ("tetragonal",),
    "orthorhombic": ("orthorhombic",),
    "monoclinic": ("monoclinic",),
    "triclinic": ("triclinic",),
}


def serving_model(lattice_system: str, have: list[str] | None = None) -> str | None:
    """The model system that serves a lattice (:data:`SERVING_MODELS`), among ``have`` (default: the
    shipped models); None when none does."""
    have = available_systems() if have is None else have
    return next((m for m in SERVING_MODELS.get(lattice_system, ()) if m in have), None)


def served_lattices(model_system: str) -> tuple[str, ...]:
    """Lattice systems a model may serve (the inverse of :data:`SERVING_MODELS`)."""
    return tuple(lat for lat, models in SERVING_MODELS.items() if model_system in models)


def shipped_weights(system: str) -> Path:
    """Path of the shipped model for a crystal system (:func:`available_systems`)."""
    p = WEIGHTS_DIR / f"{system}.safetensors"
    if not p.exists():
        raise InputError(f"no shipped model for the {system} system (have: {', '.join(available_systems())})")
    return p


def available_systems() -> list[str]:
    """Crystal systems with a shipped model."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def save_model(model: CMEDNet, path: str | Path, metadata: dict | None = None, half: bool = False) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically; returns the safetensors path.

    ``half`` stores floating-point tensors as float16 (shipped weights: half the size; loading
    casts back to float32).
    """
    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    sidecar = {"config": model.cfg.to_dict(), "sha256": sha256_file(path), "metadata": metadata or {}}
    atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2, sort_keys=True))
    return path


def read_sidecar(path: str | Path) -> dict:
    """The JSON sidecar of a weights file."""
    side = Path(path).with_suffix(".json")
    if not side.exists():
        raise InputError(f"{path}: missing config sidecar {side.name}; weights need their JSON config")
    try:
        return json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{side}: config sidecar is not valid JSON") from None


def load_model(path: str | Path, device: str = "cpu") -> tuple[CMEDNet, dict]:
    """Load weights + config, verifying the checksum; returns (model in eval mode, sidecar dict)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InputError(f"{path}: pickle-based weights are refused (they can run code when loaded); "
                         "convert to .safetensors")
    if path.suffix == "":
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise InputError(f"{path}: no such weights file")
    side = read_sidecar(path)
    digest = sha256_file(path)
    if side.get("sha256") != digest:
        raise InputError(f"{path}: checksum mismatch (file {digest[:12]}, expected {str(side.get('sha256'))[:12]}); "
                         "the weights are corrupt or were modified")
    cfg = ModelConfig.from_dict(side["config"])
    model = build_model(cfg)
    try:
        state = load_file(str(path), device=device)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except Exception as exc:
        raise InputError(f"{path}: weights do not fit their config ({str(exc).splitlines()[0][:100]})") from None
    model.to(device).eval()
    return model, side


def weights_checksum(path: str | Path) -> str:
    """SHA-256 of a weights file."""
    return sha256_file(path)


def load_state(model: torch.nn.Module, path: str | Path) -> None:
    """Load a raw safetensors state dict into ``model`` (checkpoint resume)."""
    model.load_state_dict(load_file(str(path)))
