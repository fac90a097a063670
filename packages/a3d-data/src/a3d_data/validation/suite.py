"""The A3D expectation suites (Great Expectations 1.x) and how they are run.

Five suites, one per table of :class:`~a3d_data.validation.statistics.DatasetStatistics`:
``columns`` (the parquet schemas), ``index`` (one row per sample), ``shards``, ``splits`` and
``classes``. Each expectation carries a stable check name in its ``meta``
(``"index.absent_mask_matches_class"``), which is how results, reports and tests refer to it.
Checks are plain data (:class:`Check`); Great Expectations is imported only when the suites run,
as its import takes seconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from a3d_data.skeleton import NUM_COCO_KEYPOINTS
from a3d_data.synthesis.schema import CROP_SIZE, HEAD_COLUMNS, PARTS, SPLITS
from a3d_data.validation.params import ValidateA3DParams
from a3d_data.validation.statistics import NON_AMPUTEE_CLASS, NUM_AMPUTEE_CLASSES, DatasetStatistics

log = logging.getLogger(__name__)

SUITES: tuple[str, ...] = ("columns", "index", "shards", "splits", "classes")
# Columns that name a failing row in the examples of each suite.
ROW_NAMES: dict[str, tuple[str, ...]] = {
    "columns": ("file", "column"),
    "index": ("key", "shard"),
    "shards": ("shard",),
    "splits": ("split",),
    "classes": ("split", "class_index"),
}
# For expectations over a whole column (no failing rows of their own): the rows to show instead,
# as (column whose truthy values mark them, extra columns to show).
AGGREGATE_EXAMPLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "shards.failed_images_within_limit": ("images_failed", ("images_failed", "image_failures")),
}

NUM_KEYPOINTS = NUM_COCO_KEYPOINTS
MAX_HEAD_LABEL = 3  # Level.NONE
KEYPOINT_COUNT_COLUMNS = ("num_visible", "num_occluded", "num_absent", "num_outside")
COCO_MASK_MAX = (1 << NUM_KEYPOINTS) - 1
# Member keys must survive webdataset's split of a member name at its first dot.
KEY_PATTERN = r"^[^./\s]+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation, in plain Python values.

    ``observed``: what was seen, in words; ``examples``: failing rows (their naming columns and the
    tested values); ``error``: the exception message when the expectation could not be evaluated
    (a missing column, say), which counts as a failure.
    """

    check: str
    suite: str
    expectation: str
    description: str
    success: bool
    observed: str
    unexpected_count: int | None
    element_count: int | None
    examples: tuple[dict[str, Any], ...]
    error: str | None


# A row condition term: (column, "==" or "in", value); the terms of a condition are ANDed.
Term = tuple[str, str, Any]


@dataclass(frozen=True)
class Check:
    """One expectation before Great Expectations builds it: its check name, its text, its class
    name in ``gx.expectations``, its keyword arguments, and the rows it applies to (all when
    ``where`` is empty)."""

    name: str
    description: str
    expectation: str
    kwargs: dict[str, Any]
    where: tuple[Term, ...] = ()

    @property
    def suite(self) -> str:
        return self.name.split(".", 1)[0]


class _Checks:
    """Collects the checks of one suite under unique names."""

    def __init__(self, suite: str) -> None:
        self.suite = suite
        self.items: list[Check] = []

    def add(
        self, name: str, description: str, expectation: str, where: tuple[Term, ...] = (), **kwargs: Any
    ) -> None:
        full = f"{self.suite}.{name}"
        if any(c.name == full for c in self.items):
            raise ValueError(f"duplicate check name {full}")
        self.items.append(Check(full, description, expectation, kwargs, where))

    def true(self, name: str, description: str, column: str, **kwargs: Any) -> None:
        self.add(name, description, "ExpectColumnValuesToBeInSet", column=column, value_set=[True], **kwargs)

    def between(self, name: str, description: str, column: str, low: Any, high: Any, **kwargs: Any) -> None:
        self.add(
            name,
            description,
            "ExpectColumnValuesToBeBetween",
            column=column,
            min_value=low,
            max_value=high,
            **kwargs,
        )

    def equal(self, name: str, description: str, a: str, b: str, **kwargs: Any) -> None:
        self.add(name, description, "ExpectColumnPairValuesToBeEqual", column_A=a, column_B=b, **kwargs)


