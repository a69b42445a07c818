"""The demo organisation: an example contact centre and twelve months of its data.

Built on the real reference data shipped in ``qmsnb/resources`` (the 22-process
register and the targets of ``kpi_targets.csv``) and on ``params/``. Everything is
drawn from one seeded random generator, so the same seed gives the same files.

The data carry the stories a quality manager should see in the reports:

* Hotline Operations' VIP answer rate in billing periods slips below its 80 %
  target from July on (early warning in August, special support from September);
* network complaints, broadband outages above all, surge in September and
  October, with a batch of tickets from one residential compound;
* missed promised callbacks were a hot topic until a callback reminder went
  live in April 2026 (the fix held); repeat complainants whose outage is
  followed by a late repair visit, or an over-charge by a value-added charge;
* corrective actions from audits running overdue, some closed without an
  effectiveness check;
* the supplier first-pass acceptance dips in August and September;
* the Customer Service Division misses its first-call-resolution target for the
  first time in the last month;
* install/repair callbacks reach more customers from June 2026, after an evening
  second attempt was introduced (the risk register's opportunity: effective),
  while the VIP scheduling actions of June did not stop the VIP slide.

One month is flawed on purpose: the month before the last has a callbacks
export with a page of tasks exported twice and a 合计 totals row
(:func:`flawed_export`), so a new user sees the data-quality gate reject it and
stop the report that needs it.

The exports arrive the way real ones do: call records as a UTF-8 CSV with English
headers, complaint tickets as a GB18030 CSV with Chinese headers (as Chinese
Excel writes it), callbacks as UTF-8 with BOM, manual indicators as XLSX.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qmsnb import io
from qmsnb.config import Params
from qmsnb.contract import MAX_WHYS
from qmsnb.periods import Period

#: Days of the month that count as the billing period (账期).
BILLING_DAYS = 7
#: Departments that take calls, with their share of the traffic.
CALL_DEPARTMENTS = {"hotline_ops": 0.6, "cs_division": 0.4}
QUEUE_SHARE = {"normal": 0.70, "vip": 0.15, "night": 0.15}
#: Answer probability per queue and billing period (the healthy baseline).
ANSWER_P = {
    ("normal", True): 0.77,
    ("normal", False): 0.915,
    ("vip", True): 0.86,
    ("vip", False): 0.962,
    ("night", True): 0.76,
    ("night", False): 0.905,
}
#: Hotline Operations' VIP billing-period answer rate, month by month, once it slips.
VIP_SLIP = {7: 0.775, 8: 0.765, 9: 0.755, 10: 0.75, 11: 0.76, 12: 0.77}
COMPOUNDS = ["金水花园", "绿城小区", "建业桂园", "正商城", "锦艺城", "永威翡翠城"]


@dataclass(frozen=True)
class DemoSpec:
    """What to generate."""

    end: str = "2026-10"
    months: int = 12
    calls_per_month: int = 20_000
    seed: int = 20261031
    calls_format: str = "csv"
    #: Give the month before ``end`` a flawed callbacks export (see :func:`flawed_export`).
    flawed: bool = True


def _month_days(period: Period) -> int:
    return (pd.Timestamp(period.end) - pd.Timestamp(period.start)).days


def _timestamps(
    rng: np.random.Generator, period: Period, days: np.ndarray, night: np.ndarray
) -> pd.Series:
    hours = np.where(
        night, (22 + rng.integers(0, 10, len(days))) % 24, rng.integers(8, 22, len(days))
    )
    # a night call before midnight belongs to that day; after midnight to the next
    # (capped at month end)
    seconds = hours * 3600 + rng.integers(0, 3600, len(days))
    base = pd.Timestamp(period.start).value // 10**9
    stamps = base + (days - 1) * 86400 + seconds
    return pd.to_datetime(stamps, unit="s")


def _text_column(labels: np.ndarray, codes: np.ndarray) -> pd.Series:
    """A text column from a small set of labels and one code per row (no Python loop)."""
    import pyarrow as pa

    array = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(labels))
    return pd.Series(pd.array(array.dictionary_decode(), dtype="str"))


def _numbered(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """``prefix`` + zero-padded ``numbers`` for every row, vectorised."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width, "0")
    return pd.Series(pd.array(pc.binary_join_element_wise(prefix, digits, ""), dtype="str"))


def calls(rng: np.random.Generator, period: Period, count: int) -> pd.DataFrame:
    """Call records of one month.

    Built column by column in numpy and sorted by time before any text is made,
    so 12 million calls take seconds (the values are those of a row-by-row build).
    """
    days_in_month = _month_days(period)
    weights = np.where(np.arange(1, days_in_month + 1) <= BILLING_DAYS, 1.6, 1.0)
    days = rng.choice(np.arange(1, days_in_month + 1), size=count, p=weights / weights.sum())
    dept = rng.choice(list(CALL_DEPARTMENTS), size=count, p=list(CALL_DEPARTMENTS.values()))
    queue = rng.choice(list(QUEUE_SHARE), size=count, p=list(QUEUE_SHARE.values()))
    billing = days <= BILLING_DAYS
    p_answer = np.zeros(count)
    month_noise = rng.normal(0, 0.006, size=len(ANSWER_P))
    for ((q, b), p), noise in zip(ANSWER_P.items(), month_noise, strict=True):
        p_answer[(queue == q) & (billing == b)] = p + noise
    if period.year == 2026 and period.month in VIP_SLIP:
        p_answer[(dept == "hotline_ops") & (queue == "vip") & billing] = VIP_SLIP[period.month]
    answered = rng.random(count) < p_answer
    wait = np.where(answered, rng.exponential(22, count), rng.exponential(65, count)).round(1)
    handle = np.where(answered, rng.lognormal(5.3, 0.5, count), 0).round(0)
    p_fcr = np.where(dept == "cs_division", 0.878, 0.872)
    if period == Period(2026, 10):
        p_fcr = np.where(dept == "cs_division", 0.832, p_fcr)
    fcr = np.where(answered, rng.random(count) < p_fcr, False)
    rated = answered & (rng.random(count) < 0.3)
    scores = rng.choice([1, 2, 3, 4, 5], size=count, p=[0.01, 0.01, 0.03, 0.15, 0.80])
    stamps = _timestamps(rng, period, days, queue == "night")
    agents = rng.integers(1, 400, count)
    # rows in time order (stable, as a sort of the finished table would give)
    order = np.argsort(stamps.asi8, kind="stable")
    answered, fcr, rated, scores = answered[order], fcr[order], rated[order], scores[order]
    yes_no = np.array(["N", "Y"])
    ivr = pd.array(scores, dtype="Int64")
    ivr[~rated] = pd.NA
    fcr_text = _text_column(
        np.array(["N", "Y", None], dtype=object), np.where(answered, fcr.astype(int), 2)
    )
    agent_labels = np.array(["", *(f"A{n:04d}" for n in range(1, 400))])
    frame = pd.DataFrame(
        {
            "call_id": _numbered(f"C{period.year}{period.month:02d}-", order + 1, 8),
            "start_time": stamps[order],
            "department": _text_column(
                np.array(["客户服务事业部", "热线运营部"]),
                (dept[order] == "hotline_ops").astype(int),
            ),
            "queue": _text_column(
                np.array(list(QUEUE_SHARE)), _codes(queue[order], list(QUEUE_SHARE))
            ),
            "billing_period": _text_column(yes_no, billing[order].astype(int)),
            "answered": _text_column(yes_no, answered.astype(int)),
            "wait_seconds": wait[order],
            "handle_seconds": handle[order],
            "first_call_resolved": fcr_text,
            "ivr_score": ivr,
            "agent_id": _text_column(agent_labels, np.where(answered, agents[order], 0)),
        }
    )
    return frame


