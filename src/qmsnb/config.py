"""Parameters: ``params/*.yaml`` parsed once into typed, frozen objects.

Three files make up the parameters of one quality office:

* ``organisation.yaml``: the organisation, its departments (ASCII id, zh/en names,
  the names its exports and registers use for it), complaint categories, the report
  language and where data and outputs live;
* ``kpis.yaml``: the KPI catalogue (seeded from the process register's targets) and
  the status rules (yellow margin, early-warning months);
* ``batch.yaml``: the batch plan (which notebooks run per department and which once
  for the whole organisation), engine, workers and timeouts.

Optional files (:data:`OPTIONAL_FILES`) are parsed as strictly as the others when
present; when absent they give their defaults (``audit.yaml``: internal auditors
and their competences, the audit-frequency rules, declared changes; ``rca.yaml``:
complaint hotspot rules, association rules, the "did the fix hold" check and the
phrases that flag a five-whys chain stopping at a person; ``risk.yaml``: the
risk-scoring method, its bands and colours, the effectiveness check) or nothing
(``distribution.yaml``: the SMTP server and the recipients of each department's
report bundle and of the organisation-wide reports, for ``qmsnb distribute``).

Unknown keys, bad values and references to unknown departments, datasets or
notebooks are :class:`~qmsnb.exceptions.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from qmsnb.exceptions import ConfigError, UsageError
from qmsnb.i18n import Lang, pick

#: The reserved id under which organisation-wide reports are filed.
ORGANISATION = "organisation"

#: Department ids are ASCII slugs: they become folder names, so they can never
#: contain a path separator or ``..``.
DEPARTMENT_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

Scalar = str | int | float | bool | None

#: An e-mail address, optionally with a display name (``王磊 <wang.lei@example.com>``).
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def check_department_id(value: str) -> str:
    """Return ``value`` if it is a safe department id (or ``organisation``).

    Department ids become folder and file names; this is the one check that keeps
    a value like ``../x`` from reaching a path.

    Raises:
        UsageError: the value is not a department-id slug.
    """
    if value == ORGANISATION or DEPARTMENT_ID.fullmatch(str(value)):
        return value
    raise UsageError("error.department_id_unsafe", value=str(value)[:80])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Model):
    """A name in both report languages."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def __call__(self, lang: str) -> str:
        return pick(self.model_dump(), lang)


class Department(_Model):
    """One department: an ASCII id for files and links, names for people."""

    id: str
    name: Names
    aliases: tuple[str, ...] = ()
    head: str | None = None

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if value == ORGANISATION or not DEPARTMENT_ID.fullmatch(value):
            raise ValueError("department_id")
        return value


class Category(_Model):
    """A complaint category with its subcategories."""

    id: str
    name: Names
    subcategories: dict[str, Names] = {}


class Organisation(_Model):
    """``organisation.yaml``."""

    name: Names
    report_language: Lang = "zh"
    data_dir: str = "data"
    output_dir: str = "outputs"
    registers_dir: str = "data/registers"
    records_url: str | None = None
    departments: tuple[Department, ...] = Field(min_length=1)
    complaint_categories: tuple[Category, ...] = ()

    @field_validator("departments")
    @classmethod
    def _unique(cls, value: tuple[Department, ...]) -> tuple[Department, ...]:
        seen: set[str] = set()
        for dept in value:
            if dept.id in seen:
                raise ValueError(f"duplicate department id {dept.id}")
            seen.add(dept.id)
        return value


class RatioMeasure(_Model):
    """A ratio over an export: rows matching ``where`` (denominator), of which
    those also matching ``numerator`` are the numerator."""

    kind: Literal["ratio"]
    dataset: str
    where: dict[str, Scalar | list[Scalar]] = {}
    numerator: dict[str, Scalar | list[Scalar]] = Field(min_length=1)


class ManualMeasure(_Model):
    """A value reported by hand each month in ``monthly_indicators``."""

    kind: Literal["manual"]
    dataset: Literal["monthly_indicators"] = "monthly_indicators"
    indicator: str


Measure = Annotated[RatioMeasure | ManualMeasure, Field(discriminator="kind")]


