"""The risk register (ISO 9001 6.1): seeding, save rules and last period's state.

* :func:`seed_frame` turns the process register's failure modes into risks, one
  per failure mode, linked to the process and its owner department, unscored
  (for the quality office to score); :func:`seed_store` saves the ones not
  seeded before (each seeded risk remembers its origin, ``C1/2``: process C1,
  failure mode 2; a risk once seeded is never seeded again, even when retired).
* Save rules (checked by the records store on every insert, update and import):
  scores on the scale of the record's scoring method, factors that belong to the
  method, residual only after inherent, a reason when the residual score exceeds
  the inherent one, one linked indicator at most, a process for a failure mode,
  treatments that fit risks or opportunities. Each refusal names the field.
* :func:`state_as_of` replays the store's history to the register as it stood at
  a moment; the prepare step writes the state at the end of the previous period
  as ``prepared/risks_previous.parquet`` (:func:`previous_state`), which the
  report compares with the current register ("movement since last period").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from qmsnb import io, scoring
from qmsnb.contract import RISKS
from qmsnb.exceptions import RecordsError
from qmsnb.periods import Period
from qmsnb.prepare import register_table
from qmsnb.records import RuleContext, field_error, register_rule

if TYPE_CHECKING:
    from qmsnb.config import Params
    from qmsnb.records import RecordsStore

REGISTER = "risks"
#: Columns of the previous-state table beyond the register's own.
BASELINE_COLUMNS = ["baseline", "baseline_at"]

# "1、", "2.", "3．", "4)" at the start or after a non-digit: the numbering of a
# register cell such as "1、信息搜集不及时2、信息搜集不准确".
_NUMBER = re.compile(r"(?:^|(?<=\D))(\d{1,2})\s*[、.．)）]\s*")
_TRIM = " \t\r\n;；,,。、"


# ---------------------------------------------------------------------------
# Seeding from the process register
# ---------------------------------------------------------------------------
def split_numbered(text: Any) -> list[tuple[int | None, str]]:
    """A numbered register cell as ``[(number, item), ...]``.

    ``"1、信息搜集不及时2、信息搜集不准确"`` → ``[(1, "信息搜集不及时"), (2,
    "信息搜集不准确")]``; a cell without numbering is one item numbered None
    (``"记录内容不完整、不准确"`` stays whole); an empty cell is ``[]``.
    Separators and full stops around items are trimmed.
    """
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return []
    cell = str(text).strip()
    if not cell:
        return []
    marks = list(_NUMBER.finditer(cell))
    if not marks or marks[0].start() != 0:
        return [(None, cell.strip(_TRIM))]
    items: list[tuple[int | None, str]] = []
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(cell)
        item = cell[mark.end() : end].strip(_TRIM)
        if item:
            items.append((int(mark.group(1)), item))
    return items


def pair_consequences(
    modes: list[tuple[int | None, str]], consequences: list[tuple[int | None, str]]
) -> list[str]:
    """The consequence text for each failure mode.

    Same count on both sides: paired in order. Otherwise (``3`` modes, ``2``
    consequences: the register does not say which goes with which) every mode
    gets all consequences, joined with ``;``.
    """
    if len(modes) == len(consequences):
        return [text for _, text in consequences]
    joined = ";".join(text for _, text in consequences)
    return [joined] * len(modes)


@dataclass(frozen=True)
class Unmapped:
    """A process whose owner names no department of ``organisation.yaml``."""

    process_id: str
    owner: str


def seed_frame(processes: pd.DataFrame, params: Params, today: date) -> pd.DataFrame:
    """One unscored risk per failure mode of the process register.

    Args:
        processes: the process register (``process_id``, ``owner_department``,
            ``failure_modes``, ``consequences``).
        today: the seeding date; the first review is ``first_review_days`` later.

    Returns:
        Records of the ``risks`` register without ids, ``origin`` = ``<process>/<n>``.

    Raises:
        RecordsError: a process with failure modes has an owner that maps to no
            department (the message names the process and the owner text).
    """
    from qmsnb.analysis.audit import map_departments

    aliases = params.department_aliases
    review = (today + timedelta(days=params.risk.first_review_days)).isoformat()
    rows: list[dict[str, Any]] = []
    for proc in processes.to_dict("records"):
        modes = split_numbered(proc.get("failure_modes"))
        if not modes:
            continue
        owner = str(proc.get("owner_department") or "").strip()
        depts = map_departments(owner, aliases)
        if not depts:
            raise field_error(
                "error.risk.seed_owner",
                REGISTER,
                "department",
                process=proc["process_id"],
                value=owner or "–",
            )
        consequences = pair_consequences(modes, split_numbered(proc.get("consequences")))
        for position, ((_, mode), consequence) in enumerate(
            zip(modes, consequences, strict=True), start=1
        ):
            rows.append(
                {
                    "type": "risk",
                    "process_id": str(proc["process_id"]),
                    "department": depts[0],
                    "source": "failure_mode",
                    "origin": f"{proc['process_id']}/{position}",
                    "description": mode,
                    "consequence": consequence or None,
                    "owner": owner,
                    "review_date": review,
                    "status": "open",
                }
            )
    columns = [c.name for c in RISKS.columns if c.name != "risk_id"]
    return pd.DataFrame(rows, columns=columns)


@dataclass
class SeedResult:
    """What seeding did: ids of the risks added, origins that were there already."""

    added: list[str]
    skipped: list[str]


def seeded_origins(store: RecordsStore) -> set[str]:
    """Origins of every risk ever saved (retired ones included, from the history)."""
    if REGISTER not in store.registers():
        return set()
    history = store.history(REGISTER)
    found: set[str] = set()
    for doc in [*history["after"], *history["before"]]:
        if isinstance(doc, dict) and doc.get("origin"):
            found.add(str(doc["origin"]))
    return found


def seed_store(
    store: RecordsStore,
    processes: pd.DataFrame,
    who: str,
    today: date | None = None,
) -> SeedResult:
    """Save the failure modes not seeded before as risks, in one transaction.

    A risk register still kept in its file (``registers_dir``) is taken over by
    the store first, as the store does before any first change, so seeding never
    hides the file's risks nor seeds a failure mode the file has already.

    Raises:
        RecordsError: a record was refused (nothing is seeded) or an owner maps
            to no department.
    """
    frame = seed_frame(processes, store.params, today or date.today())
    if REGISTER not in store.registers():
        path = io.find_dataset_file(store.params.registers_dir, RISKS)
        if path is not None:
            store.import_table(REGISTER, path, who, reason=f"adopted from {path}")
    known = seeded_origins(store)
    fresh = frame[~frame["origin"].isin(known)]
    skipped = sorted(set(frame["origin"]) & known, key=_origin_key)
    if fresh.empty:
        return SeedResult(added=[], skipped=skipped)
    fresh = fresh.reset_index(drop=True)
    fresh.insert(0, "risk_id", None)  # generated, ...
    result = store.import_table(REGISTER, fresh, who, reason="seeded from the process register")
    return SeedResult(added=result.inserted, skipped=skipped)


def _origin_key(origin: str) -> tuple[str, int]:
    process, _, number = origin.partition("/")
    return process, int(number) if number.isdigit() else 0


def process_register(
    params: Params, store: RecordsStore, source: Path | None = None
) -> pd.DataFrame:
    """The process register to seed from: ``source``, else the store's, else the file
    in ``registers_dir``.

    Raises:
        RecordsError: none found.
    """
    if source is not None:
        return io.read_dataset(source, "process_register", params).frame
    if "process_register" in store.registers():
        return store.frame("process_register")
    table = io.load(params.registers_dir, "process_register", params, required=False)
    if table is None:
        raise RecordsError("error.risk.no_process_register", folder=str(params.registers_dir))
    io.raise_for_problems(table)
    return table.frame


# ---------------------------------------------------------------------------
# Rules checked on every save
# ---------------------------------------------------------------------------
def _present(value: Any) -> bool:
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and not value.strip())


def _method_facts(method: scoring.Method) -> dict[str, Any]:
    return {"method": {"zh": method.zh, "en": method.en}}


def _check_stage(doc: dict[str, Any], stage: str, method: scoring.Method) -> bool:
    """Factors of one stage fit the method; returns whether the stage is scored."""
    prefix = scoring.STAGES[stage]
    given = [name for name in scoring.FACTOR_FIELDS if _present(doc.get(prefix + name))]
    if not given:
        return False
    for name in given:
        if name not in method.fields:
            raise field_error(
                "error.risk.not_a_factor",
                REGISTER,
                prefix + name,
                value=scoring.number_text(float(doc[prefix + name])),
                **_method_facts(method),
            )
    for factor in method.factors:
        value = doc.get(prefix + factor.field)
        if not _present(value):
            raise field_error(
                "error.risk.factor_missing",
                REGISTER,
                prefix + factor.field,
                scale=factor.scale_text(),
                **_method_facts(method),
            )
        if not factor.on_scale(float(value)):
            raise field_error(
                "error.risk.off_scale",
                REGISTER,
                prefix + factor.field,
                value=scoring.number_text(float(value)),
                scale=factor.scale_text(),
                **_method_facts(method),
            )
    return True


@register_rule(REGISTER)
def scores_on_scale(doc: dict[str, Any], ctx: RuleContext) -> None:
    """Scores need a method; each factor belongs to it and is on its scale;
    a residual score needs an inherent one; a residual score above the inherent
    one needs its reason."""
    scored = any(
        _present(doc.get(field))
        for stage in scoring.STAGES
        for field in scoring.factor_fields(stage)
    )
    method_id = doc.get("method")
    if not _present(method_id):
        if scored:
            raise field_error(
                "error.risk.no_method", REGISTER, "method", known=", ".join(scoring.METHODS)
            )
        return
    method = scoring.METHODS.get(str(method_id))
    if method is None:  # the contract lists the registered methods; a later one may be gone
        raise field_error(
            "error.risk.unknown_method",
            REGISTER,
            "method",
            value=method_id,
            known=", ".join(scoring.METHODS),
        )
    inherent = _check_stage(doc, "inherent", method)
    residual = _check_stage(doc, "residual", method)
    if residual and not inherent:
        raise field_error(
            "error.risk.residual_without_inherent",
            REGISTER,
            scoring.factor_fields("inherent", method)[0],
        )
    if residual:
        before = method.score(scoring.stage_values(doc, "inherent"))  # type: ignore[arg-type]
        after = method.score(scoring.stage_values(doc, "residual"))  # type: ignore[arg-type]
        if after > before and not _present(doc.get("residual_reason")):
            raise field_error(
                "error.risk.residual_reason",
                REGISTER,
                "residual_reason",
                inherent=scoring.number_text(before),
                residual=scoring.number_text(after),
            )


@register_rule(REGISTER)
def one_linked_indicator(doc: dict[str, Any], ctx: RuleContext) -> None:
    """An indicator or a complaint category shows whether actions worked, not both."""
    if _present(doc.get("indicator")) and _present(doc.get("complaint_category")):
        raise field_error(
            "error.risk.two_indicators",
            REGISTER,
            "complaint_category",
            indicator=doc["indicator"],
            value=doc["complaint_category"],
        )


@register_rule(REGISTER)
def failure_mode_has_process(doc: dict[str, Any], ctx: RuleContext) -> None:
    """A risk from a process's failure mode names the process."""
    if doc.get("source") == "failure_mode" and not _present(doc.get("process_id")):
        raise field_error("error.risk.process_required", REGISTER, "process_id")