def _codes(values: np.ndarray, labels: list[str]) -> np.ndarray:
    """Position of each value in ``labels``."""
    codes = np.zeros(len(values), dtype=np.int32)
    for i, label in enumerate(labels):
        codes[values == label] = i
    return codes


_CATEGORY_SHARE = {
    "billing": 0.30,
    "network": 0.22,
    "service_attitude": 0.10,
    "handling": 0.16,
    "install_repair": 0.14,
    "marketing": 0.08,
}
_CATEGORY_DEPT = {
    "billing": ["complaints", "cs_division"],
    "network": ["complaints"],
    "service_attitude": ["hotline_ops", "cs_division"],
    "handling": ["hotline_ops", "cs_division"],
    "install_repair": ["service_supervision", "general_affairs"],
    "marketing": ["cs_division"],
}
_TEXTS = {
    "over_charge": "客户反映本月话费比平时多扣{n}元,要求核实并退费。",
    "package_change": "客户称办理套餐变更后仍按原套餐收费。",
    "value_added": "客户称未订购的增值业务被扣费{n}元。",
    "no_signal": "客户反映家中手机无信号已{n}天。",
    "broadband_down": "客户反映{place}宽带断网{n}天,报修后仍未恢复。",
    "slow_data": "客户反映晚间上网速度很慢,影响使用。",
    "rude": "客户反映客服代表态度生硬,不耐烦。",
    "no_callback": "客服承诺{n}小时内回电,但一直未回电。",
    "wrong_info": "客服解释的优惠政策与实际不符。",
    "not_done": "客户来电办理的业务未生效。",
    "late_visit": "装维人员超过约定时间{n}小时仍未上门。",
    "repeat_fault": "同一故障一个月内报修{n}次。",
    "misleading": "客户称营销宣传与实际资费不一致。",
    "harassment": "客户反映频繁接到营销电话,要求停止。",
}


#: Promised callbacks missed (未按约回电) were a hot topic until a callback
#: reminder went live in the ticket system in mid-April 2026: the fix that held.
CALLBACK_FIX = Period(2026, 4)
#: Complaints that go together for one customer (a shared cause): an outage, then
#: a late or repeated repair visit; an over-charge, then a value-added charge.
PAIRED = {
    ("broadband_down", ("late_visit", "repeat_fault")): 12,
    ("over_charge", ("value_added",)): 15,
}


