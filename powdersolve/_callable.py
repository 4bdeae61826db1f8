"""Lets ``powdersolve.predict(...)`` call the function even after ``powdersolve.predict`` the module is imported.

Python binds a submodule onto its package attribute when it is imported, which would shadow the
function of the same name that the package API promises. Giving that module a ``__call__`` keeps
both ``powdersolve.predict(...)`` and ``from powdersolve.predict import PredictConfig`` working.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable


def make_module_callable(module_name: str, func: Callable) -> None:
    """Make the module ``module_name`` callable as ``func``."""

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return func(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule
