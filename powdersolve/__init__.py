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
from typing import Any

from powdersolve.errors import InputError, NoSolutionError, OutputError, PowdersolveError

__version__ = "0.1.0"

_LAZY = {
    "load_crystal": "powdersolve.structures",
    "Crystal": "powdersolve.structures",
    "sticks": "powdersolve.diffraction",
    "density_grid": "powdersolve.density",
    "DensityConfig": "powdersolve.density",
    "predict": "powdersolve.predict",
    "PredictConfig": "powdersolve.predict",
    "evaluate": "powdersolve.evaluate",
    "EvalConfig": "powdersolve.evaluate",
    "train": "powdersolve.train",
    "TrainConfig": "powdersolve.train",
    "solve": "powdersolve.solve",
    "SolveConfig": "powdersolve.solve.pipeline",
    "read_pattern": "powdersolve.formats",
    "load_model": "powdersolve.weights",
}

__all__ = ["InputError", "NoSolutionError", "OutputError", "PowdersolveError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        # predict and solve are modules made callable (see _callable.py): return the module itself.
        return module if module.__name__ == f"powdersolve.{name}" else getattr(module, name)
    raise AttributeError(f"module 'powdersolve' has no attribute '{name}'")