class Kpi(_Model):
    """One indicator of the catalogue."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,59}$")
    name: Names
    printed_names: tuple[str, ...] = ()
    condition: Literal["账期", "非账期"] | None = None
    processes: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()
    owner: str = ""
    direction: Literal[">=", "<="]
    target: float
    unit: Literal["%", "count"] = "%"
    min_base: int = Field(default=0, ge=0)
    departments: tuple[str, ...] | None = None
    measure: Measure

    def meets(self, value: float) -> bool:
        """Whether ``value`` meets the target in the KPI's direction."""
        return value >= self.target if self.direction == ">=" else value <= self.target


class StatusRules(_Model):
    """How values become red / yellow / green and when warnings are raised."""

    yellow_margin: float = Field(default=2.0, ge=0)
    warning_months: int = Field(default=2, ge=1)
    support_months: int = Field(default=3, ge=1)
    trend_months: int = Field(default=12, ge=3, le=36)


class KpiCatalogue(_Model):
    """``kpis.yaml``."""

    status: StatusRules = StatusRules()
    kpis: tuple[Kpi, ...] = Field(min_length=1)

    @field_validator("kpis")
    @classmethod
    def _unique(cls, value: tuple[Kpi, ...]) -> tuple[Kpi, ...]:
        ids = [k.id for k in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate KPI id {', '.join(dupes)}")
        return value


class NotebookPlan(_Model):
    """One notebook of the batch plan."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,59}$")
    path: str
    title: Names
    scope: tuple[Literal["department", "organisation"], ...] = Field(min_length=1)
    departments: tuple[str, ...] | None = None
    needs: tuple[str, ...] = ()
    timeout_seconds: int | None = Field(default=None, ge=10)


class BatchPlan(_Model):
    """``batch.yaml``."""

    engine: str = "papermill"
    jobs: int = Field(default=2, ge=1, le=64)
    timeout_seconds: int = Field(default=600, ge=10)
    kernel_name: str = "python3"
    notebooks: tuple[NotebookPlan, ...] = Field(min_length=1)


def parse_address(value: str) -> str:
    """Check one e-mail address (``a@b.cn`` or ``Name <a@b.cn>``); ValueError if bad."""
    from email.utils import parseaddr

    text = str(value).strip()
    if any(ch in text for ch in "\r\n\t"):
        raise ValueError("e-mail address with a line break")
    _, address = parseaddr(text)
    if not address or not _ADDRESS.match(address):
        raise ValueError(f"not an e-mail address: {text!r}")
    return text


class Smtp(_Model):
    """The SMTP server ``qmsnb distribute`` sends through.

    The password is never in params: it is read from the environment variable
    named by ``password_env`` when ``username`` is set.
    """

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    sender: str
    username: str | None = None
    password_env: str = Field(default="QMSNB_SMTP_PASSWORD", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_seconds: int = Field(default=30, ge=1, le=600)

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError("password_in_params")
        return data

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return parse_address(value)


class Distribution(_Model):
    """``distribution.yaml`` (optional): who receives which reports, and how.

    ``recipients`` maps a department id, or ``organisation`` for the
    organisation-wide reports, to the addresses that receive them. A department
    bundle holds that department's reports only; the organisation's reports go
    only to the addresses listed under ``organisation``.
    """

    smtp: Smtp
    delivery: Literal["attachment", "link"] = "attachment"
    link_base: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    max_attachment_mb: float = Field(default=10.0, gt=0, le=100)
    language: Lang | None = None
    recipients: dict[str, tuple[str, ...]] = Field(min_length=1)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {scope: tuple(parse_address(a) for a in value[scope]) for scope in value}

    @model_validator(mode="after")
    def _link_needs_base(self) -> Distribution:
        if self.delivery == "link" and not self.link_base:
            raise ValueError("delivery: link needs link_base (the intranet address of the bundles)")
        return self


_FILES: dict[str, type[_Model]] = {
    "organisation.yaml": Organisation,
    "kpis.yaml": KpiCatalogue,
    "batch.yaml": BatchPlan,
}


# ---------------------------------------------------------------------------
# Optional files: absent → the model's defaults; present → parsed as strictly.
# ---------------------------------------------------------------------------
class Auditor(_Model):
    """An internal auditor: who, from which department, competent for what.

    ``competences`` lists process ids (``C3``), process categories of the register
    (``customer``, ``support``, ``management``) or ``"*"`` for every process.
    """

    name: str = Field(min_length=1)
    department: str
    competences: tuple[str, ...] = ("*",)
    max_per_month: int = Field(default=2, ge=1, le=31)

    def competent_for(self, process_id: str, category: str = "") -> bool:
        """Whether the auditor may audit ``process_id`` (of register ``category``)."""
        return bool({"*", process_id, category} & set(self.competences) - {""})


class FrequencyRules(_Model):
    """How many audits a year a process × department gets, and why.

    ``base`` by the process's importance in the register, plus: findings in the
    look-back window (each major / minor nonconformity, capped), an indicator of
    the process in early warning / special support for the department, complaints
    of the department rising beyond ``complaint_rise_percent`` over the mean of the
    previous ``complaint_months`` months (customer-facing processes), and a change
    declared in ``changes`` within the look-back window. Capped at ``maximum``.
    """

    base: dict[Literal["A", "B", "C", "D"], int] = {"A": 4, "B": 2, "C": 1, "D": 1}
    major: int = Field(default=2, ge=0)
    minor: int = Field(default=1, ge=0)
    findings_cap: int = Field(default=3, ge=0)
    kpi_warning: int = Field(default=1, ge=0)
    kpi_support: int = Field(default=2, ge=0)
    complaint_rise: int = Field(default=1, ge=0)
    complaint_rise_percent: float = Field(default=20.0, ge=0)
    complaint_months: int = Field(default=3, ge=1, le=12)
    change: int = Field(default=1, ge=0)
    lookback_months: int = Field(default=12, ge=1, le=36)
    maximum: int = Field(default=12, ge=1, le=12)

    @field_validator("base")
    @classmethod
    def _every_grade(cls, value: dict[str, int]) -> dict[str, int]:
        missing = {"A", "B", "C", "D"} - set(value)
        if missing:
            raise ValueError(f"base needs a frequency for importance {', '.join(sorted(missing))}")
        if any(v < 1 or v > 12 for v in value.values()):
            raise ValueError("base frequencies are audits per year, 1 to 12")
        return value


class PlannedChange(_Model):
    """A change to a process or department that calls for an earlier audit (ISO 9001 6.3)."""

    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    process: str | None = None
    department: str | None = None
    description: Names


class AuditParams(_Model):
    """``audit.yaml`` (optional): auditors, frequency rules, declared changes."""

    auditors: tuple[Auditor, ...] = ()
    frequency: FrequencyRules = FrequencyRules()
    changes: tuple[PlannedChange, ...] = ()
    action_due_soon_days: int = Field(default=14, ge=1, le=120)

    @field_validator("auditors")
    @classmethod
    def _unique(cls, value: tuple[Auditor, ...]) -> tuple[Auditor, ...]:
        names = [a.name for a in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"auditor listed twice: {', '.join(dupes)}")
        return value

    def auditor(self, name: str) -> Auditor | None:
        """The listed auditor called ``name`` (None when not listed)."""
        return next((a for a in self.auditors if a.name == name.strip()), None)


class HotspotRules(_Model):
    """What makes a complaint hotspot (root-cause analysis).

    ``pareto_cut``: the vital few are the top categories up to and including the
    one whose cumulative share reaches this percentage. A category (or
    subcategory) *surges* when its tickets rise month on month by more than
    ``surge_percent`` and it has at least ``surge_min_tickets`` this month (the
    domain's yellow alert). A *batch* is at least ``batch_min_tickets`` tickets of
    one subcategory within ``batch_window_hours``, and at least ``batch_factor``
    times what the subcategory's monthly volume would put in such a window. A
    *repeat complainant* has ``repeat_min_tickets`` or more tickets in the month.
    A scope with fewer than ``min_tickets`` tickets gets a table, not a chart.
    """

    pareto_cut: float = Field(default=80.0, gt=0, le=100)
    surge_percent: float = Field(default=30.0, ge=0)
    surge_min_tickets: int = Field(default=10, ge=1)
    batch_window_hours: int = Field(default=48, ge=1, le=24 * 31)
    batch_min_tickets: int = Field(default=20, ge=2)
    batch_factor: float = Field(default=3.0, ge=1)
    repeat_min_tickets: int = Field(default=2, ge=2)
    min_tickets: int = Field(default=20, ge=1)


class AssociationRules(_Model):
    """Association rules between complaint subcategories (tags).

    ``basket``: which tickets count as occurring together: ``customer`` (one
    customer's tickets in the month), ``customer_day`` (one customer's tickets on
    one day) or ``day`` (all tickets of one day; for small volumes). A rule is
    shown when its pair occurs in at least ``min_baskets`` baskets and it meets
    ``min_support`` (% of baskets), ``min_confidence`` (%) and ``min_lift``.
    """

    basket: Literal["customer", "customer_day", "day"] = "customer"
    min_baskets: int = Field(default=3, ge=1)
    min_support: float = Field(default=0.5, ge=0, le=100)
    min_confidence: float = Field(default=10.0, ge=0, le=100)
    min_lift: float = Field(default=1.5, ge=0)
    max_rules: int = Field(default=15, ge=1, le=200)


class FixCheckRules(_Model):
    """How "did the fix hold?" is judged.

    The baseline is up to ``baseline_months`` months before the month the action
    was completed; the months after it (up to the report's month) are compared
    with it. Fewer than ``min_months_before`` / ``min_months_after`` months, or a
    baseline under ``min_monthly_tickets`` a month, is "not enough data yet".
    The mean after must fall ``sigmas`` standard errors below the baseline mean
    (2.5: on simulated over-dispersed series, 2 % of unchanged series pass as
    "held" and 90 % of halved ones are caught with five months after).
    """

    baseline_months: int = Field(default=6, ge=2, le=24)
    min_months_before: int = Field(default=3, ge=2, le=24)
    min_months_after: int = Field(default=3, ge=1, le=24)
    min_monthly_tickets: float = Field(default=5.0, ge=0)
    sigmas: float = Field(default=2.5, ge=1, le=6)


#: Phrases that blame a person instead of a cause the organisation can act on.
DEFAULT_PERSON_PATTERNS: dict[str, tuple[str, ...]] = {
    "zh": (
        "粗心",
        "马虎",
        "大意",
        "责任心",
        "不认真",
        "疏忽",
        "态度不好",
        "态度差",
        "能力不足",
        "能力差",
        "个人原因",
        "素质",
        "工作失误",
        "没注意",
        "未注意",
        "不用心",
    ),
    "en": (
        "careless",
        "negligen",
        "lazy",
        "not careful",
        "didn't care",
        "did not care",
        "human error",
        "attitude",
        "irresponsib",
        "sloppy",
        "not paying attention",
        "inattentive",
        "personal reason",
        "forgot",
    ),
}


class RcaParams(_Model):
    """``rca.yaml`` (optional): hotspot rules, association rules, the fix check
    and the phrases that flag a five-whys chain stopping at a person."""

    hotspots: HotspotRules = HotspotRules()
    association: AssociationRules = AssociationRules()
    fix_check: FixCheckRules = FixCheckRules()
    person_patterns: dict[Literal["zh", "en"], tuple[str, ...]] = DEFAULT_PERSON_PATTERNS

    @field_validator("person_patterns")
    @classmethod
    def _patterns(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        if any(not p.strip() for patterns in value.values() for p in patterns):
            raise ValueError("a person-blaming pattern is empty")
        return value


class RiskBand(_Model):
    """One band of a scoring method: id, the score it starts at, its colour and,
    optionally, its name (default: the catalogue's ``risk.band.<id>``)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,29}$")
    min: float = 0
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    name: Names | None = None


class MethodSettings(_Model):
    """Bands of one scoring method (mildest first) and, for FMEA, how to band."""

    bands: tuple[RiskBand, ...] | None = None
    band_by: Literal["score", "action_priority"] | None = None


class EffectivenessRules(_Model):
    """How "did the actions work?" is judged (see ``docs/risk-scoring.md``).

    The months before the month the actions were completed (at most
    ``baseline_months``) are compared with the months after it, up to the report's
    month; the action month itself counts in neither. Fewer than
    ``min_months_before`` usable months before, or ``min_months_after`` after, is
    "not enough data yet". A one-sided test in the improving direction at
    ``alpha`` decides between "effective" and "not effective".
    """

    baseline_months: int = Field(default=6, ge=2, le=24)
    min_months_before: int = Field(default=3, ge=2, le=24)
    min_months_after: int = Field(default=3, ge=1, le=24)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)


class RiskParams(_Model):
    """``risk.yaml`` (optional): the active scoring method, bands and colours per
    method, the effectiveness rules and what the report lists."""

    method: str = "matrix"
    methods: dict[str, MethodSettings] = {}
    effectiveness: EffectivenessRules = EffectivenessRules()
    top: int = Field(default=10, ge=1, le=100)
    review_due_soon_days: int = Field(default=30, ge=1, le=366)
    first_review_days: int = Field(default=30, ge=1, le=366)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from qmsnb import scoring

        if value not in scoring.METHODS:
            raise ValueError(f"unknown scoring method; use one of {', '.join(scoring.METHODS)}")
        return value

    @field_validator("methods")
    @classmethod
    def _method_settings(cls, value: dict[str, MethodSettings]) -> dict[str, MethodSettings]:
        from qmsnb import scoring

        for method_id, settings in value.items():
            if method_id not in scoring.METHODS:
                raise ValueError(
                    f"unknown scoring method {method_id}; use one of {', '.join(scoring.METHODS)}"
                )
            method = scoring.METHODS[method_id]
            if settings.band_by == "action_priority" and method.classify is None:
                raise ValueError(f"{method_id}: band_by action_priority is for fmea only")
            if not settings.bands:
                continue
            ids = [b.id for b in settings.bands]
            if len(set(ids)) != len(ids):
                raise ValueError(f"{method_id}: a band id is listed twice")
            mins = [b.min for b in settings.bands]
            if mins != sorted(mins) or len(set(mins)) != len(mins):
                raise ValueError(f"{method_id}: band minimums must rise from the first band")
            low, high = method.score_range
            if mins[0] > low:
                raise ValueError(
                    f"{method_id}: the first band must start at or below the lowest score "
                    f"{scoring.number_text(low)}"
                )
            if mins[-1] > high:
                top = scoring.number_text(high)
                raise ValueError(f"{method_id}: a band starts above the highest score {top}")
            band_by = settings.band_by or method.band_by
            if band_by == "action_priority":
                missing = set(scoring.PRIORITY_BANDS.values()) - set(ids)
                if missing:
                    raise ValueError(
                        f"{method_id}: action-priority banding needs bands "
                        f"{', '.join(sorted(missing))}"
                    )
        return value

    def bands(self, method_id: str | None = None) -> tuple[Any, ...]:
        """The bands of a method (the active one by default) as :class:`scoring.Band`."""
        from qmsnb import scoring

        method = scoring.METHODS[method_id or self.method]
        settings = self.methods.get(method.id)
        if settings is None or not settings.bands:
            return method.default_bands
        return tuple(
            scoring.Band(b.id, b.min, b.colour, b.name.model_dump() if b.name else None)
            for b in settings.bands
        )

    def band_by(self, method_id: str | None = None) -> str:
        """How a method's scores are banded (``score`` or ``action_priority``)."""
        from qmsnb import scoring

        method = scoring.METHODS[method_id or self.method]
        settings = self.methods.get(method.id)
        return (settings.band_by if settings and settings.band_by else None) or method.band_by


#: Optional parameter files: file name → model. Absent → the model's defaults, or
#: None for a model that has no defaults (``distribution.yaml``: nothing to send).
OPTIONAL_FILES: dict[str, type[_Model]] = {
    "audit.yaml": AuditParams,
    "rca.yaml": RcaParams,
    "risk.yaml": RiskParams,
    "distribution.yaml": Distribution,
}


def _absent(model: type[_Model]) -> Any:
    try:
        return model()
    except ValidationError:  # required keys: an absent file means "not configured"
        return None


@dataclass(frozen=True)
class Params:
    """All parameters of one quality office, with the folder they came from."""

    root: Path
    folder: Path
    organisation: Organisation
    catalogue: KpiCatalogue
    batch: BatchPlan
    #: Parsed optional files (:data:`OPTIONAL_FILES`) by file name.
    optional: dict[str, Any] = field(default_factory=dict)

    @property
    def audit(self) -> AuditParams:
        """``audit.yaml``: auditors, frequency rules, declared changes (defaults if absent)."""
        return self.optional.get("audit.yaml") or AuditParams()

    @property
    def rca(self) -> RcaParams:
        """``rca.yaml``: hotspot, association and fix-check rules (defaults if absent)."""
        return self.optional.get("rca.yaml") or RcaParams()

    @property
    def risk(self) -> RiskParams:
        """``risk.yaml``: scoring method, bands, effectiveness rules (defaults if absent)."""
        return self.optional.get("risk.yaml") or RiskParams()

    @property
    def distribution(self) -> Distribution | None:
        """``distribution.yaml``: SMTP server and recipients (None if absent)."""
        return self.optional.get("distribution.yaml")

    # -- lookups ---------------------------------------------------------------
    @cached_property
    def departments(self) -> dict[str, Department]:
        return {d.id: d for d in self.organisation.departments}

    @cached_property
    def kpis(self) -> dict[str, Kpi]:
        return {k.id: k for k in self.catalogue.kpis}

    @cached_property
    def notebooks(self) -> dict[str, NotebookPlan]:
        return {n.id: n for n in self.batch.notebooks}

    @cached_property
    def department_aliases(self) -> dict[str, str]:
        """Every name a department goes by (id, zh, en, aliases) → its id."""
        table: dict[str, str] = {}
        for dept in self.organisation.departments:
            for name in (dept.id, dept.name.zh, dept.name.en, *dept.aliases):
                table[name.strip()] = dept.id
                table[name.strip().lower()] = dept.id
        return table

    @cached_property
    def _lookups(self) -> dict[str, dict[str, str]]:
        categories: dict[str, str] = {}
        subcategories: dict[str, str] = {}
        for cat in self.organisation.complaint_categories:
            for name in (cat.id, cat.name.zh, cat.name.en):
                categories[name] = cat.id
                categories[name.lower()] = cat.id
            for sub_id, names in cat.subcategories.items():
                for name in (sub_id, names.zh, names.en):
                    subcategories[name] = sub_id
                    subcategories[name.lower()] = sub_id
        scopes = {**self.department_aliases}
        for name in (
            ORGANISATION,
            "全组织",
            "公司",
            "whole organisation",
            self.organisation.name.zh,
            self.organisation.name.en,
        ):
            scopes[name] = ORGANISATION
            scopes[name.lower()] = ORGANISATION
        kpis: dict[str, str] = {}
        for kpi in self.catalogue.kpis:
            for name in (kpi.id, kpi.name.zh, kpi.name.en):
                kpis[name.strip()] = kpi.id
                kpis[name.strip().lower()] = kpi.id
        return {
            "departments": self.department_aliases,
            "kpis": kpis,
            "scopes": scopes,
            "complaint_categories": categories,
            "complaint_subcategories": subcategories,
        }

    def lookup(self, name: str) -> dict[str, str]:
        """Name or alias → id for a params table used by the data contract."""
        return self._lookups[name]

    def lookups_fingerprint(self) -> str:
        """A hash of every name/alias → id table the loader converts values with:
        what is computed from typed exports must be computed again when it changes
        (an alias added to organisation.yaml re-maps a department)."""
        import hashlib
        import json

        text = json.dumps(self._lookups, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def department(self, dept_id: str) -> Department:
        """The department with ``dept_id``; a UsageError listing the known ids otherwise."""
        check_department_id(dept_id)
        try:
            return self.departments[dept_id]
        except KeyError:
            raise UsageError(
                "error.unknown_department", value=dept_id, known=", ".join(self.departments)
            ) from None

    def department_name(self, dept_id: str, lang: str) -> str:
        """The department's name, or "whole organisation" for the org-wide scope."""
        if dept_id == ORGANISATION:
            from qmsnb.i18n import t

            return t("scope.organisation", lang)
        return self.department(dept_id).name(lang)

    def path(self, relative: str) -> Path:
        """A path from params, resolved against the project root."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else self.root / candidate

    @property
    def data_dir(self) -> Path:
        return self.path(self.organisation.data_dir)

    @property
    def output_dir(self) -> Path:
        return self.path(self.organisation.output_dir)

    @property
    def registers_dir(self) -> Path:
        return self.path(self.organisation.registers_dir)


def _location(loc: Iterable[Any]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _named_location(data: Any, loc: tuple[Any, ...]) -> str:
    """``departments[2].id`` → ``departments[2] (id: sales).id`` when the item has an id."""
    text = _location(loc)
    node = data
    for depth, item in enumerate(loc):
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(item, int) and isinstance(node, dict) and "id" in node:
            head = _location(loc[: depth + 1])
            return f"{head} (id: {node['id']})" + text[len(head) :]
    return text


def _raise_validation(file: Path, data: Any, exc: ValidationError) -> None:
    err = exc.errors()[0]
    where = _named_location(data, tuple(err["loc"]))
    kind = err["type"]
    if kind == "extra_forbidden":
        raise ConfigError("error.config.unknown_key", file=str(file), key=where) from None
    if kind == "missing":
        raise ConfigError("error.config.missing_key", file=str(file), key=where) from None
    if kind == "value_error" and "department_id" in str(err.get("msg", "")):
        raise ConfigError(
            "error.config.department_id", file=str(file), key=where, value=err.get("input")
        ) from None
    if kind == "value_error" and "password_in_params" in str(err.get("msg", "")):
        raise ConfigError("error.config.password_in_params", file=str(file), key=where) from None
    raise ConfigError(
        "error.config.bad_value",
        file=str(file),
        key=where,
        value=repr(err.get("input"))[:80],
        problem=str(err.get("msg", "")),
    ) from None


#: libyaml's safe loader when PyYAML was built with it (the same documents, ~10×
#: faster than the pure-Python one: every report parses the params again).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(file: Path) -> Any:
    if not file.is_file():
        raise ConfigError("error.config.missing_file", file=str(file))
    try:
        return yaml.load(file.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except UnicodeDecodeError:
        raise ConfigError("error.config.encoding", file=str(file)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("error.config.yaml", file=str(file), line=line, problem=problem) from None


def _parse(file: Path, model: type[_Model]) -> Any:
    data = _read_yaml(file)
    if not isinstance(data, dict):
        raise ConfigError("error.config.not_mapping", file=str(file))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _raise_validation(file, data, exc)


def _check_references(params: Params) -> None:
    """Cross-file checks: every department, dataset and notebook named exists."""
    known = set(params.departments)
    from qmsnb.contract import DATASETS

    kpi_file = params.folder / "kpis.yaml"
    for index, kpi in enumerate(params.catalogue.kpis):
        for dept in kpi.departments or ():
            if dept not in known:
                raise ConfigError(
                    "error.config.unknown_department",
                    file=str(kpi_file),
                    key=f"kpis[{index}] (id: {kpi.id}).departments",
                    value=dept,
                    known=", ".join(sorted(known)),
                )
        if kpi.measure.dataset not in DATASETS:
            raise ConfigError(
                "error.config.unknown_dataset",
                file=str(kpi_file),
                key=f"kpis[{index}] (id: {kpi.id}).measure.dataset",
                value=kpi.measure.dataset,
                known=", ".join(sorted(DATASETS)),
            )
        if isinstance(kpi.measure, RatioMeasure):
            columns = DATASETS[kpi.measure.dataset].column_names
            for part in ("where", "numerator"):
                for column in getattr(kpi.measure, part):
                    if column not in columns:
                        raise ConfigError(
                            "error.config.unknown_column",
                            file=str(kpi_file),
                            key=f"kpis[{index}] (id: {kpi.id}).measure.{part}.{column}",
                            value=column,
                            known=", ".join(columns),
                        )
    batch_file = params.folder / "batch.yaml"
    for index, nb in enumerate(params.batch.notebooks):
        for dept in nb.departments or ():
            if dept not in known:
                raise ConfigError(
                    "error.config.unknown_department",
                    file=str(batch_file),
                    key=f"notebooks[{index}] (id: {nb.id}).departments",
                    value=dept,
                    known=", ".join(sorted(known)),
                )
        for dataset in nb.needs:
            if dataset not in DATASETS:
                raise ConfigError(
                    "error.config.unknown_dataset",
                    file=str(batch_file),
                    key=f"notebooks[{index}] (id: {nb.id}).needs",
                    value=dataset,
                    known=", ".join(sorted(DATASETS)),
                )
        if not params.path(nb.path).is_file():
            raise ConfigError(
                "error.config.missing_notebook",
                file=str(batch_file),
                key=f"notebooks[{index}] (id: {nb.id}).path",
                value=nb.path,
            )
    if params.distribution is not None:
        dist_file = params.folder / "distribution.yaml"
        for scope in params.distribution.recipients:
            if scope != ORGANISATION and scope not in known:
                raise ConfigError(
                    "error.config.unknown_department",
                    file=str(dist_file),
                    key=f"recipients.{scope}",
                    value=scope,
                    known=", ".join([ORGANISATION, *sorted(known)]),
                )


def _check_audit(params: Params) -> None:
    """``audit.yaml``: auditors' and changes' departments exist."""
    known = set(params.departments)
    file = params.folder / "audit.yaml"
    entries = [
        (f"auditors[{i}] (name: {a.name}).department", a.department)
        for i, a in enumerate(params.audit.auditors)
    ] + [
        (f"changes[{i}].department", c.department)
        for i, c in enumerate(params.audit.changes)
        if c.department is not None
    ]
    for key, dept in entries:
        if dept not in known:
            raise ConfigError(
                "error.config.unknown_department",
                file=str(file),
                key=key,
                value=dept,
                known=", ".join(sorted(known)),
            )


#: Params :func:`remember_params` loaded, by folder, with the stamps of its files.
_REMEMBERED: dict[str, tuple[list[tuple[str, int, int]], Params]] = {}


def _stamps(folder: Path) -> list[tuple[str, int, int]]:
    found = []
    for name in (*_FILES, *OPTIONAL_FILES):
        try:
            stat = (folder / name).stat()
        except OSError:
            continue
        found.append((name, stat.st_mtime_ns, stat.st_size))
    return found


def remember_params(folder: str | Path) -> None:
    """Load the params of ``folder`` now and keep them for :func:`load_params`.

    The warm engine's kernel template calls this once per batch: every report's
    kernel is forked from it and gets them parsed (each report parsed the same
    files again, ~10 ms). A kernel owns its copy (copy-on-write), so what a
    report changes stays its own; a changed file is parsed again.
    """
    folder = Path(folder).resolve()
    _REMEMBERED[str(folder)] = (_stamps(folder), load_params(folder))


def load_params(folder: str | Path = "params", root: str | Path | None = None) -> Params:
    """Parse and cross-check the parameter files in ``folder``.

    Args:
        folder: the params folder (``params/`` of the project by default).
        root: the project root that relative paths in the params are resolved
            against; the parent of ``folder`` by default.

    Raises:
        ConfigError: a file is missing or malformed, a key is unknown, a value is
            bad, or a reference points at nothing. The message names file and key.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ConfigError("error.config.missing_folder", file=str(folder))
    remembered = _REMEMBERED.get(str(folder))
    if remembered is not None and root is None and remembered[0] == _stamps(folder):
        return remembered[1]
    parsed = {name: _parse(folder / name, model) for name, model in _FILES.items()}
    optional = {
        name: _parse(folder / name, model) if (folder / name).is_file() else _absent(model)
        for name, model in OPTIONAL_FILES.items()
    }
    params = Params(
        root=Path(root).resolve() if root is not None else folder.parent,
        folder=folder,
        organisation=parsed["organisation.yaml"],
        catalogue=parsed["kpis.yaml"],
        batch=parsed["batch.yaml"],
        optional=optional,
    )
    _check_references(params)
    _check_audit(params)
    return params
