"""powdersolve: crystal structure solution from powder X-ray diffraction.

Pipeline: structures -> diffraction -> density -> dataset -> model -> train -> evaluate ->
predict -> solve. The CLI (`powdersolve --help`) mirrors this API:

- :func:`load_crystal`, :func:`sticks`, :func:`density_grid` (structure -> pattern + CMED);
- :func:`predict` (measured pattern -> density maps), :func:`evaluate` (model on real structures);
- :func:`solve` (pattern -> ranked, refined structures), :func:`train`.

Heavy modules load on first use, so ``import powdersolve`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from powdersolve.errors import InputError, NoSolutionError, OutputError, PowdersolveError

__version__ = "0.1.0"

_LAZY = {
    "load_crystal": "powdersolve.structures",
    "Crystal": "powdersolve.structures",
    "sticks": "powdersolve.diffraction",
    "density_grid": "powdersolve.density",
    "DensityConfig": "powdersolve.density",
    "predict": "powdersolve.predict.pipeline",
    "PredictConfig": "powdersolve.predict",
    "evaluate": "powdersolve.evaluate",
    "EvalConfig": "powdersolve.evaluate",
    "train": "powdersolve.train",
    "TrainConfig": "powdersolve.train",
    "solve": "powdersolve.solve.pipeline",
    "SolveConfig": "powdersolve.solve.pipeline",
    "read_pattern": "powdersolve.formats",
    "load_model": "powdersolve.weights",
}

__all__ = ["InputError", "NoSolutionError", "OutputError", "PowdersolveError", "__version__", *_LAZY]


#: Public functions named like a subpackage: ``powdersolve.predict(...)`` is the function, while
#: ``from powdersolve.predict import PredictConfig`` still reaches the subpackage through sys.modules.
_FUNCTIONS = ("predict", "solve")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'powdersolve' has no attribute '{name}'")


class _Package(types.ModuleType):
    """The package module, which does not let the import system bind the subpackages ``predict`` and
    ``solve`` over the functions of the same names (Python binds every imported submodule onto its parent)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