#: Treatments that only make sense for one type.
_TREATMENT_TYPE = {
    "avoid": "risk",
    "reduce": "risk",
    "pursue": "opportunity",
    "enhance": "opportunity",
}


@register_rule(REGISTER)
def treatment_fits_type(doc: dict[str, Any], ctx: RuleContext) -> None:
    """Avoid/reduce are for risks; pursue/enhance for opportunities."""
    wanted = _TREATMENT_TYPE.get(str(doc.get("treatment") or ""))
    if wanted and doc.get("type") != wanted:
        from qmsnb.contract import RISK_TREATMENTS, RISK_TYPES

        zh, en = RISK_TREATMENTS[doc["treatment"]]
        tzh, ten = RISK_TYPES[wanted]
        raise field_error(
            "error.risk.treatment_type",
            REGISTER,
            "treatment",
            value={"zh": zh, "en": en},
            wanted={"zh": tzh, "en": ten},
        )


# ---------------------------------------------------------------------------
# The register as it stood at a moment
# ---------------------------------------------------------------------------
def state_as_of(history: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Each record's document as it stood just before ``cutoff`` (retired and
    not-yet-created records left out).

    Args:
        history: :meth:`RecordsStore.history` of one register (``record_id``,
            ``when`` in UTC, ``after``).
        cutoff: a tz-aware moment.

    Returns:
        One row per record: the document's fields (raw, as stored).
    """
    if history.empty:
        return pd.DataFrame()
    earlier = history[history["when"] < cutoff]
    docs = [
        rows["after"].iloc[-1]
        for _, rows in earlier.sort_values("seq").groupby("record_id", sort=False)
    ]
    return pd.DataFrame([d for d in docs if isinstance(d, dict)])


def first_recorded(history: pd.DataFrame) -> pd.DataFrame:
    """Each live record's first saved document (raw)."""
    if history.empty:
        return pd.DataFrame()
    first = history.sort_values("seq").groupby("record_id", sort=False).head(1)
    return pd.DataFrame([d for d in first["after"] if isinstance(d, dict)])


