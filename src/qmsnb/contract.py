"""The data contract: every dataset qmsnb reads, its columns, types, headers and keys.

This module is the single declaration of what an export or a register must look
like. ``docs/data-contract.md`` is generated from it (``qmsnb contract --markdown``)
and the loader (:mod:`qmsnb.io`) and the gate read it. Datasets live in a registry
(:data:`DATASETS`, :func:`register`), so a new export is one declaration.

Headers may be written as the column id, its Chinese header or its English label
(case and surrounding spaces ignored). Enumerated values may be written as the
canonical id, the Chinese or the English label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

DType = Literal["str", "int", "float", "bool", "datetime", "date", "period"]
Kind = Literal["export", "register"]


@dataclass(frozen=True)
class Column:
    """One column of a dataset.

    Attributes:
        name: canonical id used in code and params (ASCII).
        zh: the Chinese header a Chinese export uses.
        en: the English header / label.
        dtype: the type values are converted to.
        required: the column must be present in the file.
        nullable: empty cells are allowed.
        values: allowed values, canonical id → (zh label, en label).
        minimum, maximum: inclusive numeric range.
        aliases: further header names seen in real exports.
        lookup: the values come from a table in params (``departments``,
            ``complaint_categories``, ``complaint_subcategories``): ids, names and
            aliases are accepted and stored as ids.
        references: the values are keys of another register (``audit_programme``,
            ``findings``, ...); the records store refuses a value that names no
            record there.
    """

    name: str
    zh: str
    en: str
    dtype: DType = "str"
    required: bool = True
    nullable: bool = False
    values: dict[str, tuple[str, str]] | None = None
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()
    lookup: str | None = None
    references: str | None = None

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.name, self.zh, self.en, *self.aliases)


@dataclass(frozen=True)
class Derived:
    """A column computed from others after loading (never read from the file).

    KPI definitions may filter on derived columns like on any other column.
    """

    name: str
    zh: str
    en: str
    dtype: DType
    compute: Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Dataset:
    """One export (per period) or register (kept by the quality office)."""

    id: str
    zh: str
    en: str
    kind: Kind
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    period_column: str | None = None
    description_en: str = ""
    description_zh: str = ""
    file_names: tuple[str, ...] = field(default=())
    derived: tuple[Derived, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """Columns of the file and the derived ones (what KPI filters may use)."""
        return tuple(c.name for c in self.columns) + tuple(d.name for d in self.derived)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def stems(self) -> tuple[str, ...]:
        """File names (without extension) this dataset is found under."""
        return (self.id, self.zh, *self.file_names)


DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    """Add a dataset to the contract (ids are unique)."""
    if dataset.id in DATASETS:
        raise ValueError(f"dataset {dataset.id} registered twice")
    DATASETS[dataset.id] = dataset
    return dataset


def _rated(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: df[column].notna()


def _satisfied(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    # A score of 4 or 5 on the 1-5 scale counts as satisfied (满意 / 比较满意).
    return lambda df: (df[column] >= 4).where(df[column].notna(), pd.NA).astype("boolean")


def _closed_on_time(df: pd.DataFrame) -> pd.Series:
    # Closed no later than its deadline; a ticket still open is not closed on time.
    return (df["closed_at"].notna() & (df["closed_at"] <= df["due_at"])).astype("boolean")


QUEUES = {"normal": ("普通", "Normal"), "vip": ("VIP", "VIP"), "night": ("夜间", "Night")}
CHANNELS = {
    "hotline": ("热线", "Hotline"),
    "online": ("网上营业厅", "Online"),
    "app": ("手机营业厅", "App"),
    "letter": ("信函", "Letter"),
    "regulator": ("工信部申诉", "Regulator appeal"),
}
CALLBACK_TYPES = {
    "service": ("服务回访", "Service callback"),
    "install_repair": ("装移修回访", "Install/repair callback"),
}
INDICATORS = {
    "training_pass_rate": ("新员工培训合格率", "New-staff training pass rate"),
    "staff_turnover": ("人员流失率", "Staff turnover"),
    "supplier_first_pass": ("供方一次交验合格率", "Supplier first-pass acceptance"),
    "scenario_library_usage": ("员工场景预案库使用率", "Scenario-library usage"),
    "headcount": ("在岗人数", "Headcount"),
}
GRADES = {
    "major": ("严重不符合", "Major nonconformity"),
    "minor": ("一般不符合", "Minor nonconformity"),
    "observation": ("观察项", "Observation"),
    "ofi": ("改进机会", "Opportunity for improvement"),
}
ACTION_STATUS = {
    "open": ("未开始", "Open"),
    "in_progress": ("进行中", "In progress"),
    "closed": ("已关闭", "Closed"),
}
AUDIT_STATUS = {
    "planned": ("计划", "Planned"),
    "done": ("已完成", "Done"),
    "cancelled": ("已取消", "Cancelled"),
}
OBJECTIVE_STATUS = {
    "planned": ("计划", "Planned"),
    "in_progress": ("进行中", "In progress"),
    "done": ("已完成", "Done"),
    "delayed": ("滞后", "Delayed"),
}
RISK_TYPES = {"risk": ("风险", "Risk"), "opportunity": ("机遇", "Opportunity")}
RISK_SOURCES = {
    "policy": ("外部:政策", "External: policy"),
    "economy": ("外部:经济", "External: economy"),
    "society": ("外部:社会", "External: society"),
    "technology": ("外部:技术", "External: technology"),
    "strength": ("内部:优势", "Internal: strength"),
    "weakness": ("内部:劣势", "Internal: weakness"),
    "failure_mode": ("过程失效模式", "Failure mode of a process"),
}
#: Sources that are external or internal issues (ISO 9001 4.1), not failure modes.
RISK_ISSUE_SOURCES = ("policy", "economy", "society", "technology", "strength", "weakness")
RISK_TREATMENTS = {
    "avoid": ("规避", "Avoid"),
    "reduce": ("降低", "Reduce"),
    "share": ("分担/转移", "Share / transfer"),
    "accept": ("接受", "Accept"),
    "pursue": ("把握机遇", "Pursue (opportunity)"),
    "enhance": ("增强机遇", "Enhance (opportunity)"),
}
RISK_STATUS = {
    "open": ("识别", "Open"),
    "treating": ("应对中", "Being treated"),
    "monitoring": ("监控", "Monitoring"),
    "closed": ("关闭", "Closed"),
}
SOURCES = {
    "audit": ("内部审核", "Internal audit"),
    "complaint": ("顾客投诉", "Customer complaint"),
    "review": ("管理评审", "Management review"),
    "risk": ("风险应对", "Risk treatment"),
    "kpi": ("指标预警", "KPI warning"),
    "external_audit": ("外部审核", "External audit"),
}


def _scoring_methods() -> dict[str, tuple[str, str]]:
    """Scoring methods as allowed values (methods registered when the contract loads)."""
    from qmsnb import scoring

    return {m.id: (m.zh, m.en) for m in scoring.METHODS.values()}


# ---------------------------------------------------------------------------
# Exports (one file per period in data/<period>/)
# ---------------------------------------------------------------------------
CALLS = register(
    Dataset(
        id="calls",
        zh="呼叫记录",
        en="Call records",
        kind="export",
        key=("call_id",),
        period_column="start_time",
        description_en="One row per inbound call offered to a queue (ACD export).",
        description_zh="每通呼入电话一行(ACD系统导出)。",
        columns=(
            Column("call_id", "呼叫流水号", "Call ID"),
            Column("start_time", "呼入时间", "Start time", "datetime"),
            Column("department", "部门", "Department", lookup="departments"),
            Column("queue", "队列", "Queue", values=QUEUES),
            Column("billing_period", "是否账期", "Billing period", "bool"),
            Column("answered", "是否接通", "Answered", "bool"),
            Column("wait_seconds", "等待时长(秒)", "Wait (s)", "float", minimum=0),
            Column("handle_seconds", "通话时长(秒)", "Handle time (s)", "float", minimum=0),
            Column("first_call_resolved", "首呼解决", "First-call resolved", "bool", nullable=True),
            Column("ivr_score", "IVR评分", "IVR score", "int", nullable=True, minimum=1, maximum=5),
            Column("agent_id", "坐席工号", "Agent ID", nullable=True, required=False),
        ),
        derived=(
            Derived("ivr_rated", "IVR已评价", "IVR rated", "bool", _rated("ivr_score")),
            Derived("ivr_satisfied", "IVR满意", "IVR satisfied", "bool", _satisfied("ivr_score")),
        ),
    )
)

COMPLAINTS = register(
    Dataset(
        id="complaints",
        zh="投诉工单",
        en="Complaint tickets",
        kind="export",
        key=("ticket_id",),
        period_column="created_at",
        description_en="One row per complaint ticket created in the period (ticketing export).",
        description_zh="当月受理的每张投诉工单一行(工单系统导出)。",
        columns=(
            Column("ticket_id", "工单编号", "Ticket ID"),
            Column("created_at", "受理时间", "Created at", "datetime"),
            Column("department", "责任部门", "Responsible department", lookup="departments"),
            Column("category", "投诉类别", "Category", lookup="complaint_categories"),
            Column(
                "subcategory",
                "投诉子类",
                "Subcategory",
                nullable=True,
                lookup="complaint_subcategories",
            ),
            Column("channel", "受理渠道", "Channel", values=CHANNELS),
            Column("customer_id", "客户号码", "Customer number"),
            Column("text", "投诉内容", "Complaint text", nullable=True),
            Column("due_at", "办结时限", "Due at", "datetime"),
            Column("closed_at", "办结时间", "Closed at", "datetime", nullable=True),
            Column("direct_resolved", "直接解决", "Resolved directly", "bool"),
            Column(
                "satisfaction",
                "满意度评价",
                "Satisfaction",
                "int",
                nullable=True,
                minimum=1,
                maximum=5,
            ),
            Column("escalated", "是否升级", "Escalated", "bool"),
        ),
        derived=(
            Derived("closed_on_time", "限时办结", "Closed on time", "bool", _closed_on_time),
            Derived("rated", "已评价", "Rated", "bool", _rated("satisfaction")),
            Derived("satisfied", "满意", "Satisfied", "bool", _satisfied("satisfaction")),
        ),
    )
)

CALLBACKS = register(
    Dataset(
        id="callbacks",
        zh="回访任务",
        en="Callback tasks",
        kind="export",
        key=("task_id",),
        period_column="created_at",
        description_en="One row per callback task dispatched in the period.",
        description_zh="当月派发的每个回访任务一行。",
        columns=(
            Column("task_id", "任务编号", "Task ID"),
            Column("created_at", "派发时间", "Dispatched at", "datetime"),
            Column("department", "执行部门", "Department", lookup="departments"),
            Column("task_type", "回访类型", "Callback type", values=CALLBACK_TYPES),
            Column("completed", "是否完成", "Completed", "bool"),
            Column("reached", "回访成功", "Reached", "bool"),
            Column("completed_at", "完成时间", "Completed at", "datetime", nullable=True),
        ),
    )
)

MONTHLY = register(
    Dataset(
        id="monthly_indicators",
        zh="月度手工指标",
        en="Monthly manual indicators",
        kind="export",
        key=("period", "department", "indicator"),
        description_en="Indicators kept by hand each month (HR, purchasing, knowledge base).",
        description_zh="每月手工填报的指标(人力、采购、知识库)。",
        file_names=("月度指标",),
        columns=(
            Column("period", "月份", "Month", "period"),
            Column("department", "部门", "Department", lookup="departments"),
            Column("indicator", "指标", "Indicator", values=INDICATORS),
            Column("numerator", "分子", "Numerator", "float", nullable=True, minimum=0),
            Column("denominator", "分母", "Denominator", "float", nullable=True, minimum=0),
            Column("value", "指标值", "Value", "float", minimum=0),
            Column("note", "备注", "Note", nullable=True, required=False),
        ),
    )
)

# ---------------------------------------------------------------------------
# Registers (kept by the quality office in data/registers/)
# ---------------------------------------------------------------------------
PROCESS_REGISTER = register(
    Dataset(
        id="process_register",
        zh="过程识别与评价",
        en="Process register",
        kind="register",
        key=("process_id",),
        description_en="The ISO 9001 process register: 22 processes with owners and targets.",
        description_zh="ISO 9001 过程识别与评价表。",
        file_names=("过程清单",),
        columns=(
            Column("process_id", "过程编号", "Process ID"),
            Column("process_name", "过程名称", "Process name"),
            Column("category", "过程类别", "Category"),
            Column(
                "importance",
                "过程重要度",
                "Importance",
                values={"A": ("A", "A"), "B": ("B", "B"), "C": ("C", "C"), "D": ("D", "D")},
            ),
            Column("owner_department", "过程责任部门", "Owner department", nullable=True),
            Column("inputs", "过程输入", "Inputs", nullable=True),
            Column("activities", "过程中活动的步骤", "Activities", nullable=True),
            Column("performers", "步骤所对应的实施部门/岗位", "Performers", nullable=True),
            Column("outputs", "过程的输出", "Outputs", nullable=True),
            Column("kpi_text", "过程绩效指标", "Performance indicators", nullable=True),
            Column("failure_modes", "主要失效模式", "Failure modes", nullable=True),
            Column("consequences", "失效的后果", "Consequences", nullable=True),
            Column("key_factors", "核心影响因素", "Key factors", nullable=True),
            Column("iso_clauses", "相关标准条款", "ISO 9001 clauses", nullable=True),
            Column("qms_documents", "相关QMS体系文件", "QMS documents", nullable=True),
        ),
    )
)

OBJECTIVES = register(
    Dataset(
        id="objectives",
        zh="质量目标",
        en="Quality objectives",
        kind="register",
        key=("objective_id",),
        description_en="Quality objectives (ISO 9001 6.2) with their action plans.",
        description_zh="质量目标及其实施策划(ISO 9001 6.2)。",
        columns=(
            Column("objective_id", "目标编号", "Objective ID"),
            Column("year", "年度", "Year", "int", minimum=2000, maximum=2100),
            Column("kpi", "指标", "Indicator"),
            Column("department", "牵头部门", "Lead department", lookup="departments"),
            Column("supporting", "配合部门", "Supporting departments", nullable=True),
            Column(
                "measured_on",
                "统计范围",
                "Measured on",
                nullable=True,
                required=False,
                lookup="scopes",
            ),
            Column("annual_target", "年度目标", "Annual target", "float"),
            Column("q1_target", "一季度目标", "Q1 target", "float", nullable=True),
            Column("q2_target", "二季度目标", "Q2 target", "float", nullable=True),
            Column("q3_target", "三季度目标", "Q3 target", "float", nullable=True),
            Column("q4_target", "四季度目标", "Q4 target", "float", nullable=True),
            Column("action", "实施措施", "What will be done"),
            Column("resources", "所需资源", "Resources"),
            Column("owner", "负责人", "Who"),
            Column("due", "完成时间", "By when", "date"),
            Column("evaluation", "评价方法", "How evaluated"),
            Column("progress", "进度(%)", "Progress (%)", "float", minimum=0, maximum=100),
            Column("status", "状态", "Status", values=OBJECTIVE_STATUS),
        ),
    )
)

AUDITS = register(
    Dataset(
        id="audit_programme",
        zh="内审方案",
        en="Audit programme",
        kind="register",
        key=("audit_id",),
        description_en="Planned and completed internal audits (ISO 9001 9.2).",
        description_zh="内部审核方案及实施记录(ISO 9001 9.2)。",
        columns=(
            Column("audit_id", "审核编号", "Audit ID"),
            Column("process_id", "过程编号", "Process ID", references="process_register"),
            Column("department", "受审部门", "Audited department", lookup="departments"),
            Column("planned_month", "计划月份", "Planned month", "period"),
            Column("auditor", "审核员", "Auditor"),
            Column(
                "auditor_department", "审核员部门", "Auditor's department", lookup="departments"
            ),
            Column("status", "状态", "Status", values=AUDIT_STATUS),
            Column("audit_date", "审核日期", "Audit date", "date", nullable=True),
        ),
    )
)

FINDINGS = register(
    Dataset(
        id="findings",
        zh="审核发现",
        en="Audit findings",
        kind="register",
        key=("finding_id",),
        description_en="Findings of internal audits, graded.",
        description_zh="内部审核发现及分级。",
        columns=(
            Column("finding_id", "发现编号", "Finding ID"),
            Column("audit_id", "审核编号", "Audit ID", references="audit_programme"),
            Column("grade", "等级", "Grade", values=GRADES),
            Column("clause", "条款", "Clause"),
            Column("process_id", "过程编号", "Process ID", references="process_register"),
            Column("department", "部门", "Department", lookup="departments"),
            Column("statement", "不符合描述", "Statement"),
            Column("evidence", "客观证据", "Evidence", nullable=True),
            Column("auditor", "审核员", "Auditor"),
            Column("found_on", "发现日期", "Found on", "date"),
        ),
    )
)

ACTIONS = register(
    Dataset(
        id="actions",
        zh="纠正措施",
        en="Corrective actions",
        kind="register",
        key=("action_id",),
        description_en="Corrections and corrective actions with owners and deadlines.",
        description_zh="纠正及纠正措施,含责任人和期限。",
        columns=(
            Column("action_id", "措施编号", "Action ID"),
            Column("source", "来源", "Source", values=SOURCES),
            Column("finding_id", "发现编号", "Finding ID", nullable=True, references="findings"),
            Column("department", "责任部门", "Department", lookup="departments"),
            Column("description", "措施内容", "Action"),
            Column("owner", "责任人", "Owner"),
            Column("raised_on", "提出日期", "Raised on", "date"),
            Column("due_date", "完成期限", "Due date", "date"),
            Column("status", "状态", "Status", values=ACTION_STATUS),
            Column("closed_on", "关闭日期", "Closed on", "date", nullable=True),
            Column("effectiveness", "有效性验证", "Effectiveness check", nullable=True),
        ),
    )
)


def _stage_score(stage: str) -> Callable[[pd.DataFrame], pd.Series]:
    # The product of the factors of the record's own method (NaN when unscored).
    from qmsnb import scoring

    def compute(df: pd.DataFrame) -> pd.Series:
        if df.empty:
            return pd.Series(dtype="Float64", index=df.index)
        scores = [scoring.stage_score(row, stage) for row in df.to_dict("records")]
        return pd.Series(scores, index=df.index, dtype="Float64")

    return compute


def _factor_columns(stage: str, zh: str, en: str) -> tuple[Column, ...]:
    # One column per factor field; the method's own scale is checked by the
    # register's rules (the widest range of any method here).
    labels = {
        "likelihood": ("可能性/频度(L/O)", "likelihood / occurrence (L, O)"),
        "severity": ("严重度/后果(S/C)", "severity / consequence (S, C)"),
        "detection": ("探测度(D)", "detection (D)"),
        "exposure": ("暴露频率(E)", "exposure (E)"),
    }
    return tuple(
        Column(
            f"{stage}_{name}",
            f"{zh}{labels[name][0]}",
            f"{en} {labels[name][1]}",
            "float",
            nullable=True,
            required=False,
            minimum=0,
            maximum=100,
        )
        for name in ("likelihood", "severity", "detection", "exposure")
    )


RISKS = register(
    Dataset(
        id="risks",
        zh="风险和机遇",
        en="Risks and opportunities",
        kind="register",
        key=("risk_id",),
        description_en=(
            "Risks and opportunities (ISO 9001 6.1): where they come from, inherent and "
            "residual scores by the method named in `method` (params/risk.yaml), "
            "treatment, actions and their completion date, the indicator that shows "
            "whether the actions worked. Factor fields hold the method's factors: "
            "likelihood = L (matrix, LEC) or occurrence O (FMEA); severity = S (matrix, "
            "FMEA) or consequence C (LEC); detection = D (FMEA); exposure = E (LEC)."
        ),
        description_zh=(
            "风险和机遇登记(ISO 9001 6.1):来源、按“评价方法”打分的固有与剩余风险、"
            "应对方式、措施及完成日期、用于验证措施有效性的关联指标。"
        ),
        columns=(
            Column("risk_id", "编号", "Risk ID"),
            Column("type", "类型", "Type", values=RISK_TYPES),
            Column(
                "process_id",
                "过程编号",
                "Process ID",
                nullable=True,
                references="process_register",
            ),
            Column("department", "部门", "Department", lookup="departments"),
            Column("source", "来源", "Source", values=RISK_SOURCES),
            Column("origin", "识别依据", "Seeded from", nullable=True, required=False),
            Column("description", "描述", "Description"),
            Column("consequence", "后果", "Consequence", nullable=True),
            Column("owner", "负责人", "Owner"),
            Column(
                "method", "评价方法", "Scoring method", nullable=True, values=_scoring_methods()
            ),
            *_factor_columns("inherent", "固有", "Inherent"),
            *_factor_columns("residual", "剩余", "Residual"),
            Column(
                "residual_reason",
                "剩余高于固有的理由",
                "Why residual exceeds inherent",
                nullable=True,
                required=False,
            ),
            Column("treatment", "应对方式", "Treatment", nullable=True, values=RISK_TREATMENTS),
            Column("actions", "应对措施", "Actions", nullable=True),
            Column(
                "actions_done_on",
                "措施完成日期",
                "Actions completed on",
                "date",
                nullable=True,
                required=False,
            ),
            Column(
                "indicator",
                "关联指标",
                "Linked indicator",
                nullable=True,
                required=False,
                lookup="kpis",
            ),
            Column(
                "complaint_category",
                "关联投诉类别",
                "Linked complaint category",
                nullable=True,
                required=False,
                lookup="complaint_categories",
            ),
            Column("review_date", "评审日期", "Review date", "date"),
            Column("status", "状态", "Status", values=RISK_STATUS),
        ),
        derived=(
            Derived(
                "inherent_score", "固有风险值", "Inherent score", "float", _stage_score("inherent")
            ),
            Derived(
                "residual_score", "剩余风险值", "Residual score", "float", _stage_score("residual")
            ),
        ),
    )
)

# ---------------------------------------------------------------------------
# Root-cause analysis (complaint tracing): fishbone causes and five-whys chains
# ---------------------------------------------------------------------------
#: The six fishbone categories (人机料法环测), in the order they are drawn.
BONES = {
    "people": ("人", "People"),
    "machine": ("机", "Machine"),
    "material": ("料", "Material"),
    "method": ("法", "Method"),
    "environment": ("环", "Environment"),
    "measurement": ("测", "Measurement"),
}
#: Where a root-cause analysis started (the hotspot of the complaint data).
HOTSPOT_KINDS = {
    "vital_few": ("关键少数", "Vital few"),
    "surge": ("投诉突增", "Sudden rise"),
    "batch": ("批量投诉", "Batch complaint"),
    "escalation": ("投诉升级", "Escalation"),
    "repeat": ("重复投诉", "Repeat complainant"),
    "other": ("其他", "Other"),
}
#: Most whys a chain may hold (why 1 … why n; five is the custom, not the limit).
MAX_WHYS = 7


def _problem_columns() -> tuple[Column, ...]:
    """Columns that tie a root-cause record to its problem and hotspot."""
    return (
        Column("problem", "问题", "Problem"),
        Column("department", "责任部门", "Responsible department", lookup="departments"),
        Column(
            "complaint_category", "投诉类别", "Complaint category", lookup="complaint_categories"
        ),
        Column(
            "complaint_subcategory",
            "投诉子类",
            "Complaint subcategory",
            nullable=True,
            lookup="complaint_subcategories",
        ),
        Column("hotspot", "热点类型", "Hotspot", nullable=True, values=HOTSPOT_KINDS),
        Column("period", "热点月份", "Hotspot month", "period", nullable=True),
    )


FISHBONE = register(
    Dataset(
        id="fishbone_causes",
        zh="鱼骨图原因",
        en="Fishbone causes",
        kind="register",
        key=("cause_id",),
        description_en=(
            "Causes of a complaint problem on the fishbone (人机料法环测), each with the "
            "number of tickets or observations that support it."
        ),
        description_zh="投诉问题的鱼骨图(人机料法环测)原因,每条原因附支持它的工单数或观察数。",
        columns=(
            Column("cause_id", "原因编号", "Cause ID"),
            *_problem_columns(),
            Column("bone", "原因类别", "Category (6M)", values=BONES),
            Column("cause", "原因", "Cause"),
            Column("evidence_count", "证据数", "Evidence count", "int", minimum=0),
            Column("evidence", "证据说明", "Evidence", nullable=True),
            Column("recorded_by", "记录人", "Recorded by"),
            Column("recorded_on", "记录日期", "Recorded on", "date"),
        ),
    )
)

FIVE_WHYS = register(
    Dataset(
        id="five_whys",
        zh="五个为什么",
        en="Five whys",
        kind="register",
        key=("chain_id",),
        description_en=(
            "Five-whys chains (problem → why 1 … why n → root cause → action); the "
            'action\'s completion date starts the "did the fix hold" check.'
        ),
        description_zh="Why递进追问链(问题→为什么1…n→根本原因→措施);措施完成日期用于验证整改是否有效。",
        columns=(
            Column("chain_id", "分析编号", "Chain ID"),
            *_problem_columns(),
            *(
                Column(f"why_{i}", f"为什么{i}", f"Why {i}", nullable=i > 1, required=i <= 5)
                for i in range(1, MAX_WHYS + 1)
            ),
            Column("root_cause", "根本原因", "Root cause", nullable=True),
            Column("bone", "根因类别", "Root-cause category (6M)", nullable=True, values=BONES),
            Column("action", "整改措施", "Action", nullable=True),
            Column("action_owner", "措施责任人", "Action owner", nullable=True),
            Column("action_due", "措施期限", "Action due", "date", nullable=True),
            Column("action_done_on", "措施完成日期", "Action completed on", "date", nullable=True),
            Column("analyst", "分析人", "Analyst"),
            Column("recorded_on", "分析日期", "Analysed on", "date"),
        ),
    )
)


# ---------------------------------------------------------------------------
# Management review (ISO 9001 9.3)
# ---------------------------------------------------------------------------
DECISION_KINDS = {
    "improvement": ("改进的机会", "Improvement"),
    "qms_change": ("体系变更", "Change to the QMS"),
    "resources": ("资源需求", "Resource need"),
}
DECISION_STATUS = {
    "open": ("未开始", "Open"),
    "in_progress": ("进行中", "In progress"),
    "done": ("已完成", "Done"),
    "cancelled": ("已取消", "Cancelled"),
}

REVIEW_STATEMENTS = register(
    Dataset(
        id="review_statements",
        zh="管理评审输入说明",
        en="Management review statements",
        kind="register",
        key=("statement_id",),
        description_en=(
            "Statements recorded for an input of the management review (ISO 9001 9.3.2) that "
            "has no data in a period, e.g. “no change in external issues this month”. "
            "`input` is the input's id (a_previous_actions, b_issues, c1_customer, …, gate)."
        ),
        description_zh="管理评审某项输入当月无数据时记录的说明,例如“本月外部环境无变化”。",
        columns=(
            Column("statement_id", "说明编号", "Statement ID"),
            Column("period", "月份", "Month", "period"),
            Column("input", "评审输入", "Review input"),
            Column("statement", "说明", "Statement"),
            Column("recorded_by", "记录人", "Recorded by"),
            Column("recorded_on", "记录日期", "Recorded on", "date"),
        ),
    )
)

REVIEW_DECISIONS = register(
    Dataset(
        id="review_decisions",
        zh="管理评审决定",
        en="Management review decisions",
        kind="register",
        key=("decision_id",),
        description_en=(
            "Outputs of the management review (ISO 9001 9.3.3): decisions and actions on "
            "improvement, changes to the QMS and resource needs, with owner and deadline. "
            "Open ones are input a) of the following reviews."
        ),
        description_zh="管理评审输出(ISO 9001 9.3.3):改进、体系变更和资源需求的决定及措施。",
        columns=(
            Column("decision_id", "决定编号", "Decision ID"),
            Column("review_period", "评审月份", "Review month", "period"),
            Column("kind", "类别", "Kind", values=DECISION_KINDS),
            Column("input", "相关输入", "Related input", nullable=True),
            Column("decision", "决定及措施", "Decision and action"),
            Column("owner", "负责人", "Owner"),
            Column("department", "责任部门", "Department", nullable=True, lookup="departments"),
            Column("due", "完成期限", "Due", "date"),
            Column("status", "状态", "Status", values=DECISION_STATUS),
            Column("closed_on", "完成日期", "Closed on", "date", nullable=True),
            Column("result", "完成情况", "Result", nullable=True),
        ),
    )
)


def exports() -> list[Dataset]:
    """The datasets that arrive once per period."""
    return [d for d in DATASETS.values() if d.kind == "export"]


def registers() -> list[Dataset]:
    """The registers the quality office keeps."""
    return [d for d in DATASETS.values() if d.kind == "register"]
