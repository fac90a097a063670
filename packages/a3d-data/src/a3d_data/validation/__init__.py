"""The A3D validation gate: Great Expectations suites over a synthesised dataset folder.

:func:`validate_dataset` scans the folder (index, shards, checksums, JPEGs, label files), runs the
suites and writes ``validation.md``, ``validation.html`` and ``validation.json``. Great
Expectations is imported only when the suites run.
"""

from a3d_data.validation.params import Interval, ValidateA3DParams
from a3d_data.validation.report import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREADABLE,
    REPORT_HTML,
    REPORT_MARKDOWN,
    REPORT_METRICS,
    ValidationResult,
    main,
    validate_dataset,
)
from a3d_data.validation.statistics import DatasetReadError, DatasetStatistics, collect_statistics
from a3d_data.validation.suite import ExpectationOutcome, all_checks

__all__ = [
    "EXIT_FAILED", "EXIT_OK", "EXIT_UNREADABLE", "REPORT_HTML", "REPORT_MARKDOWN", "REPORT_METRICS",
    "DatasetReadError", "DatasetStatistics", "ExpectationOutcome", "Interval", "ValidateA3DParams",
    "ValidationResult", "all_checks", "collect_statistics", "main", "validate_dataset",
]  # fmt: skip