def _where(column: str, value: Any, *more: tuple[str, Any]) -> dict[str, Any]:
    """Rows where ``column == value`` (and each further ``(column, value)`` pair holds)."""
    return {"where": tuple((c, "==", v) for c, v in ((column, value), *more))}


def _where_in(column: str, values: list[str]) -> dict[str, Any]:
    """Rows where ``column`` is one of ``values``."""
    return {"where": ((column, "in", list(values)),)}


def _row_condition(where: tuple[Term, ...]) -> Any:
    from great_expectations.expectations.row_conditions import Column

    condition = None
    for column, operator, value in where:
        term = Column(column) == value if operator == "==" else Column(column).is_in(value)
        condition = term if condition is None else condition & term
    return condition


def column_checks(params: ValidateA3DParams) -> list[Check]:
    """Checks on the column table: each schema column of both parquet files is there with its dtype."""
    c = _Checks("columns")
    c.true("present", "every schema column of index.parquet and shards.parquet is present", "present")
    c.equal(
        "dtype",
        "every schema column has the schema's dtype",
        "dtype",
        "expected_dtype",
        **_where("present", True),
    )
    return c.items


def index_checks(params: ValidateA3DParams) -> list[Check]:
    """Checks on index.parquet, one row per sample, with its derived columns."""
    c = _Checks("index")
    c.add(
        "no_nulls",
        "no schema column is null or NaN",
        "ExpectColumnValuesToBeInSet",
        column="null_columns",
        value_set=[""],
    )
    c.add("key_unique", "sample keys are unique", "ExpectColumnValuesToBeUnique", column="key")
    c.add(
        "key_format",
        "keys have no dot, slash or space (webdataset splits member names at the first dot)",
        "ExpectColumnValuesToMatchRegex",
        column="key",
        regex=KEY_PATTERN,
    )
    c.add(
        "split_known",
        f"split is one of {list(SPLITS)}",
        "ExpectColumnValuesToBeInSet",
        column="split",
        value_set=list(SPLITS),
    )
    c.add(
        "part_known",
        f"part is one of {list(PARTS)}",
        "ExpectColumnValuesToBeInSet",
        column="part",
        value_set=list(PARTS),
    )
    c.true("shard_listed", "the row's shard is listed in shards.parquet", "shard_listed")
    c.true(
        "shard_matches_split_part",
        "the row's shard is shards/<split>/<part>-NNNNN.tar of its split and part",
        "shard_matches_split_part",
    )
    c.true(
        "sample_in_shard",
        "<key>.jpg and <key>.npz are members of the row's shard (when it exists)",
        "in_shard",
        **_where("shard_exists", True),
    )
    c.add(
        "labels_valid",
        "<key>.npz has the schema's arrays, agrees with its class and with the index",
        "ExpectColumnValuesToBeInSet",
        column="label_problem",
        value_set=[""],
        **_where("in_shard", True),
    )
    c.equal(
        "image_bytes_match_member",
        "image_bytes is the size of the <key>.jpg member",
        "image_bytes",
        "image_member_bytes",
        **_where("in_shard", True),
    )
    c.between("image_bytes_positive", "image_bytes >= 1", "image_bytes", 1, None)

    c.between(
        "class_index_range", f"class_index in 0..{NON_AMPUTEE_CLASS}", "class_index", 0, NON_AMPUTEE_CLASS
    )
    for head in HEAD_COLUMNS:
        c.between(f"head_range.{head}", f"{head} in 0..{MAX_HEAD_LABEL}", head, 0, MAX_HEAD_LABEL)
        c.equal(
            f"heads_match_class.{head}", f"{head} is the label class_index implies", head, f"expected_{head}"
        )
    c.equal(
        "absent_mask_matches_class",
        "coco_absent_mask is the set of keypoints class_index removes",
        "coco_absent_mask",
        "expected_absent_mask",
    )
    for mask in ("coco_absent_mask", "coco_occluded_mask"):
        c.between(
            f"mask_range.{mask}", f"{mask} uses only bits 0..{NUM_KEYPOINTS - 1}", mask, 0, COCO_MASK_MAX
        )
    c.equal(
        "absent_mask_counts",
        "num_absent is the number of bits in coco_absent_mask",
        "num_absent",
        "absent_mask_bits",
    )
    c.equal(
        "occluded_mask_counts",
        "num_occluded is the number of bits in coco_occluded_mask",
        "num_occluded",
        "occluded_mask_bits",
    )
    c.add(
        "absent_not_occluded",
        "no keypoint is both absent and occluded",
        "ExpectColumnValuesToBeInSet",
        column="absent_occluded_overlap",
        value_set=[0],
    )
    for count in KEYPOINT_COUNT_COLUMNS:
        c.between(f"keypoint_count_range.{count}", f"{count} in 0..{NUM_KEYPOINTS}", count, 0, NUM_KEYPOINTS)
    c.add(
        "keypoint_counts_sum_to_17",
        f"the four keypoint counts sum to {NUM_KEYPOINTS}",
        "ExpectMulticolumnSumToEqual",
        column_list=list(KEYPOINT_COUNT_COLUMNS),
        sum_total=NUM_KEYPOINTS,
    )
    c.true(
        "truncated_when_outside",
        "truncated is True when a keypoint lies outside the crop",
        "truncated_consistent",
    )

    non_amputee_parts = ["non_amputee", "occlusion"]
    c.add(
        "non_amputee_parts_class_12",
        "non_amputee and occlusion rows have class 12",
        "ExpectColumnValuesToBeInSet",
        column="class_index",
        value_set=[NON_AMPUTEE_CLASS],
        **_where_in("part", non_amputee_parts),
    )
    c.between(
        "non_amputee_parts_no_absent",
        "non_amputee and occlusion rows have no absent keypoint",
        "num_absent",
        0,
        0,
        **_where_in("part", non_amputee_parts),
    )
    c.between(
        "amputee_part_class_0_11",
        "amputee rows have a class in 0..11",
        "class_index",
        0,
        NUM_AMPUTEE_CLASSES - 1,
        **_where("part", "amputee"),
    )
    c.between(
        "amputee_part_has_absent",
        "amputee rows have at least one absent keypoint",
        "num_absent",
        1,
        None,
        **_where("part", "amputee"),
    )

    c.between("pose_in_one_split", "each pose_id appears in one split only", "pose_id_split_count", 1, 1)
    c.between(
        "pose_group_in_one_split",
        "each pose group (a file's sequence; an HMR fit alone) appears in one split only",
        "pose_group_split_count",
        1,
        1,
    )
    c.between(
        "background_in_one_split",
        "each background_id appears in one split only",
        "background_split_count",
        1,
        1,
    )

    m = params.beta_abs_max
    c.between("beta_range", f"|beta_i| <= {m} for beta_0..beta_9", "beta_abs_max", 0.0, m)
    c.between(
        "cam_tz_range",
        f"cam_tz in [{params.cam_tz.low}, {params.cam_tz.high}] m",
        "cam_tz",
        params.cam_tz.low,
        params.cam_tz.high,
        strict_min=True,
    )
    xy = params.cam_xy_abs_max
    for axis in ("cam_tx", "cam_ty"):
        c.between(f"{axis}_range", f"|{axis}| <= {xy} m", axis, -xy, xy)
    c.add(
        "focal_value",
        f"focal is {params.focal} px",
        "ExpectColumnValuesToBeInSet",
        column="focal",
        value_set=[params.focal],
    )
    for axis in ("bbox_center_x", "bbox_center_y"):
        c.between(f"bbox_in_crop.{axis}", f"{axis} in [0, {CROP_SIZE}] px", axis, 0, CROP_SIZE)
    c.between(
        "bbox_scale_range",
        f"bbox_scale in [{params.bbox_scale.low}, {params.bbox_scale.high}]",
        "bbox_scale",
        params.bbox_scale.low,
        params.bbox_scale.high,
    )
    c.between("yaw_range", "yaw_deg in [-180, 180]", "yaw_deg", -180, 180)
    c.between("skin_tone_non_negative", "skin_tone >= 0", "skin_tone", 0, None)
    return c.items