def period_start(period: str) -> pd.Timestamp:
    """Local midnight at the start of ``period`` (the end of the previous one), tz-aware."""
    start = Period.parse(period).start
    local = datetime(start.year, start.month, start.day).astimezone()
    return pd.Timestamp(local)


def previous_frame(history: pd.DataFrame, period: str, params: Params) -> pd.DataFrame:
    """The register at the end of the period before ``period``, typed, with
    ``baseline`` (``period_end``, or ``first_recorded`` when the store's history of
    the register starts later) and ``baseline_at`` (ISO time of that state)."""
    cutoff = period_start(period)
    columns = [c.name for c in RISKS.columns] + [d.name for d in RISKS.derived]
    if history.empty:
        return pd.DataFrame(columns=columns + BASELINE_COLUMNS)
    if (history["when"] < cutoff).any():
        raw, basis, at = state_as_of(history, cutoff), "period_end", cutoff
    else:
        raw, basis = first_recorded(history), "first_recorded"
        at = history["when"].min()
    if raw.empty:
        frame = pd.DataFrame(columns=columns)
    else:
        raw = pd.DataFrame(
            raw.to_dict("records"), columns=[c.name for c in RISKS.columns], dtype=object
        )
        table = io.typed_frame(raw, RISKS, params, source="history")
        frame = table.frame.drop(columns=[io.ROW], errors="ignore")
    frame["baseline"] = basis
    frame["baseline_at"] = pd.Timestamp(at).isoformat()
    return frame.reset_index(drop=True)


@register_table("risks_previous")
def previous_state(params: Params, period: str) -> pd.DataFrame:
    """Prepared table: the risk register at the end of the previous period, from
    the records store's history (empty when the store keeps no risks)."""
    from qmsnb.records import open_store, store_exists

    if not store_exists(params):
        return pd.DataFrame(columns=[c.name for c in RISKS.columns] + BASELINE_COLUMNS)
    with open_store(params) as store:
        if REGISTER not in store.registers():
            return pd.DataFrame(columns=[c.name for c in RISKS.columns] + BASELINE_COLUMNS)
        history = store.history(REGISTER)
    return previous_frame(history, period, params)
