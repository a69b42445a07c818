"""The records store: the registers people write, with an append-only history.

Audit programme, findings, corrective actions (and the registers later issues
declare: risks, root-cause records, review decisions) live in one database: a
SQLite file by default (``records/qmsnb.sqlite`` under the project root, WAL
mode), or any SQLAlchemy URL (``params.organisation.records_url``) for a team
server. The store is generic: a register is a :class:`~qmsnb.contract.Dataset`
with ``kind="register"``; declaring one is all it takes to store it.

Three tables:

``records``
    one row per record: register, record id, version, retired flag and the
    record as a JSON document (canonical values: ids, ISO dates).
``history``
    one row per change (insert, update, import, retire): who, when, reason, the
    document before and after. Rows are only ever added (SQLite triggers refuse
    UPDATE and DELETE on it, and DELETE on ``records``).
``store_info``
    schema version and the demo marker.

Every save is validated against the register's contract (types, required
fields, allowed values, department names, references to other registers) and
the register's rules (:data:`RULES`, e.g. evidence required for a
nonconformity), in one transaction: a refused save leaves nothing behind.

Concurrency: on SQLite a write transaction starts with ``BEGIN IMMEDIATE`` (one
writer at a time, others wait up to :data:`BUSY_TIMEOUT_S` seconds), so two
auditors saving at the same moment both keep their entries and generated ids
never collide. Updates are optimistic: a caller that passes the version it read
(``expected_version``) gets its changes merged when the fields it changes were
not changed by anyone since; if they were, :class:`~qmsnb.exceptions.RecordsConflict`
names the field, who changed it and when. Nothing is silently lost.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from qmsnb import io
from qmsnb.contract import DATASETS, Column, Dataset
from qmsnb.exceptions import RecordsConflict, RecordsError, RecordsImportError

if TYPE_CHECKING:
    from qmsnb.config import Params

SCHEMA_VERSION = "1"
#: Where the store lives when params name no ``records_url`` (relative to the project root).
DEFAULT_FILE = "records/qmsnb.sqlite"
#: How long a writer waits for another writer's transaction (SQLite).
BUSY_TIMEOUT_S = 30
#: How often an insert with a generated id is retried after a key collision
#: (only possible on servers without SQLite's writer lock).
_ID_RETRIES = 5
#: ``who`` of the records the demo writes.
DEMO_USER = "qmsnb demo"
#: Modules that register rules for registers (imported on first validation).
RULE_MODULES: list[str] = ["qmsnb.record_rules", "qmsnb.review_rules", "qmsnb.risks"]
#: Prefix of generated record ids per register (default: the register id).
#: A value may be a function of the record (``IA-2026`` from an audit's planned month).
ID_PREFIX: dict[str, str | Callable[[Mapping[str, Any]], str]] = {
    "audit_programme": lambda r: f"IA-{str(r.get('planned_month') or _now())[:4]}",
    "findings": "F",
    "actions": "CA",
    "risks": "R",
    "objectives": "QO",
    "fishbone_causes": "FB",
    "five_whys": "5W",
    "review_decisions": "MR",
    "review_statements": "MS",
}
#: History actions.
ACTIONS = ("insert", "update", "import", "retire")

_metadata = sa.MetaData()
RECORDS = sa.Table(
    "records",
    _metadata,
    sa.Column("register", sa.String(60), primary_key=True),
    sa.Column("record_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("retired", sa.Boolean, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
HISTORY = sa.Table(
    "history",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("register", sa.String(60), nullable=False, index=True),
    sa.Column("record_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("before", sa.Text, nullable=True),
    sa.Column("after", sa.Text, nullable=True),
)
INFO = sa.Table(
    "store_info",
    _metadata,
    sa.Column("key", sa.String(60), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: SQLite triggers that make the history append-only and records undeletable.
_SQLITE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history "
    "BEGIN SELECT RAISE(ABORT, 'qmsnb history is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history "
    "BEGIN SELECT RAISE(ABORT, 'qmsnb history is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records "
    "BEGIN SELECT RAISE(ABORT, 'qmsnb records are retired, never deleted'); END",
)


# ---------------------------------------------------------------------------
# Rules per register
# ---------------------------------------------------------------------------
@dataclass
class RuleContext:
    """What a register rule may look at while a record is being saved.

    Attributes:
        store: the store (its params, its other registers).
        register: the register being written.
        previous: the record as stored before this change (None for a new one).
    """

    store: RecordsStore
    conn: sa.Connection
    register: str
    previous: dict[str, Any] | None = None

    @property
    def params(self) -> Params:
        return self.store.params

    def lookup(self, register: str, record_id: str) -> dict[str, Any] | None:
        """A live record of ``register`` (in the store, or its file when the store
        does not keep that register); None when there is none."""
        return self.store._lookup(self.conn, register, record_id)

    def has_register(self, register: str) -> bool:
        """Whether there is anything to check references to ``register`` against."""
        return self.store._register_available(self.conn, register)

    def table(self, register: str) -> pd.DataFrame:
        """The current state of another register, typed (store or file)."""
        return self.store._table(self.conn, register)


Rule = Callable[[dict[str, Any], RuleContext], None]
RULES: dict[str, list[Rule]] = {}


def register_rule(register: str) -> Callable[[Rule], Rule]:
    """Add a rule checked whenever a record of ``register`` is saved.

    A rule receives the record (canonical values, already typed and checked
    against the contract) and a :class:`RuleContext`; it raises
    :class:`~qmsnb.exceptions.RecordsError` naming the field to refuse the save.
    """

    def deco(rule: Rule) -> Rule:
        RULES.setdefault(register, []).append(rule)
        return rule

    return deco


_rules_loaded = False


def _load_rules() -> None:
    global _rules_loaded
    if not _rules_loaded:
        for module in RULE_MODULES:
            importlib.import_module(module)
        _rules_loaded = True


def field_error(key: str, dataset: Dataset | str, field_name: str, **facts: Any) -> RecordsError:
    """A RecordsError about one field, with the facts every message can use.

    Facts: ``field`` (id), ``label`` (the column's headers, ``{zh:, en:}``),
    ``register`` (id), ``register_name`` (``{zh:, en:}``) and whatever is passed.
    """
    spec = DATASETS[dataset] if isinstance(dataset, str) else dataset
    try:
        column = spec.column(field_name)
        label = {"zh": column.zh, "en": column.en}
    except KeyError:
        label = {"zh": field_name, "en": field_name}
    cls = RecordsConflict if key == "error.records.conflict" else RecordsError
    return cls(
        key,
        **{
            "field": field_name,
            "register": spec.id,
            "register_name": {"zh": spec.zh, "en": spec.en},
            "label": label,
            **facts,
        },
    )


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------
class Record(dict[str, Any]):
    """A record's fields (a plain dict) with its store metadata as attributes.

    Attributes:
        register, record_id, version, retired, created_at, created_by,
        updated_at, updated_by.
    """

    def __init__(self, fields: Mapping[str, Any], **meta: Any) -> None:
        super().__init__(fields)
        self.register: str = meta.get("register", "")
        self.record_id: str = meta.get("record_id", "")
        self.version: int = int(meta.get("version", 0))
        self.retired: bool = bool(meta.get("retired", False))
        self.created_at: str = meta.get("created_at", "")
        self.created_by: str = meta.get("created_by", "")
        self.updated_at: str = meta.get("updated_at", "")
        self.updated_by: str = meta.get("updated_by", "")


@dataclass
class ImportResult:
    """What an import did: record ids inserted, updated and left unchanged."""

    register: str
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True)


def _canonical_value(value: Any, column: Column) -> Any:
    """A typed value (from the loader) as it is kept in the JSON document."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if column.dtype == "int":
        return int(value)
    if column.dtype == "float":
        return float(value)
    if column.dtype == "bool":
        return bool(value)
    if column.dtype == "date":
        return pd.Timestamp(value).date().isoformat()
    if column.dtype == "datetime":
        return pd.Timestamp(value).isoformat()
    return str(value)


def _raw_value(value: Any) -> Any:
    """A value given by a caller, ready for the loader's conversion."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _problem_error(dataset: Dataset, problem: io.Problem) -> RecordsError:
    expected: Any = problem.expected
    try:
        column = dataset.column(problem.column)
    except KeyError:
        column = None
    if column is not None and column.values and problem.reason == "not_allowed":
        expected = {
            "zh": "、".join(zh for zh, _ in column.values.values()),
            "en": ", ".join(en for _, en in column.values.values()),
        }
    return field_error(
        f"error.records.{problem.reason}",
        dataset,
        problem.column,
        value=problem.values[0] if problem.values else "",
        expected=expected,
    )


def _local_time(at: str) -> str:
    """A stored UTC timestamp as local ``YYYY-MM-DD HH:MM:SS`` for messages."""
    return datetime.fromisoformat(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _column_order(dataset: Dataset, problems: list[io.Problem]) -> list[io.Problem]:
    order = {c.name: i for i, c in enumerate(dataset.columns)}
    return sorted(problems, key=lambda p: (min(p.rows) if p.rows else 0, order.get(p.column, 99)))


def clean_who(who: str) -> str:
    """The author of a change, trimmed; refused when empty."""
    text = (who or "").strip()
    if not text:
        raise RecordsError("error.records.who_missing")
    return text


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------
def store_url(params: Params) -> str:
    """The store's SQLAlchemy URL: ``records_url`` from params, or the default file.

    A relative SQLite path is taken relative to the project root, like every
    other path in params.
    """
    url = params.organisation.records_url
    if not url:
        return f"sqlite:///{params.path(DEFAULT_FILE)}"
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        database = Path(parsed.database)
        if not database.is_absolute():
            return parsed.set(database=str(params.path(str(database)))).render_as_string(
                hide_password=False
            )
    return url


def _sqlite_file(url: str) -> Path | None:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def store_exists(params: Params) -> bool:
    """Whether a records store exists (without creating one)."""
    url = store_url(params)
    file = _sqlite_file(url)
    if file is not None:
        return file.is_file()
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).has_table("records")
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _make_engine(url: str) -> sa.Engine:
    file = _sqlite_file(url)
    if sa.make_url(url).get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (pysqlite's own transaction handling would
        # start write transactions too late to serialise writers).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        if file is not None:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("qmsnb_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class RecordsStore:
    """The registers people write, validated, versioned, with their history.

    Open it with :func:`open_store`. Methods take a register id (``findings``,
    ``actions``, ...) as declared in :mod:`qmsnb.contract`.
    """

    def __init__(self, url: str, params: Params) -> None:
        self.url = url
        self.params = params
        self.engine = _make_engine(url)
        self._file_tables: dict[str, tuple[tuple[str, float], pd.DataFrame | None]] = {}
        self._store_tables: dict[str, tuple[Any, pd.DataFrame]] = {}
        try:
            self._create_schema()
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise RecordsError(
                "error.records.unreachable",
                url=self.display_url,
                problem=str(exc).splitlines()[0],
            ) from exc

    def _create_schema(self) -> None:
        _metadata.create_all(self.engine)
        with self._write() as conn:
            if self.engine.dialect.name == "sqlite":
                for guard in _SQLITE_GUARDS:
                    conn.exec_driver_sql(guard)
            if self._info(conn, "schema") is None:
                conn.execute(sa.insert(INFO).values(key="schema", value=SCHEMA_VERSION))

    # -- plumbing ---------------------------------------------------------
    @property
    def display_url(self) -> str:
        """The URL with any password hidden (for messages and the manifest)."""
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RecordsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(qmsnb_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @staticmethod
    def _dataset(register: str) -> Dataset:
        spec = DATASETS.get(register)
        if spec is None or spec.kind != "register":
            known = ", ".join(sorted(d.id for d in DATASETS.values() if d.kind == "register"))
            raise RecordsError("error.records.unknown_register", register=register, known=known)
        return spec

    # -- registers kept here or in files --------------------------------------
    def registers(self) -> list[str]:
        """The registers this store keeps (those with at least one record, retired or not)."""
        with self._read() as conn:
            return self._owned(conn)

    @staticmethod
    def _owned(conn: sa.Connection) -> list[str]:
        rows = conn.execute(sa.select(RECORDS.c.register).distinct().order_by(RECORDS.c.register))
        return [r[0] for r in rows]

    def _file_table(self, register: str) -> pd.DataFrame | None:
        spec = DATASETS[register]
        path = io.find_dataset_file(self.params.registers_dir, spec)
        if path is None:
            return None
        stamp = (str(path), path.stat().st_mtime)
        cached = self._file_tables.get(register)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        table = io.read_dataset(path, spec, self.params)
        frame = table.frame
        self._file_tables[register] = (stamp, frame)
        return frame

    def _register_available(self, conn: sa.Connection, register: str) -> bool:
        if register in self._owned(conn):
            return True
        return self._file_table(register) is not None

    def _lookup(self, conn: sa.Connection, register: str, record_id: str) -> dict[str, Any] | None:
        if register in self._owned(conn):
            row = conn.execute(
                sa.select(RECORDS.c.document).where(
                    RECORDS.c.register == register,
                    RECORDS.c.record_id == record_id,
                    RECORDS.c.retired.is_(False),
                )
            ).first()
            return json.loads(row[0]) if row else None
        frame = self._file_table(register)
        if frame is None:
            return None
        key = DATASETS[register].key
        if len(key) != 1:
            return None
        hit = frame[frame[key[0]].astype("string") == record_id]
        return self._canonical(DATASETS[register], hit.iloc[0]) if len(hit) else None

    def _table(self, conn: sa.Connection, register: str) -> pd.DataFrame:
        if register in self._owned(conn):
            stamp = conn.execute(
                sa.select(sa.func.max(HISTORY.c.seq)).where(HISTORY.c.register == register)
            ).scalar()
            cached = self._store_tables.get(register)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            frame = self._frame(conn, register)
            self._store_tables[register] = (stamp, frame)
            return frame
        frame = self._file_table(register)
        return frame if frame is not None else pd.DataFrame()

    # -- validation ---------------------------------------------------------
    def _typed(self, dataset: Dataset, raw: pd.DataFrame, source: str = "") -> io.LoadedTable:
        for column in dataset.columns:
            if column.name not in raw.columns:
                raw[column.name] = None
        return io.typed_frame(raw, dataset, self.params, source=source)

    def _canonical(self, dataset: Dataset, row: pd.Series) -> dict[str, Any]:
        return {c.name: _canonical_value(row[c.name], c) for c in dataset.columns}

    def _validate(
        self,
        conn: sa.Connection,
        register: str,
        record: Mapping[str, Any],
        previous: dict[str, Any] | None = None,
        typed: bool = False,
    ) -> dict[str, Any]:
        """The record as it will be stored; RecordsError naming the field otherwise.

        ``typed``: the record is already canonical (typed by a whole-table
        conversion during an import); only references and rules are checked.
        """
        dataset = self._dataset(register)
        if typed:
            doc = {c.name: record.get(c.name) for c in dataset.columns}
            self._check(conn, dataset, doc, previous)
            return doc
        names = {c.name for c in dataset.columns}
        for key in record:
            if key not in names and not str(key).startswith("_"):
                raise RecordsError(
                    "error.records.unknown_field",
                    field=key,
                    register=register,
                    register_name={"zh": dataset.zh, "en": dataset.en},
                    known=", ".join(sorted(names)),
                )
        raw = pd.DataFrame(
            [{k: _raw_value(v) for k, v in record.items() if k in names}], dtype=object
        )
        table = self._typed(dataset, raw)
        if table.problems:
            raise _problem_error(dataset, _column_order(dataset, table.problems)[0])
        doc = self._canonical(dataset, table.frame.iloc[0])
        self._check(conn, dataset, doc, previous)
        return doc

    def _check(
        self,
        conn: sa.Connection,
        dataset: Dataset,
        doc: dict[str, Any],
        previous: dict[str, Any] | None,
    ) -> None:
        for column in dataset.columns:
            target, value = column.references, doc.get(column.name)
            if target is None or value is None:
                continue
            if not self._register_available(conn, target):
                continue  # nothing to check against (no such register kept anywhere)
            if self._lookup(conn, target, str(value)) is None:
                raise field_error(
                    "error.records.unknown_reference",
                    dataset,
                    column.name,
                    value=value,
                    target={"zh": DATASETS[target].zh, "en": DATASETS[target].en},
                )
        _load_rules()
        context = RuleContext(store=self, conn=conn, register=dataset.id, previous=previous)
        for rule in RULES.get(dataset.id, []):
            rule(doc, context)

    def validate(self, register: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Check a record without saving it; returns it as it would be stored."""
        with self._read() as conn:
            return self._validate(conn, register, record)

    # -- ids ------------------------------------------------------------------
    def _record_id(self, dataset: Dataset, doc: Mapping[str, Any]) -> str | None:
        values = [doc.get(k) for k in dataset.key]
        if any(v is None or str(v).strip() == "" for v in values):
            return None
        return "|".join(str(v) for v in values)

    def _next_id(self, conn: sa.Connection, dataset: Dataset, record: Mapping[str, Any]) -> str:
        rule = ID_PREFIX.get(dataset.id, dataset.id.upper())
        prefix = rule(record) if callable(rule) else rule
        pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)$")
        rows = conn.execute(
            sa.select(RECORDS.c.record_id).where(
                RECORDS.c.register == dataset.id, RECORDS.c.record_id.like(f"{prefix}-%")
            )
        )
        numbers = [int(m.group(1)) for (rid,) in rows if (m := pattern.match(rid))]
        return f"{prefix}-{max(numbers, default=0) + 1:03d}"

    # -- writing ----------------------------------------------------------------
    def _history(
        self,
        conn: sa.Connection,
        register: str,
        record_id: str,
        version: int,
        action: str,
        who: str,
        at: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        reason: str | None = None,
    ) -> int:
        result = conn.execute(
            sa.insert(HISTORY).values(
                register=register,
                record_id=record_id,
                version=version,
                action=action,
                who=who,
                at=at,
                reason=reason,
                before=_dumps(before) if before is not None else None,
                after=_dumps(after) if after is not None else None,
            )
        )
        return int(result.inserted_primary_key[0])

    def _insert(
        self,
        conn: sa.Connection,
        dataset: Dataset,
        record: Mapping[str, Any],
        who: str,
        action: str,
        typed: bool = False,
    ) -> str:
        key = dataset.key
        given = self._record_id(dataset, {k: record.get(k) for k in key})
        record = dict(record)
        if given is None:
            if len(key) != 1:
                raise field_error(
                    "error.records.missing_value", dataset, key[0], value="", expected=""
                )
            record[key[0]] = self._next_id(conn, dataset, record)
        doc = self._validate(conn, dataset.id, record, typed=typed)
        record_id = self._record_id(dataset, doc)
        assert record_id is not None
        exists = conn.execute(
            sa.select(RECORDS.c.retired).where(
                RECORDS.c.register == dataset.id, RECORDS.c.record_id == record_id
            )
        ).first()
        if exists is not None:
            raise field_error("error.records.duplicate", dataset, key[0], value=record_id)
        at = _now()
        seq = self._history(conn, dataset.id, record_id, 1, action, who, at, None, doc)
        conn.execute(
            sa.insert(RECORDS).values(
                register=dataset.id,
                record_id=record_id,
                seq=seq,
                version=1,
                retired=False,
                document=_dumps(doc),
                created_at=at,
                created_by=who,
                updated_at=at,
                updated_by=who,
            )
        )
        return record_id

    def insert(self, register: str, record: Mapping[str, Any], who: str) -> str:
        """Add a record; returns its id (generated, e.g. ``F-042``, when the key is empty).

        Raises:
            RecordsError: a field is missing, mistyped, not allowed, refers to
                nothing, breaks a register rule, or the id exists already.
        """
        who = clean_who(who)
        dataset = self._dataset(register)
        generated = self._record_id(dataset, {k: record.get(k) for k in dataset.key}) is None
        for attempt in range(_ID_RETRIES):
            try:
                with self._write() as conn:
                    self._adopt(conn, dataset, who)
                    return self._insert(conn, dataset, record, who, "insert")
            except sa.exc.IntegrityError as exc:
                if not generated or attempt == _ID_RETRIES - 1:
                    raise RecordsError(
                        "error.records.database",
                        url=self.display_url,
                        problem=str(exc).splitlines()[0],
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _current(self, conn: sa.Connection, register: str, record_id: str) -> sa.Row[Any]:
        row = conn.execute(
            sa.select(RECORDS).where(
                RECORDS.c.register == register, RECORDS.c.record_id == record_id
            )
        ).first()
        if row is None:
            spec = self._dataset(register)
            raise field_error("error.records.not_found", spec, spec.key[0], value=record_id)
        return row

    def _changed_since(
        self, conn: sa.Connection, register: str, record_id: str, version: int
    ) -> dict[str, tuple[str, str]]:
        """Fields changed after ``version`` → (who, when) of the last change."""
        rows = conn.execute(
            sa.select(HISTORY.c.before, HISTORY.c.after, HISTORY.c.who, HISTORY.c.at)
            .where(
                HISTORY.c.register == register,
                HISTORY.c.record_id == record_id,
                HISTORY.c.version > version,
            )
            .order_by(HISTORY.c.seq)
        )
        changed: dict[str, tuple[str, str]] = {}
        for before, after, who, at in rows:
            old = json.loads(before) if before else {}
            new = json.loads(after) if after else {}
            for name in set(old) | set(new):
                if old.get(name) != new.get(name):
                    changed[name] = (who, at)
        return changed

    def _update(
        self,
        conn: sa.Connection,
        dataset: Dataset,
        record_id: str,
        changes: Mapping[str, Any],
        who: str,
        reason: str | None,
        expected_version: int | None,
        action: str,
        typed: bool = False,
    ) -> Record:
        row = self._current(conn, dataset.id, record_id)
        if row.retired:
            raise field_error("error.records.retired", dataset, dataset.key[0], value=record_id)
        current = json.loads(row.document)
        for name in dataset.key:
            if name in changes and _raw_value(changes[name]) != _raw_value(current.get(name)):
                raise field_error("error.records.key_change", dataset, name, value=record_id)
        doc = self._validate(
            conn, dataset.id, {**current, **changes}, previous=current, typed=typed
        )
        touched = {k for k in changes if doc.get(k) != current.get(k)}
        if expected_version is not None and row.version != expected_version:
            since = self._changed_since(conn, dataset.id, record_id, expected_version)
            clash = sorted(touched & set(since))
            if clash:
                who_else, when = since[clash[0]]
                raise field_error(
                    "error.records.conflict",
                    dataset,
                    clash[0],
                    value=record_id,
                    other=who_else,
                    when=_local_time(when),
                    version=row.version,
                    expected=expected_version,
                )
        if doc == current:
            return self._as_record(row)
        at = _now()
        result = conn.execute(
            sa.update(RECORDS)
            .where(
                RECORDS.c.register == dataset.id,
                RECORDS.c.record_id == record_id,
                RECORDS.c.version == row.version,
            )
            .values(document=_dumps(doc), version=row.version + 1, updated_at=at, updated_by=who)
        )
        if result.rowcount != 1:  # a writer got in between (servers without SQLite's lock)
            raise field_error(
                "error.records.conflict",
                dataset,
                sorted(touched)[0] if touched else dataset.key[0],
                value=record_id,
                other="?",
                when=_local_time(at),
                version=row.version + 1,
                expected=row.version,
            )
        self._history(
            conn, dataset.id, record_id, row.version + 1, action, who, at, current, doc, reason
        )
        return Record(
            doc,
            register=dataset.id,
            record_id=record_id,
            version=row.version + 1,
            retired=False,
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=at,
            updated_by=who,
        )

    def update(
        self,
        register: str,
        record_id: str,
        changes: Mapping[str, Any],
        who: str,
        reason: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Record:
        """Change fields of a record; the old state stays in the history.

        Args:
            changes: only the fields to change.
            reason: why (kept in the history).
            expected_version: the version the caller read (``Record.version``).
                When someone saved the record since, the save still succeeds if
                none of ``changes``' fields were changed by them (the changes are
                merged); otherwise it is refused with a RecordsConflict. Without
                it, the changes apply to the latest version.

        Returns:
            The record as stored now.

        Raises:
            RecordsError: unknown record, retired record, a key change, a bad value.
            RecordsConflict: the same field was changed by someone else meanwhile.
        """
        who = clean_who(who)
        dataset = self._dataset(register)
        with self._write() as conn:
            self._adopt(conn, dataset, who)
            return self._update(
                conn, dataset, record_id, changes, who, reason, expected_version, "update"
            )

    def retire(self, register: str, record_id: str, who: str, reason: str) -> Record:
        """Take a record out of the current state; it stays in the store and history."""
        who = clean_who(who)
        if not (reason or "").strip():
            raise RecordsError("error.records.reason_missing", register=register, value=record_id)
        dataset = self._dataset(register)
        with self._write() as conn:
            self._adopt(conn, dataset, who)
            row = self._current(conn, register, record_id)
            if row.retired:
                return self._as_record(row)
            doc = json.loads(row.document)
            at = _now()
            conn.execute(
                sa.update(RECORDS)
                .where(RECORDS.c.register == register, RECORDS.c.record_id == record_id)
                .values(retired=True, version=row.version + 1, updated_at=at, updated_by=who)
            )
            self._history(
                conn, dataset.id, record_id, row.version + 1, "retire", who, at, doc, None, reason
            )
            return Record(
                doc,
                register=register,
                record_id=record_id,
                version=row.version + 1,
                retired=True,
                created_at=row.created_at,
                created_by=row.created_by,
                updated_at=at,
                updated_by=who,
            )

    # -- reading ---------------------------------------------------------------
    @staticmethod
    def _as_record(row: sa.Row[Any]) -> Record:
        return Record(
            json.loads(row.document),
            register=row.register,
            record_id=row.record_id,
            version=row.version,
            retired=row.retired,
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )

    def get(self, register: str, record_id: str) -> Record:
        """One record (a dict of its fields, with ``.version``, ``.retired``, ...).

        Raises:
            RecordsError: no such record.
        """
        self._dataset(register)
        with self._read() as conn:
            return self._as_record(self._current(conn, register, record_id))

    def _frame(self, conn: sa.Connection, register: str, retired: bool = False) -> pd.DataFrame:
        dataset = self._dataset(register)
        query = sa.select(RECORDS.c.document).where(RECORDS.c.register == register)
        if not retired:
            query = query.where(RECORDS.c.retired.is_(False))
        docs = [json.loads(d) for (d,) in conn.execute(query.order_by(RECORDS.c.seq))]
        raw = pd.DataFrame(docs, columns=[c.name for c in dataset.columns], dtype=object)
        return self._typed(dataset, raw, source=f"{self.display_url}#{register}").frame

    def frame(self, register: str) -> pd.DataFrame:
        """The current state of a register (retired records left out), typed like
        the loader's frames (same columns, dtypes and derived columns)."""
        with self._read() as conn:
            return self._frame(conn, register)

    def counts(self) -> dict[str, int]:
        """Register → number of live records, for the registers this store keeps."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(RECORDS.c.register, sa.func.count())
                .where(RECORDS.c.retired.is_(False))
                .group_by(RECORDS.c.register)
                .order_by(RECORDS.c.register)
            )
            found = {r: int(n) for r, n in rows}
            return {r: found.get(r, 0) for r in self._owned(conn)}

    def versions(self, register: str) -> dict[str, int]:
        """Record id → current version, for live records of a register."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(RECORDS.c.record_id, RECORDS.c.version).where(
                    RECORDS.c.register == register, RECORDS.c.retired.is_(False)
                )
            )
            return {r: v for r, v in rows}

    def history(self, register: str | None = None, record_id: str | None = None) -> pd.DataFrame:
        """Every change, oldest first: seq, register, record_id, version, action,
        who, when (UTC), reason, before, after (dicts) and changed (field names)."""
        query = sa.select(HISTORY).order_by(HISTORY.c.seq)
        if register is not None:
            query = query.where(HISTORY.c.register == register)
        if record_id is not None:
            query = query.where(HISTORY.c.record_id == record_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        out = pd.DataFrame(
            [
                {
                    "seq": r.seq,
                    "register": r.register,
                    "record_id": r.record_id,
                    "version": r.version,
                    "action": r.action,
                    "who": r.who,
                    "when": r.at,
                    "reason": r.reason,
                    "before": json.loads(r.before) if r.before else None,
                    "after": json.loads(r.after) if r.after else None,
                }
                for r in rows
            ],
            columns=[
                "seq",
                "register",
                "record_id",
                "version",
                "action",
                "who",
                "when",
                "reason",
                "before",
                "after",
            ],
        )
        out["when"] = pd.to_datetime(out["when"], utc=True, format="ISO8601")
        out["changed"] = [
            sorted(k for k in set(b or {}) | set(a or {}) if (b or {}).get(k) != (a or {}).get(k))
            for b, a in zip(out["before"], out["after"], strict=True)
        ]
        return out

    def fingerprint(self, register: str | None = None) -> str:
        """sha256 of the store's state (ids, versions, retired flags) for one or all registers.

        Any saved change moves it; reading does not.
        """
        with self._read() as conn:
            return self._fingerprint(conn, register)

    @staticmethod
    def _fingerprint(conn: sa.Connection, register: str | None) -> str:
        query = sa.select(
            RECORDS.c.register, RECORDS.c.record_id, RECORDS.c.version, RECORDS.c.retired
        )
        if register is not None:
            query = query.where(RECORDS.c.register == register)
        digest = hashlib.sha256()
        for row in conn.execute(query.order_by(RECORDS.c.register, RECORDS.c.record_id)):
            digest.update(f"{row[0]}\x1f{row[1]}\x1f{row[2]}\x1f{int(row[3])}\x1e".encode())
        return digest.hexdigest()

    # -- tables in and out ---------------------------------------------------------
    def import_table(
        self,
        register: str,
        source: pd.DataFrame | str | Path,
        who: str,
        reason: str | None = None,
    ) -> ImportResult:
        """Import a register from a file (XLSX/CSV/parquet) or a frame, in one transaction.

        Rows whose key is new are inserted, rows whose key exists are updated
        where they differ (history action ``import``), rows without a key get a
        generated id. Headers and values are read like any register file; text
        our own export neutralised (``'=...``) is restored. Any bad row refuses
        the whole import (nothing is saved) with a message naming file, row and field.

        Raises:
            RecordsImportError: a row was refused (wraps the row's RecordsError).
            RecordsError: the file lacks required columns.
            DataError: the file cannot be read at all.
        """
        who = clean_who(who)
        dataset = self._dataset(register)
        if isinstance(source, pd.DataFrame):
            name = f"<{register}>"
            table = io.typed_frame(source, dataset, self.params, source=name)
        else:
            name = str(source)
            table = io.read_dataset(Path(source), dataset, self.params)
        with self._write() as conn:
            return self._import(conn, dataset, table, name, who, reason)

    def _import(
        self,
        conn: sa.Connection,
        dataset: Dataset,
        table: io.LoadedTable,
        name: str,
        who: str,
        reason: str | None,
    ) -> ImportResult:
        register = dataset.id
        if table.missing_columns:
            raise RecordsError(
                "error.records.import_missing_columns",
                file=name,
                register=register,
                register_name={"zh": dataset.zh, "en": dataset.en},
                columns=", ".join(table.missing_columns),
            )
        # a row without its (single-column) key gets a generated id, as documented
        problems = [
            p
            for p in table.problems
            if not (
                len(dataset.key) == 1 and p.column == dataset.key[0] and p.reason == "missing_value"
            )
        ]
        if problems:
            first = _column_order(dataset, problems)[0]
            raise RecordsImportError(_problem_error(dataset, first), name, first.rows[0])
        frame = table.frame
        for column in dataset.columns:
            if column.dtype == "str" and column.name in frame:
                frame[column.name] = frame[column.name].map(io.restore_formula, na_action="ignore")
        result = ImportResult(register=register)
        for _, row in frame.iterrows():
            doc = self._canonical(dataset, row)
            line = int(row[io.ROW])
            try:
                record_id = self._record_id(dataset, doc)
                exists = (
                    record_id is not None
                    and conn.execute(
                        sa.select(RECORDS.c.record_id).where(
                            RECORDS.c.register == register, RECORDS.c.record_id == record_id
                        )
                    ).first()
                    is not None
                )
                if not exists:
                    result.inserted.append(
                        self._insert(conn, dataset, doc, who, "import", typed=True)
                    )
                    continue
                assert record_id is not None
                before = self._current(conn, register, record_id)
                after = self._update(
                    conn, dataset, record_id, doc, who, reason, None, "import", typed=True
                )
                target = result.updated if after.version != before.version else result.unchanged
                target.append(record_id)
            except RecordsError as exc:
                raise RecordsImportError(exc, name, line) from None
        return result

    def _adopt(self, conn: sa.Connection, dataset: Dataset, who: str) -> None:
        """Take over a register still kept in its file, before the first change here.

        Without this, the first finding saved in the store would hide every
        finding of ``findings.xlsx`` (the store's registers win in reports). The
        file is imported as it is, in the same transaction as the change.
        """
        if dataset.id in self._owned(conn):
            return
        path = io.find_dataset_file(self.params.registers_dir, dataset)
        if path is None:
            return
        table = io.read_dataset(path, dataset, self.params)
        self._import(conn, dataset, table, str(path), who, f"adopted from {path}")

    def export_rows(self, register: str, lang: str = "zh") -> io.Sheet:
        """The register's current state as a sheet: headers and values in ``lang``
        (labels for enumerations, names for departments), dates as dates."""
        dataset = self._dataset(register)
        frame = self.frame(register)
        headers = [c.zh if lang == "zh" else c.en for c in dataset.columns]
        depts = self.params.departments
        rows: list[list[Any]] = []
        for _, row in frame.iterrows():
            values: list[Any] = []
            for column in dataset.columns:
                value = row[column.name]
                if (
                    value is None
                    or value is pd.NA
                    or (isinstance(value, float) and math.isnan(value))
                ):
                    values.append(None)
                elif column.values and value in column.values:
                    zh, en = column.values[value]
                    values.append(zh if lang == "zh" else en)
                elif column.lookup == "departments" and value in depts:
                    values.append(depts[value].name(lang))
                elif column.dtype == "date":
                    values.append(pd.Timestamp(value).date())
                elif column.dtype == "datetime":
                    values.append(pd.Timestamp(value).to_pydatetime())
                elif column.dtype == "int":
                    values.append(int(value))
                elif column.dtype == "float":
                    values.append(float(value))
                elif column.dtype == "bool":
                    values.append(
                        ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
                    )
                else:
                    values.append(str(value))
            rows.append(values)
        return io.Sheet(
            title=dataset.zh if lang == "zh" else dataset.en, headers=headers, rows=rows
        )

    def export_excel(
        self, register: str, path: str | Path, lang: str = "zh", with_history: bool = False
    ) -> Path:
        """Write the register's current state to an XLSX file people can open safely.

        Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
        is written with a leading apostrophe; :meth:`import_table` restores it.
        ``with_history`` adds a sheet with every change.
        """
        sheets = [self.export_rows(register, lang)]
        if with_history:
            hist = self.history(register)
            sheets.append(
                io.Sheet(
                    title="修改记录" if lang == "zh" else "History",
                    headers=[
                        "seq",
                        "record_id",
                        "version",
                        "action",
                        "who",
                        "when",
                        "reason",
                        "changed",
                        "before",
                        "after",
                    ],
                    rows=[
                        [
                            r.seq,
                            r.record_id,
                            r.version,
                            r.action,
                            r.who,
                            r.when.tz_convert(None).to_pydatetime(),
                            r.reason,
                            ", ".join(r.changed),
                            _dumps(r.before) if r.before else None,
                            _dumps(r.after) if r.after else None,
                        ]
                        for r in hist.itertuples()
                    ],
                )
            )
        return io.write_xlsx(Path(path), sheets)

    # -- demo marker ---------------------------------------------------------------
    def _info(self, conn: sa.Connection, key: str) -> str | None:
        row = conn.execute(sa.select(INFO.c.value).where(INFO.c.key == key)).first()
        return row[0] if row else None

    def holds_entries(self) -> bool:
        """Whether any record was ever saved here."""
        with self._read() as conn:
            return conn.execute(sa.select(HISTORY.c.seq).limit(1)).first() is not None

    def is_demo_only(self) -> bool:
        """True when everything in the store was written by the demo (nothing since)."""
        with self._read() as conn:
            if self._info(conn, "content") != "demo":
                return False
            last = conn.execute(sa.select(sa.func.max(HISTORY.c.seq))).scalar()
            return str(last or 0) == (self._info(conn, "demo_seq") or "")

    def mark_demo(self) -> None:
        """Mark the current content as demo data (``qmsnb demo`` may replace it)."""
        with self._write() as conn:
            last = conn.execute(sa.select(sa.func.max(HISTORY.c.seq))).scalar() or 0
            for key, value in (("content", "demo"), ("demo_seq", str(last))):
                conn.execute(sa.delete(INFO).where(INFO.c.key == key))
                conn.execute(sa.insert(INFO).values(key=key, value=value))

    def reset_demo(self) -> None:
        """Empty a store that holds only demo data (or nothing).

        Raises:
            RecordsError: the store holds entries that are not the demo's.
        """
        if self.holds_entries() and not self.is_demo_only():
            raise RecordsError("error.records.not_demo", url=self.display_url)
        _metadata.drop_all(self.engine)
        self._create_schema()


def import_order(registers: list[str]) -> list[str]:
    """``registers`` ordered so that a register comes after those it references
    (process register, audit programme, findings, actions, ...)."""
    ordered: list[str] = []

    def visit(name: str, trail: tuple[str, ...] = ()) -> None:
        if name in ordered or name in trail or name not in registers:
            return
        for column in DATASETS[name].columns:
            if column.references:
                visit(column.references, (*trail, name))
        ordered.append(name)

    for name in registers:
        visit(name)
    return ordered


#: Inside :func:`snapshots_reused`: store url → (params, fingerprint, tables, info)
#: of the last snapshot; None outside.
_REUSED: dict[str, tuple[Params, str, dict[str, io.LoadedTable], dict[str, Any]]] | None = None


@contextlib.contextmanager
def snapshots_reused() -> Iterator[None]:
    """Within the block, :func:`snapshot` of a store whose records have not changed
    since its last snapshot returns copies of that one instead of reading and typing
    every register again (a batch snapshots the store in the gate and in prepare:
    ~0.7 s each on the demo). Any change to any record changes the fingerprint,
    and the store is read again."""
    global _REUSED
    outer, _REUSED = _REUSED, {}
    try:
        yield
    finally:
        _REUSED = outer


def _copy_table(table: io.LoadedTable) -> io.LoadedTable:
    return replace(
        table,
        frame=table.frame.copy(),
        problems=list(table.problems),
        notes=list(table.notes),
        present_columns=list(table.present_columns),
    )


def snapshot(params: Params) -> tuple[dict[str, io.LoadedTable], dict[str, Any]]:
    """The registers the store keeps as loader tables, and the store's fingerprint.

    One read transaction, so the tables and fingerprints are one consistent state.
    Nothing is created: without a store, ``({}, {})``. Each table's ``sha256`` is
    its register's fingerprint and ``source`` is ``<url>#<register>``.
    """
    if not store_exists(params):
        return {}, {}
    with open_store(params) as store, store._read() as conn:
        whole = store._fingerprint(conn, None)
        reused = _REUSED.get(store.url) if _REUSED is not None else None
        if reused is not None and reused[0] is params and reused[1] == whole:
            return {k: _copy_table(v) for k, v in reused[2].items()}, dict(reused[3])
        tables: dict[str, io.LoadedTable] = {}
        typing = _typing_key(params)
        for register in store._owned(conn):
            if register not in DATASETS:
                continue
            fingerprint = store._fingerprint(conn, register)
            tables[register] = io.LoadedTable(
                dataset=DATASETS[register],
                path=_sqlite_file(store.url) or Path(register),
                sha256=fingerprint,
                frame=_typed_register(store, conn, register, fingerprint, typing, params),
                source=f"{store.display_url}#{register}",
            )
        info = {"url": store.display_url, "fingerprint": whole, "registers": sorted(tables)}
        if _REUSED is not None:
            _REUSED[store.url] = (params, whole, tables, info)
            return {k: _copy_table(v) for k, v in tables.items()}, dict(info)
    return tables, info


#: Modules whose code decides how a register's records are typed.
_TYPING_MODULES = ("qmsnb.io", "qmsnb.contract", "qmsnb.records", "qmsnb.record_rules")


@functools.lru_cache(maxsize=1)
def _typing_code() -> str:
    """Our typing code and the libraries' versions, as a hash (part of the cache key)."""
    import numpy as np
    import pyarrow as pa

    digest = hashlib.sha256(f"{pd.__version__}|{np.__version__}|{pa.__version__}".encode())
    for name in _TYPING_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            digest.update(io.sha256_file(Path(spec.origin)).encode())
    return digest.hexdigest()


def _typing_key(params: Params) -> str:
    """:func:`_typing_code` and every params file's content, as a hash."""
    digest = hashlib.sha256(_typing_code().encode())
    for file in sorted(params.folder.glob("*.yaml")):
        digest.update(f"{file.name}:{io.sha256_file(file)}".encode())
    return digest.hexdigest()


def _typed_register(
    store: RecordsStore,
    conn: sa.Connection,
    register: str,
    fingerprint: str,
    typing: str,
    params: Params,
) -> pd.DataFrame:
    """A register typed (:meth:`RecordsStore._frame`), or as typed by an earlier run.

    Typing every register from its stored documents took ~0.5 s of every run on
    the demo (the gate's and prepare's snapshot); the result is kept under
    ``<outputs>/.cache/records/`` keyed by the register's fingerprint (every
    record's id, version and retirement), the params files and the typing code,
    so any change to any of them types it again.
    """
    folder = params.output_dir / ".cache" / "records"
    key = hashlib.sha256(f"{register}|{fingerprint}|{typing}".encode())
    path = folder / f"{register}-{key.hexdigest()[:32]}.parquet"
    if path.is_file():
        cached = io.read_frame_cache(path)
        if cached is not None:
            return cached
    frame = store._frame(conn, register)
    if io.write_frame_cache(path, frame) is not None:
        for older in folder.glob(f"{register}-*.parquet"):
            if older != path:
                io.remove_cache_file(older)
    return frame


def open_store(params: Params, url: str | None = None) -> RecordsStore:
    """Open (creating if needed) the records store named by ``params``.

    Args:
        params: the project's params (``organisation.records_url``; default
            ``sqlite:///<project root>/records/qmsnb.sqlite``).
        url: another SQLAlchemy URL (tests, migrations).

    Raises:
        RecordsError: the database cannot be reached or created.
    """
    return RecordsStore(url or store_url(params), params)