def shard_checks(params: ValidateA3DParams) -> list[Check]:
    """Checks on the shard table: shards.parquet against the files and the index."""
    c = _Checks("shards")
    c.add(
        "no_nulls",
        "no schema column is null or NaN",
        "ExpectColumnValuesToBeInSet",
        column="null_columns",
        value_set=[""],
    )
    c.add("shard_unique", "each shard is listed once", "ExpectColumnValuesToBeUnique", column="shard")
    c.true("listed", "every shard named by the index or found on disk is listed in shards.parquet", "listed")
    c.true("file_exists", "every listed shard file exists", "file_exists")
    c.add(
        "split_known",
        f"split is one of {list(SPLITS)}",
        "ExpectColumnValuesToBeInSet",
        column="split",
        value_set=list(SPLITS),
    )
    c.add(
        "part_known",
        f"part is one of {list(PARTS)}",
        "ExpectColumnValuesToBeInSet",
        column="part",
        value_set=list(PARTS),
    )
    c.true(
        "path_matches_split_part",
        "the path is shards/<split>/<part>-NNNNN.tar of its split and part",
        "path_matches_split_part",
    )
    c.add(
        "sha256_format",
        "sha256 is 64 lowercase hex digits",
        "ExpectColumnValuesToMatchRegex",
        column="sha256",
        regex=SHA256_PATTERN,
        **_where("listed", True),
    )
    exists = _where("file_exists", True)
    # Recorded values are compared only where there are some: an unlisted shard fails `listed`.
    recorded = _where("listed", True)
    recorded_and_exists = _where("listed", True, ("file_exists", True))
    c.equal(
        "checksum_matches",
        "the file's sha256 is the recorded one",
        "sha256",
        "sha256_actual",
        **recorded_and_exists,
    )
    c.equal(
        "bytes_match", "the file's size is the recorded one", "bytes", "bytes_actual", **recorded_and_exists
    )
    c.add(
        "tar_readable",
        "the file reads as a tar to its end",
        "ExpectColumnValuesToBeInSet",
        column="tar_problem",
        value_set=[""],
        **exists,
    )
    c.between(
        "num_samples_positive",
        "every listed shard holds samples",
        "num_samples",
        1,
        None,
        **_where("listed", True),
    )
    c.equal(
        "rows_in_index_match",
        "the index has num_samples rows for the shard",
        "num_samples",
        "rows_in_index",
        **recorded,
    )
    c.equal(
        "samples_in_tar_match",
        "the tar holds num_samples (jpg, npz) pairs",
        "num_samples",
        "samples_in_tar",
        **recorded_and_exists,
    )
    c.between(
        "no_unexpected_members",
        "the tar holds no member outside the index's samples",
        "unexpected_members",
        0,
        0,
    )
    c.between(
        "images_checked", "at least one JPEG of each shard was decoded", "images_checked", 1, None, **exists
    )
    c.add(
        "failed_images_within_limit",
        f"at most {params.max_failed_images} checked JPEGs fail to decode as {CROP_SIZE}x{CROP_SIZE} RGB",
        "ExpectColumnSumToBeBetween",
        column="images_failed",
        min_value=0,
        max_value=params.max_failed_images,
    )
    c.true("labels_ok", "every sample's <key>.npz is present and valid", "labels_ok", **exists)
    return c.items