def complaint_stories(
    period: Period, subcategory: np.ndarray, customers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lay the root-cause stories over one month's drawn tickets.

    With a generator of their own (seeded by the month), so the draws of every
    other story stay as they were: before :data:`CALLBACK_FIX`, most "rude agent"
    tickets were really missed callbacks, after it half the missed callbacks are
    gone (the customers complain of the agent instead); the pairs of :data:`PAIRED` come from
    the same customers (repeat complainants, association rules).
    """
    rng = np.random.default_rng(period.year * 100 + period.month)
    subcategory, customers = subcategory.copy(), customers.copy()
    if period < CALLBACK_FIX:
        rude = np.flatnonzero(subcategory == "rude")
        subcategory[rude[rng.random(len(rude)) < 0.8]] = "no_callback"
    elif period > CALLBACK_FIX:
        missed = np.flatnonzero(subcategory == "no_callback")
        subcategory[missed[rng.random(len(missed)) < 0.5]] = "rude"
    for (first, seconds), count in PAIRED.items():
        firsts = np.flatnonzero(subcategory == first)
        later = np.flatnonzero(np.isin(subcategory, seconds))
        n = min(count, len(firsts), len(later))
        if n:
            customers[rng.choice(later, n, replace=False)] = customers[
                rng.choice(firsts, n, replace=False)
            ]
    return subcategory, customers


def complaints(
    rng: np.random.Generator, period: Period, params: Params, count: int
) -> pd.DataFrame:
    """Complaint tickets of one month (with the network surge and a batch)."""
    share = dict(_CATEGORY_SHARE)
    surge = {Period(2026, 9): 1.7, Period(2026, 10): 2.4}.get(period, 1.0)
    share["network"] *= surge
    total = int(count * (1 + share["network"] - _CATEGORY_SHARE["network"]))
    probs = np.array(list(share.values()))
    category = rng.choice(list(share), size=total, p=probs / probs.sum())
    subs = {c.id: list(c.subcategories) for c in params.organisation.complaint_categories}
    subcategory = np.array([subs[c][rng.integers(0, len(subs[c]))] for c in category], dtype=object)
    if surge > 1:  # the surge is broadband outages
        net = category == "network"
        subcategory[net & (rng.random(total) < 0.7)] = "broadband_down"
    days = rng.integers(1, _month_days(period) + 1, total)
    created = (
        pd.Timestamp(period.start)
        + pd.to_timedelta(days - 1, unit="D")
        + pd.to_timedelta(rng.integers(8 * 3600, 21 * 3600, total), unit="s")
    )
    places = np.array([COMPOUNDS[i] for i in rng.integers(0, len(COMPOUNDS), total)], dtype=object)
    if period == Period(2026, 10):  # batch complaint: one compound, two days
        batch = np.flatnonzero(category == "network")[:45]
        subcategory[batch] = "broadband_down"
        places[batch] = "金水花园"
        created = pd.Series(created)
        created.iloc[batch] = pd.Timestamp(2026, 10, 14, 9) + pd.to_timedelta(
            rng.integers(0, 36 * 3600, len(batch)), unit="s"
        )
        created = pd.DatetimeIndex(created)
    dept = np.array([_CATEGORY_DEPT[c][rng.integers(0, len(_CATEGORY_DEPT[c]))] for c in category])
    channel = rng.choice(
        ["hotline", "online", "app", "letter", "regulator"],
        size=total,
        p=[0.7, 0.1, 0.12, 0.02, 0.06],
    )
    limit_hours = np.where(channel == "regulator", 24, 48)
    due = created + pd.to_timedelta(limit_hours, unit="h")
    on_time = rng.random(total) < 0.972
    hours = np.where(
        on_time,
        rng.uniform(1, 1, total) * rng.uniform(0.5, 0.95, total) * limit_hours,
        limit_hours * rng.uniform(1.05, 2.5, total),
    )
    closed = created + pd.to_timedelta(hours, unit="h")
    # the export is taken on the 3rd of the next month: later closures are still open
    export_time = pd.Timestamp(period.end) + pd.Timedelta(days=2)
    still_open = closed > export_time
    closed_series = pd.Series(closed).where(~still_open, pd.NaT)
    rated = (rng.random(total) < 0.6) & ~still_open
    sat_p = np.where(category == "service_attitude", 0.55, 0.86)
    satisfied = rng.random(total) < sat_p
    score = np.where(
        satisfied, rng.choice([4, 5], total, p=[0.4, 0.6]), rng.choice([1, 2, 3], total)
    )
    satisfaction = pd.array(score, dtype="Int64")
    satisfaction[~rated] = pd.NA
    pool = max(50, total // 2)
    customers = np.array(
        [f"1{rng.integers(30, 90)}****{n:04d}" for n in rng.integers(0, pool, total)]
    )
    subcategory, customers = complaint_stories(period, subcategory, customers)
    texts = [
        _TEXTS[s].format(n=int(rng.integers(2, 9)), place=p)
        for s, p in zip(subcategory, places, strict=True)
    ]
    names = {c.id: c.name.zh for c in params.organisation.complaint_categories}
    sub_names = {
        k: v.zh
        for c in params.organisation.complaint_categories
        for k, v in c.subcategories.items()
    }
    frame = pd.DataFrame(
        {
            "ticket_id": [f"T{period.year}{period.month:02d}{i:06d}" for i in range(1, total + 1)],
            "created_at": pd.Series(created).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "department": [params.departments[d].name.zh for d in dept],
            "category": [names[c] for c in category],
            "subcategory": [sub_names[s] for s in subcategory],
            "channel": [
                {
                    "hotline": "热线",
                    "online": "网上营业厅",
                    "app": "手机营业厅",
                    "letter": "信函",
                    "regulator": "工信部申诉",
                }[c]
                for c in channel
            ],
            "customer_id": customers,
            "text": texts,
            "due_at": pd.Series(due).dt.strftime("%Y-%m-%d %H:%M:%S"),
            "closed_at": closed_series.dt.strftime("%Y-%m-%d %H:%M:%S").fillna(""),
            "direct_resolved": np.where(rng.random(total) < 0.14, "是", "否"),
            "satisfaction": satisfaction,
            "escalated": np.where(
                (channel == "regulator") | (rng.random(total) < 0.02), "是", "否"
            ),
        }
    )
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


def callbacks(rng: np.random.Generator, period: Period, count: int) -> pd.DataFrame:
    """Callback tasks of one month (Service Supervision Centre)."""
    kind = rng.choice(["service", "install_repair"], size=count, p=[0.7, 0.3])
    completed = rng.random(count) < 0.935
    # install/repair callbacks reach more customers once the evening second
    # attempt runs (an opportunity pursued in May 2026, see _CONTEXT_RISKS)
    install_p = 0.64 if period >= Period(2026, 6) else 0.56
    reach_p = np.where(kind == "install_repair", install_p, 0.82)
    reached = completed & (rng.random(count) < reach_p)
    days = rng.integers(1, _month_days(period) + 1, count)
    created = (
        pd.Timestamp(period.start)
        + pd.to_timedelta(days - 1, unit="D")
        + pd.to_timedelta(rng.integers(9 * 3600, 18 * 3600, count), unit="s")
    )
    done_at = pd.Series(created + pd.to_timedelta(rng.integers(1, 40, count), unit="h"))
    return pd.DataFrame(
        {
            "task_id": [f"R{period.year}{period.month:02d}{i:06d}" for i in range(1, count + 1)],
            "created_at": pd.Series(created).dt.strftime("%Y-%m-%d %H:%M"),
            "department": "service_supervision",
            "task_type": kind,
            "completed": np.where(completed, "1", "0"),
            "reached": np.where(reached, "1", "0"),
            "completed_at": done_at.where(completed, pd.NaT)
            .dt.strftime("%Y-%m-%d %H:%M")
            .fillna(""),
        }
    )


_HEADCOUNT = {
    "hotline_ops": 260,
    "cs_division": 180,
    "complaints": 45,
    "service_supervision": 60,
    "quality": 18,
    "general_affairs": 25,
    "admin": 20,
    "outsourcing": 12,
}


def monthly_indicators(rng: np.random.Generator, period: Period) -> pd.DataFrame:
    """The hand-kept indicators of one month."""
    rows = []
    for dept, heads in _HEADCOUNT.items():
        head = int(heads * rng.uniform(0.97, 1.03))
        rows.append((dept, "headcount", None, None, head))
        turnover_p = 0.08 if dept in ("hotline_ops", "cs_division") else 0.03
        if dept == "hotline_ops" and period in (Period(2026, 8), Period(2026, 9), Period(2026, 10)):
            turnover_p = 0.118
        leavers = int(rng.binomial(head, turnover_p))
        rows.append((dept, "staff_turnover", leavers, head, round(100 * leavers / head, 2)))
        if dept in ("hotline_ops", "cs_division", "complaints", "service_supervision"):
            trained = int(rng.integers(12, 30))
            passed = int(rng.binomial(trained, 0.86))
            rows.append(
                (dept, "training_pass_rate", passed, trained, round(100 * passed / trained, 2))
            )
        if dept in ("hotline_ops", "cs_division"):
            contacts = int(rng.integers(9000, 12000))
            uses = int(rng.binomial(contacts, 0.118))
            rows.append(
                (dept, "scenario_library_usage", uses, contacts, round(100 * uses / contacts, 2))
            )
    lots = int(rng.integers(35, 50))
    accept_p = {Period(2026, 8): 0.87, Period(2026, 9): 0.89}.get(period, 0.975)
    accepted = int(rng.binomial(lots, accept_p))
    rows.append(("admin", "supplier_first_pass", accepted, lots, round(100 * accepted / lots, 2)))
    frame = pd.DataFrame(
        rows, columns=["department", "indicator", "numerator", "denominator", "value"]
    )
    frame.insert(0, "period", str(period))
    frame["note"] = ""
    return frame


# ---------------------------------------------------------------------------
# Registers
# ---------------------------------------------------------------------------
def process_register() -> pd.DataFrame:
    """The reference register, as shipped, with one gap filled.

    The source row of M5 (internal audit) is cut short and names no ISO clause;
    the demo gives it 9.2 (internal audit), so audit findings on M5 can cite a
    clause the register names (the records store refuses any other).
    """
    from importlib import resources

    path = resources.files("qmsnb") / "resources" / "process_register.csv"
    with resources.as_file(path) as real:
        frame = pd.read_csv(real, dtype=str, keep_default_na=False)
    gap = (frame["process_name"] == "内部审核") & (frame["iso_clauses"].str.strip() == "")
    frame.loc[gap, "iso_clauses"] = "9.2;9.2.1;9.2.2"
    return frame


def objectives(year: int) -> pd.DataFrame:
    """Quality objectives for ``year`` with action plans (ISO 9001 6.2.2)."""
    rows = [
        (
            "answer_rate_vip_billing",
            "hotline_ops",
            "quality",
            80,
            (80, 80, 80, 80),
            "账期高峰增设VIP专席,实行弹性排班",
            "VIP专席8人;排班系统升级",
            "热线运营部 王磊",
            f"{year}-09-30",
            "账期VIP接通率月度≥80%",
            60,
            "delayed",
        ),
        (
            "answer_rate_normal_billing",
            "hotline_ops",
            "",
            70,
            (70, 70, 70, 70),
            "账期前一周发布话务预测,提前储备人力",
            "话务预测模型;兼职坐席20人",
            "热线运营部 王磊",
            f"{year}-12-31",
            "账期普通用户接通率月度≥70%",
            80,
            "in_progress",
        ),
        (
            "first_call_resolution",
            "cs_division",
            "quality",
            85,
            (84, 85, 85, 86),
            "高频问题知识库更新,一线授权扩大",
            "知识库维护2人;授权清单",
            "客户服务事业部 李娜",
            f"{year}-12-31",
            "首呼解决率季度目标达成",
            70,
            "in_progress",
        ),
        (
            "ivr_satisfaction",
            "hotline_ops",
            "service_supervision",
            93,
            (93, 93, 93, 93),
            "不满意录音100%复听并辅导",
            "质检员4人",
            "品质部 赵敏",
            f"{year}-12-31",
            "IVR满意度月度≥93%",
            75,
            "in_progress",
        ),
        (
            "complaint_on_time",
            "complaints",
            "",
            93,
            (93, 93, 93, 93),
            "工单超时前4小时系统预警,班长督办",
            "工单系统预警功能",
            "投诉中心 陈晨",
            f"{year}-06-30",
            "限时办结率月度≥93%",
            100,
            "done",
        ),
        (
            "complaint_satisfaction",
            "complaints",
            "hotline_ops;cs_division",
            80,
            (80, 80, 80, 80),
            "投诉回复话术优化,回访不满意客户",
            "培训课时16小时",
            "投诉中心 陈晨",
            f"{year}-10-31",
            "投诉满意度月度≥80%",
            90,
            "in_progress",
        ),
        (
            "callback_completion",
            "service_supervision",
            "",
            90,
            (90, 90, 90, 90),
            "回访任务分时段派发,未接通次日重拨",
            "外呼系统;回访专员10人",
            "服监中心 刘洋",
            f"{year}-12-31",
            "回访任务完成率月度≥90%",
            85,
            "in_progress",
        ),
        (
            "training_pass_rate",
            "admin",
            "hotline_ops;cs_division",
            74.56,
            (72, 74, 75, 76),
            "新员工培训增加实操考核与带教",
            "讲师3人;培训室",
            "行政部 孙丽",
            f"{year}-12-31",
            "季度培训合格率达到分解目标",
            75,
            "in_progress",
        ),
        (
            "staff_turnover",
            "admin",
            "hotline_ops",
            10.96,
            (10.96, 10.96, 10.96, 10.96),
            "离职面谈分析,优化排班与激励",
            "HR专员1人;激励预算",
            "行政部 孙丽",
            f"{year}-08-31",
            "月度人员流失率≤10.96%",
            40,
            "delayed",
        ),
        (
            "supplier_first_pass",
            "admin",
            "general_affairs",
            95,
            (95, 95, 95, 95),
            "对交验不合格供方开展二方审核",
            "采购员2人",
            "行政部 周强",
            f"{year}-11-30",
            "供方一次交验合格率月度≥95%",
            50,
            "in_progress",
        ),
        (
            "scenario_library_usage",
            "cs_division",
            "hotline_ops",
            10,
            (8, 9, 10, 12),
            "场景预案库嵌入工作台,一键调用",
            "系统开发1人月",
            "客户服务事业部 李娜",
            f"{year}-12-31",
            "预案库使用率季度达到分解目标",
            65,
            "in_progress",
        ),
    ]
    records = []
    for i, (
        kpi,
        dept,
        supp,
        annual,
        quarters,
        action,
        res,
        owner,
        due,
        evaluation,
        prog,
        status,
    ) in enumerate(rows, 1):
        records.append(
            {
                "objective_id": f"QO-{year}-{i:02d}",
                "year": year,
                "kpi": kpi,
                "department": dept,
                "supporting": supp,
                "measured_on": "organisation" if dept in ("admin", "complaints") else dept,
                "annual_target": annual,
                "q1_target": quarters[0],
                "q2_target": quarters[1],
                "q3_target": quarters[2],
                "q4_target": quarters[3],
                "action": action,
                "resources": res,
                "owner": owner,
                "due": due,
                "evaluation": evaluation,
                "progress": prog,
                "status": status,
            }
        )
    return pd.DataFrame(records)


_AUDITORS = [
    ("赵敏", "quality"),
    ("钱伟", "quality"),
    ("孙丽", "admin"),
    ("周强", "admin"),
    ("吴刚", "general_affairs"),
    ("郑芳", "outsourcing"),
]


def _pick_auditor(params: Params, proc: pd.Series, dept: str, turn: int) -> tuple[str, str]:
    """In turn, an auditor from another department who is competent for the process
    (the auditors of ``params/audit.yaml``; the built-in six without it)."""
    listed = [
        (a.name, a.department)
        for a in params.audit.auditors
        if a.competent_for(proc["process_id"], proc["category"])
    ] or _AUDITORS
    ring = listed[turn % len(listed) :] + listed
    return next(a for a in ring if a[1] != dept)


def audit_registers(
    rng: np.random.Generator, end: Period, params: Params
) -> dict[str, pd.DataFrame]:
    """Audit programme, findings and corrective actions of the past year."""
    register = process_register()
    aliases = params.department_aliases
    audits, findings, actions = [], [], []
    months = end.back(12)
    grades = ["major", "minor", "minor", "observation", "ofi"]
    n_audit = 0
    for index, proc in register.iterrows():
        owner = proc["owner_department"].split("/")[0]
        dept = aliases.get(owner) or aliases.get(owner.split("、")[-1]) or "quality"
        clauses = [c for c in proc["iso_clauses"].split(";") if c] or ["9.2"]
        times = {"A": 3, "B": 2, "C": 1, "D": 1}[proc["importance"]]
        for k in range(times):
            n_audit += 1
            month = months[(index * 5 + k * 4) % 12]
            auditor, auditor_dept = _pick_auditor(params, proc, dept, n_audit)
            done = month <= end.shift(-1) or (month == end and index % 2 == 0)
            audit_id = f"IA-{month.year}-{n_audit:03d}"
            audits.append(
                {
                    "audit_id": audit_id,
                    "process_id": proc["process_id"],
                    "department": dept,
                    "planned_month": str(month),
                    "auditor": auditor,
                    "auditor_department": auditor_dept,
                    "status": "done" if done else "planned",
                    "audit_date": f"{month}-{10 + index % 15:02d}" if done else "",
                }
            )
            if not done:
                continue
            for _ in range(int(rng.integers(0, 3))):
                grade = grades[int(rng.integers(0, len(grades)))]
                fid = f"F-{len(findings) + 1:03d}"
                found_on = pd.Timestamp(f"{month}-{10 + index % 15:02d}")
                clause = clauses[int(rng.integers(0, len(clauses)))]
                findings.append(
                    {
                        "finding_id": fid,
                        "audit_id": audit_id,
                        "grade": grade,
                        "clause": clause,
                        "process_id": proc["process_id"],
                        "department": dept,
                        "statement": (
                            f"{proc['process_name']}:抽查记录发现执行与"
                            f"{proc['qms_documents'] or '程序文件'}要求不一致。"
                        ),
                        "evidence": (
                            f"抽查{int(rng.integers(5, 30))}份记录,"
                            f"{int(rng.integers(1, 5))}份不符合。"
                        ),
                        "auditor": auditor,
                        "found_on": found_on.date().isoformat(),
                    }
                )
                if grade in ("major", "minor"):
                    due = found_on + pd.Timedelta(days=int(rng.integers(20, 60)))
                    overdue_story = (
                        due < pd.Timestamp(end.end) - pd.Timedelta(days=20) and rng.random() < 0.35
                    )
                    closed = not overdue_story and due < pd.Timestamp(end.end)
                    actions.append(
                        {
                            "action_id": f"CA-{len(actions) + 1:03d}",
                            "source": "audit",
                            "finding_id": fid,
                            "department": dept,
                            "description": "分析原因,修订作业指导书并对相关人员培训。",
                            "owner": params.departments[dept].name.zh + "负责人",
                            "raised_on": found_on.date().isoformat(),
                            "due_date": due.date().isoformat(),
                            "status": "closed"
                            if closed
                            else ("in_progress" if rng.random() < 0.5 else "open"),
                            "closed_on": (due - pd.Timedelta(days=3)).date().isoformat()
                            if closed
                            else "",
                            "effectiveness": (
                                "复查3个月记录,未再发生" if rng.random() < 0.7 else ""
                            )
                            if closed
                            else "",
                        }
                    )
    return {
        "audit_programme": pd.DataFrame(audits),
        "findings": pd.DataFrame(findings),
        "actions": pd.DataFrame(actions),
    }


#: Risks and opportunities beyond the failure modes: external issues (policy,
#: economy, society, technology) and internal strengths and weaknesses (ISO 9001
#: 4.1 → 6.1). (type, source, department, process, description, consequence,
#: likelihood, severity, residual (L, S) or None, treatment, actions, done (month,
#: day) or None, indicator, complaint category, status)
_CONTEXT_RISKS = [
    (
        "risk",
        "policy",
        "complaints",
        "M1",
        "工信部申诉考核趋严,申诉率纳入考核",
        "申诉率超标被通报,影响续约",
        3,
        5,
        (3, 4),
        "reduce",
        "建立申诉预警,升级工单24小时内回访",
        None,
        None,
        None,
        "treating",
    ),
    (
        "risk",
        "economy",
        "outsourcing",
        "M1",
        "客户方压缩外包预算,单价下调",
        "利润下降,人员投入受限",
        3,
        4,
        None,
        None,
        None,
        None,
        None,
        None,
        "open",
    ),
    (
        "risk",
        "society",
        "hotline_ops",
        "C3",
        "老年客户比例上升,通话时长增加",
        "接通率承压",
        4,
        3,
        (3, 3),
        "reduce",
        "开通老年人专席与一键转人工",
        None,
        None,
        None,
        "treating",
    ),
    (
        "risk",
        "technology",
        "complaints",
        "C4",
        "宽带故障集中爆发导致投诉激增",
        "批量投诉、升级投诉增加",
        4,
        4,
        (3, 4),
        "reduce",
        "与网络部建立故障预警通报机制,批量故障提前外呼告知",
        (9, 25),
        None,
        "network",
        "treating",
    ),
    (
        "risk",
        "weakness",
        "hotline_ops",
        "C3",
        "服务态度类投诉居高不下",
        "客户满意度下降",
        3,
        3,
        (2, 3),
        "reduce",
        "服务礼仪专项培训,不满意录音复听",
        (2, 10),
        None,
        "service_attitude",
        "monitoring",
    ),
    (
        "risk",
        "weakness",
        "hotline_ops",
        "S1",
        "一线坐席流失率高",
        "新人占比高,首呼解决率下降",
        4,
        3,
        (3, 3),
        "reduce",
        "离职面谈分析,优化排班与激励",
        None,
        "staff_turnover",
        None,
        "treating",
    ),
    (
        "opportunity",
        "technology",
        "service_supervision",
        "C4",
        "智能外呼用于装移修回访,晚间时段二次回访",
        "提高装移修回访成功率",
        4,
        3,
        None,
        "pursue",
        "上线智能外呼,未接通任务晚间二次回访",
        (5, 15),
        "install_repair_callback_success",
        None,
        "monitoring",
    ),
    (
        "opportunity",
        "strength",
        "cs_division",
        "C2",
        "场景预案库成熟,可向其他项目推广",
        "提升首呼解决率,拓展新业务",
        3,
        3,
        None,
        "enhance",
        "预案库嵌入工作台,一键调用",
        None,
        None,
        None,
        "treating",
    ),
    (
        "opportunity",
        "policy",
        "quality",
        "M1",
        "行业推行服务质量星级评定",
        "取得星级可增强投标竞争力",
        2,
        4,
        None,
        "pursue",
        "对照评定标准开展差距分析",
        None,
        None,
        None,
        "open",
    ),
    (
        "opportunity",
        "technology",
        "complaints",
        "C4",
        "工单系统超时预警功能",
        "限时办结率提升",
        4,
        2,
        None,
        "pursue",
        "上线超时前4小时预警,班长督办",
        (4, 20),
        None,
        None,
        "closed",
    ),
]
#: Stories in the seeded failure-mode risks: origin → (L, S, residual, treatment,
#: actions, done (month, day), indicator, status).
_SEED_STORIES = {
    "C3/1": (
        4,
        4,
        (3, 4),
        "reduce",
        "账期高峰弹性排班,增设VIP专席",
        (6, 20),
        "answer_rate_vip_billing",
        "monitoring",
    ),
    "S9/1": (
        3,
        3,
        (2, 3),
        "reduce",
        "对交验不合格供方开展二方审核",
        None,
        "supplier_first_pass",
        "treating",
    ),
    "M4/1": (4, 4, (4, 4), "reduce", "话务预测模型,兼职坐席储备", None, None, "treating"),
    "C1/1": (3, 3, (2, 3), "reduce", "建立招标信息日报制度", None, None, "treating"),
}


def risks(rng: np.random.Generator, end: Period, params: Params) -> pd.DataFrame:
    """The risk register: one risk per failure mode of the process register
    (:func:`qmsnb.risks.seed_frame`), scored on the 5×5 matrix, with treatments,
    and the external and internal issues of :data:`_CONTEXT_RISKS`.

    Stories: the VIP answer rate's actions (completed in June) did not stop its
    slide (not effective); the callback opportunity's evening second attempt
    (May) lifted the install/repair callback success (effective); the broadband
    warning arrangement (late September) has too few months after it (not
    enough data yet); a closed opportunity has no linked indicator; some reviews
    are overdue.
    """
    from qmsnb.risks import seed_frame

    frame = seed_frame(process_register(), params, end.end)
    rows = []
    for record in frame.to_dict("records"):
        story = _SEED_STORIES.get(record["origin"])
        if story is not None:
            lik, sev, residual, treatment, actions, done, indicator, status = story
            category = None
        else:
            lik, sev = int(rng.integers(1, 5)), int(rng.integers(2, 6))
            treated = rng.random() < 0.6
            residual = (max(1, lik - 1), sev) if treated else None
            treatment = "reduce" if treated else None
            actions = "完善作业指导书,加强过程监控与培训" if treated else None
            done, indicator, category = None, None, None
            status = "treating" if treated else "open"
        rows.append(
            _risk_row(
                record,
                end,
                lik,
                sev,
                residual,
                treatment,
                actions,
                done,
                indicator,
                category,
                status,
                review=_review_date(rng, end),
            )
        )
    for (
        kind,
        source,
        dept,
        process,
        text,
        consequence,
        lik,
        sev,
        residual,
        treatment,
        actions,
        done,
        indicator,
        category,
        status,
    ) in _CONTEXT_RISKS:
        record = {
            "type": kind,
            "process_id": process,
            "department": dept,
            "source": source,
            "origin": None,
            "description": text,
            "consequence": consequence,
            "owner": params.departments[dept].name.zh + "负责人",
        }
        rows.append(
            _risk_row(
                record,
                end,
                lik,
                sev,
                residual,
                treatment,
                actions,
                done,
                indicator,
                category,
                status,
                review=_review_date(rng, end, after=True),
            )
        )
    out = pd.DataFrame(rows)
    out.insert(0, "risk_id", [f"R-{i:03d}" for i in range(1, len(out) + 1)])
    return out


def _review_date(rng: np.random.Generator, end: Period, after: bool = False) -> object:
    # about one review in six overdue at the end of the demo period; the external
    # and internal issues (``after``) are reviewed after it, so the management
    # review of the demo months needs a written statement on them (9.3.2 b)
    low = 1 if after else -30
    return end.end + pd.Timedelta(days=int(rng.integers(low, 150)))


def _risk_row(
    record: dict[str, object],
    end: Period,
    lik: int,
    sev: int,
    residual: tuple[int, int] | None,
    treatment: str | None,
    actions: str | None,
    done: tuple[int, int] | None,
    indicator: str | None,
    category: str | None,
    status: str,
    review: object,
) -> dict[str, object]:
    return {
        **record,
        "method": "matrix",
        "inherent_likelihood": lik,
        "inherent_severity": sev,
        "residual_likelihood": residual[0] if residual else None,
        "residual_severity": residual[1] if residual else None,
        "treatment": treatment,
        "actions": actions,
        "actions_done_on": f"{end.year}-{done[0]:02d}-{done[1]:02d}" if done else None,
        "indicator": indicator,
        "complaint_category": category,
        "review_date": pd.Timestamp(review).date().isoformat(),
        "status": status,
    }


#: The quarterly review the demo records after importing the register, so the
#: report shows movement: origin or description → changes and why.
_DEMO_REVIEW = {
    "C3/1": ({"residual_likelihood": 4}, "第三季度评审:VIP接通率持续低于目标"),
    "S9/1": (
        {"residual_likelihood": 4, "residual_reason": "9月更换网络设备供应商,首批交验合格率下降"},
        "第三季度评审:供方变更",
    ),
    "M4/1": ({"residual_likelihood": 2}, "第三季度评审:话务预测模型上线"),
    "C1/1": ({"status": "closed"}, "第三季度评审:日报制度运行稳定,关闭"),
}


def review_risks(store: object, who: str) -> int:
    """Record the demo's quarterly risk review in the store (after the import)."""
    from qmsnb.records import RecordsStore

    assert isinstance(store, RecordsStore)
    frame = store.frame("risks")
    changed = 0
    for origin, (changes, reason) in _DEMO_REVIEW.items():
        hit = frame[frame["origin"].astype("string") == origin]
        if len(hit):
            store.update("risks", str(hit.iloc[0]["risk_id"]), changes, who, reason=reason)
            changed += 1
    return changed


_FISHBONE = [
    # problem, dept, category, subcategory, hotspot, period, recorded_on, causes
    (
        "2026年9–10月宽带断网投诉激增(10月14–15日金水花园批量投诉)",
        "complaints",
        "network",
        "broadband_down",
        "surge",
        "2026-10",
        "2026-10-20",
        [
            ("people", "抢修班组夜间仅1人值守,夜间故障次日才处理", 38, "夜间受理的断网工单"),
            ("people", "一线坐席不掌握故障影响范围,无法答复恢复时间", 27, "坐席答复“等通知”的工单"),
            ("machine", "金水花园OLT设备老化,板卡故障", 45, "10月14–15日批量工单"),
            ("machine", "光分路器无在线监控,故障靠用户报障才发现", 31, "用户先于网管发现的故障"),
            ("machine", "备品备件不足,更换等待约2天", 12, "等待备件的工单"),
            ("material", "第三方施工挖断主干光缆", 18, "9月22日同一光缆段工单"),
            ("material", "备件供应商交货延迟", 6, "采购记录"),
            ("method", "接入设备没有预防性维护计划", 52, "超龄设备所在小区的工单"),
            ("method", "批量故障未触发应急预案,仍逐单派修", 45, "金水花园工单逐单派发"),
            ("method", "无故障恢复时间的客户告知机制", 33, "重复来电催修的工单"),
            ("environment", "9–10月雷雨天气多,室外设备受潮", 21, "雨后48小时内的工单"),
            ("environment", "老旧小区线路架空敷设", 14, "老旧小区工单"),
            ("measurement", "网管告警阈值设置过高,未及时告警", 19, "告警晚于首张工单的故障"),
            ("measurement", "工单故障标签不统一,批量故障识别滞后", 9, "标签抽查"),
        ],
    ),
    (
        "未按约回电投诉居高不下",
        "hotline_ops",
        "service_attitude",
        "no_callback",
        "vital_few",
        "2026-03",
        "2026-03-20",
        [
            ("people", "交班时未移交待回电任务", 16, "交班后超时的回电工单"),
            ("machine", "工单系统没有回电任务和到期提醒", 41, "3月未按约回电工单"),
            ("method", "回电时限承诺无统一口径(2小时/24小时)", 12, "录音抽查"),
            ("measurement", "回电完成情况未纳入质检", 8, "质检表"),
        ],
    ),
]

_FIVE_WHYS = [
    {
        "problem": "2026年10月金水花园宽带断网批量投诉(45单)",
        "department": "complaints",
        "complaint_category": "network",
        "complaint_subcategory": "broadband_down",
        "hotspot": "batch",
        "period": "2026-10",
        "whys": [
            "小区宽带中断约36小时",
            "小区OLT板卡故障,无备件可换",
            "设备已超使用年限仍未更换",
            "接入设备没有预防性维护和到龄更换计划",
        ],
        "root_cause": "接入网设备缺少全生命周期管理(预防性维护与更换计划)",
        "bone": "method",
        "action": "制定接入设备巡检及到龄更换计划,重点小区配置备件",
        "action_owner": "综合部 吴刚",
        "action_due": "2026-12-31",
        "action_done_on": "",
        "analyst": "品质部 赵敏",
        "recorded_on": "2026-10-20",
    },
    {
        "problem": "未按约回电投诉居高不下(月均约40单)",
        "department": "hotline_ops",
        "complaint_category": "service_attitude",
        "complaint_subcategory": "no_callback",
        "hotspot": "vital_few",
        "period": "2026-03",
        "whys": [
            "坐席承诺2小时内回电但未回电",
            "坐席交班后回电任务无人跟进",
            "回电任务只记在个人便签上,系统中没有记录",
            "工单系统没有回电任务和到期提醒功能",
        ],
        "root_cause": "工单系统缺少回电任务管理和到期提醒",
        "bone": "machine",
        "action": "工单系统上线回电任务及到期前30分钟提醒,交班时自动移交",
        "action_owner": "热线运营部 王磊",
        "action_due": "2026-04-30",
        "action_done_on": "2026-04-15",
        "analyst": "品质部 钱伟",
        "recorded_on": "2026-03-20",
    },
    {
        "problem": "解释口径错误投诉",
        "department": "hotline_ops",
        "complaint_category": "handling",
        "complaint_subcategory": "wrong_info",
        "hotspot": "vital_few",
        "period": "2026-04",
        "whys": ["坐席向客户解释的优惠政策与实际不符", "坐席记错了活动规则"],
        "root_cause": "员工粗心,责任心不强",
        "bone": "people",
        "action": "对相关坐席批评教育并组织政策培训",
        "action_owner": "热线运营部 王磊",
        "action_due": "2026-05-31",
        "action_done_on": "2026-05-20",
        "analyst": "热线运营部 班长",
        "recorded_on": "2026-04-28",
    },
    {
        "problem": "装维上门超时投诉",
        "department": "service_supervision",
        "complaint_category": "install_repair",
        "complaint_subcategory": "late_visit",
        "hotspot": "repeat",
        "period": "2026-10",
        "whys": ["装维人员超过约定时间未上门", "", "派单系统没有考虑路程时间"],
        "root_cause": "",
        "bone": "",
        "action": "",
        "action_owner": "",
        "action_due": "",
        "action_done_on": "",
        "analyst": "服监中心 刘洋",
        "recorded_on": "2026-10-28",
    },
]


def root_cause_registers(end: Period) -> dict[str, pd.DataFrame]:
    """Fishbone causes and five-whys chains for the demo's complaint stories.

    The broadband surge (fishbone, a chain whose action is not done yet), the
    missed callbacks (a fix that held), wrong information (a chain that stops at
    a person, and a fix that did not hold) and a draft chain with a gap. Records
    dated after ``end`` are left out; a completion date after ``end`` is left empty.
    """
    last = pd.Timestamp(end.end)
    causes = []
    for problem, dept, cat, sub, hotspot, period, recorded, items in _FISHBONE:
        if pd.Timestamp(recorded) > last:
            continue
        for bone, cause, count, evidence in items:
            causes.append(
                {
                    "cause_id": f"FB-{len(causes) + 1:03d}",
                    "problem": problem,
                    "department": dept,
                    "complaint_category": cat,
                    "complaint_subcategory": sub,
                    "hotspot": hotspot,
                    "period": period,
                    "bone": bone,
                    "cause": cause,
                    "evidence_count": count,
                    "evidence": evidence,
                    "recorded_by": "品质部 赵敏",
                    "recorded_on": recorded,
                }
            )
    chains = []
    for chain in _FIVE_WHYS:
        if pd.Timestamp(chain["recorded_on"]) > last:
            continue
        row = {k: v for k, v in chain.items() if k != "whys"}
        row["chain_id"] = f"5W-{len(chains) + 1:03d}"
        for i in range(1, MAX_WHYS + 1):
            row[f"why_{i}"] = chain["whys"][i - 1] if i <= len(chain["whys"]) else ""
        if row["action_done_on"] and pd.Timestamp(row["action_done_on"]) > last:
            row["action_done_on"] = ""
        chains.append(row)
    return {"fishbone_causes": pd.DataFrame(causes), "five_whys": pd.DataFrame(chains)}


def review_registers(end: Period) -> dict[str, pd.DataFrame]:
    """Decisions of the last three management reviews and statements for inputs without data.

    The review of the month before ``end`` recorded no statement on external and
    internal issues: its pack shows that input missing.
    """
    r3, r2, r1 = (str(end.shift(-k)) for k in (3, 2, 1))

    def due(period: str, months: int, day: int = 28) -> str:
        p = Period.parse(period).shift(months)
        return f"{p}-{day:02d}"

    decisions = [
        (
            r3,
            "resources",
            "d_resources",
            "热线运营部账期高峰增加20名兼职坐席",
            "行政部 孙丽",
            "admin",
            due(r3, 1),
            "done",
            due(r3, 1, 20),
            "9月起到岗20人",
        ),
        (
            r3,
            "improvement",
            "c1_customer",
            "建立宽带断网批量投诉快速响应机制(2小时内通报装维)",
            "投诉中心 陈晨",
            "complaints",
            due(r3, 2),
            "in_progress",
            "",
            "",
        ),
        (
            r2,
            "qms_change",
            "c4_nonconformities",
            "修订《纠正措施控制程序》:关闭前必须做有效性验证",
            "品质部 赵敏",
            "quality",
            due(r2, 1),
            "done",
            due(r2, 1, 15),
            "程序文件已发布",
        ),
        (
            r2,
            "improvement",
            "c2_objectives",
            "VIP账期接通率专项帮扶:弹性排班与VIP专席",
            "热线运营部 王磊",
            "hotline_ops",
            due(r2, 1),
            "in_progress",
            "",
            "",
        ),
        (
            r1,
            "resources",
            "c7_providers",
            "对交验不合格的两家供方开展二方审核",
            "行政部 周强",
            "admin",
            due(r1, 2),
            "open",
            "",
            "",
        ),
        (
            r1,
            "improvement",
            "c6_audits",
            "逾期纠正措施每周通报,纳入部门月度考核",
            "品质部 赵敏",
            "quality",
            due(r1, 0, 25),
            "open",
            "",
            "",
        ),
    ]
    decision_frame = pd.DataFrame(
        [
            {
                "decision_id": f"MR-{i:03d}",
                "review_period": rp,
                "kind": kind,
                "input": inp,
                "decision": text,
                "owner": owner,
                "department": dept,
                "due": d,
                "status": status,
                "closed_on": closed,
                "result": result,
            }
            for i, (rp, kind, inp, text, owner, dept, d, status, closed, result) in enumerate(
                decisions, 1
            )
        ]
    )
    statements = pd.DataFrame(
        [
            {
                "statement_id": "MS-001",
                "period": r2,
                "input": "b_issues",
                "statement": "本月外部环境无重大变化;联通省分公司服务考核办法未调整。",
                "recorded_by": "品质部 赵敏",
                "recorded_on": f"{r2}-28",
            },
            {
                "statement_id": "MS-002",
                "period": str(end),
                "input": "b_issues",
                "statement": "工信部发布新版电信服务投诉处理时限要求(自下季度起执行);"
                "内部:热线运营部人员流失率连续3个月偏高。",
                "recorded_by": "品质部 赵敏",
                "recorded_on": f"{end}-28",
            },
        ]
    )
    return {"review_decisions": decision_frame, "review_statements": statements}


def flawed_export(frame: pd.DataFrame) -> pd.DataFrame:
    """A callbacks export gone wrong the way real ones do.

    The export was re-run after a timeout and one page of five tasks came out
    twice (file rows 42–46 again as rows 47–51), and the system appended its
    合计 (totals) row. The gate rejects the month (duplicate task ids and
    duplicate rows) and notes the totals row it left out.
    """
    page = frame.iloc[40:45]
    out = pd.concat([frame.iloc[:45], page, frame.iloc[45:]], ignore_index=True)
    totals = dict.fromkeys(frame.columns, "")
    totals["task_id"] = "合计"
    totals["completed"] = str(int((frame["completed"] == "1").sum()))
    totals["reached"] = str(int((frame["reached"] == "1").sum()))
    return pd.concat([out, pd.DataFrame([totals])], ignore_index=True)


def build(params: Params, out: Path, spec: DemoSpec = DemoSpec()) -> list[Path]:
    """Write the demo exports and registers into ``out`` and return the files written.

    Existing files are replaced only inside ``out`` (the demo's own folder).
    """
    rng = np.random.default_rng(spec.seed)
    end = Period.parse(spec.end)
    written: list[Path] = []
    for period in end.back(spec.months):
        folder = out / str(period)
        frame = calls(rng, period, spec.calls_per_month)
        written.append(
            io.write_export(frame, folder / f"calls.{spec.calls_format}", "calls", headers="en")
        )
        n_complaints = max(150, spec.calls_per_month // 40)
        written.append(
            io.write_export(
                complaints(rng, period, params, n_complaints),
                folder / "complaints.csv",
                "complaints",
                headers="zh",
                encoding="gb18030",
            )
        )
        tasks = callbacks(rng, period, max(200, spec.calls_per_month // 10))
        if spec.flawed and spec.months > 1 and period == end.shift(-1):
            tasks = flawed_export(tasks)
        written.append(
            io.write_export(
                tasks,
                folder / "callbacks.csv",
                "callbacks",
                headers="zh",
                encoding="utf-8-sig",
            )
        )
        written.append(
            io.write_export(
                monthly_indicators(rng, period),
                folder / "monthly_indicators.xlsx",
                "monthly_indicators",
                headers="zh",
            )
        )
    registers_dir = out / "registers"
    written.append(
        io.write_export(
            process_register(),
            registers_dir / "process_register.csv",
            "process_register",
            headers="id",
        )
    )
    written.append(
        io.write_export(
            objectives(end.year), registers_dir / "objectives.xlsx", "objectives", headers="zh"
        )
    )
    for name, frame in audit_registers(rng, end, params).items():
        written.append(io.write_export(frame, registers_dir / f"{name}.xlsx", name, headers="zh"))
    written.append(
        io.write_export(
            risks(rng, end, params), registers_dir / "risks.xlsx", "risks", headers="zh"
        )
    )
    for name, frame in root_cause_registers(end).items():
        if not frame.empty:
            written.append(
                io.write_export(frame, registers_dir / f"{name}.xlsx", name, headers="zh")
            )
    for name, frame in review_registers(end).items():
        written.append(io.write_export(frame, registers_dir / f"{name}.xlsx", name, headers="zh"))
    return written


def seed_store(params: Params, registers_dir: Path) -> dict[str, int]:
    """Import the demo registers found in ``registers_dir`` into a fresh records store.

    Only a store that is empty or holds nothing but earlier demo data is
    replaced; the imported content is marked as demo data.

    Returns:
        Register → number of records imported.

    Raises:
        RecordsError: the store holds entries that are not demo data.
    """
    from qmsnb.contract import DATASETS, registers
    from qmsnb.records import DEMO_USER, import_order, open_store

    files = {d.id: io.find_dataset_file(registers_dir, d) for d in registers()}
    names = import_order([name for name, path in files.items() if path is not None])
    counts: dict[str, int] = {}
    with open_store(params) as store:
        store.reset_demo()
        for name in names:
            path = files[name]
            assert path is not None and name in DATASETS
            counts[name] = len(store.import_table(name, path, DEMO_USER).inserted)
        if "risks" in counts:
            review_risks(store, DEMO_USER)
        store.mark_demo()
    return counts
