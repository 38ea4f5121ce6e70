"""Studies: each a declared grid -> runs -> rows. ``STUDIES`` maps names to studies."""

from __future__ import annotations

import importlib

from odebench.errors import InvalidInputError
from odebench.studies.base import MODES, Settings, Study, run_study

STUDY_MODULES = ("work_precision", "gradient_accuracy", "lorenz_drift", "memory_scaling",
                 "overhead", "stiff", "models", "per_sample", "gradient_scaling", "seminorm")


def get(name: str) -> Study:
    """The study called ``name``; InvalidInputError listing the valid names otherwise."""
    if name not in STUDY_MODULES:
        raise InvalidInputError(
            f"unknown study '{name}'; valid studies: {', '.join(STUDY_MODULES)}, all")
    return importlib.import_module(f"odebench.studies.{name}").STUDY


__all__ = ["MODES", "STUDY_MODULES", "Settings", "Study", "get", "run_study"]