def split_checks(params: ValidateA3DParams) -> list[Check]:
    """Checks on the per-split table: sizes, parts present, amputee fraction."""
    c = _Checks("splits")
    c.between(
        "min_samples",
        f"each split has at least {params.min_samples_per_split} samples",
        "num_samples",
        params.min_samples_per_split,
        None,
    )
    low = max(0.0, params.amputee_fraction - params.amputee_fraction_tolerance)
    high = min(1.0, params.amputee_fraction + params.amputee_fraction_tolerance)
    c.between(
        "amputee_fraction",
        f"amputee / (amputee + non_amputee) in [{low:.3f}, {high:.3f}]",
        "amputee_fraction",
        low,
        high,
    )
    for part in PARTS:
        splits = [s for s in SPLITS if part in params.required_parts.get(s, ())]
        if splits:
            c.between(
                f"has_part.{part}",
                f"splits {splits} have {part} samples",
                f"num_{part}",
                1,
                None,
                **_where_in("split", splits),
            )
    return c.items


def class_checks(params: ValidateA3DParams) -> list[Check]:
    """Checks on the per-split, per-class table: amputee classes balanced."""
    c = _Checks("classes")
    tol = params.class_balance_tolerance
    c.between(
        "class_balance",
        f"each amputee class's share of its split is 1/12 within {100 * tol:.0f}% (relative)",
        "relative_deviation",
        0.0,
        tol,
    )
    return c.items


CHECK_BUILDERS: dict[str, Callable[[ValidateA3DParams], list[Check]]] = {
    "columns": column_checks,
    "index": index_checks,
    "shards": shard_checks,
    "splits": split_checks,
    "classes": class_checks,
}


def all_checks(params: ValidateA3DParams) -> list[Check]:
    """Every check of the five suites, in suite order."""
    return [check for suite in SUITES for check in CHECK_BUILDERS[suite](params)]


