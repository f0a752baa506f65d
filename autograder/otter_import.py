"""Where otter's converted tests imported their runtime before ``autograder.otter`` existed:
assignment folders imported then still grade. New imports use ``autograder.otter.runtime``."""
from __future__ import annotations

from .otter.convert import convert
from .otter.parse import OtterImportError
from .otter.report import import_otter
from .otter.runtime import (DoctestCase, FunctionCase, compare_output, run_case,
                            run_public_cases, run_question)

__all__ = ["DoctestCase", "FunctionCase", "OtterImportError", "compare_output", "convert",
           "import_otter", "run_case", "run_public_cases", "run_question"]