def _plain(value: Any) -> Any:
    """JSON-friendly Python values from numpy scalars, tuples and NaN."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _error_message(exception_info: Any) -> str | None:
    """The first exception message of a result; GX nests them per metric when a metric failed."""
    if not isinstance(exception_info, dict):
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message") or "exception while evaluating")
    return None


def _observed(result: dict[str, Any], error: str | None) -> str:
    if error is not None:
        return f"error: {error}"
    if "observed_value" in result:
        return str(_plain(result["observed_value"]))
    if "unexpected_count" in result:
        text = f"{result['unexpected_count']} of {result.get('element_count', '?')} rows unexpected"
        if result.get("missing_count"):
            text += f" ({result['missing_count']} null)"
        return text
    return ""


def _aggregate_examples(check: str, frame: pd.DataFrame, limit: int) -> tuple[dict[str, Any], ...]:
    flag, shown = AGGREGATE_EXAMPLES[check]
    suite = check.split(".", 1)[0]
    columns = [c for c in (*ROW_NAMES[suite], *shown) if c in frame]
    rows = frame.loc[frame[flag].astype(bool), columns].head(limit)
    return tuple(_plain(r) for r in rows.to_dict("records"))


def _examples(result: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    if result.get("partial_unexpected_index_list"):
        return tuple(_plain(dict(r)) for r in result["partial_unexpected_index_list"])
    return tuple({"value": _plain(v)} for v in result.get("partial_unexpected_list") or ())


def _outcomes(
    validation: Any, frame: pd.DataFrame, checks: dict[str, Check], limit: int
) -> Iterator[ExpectationOutcome]:
    for item in validation.results:
        config = item.expectation_config
        name = (config.meta or {}).get("check", config.type)
        result = dict(item.result or {})
        error = _error_message(item.exception_info)
        success = bool(item.success) and error is None
        if name in AGGREGATE_EXAMPLES and not success:
            examples = _aggregate_examples(name, frame, limit)
        else:
            examples = _examples(result)
        check = checks.get(name)
        yield ExpectationOutcome(
            check=name,
            suite=name.split(".", 1)[0],
            expectation=config.type,
            description=check.description if check else (config.description or ""),
            success=success,
            observed=_observed(result, error),
            unexpected_count=result.get("unexpected_count"),
            element_count=result.get("element_count"),
            examples=examples,
            error=error,
        )


def run_suites(statistics: DatasetStatistics, params: ValidateA3DParams) -> list[ExpectationOutcome]:
    """Build the suites in an ephemeral GX context and validate the statistics' tables.

    Outcomes come back in the order the checks are defined (:func:`all_checks`).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:
        # Its INFO lines (temporary docs folders, empty configs) say nothing about the dataset.
        gx_log.setLevel(logging.WARNING)
    checks = all_checks(params)
    by_name = {c.name: c for c in checks}
    context = gx.get_context(mode="ephemeral")
    # GX draws a progress bar per validation otherwise; ours belong to the shard scan.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("a3d")
    frames = {
        "columns": statistics.columns,
        "index": statistics.index,
        "shards": statistics.shards,
        "splits": statistics.splits,
        "classes": statistics.classes,
    }
    outcomes: list[ExpectationOutcome] = []
    for suite_name in SUITES:
        frame = frames[suite_name]
        batch = source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe(
            f"{suite_name}_all"
        )
        # Built with all its expectations at once: adding them one by one to a registered suite
        # re-saves it each time (seconds for a few hundred).
        expectations = [
            getattr(gx.expectations, c.expectation)(
                **c.kwargs,
                **({"row_condition": _row_condition(c.where)} if c.where else {}),
                meta={"check": c.name},
                description=c.description,
            )
            for c in checks
            if c.suite == suite_name
        ]
        suite = context.suites.add(gx.ExpectationSuite(name=f"a3d_{suite_name}", expectations=expectations))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=f"a3d_{suite_name}_validation")
        )
        result_format = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": params.examples_per_expectation,
            "unexpected_index_column_names": [c for c in ROW_NAMES[suite_name] if c in frame],
        }
        validation = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
        outcomes += _outcomes(validation, frame, by_name, params.examples_per_expectation)
    order = {c.name: i for i, c in enumerate(checks)}
    outcomes.sort(key=lambda o: order.get(o.check, len(order)))
    log.info("%d of %d expectations met", sum(o.success for o in outcomes), len(outcomes))
    return outcomes
