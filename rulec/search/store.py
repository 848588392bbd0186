"""Where a search keeps every rule it evaluated: SQLite (a file, the default)
or PostgreSQL (a URL), through SQLAlchemy Core.

Tables (docs/search.md has the full schema):
  runs     one row per run: its settings and strategy, found again by `key`
  rules    one row per rule: text, hashes, parent and mutation, how many
           hurdles it passed, why it failed, score, size, timings, worker
  results  one row per (rule, task, seed) a rule was trained on
  rungs    one row per (rule, rung) of successive halving a rule was scored
           on ([screen] rungs): what a resumed coordinator decides
           promotions from

  schema   one row: the layout's version (SCHEMA_VERSION). A database of an
           older layout is migrated when opened for writing (MIGRATIONS)
           and read as it is; one of a newer layout is refused, naming
           both versions, instead of being misread.

The coordinator is the only writer. Each batch of finished rules is one
transaction, so a run killed at any moment keeps every batch written before.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from ..errors import RulecError
from ..pool import known_gone
from .space import SpaceError

#: A coordinator's lease on its run is renewed at every batch it writes; one
#: not renewed for this long is stale (its coordinator died on another host).
LEASE_SECONDS = 300.0


class StoreError(RulecError):
    """The database failed under a running search (a full disk, a lost
    connection, a corrupted file, another coordinator on the same run).
    Every batch written before is kept."""


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _sqlalchemy():
    try:
        import sqlalchemy
    except ImportError:
        raise SpaceError("rulec search stores results with SQLAlchemy: "
                         "pip install 'rulec[search]'") from None
    return sqlalchemy


def database_url(db: str) -> str:
    """A SQLAlchemy URL for a --db argument: a file path (SQLite), sqlite:///...,
    or postgresql://... (psycopg 3)."""
    if db.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    if "://" in db:
        return db
    return "sqlite:///" + str(Path(db))


def _sqlite_path(url: str) -> tuple[Path, dict]:
    """The file of a sqlite:/// URL and its query (`?mode=ro`)."""
    rest = url[len("sqlite:///"):]
    path, _, query = rest.partition("?")
    if path.startswith("file:"):
        path = path[len("file:"):]
    return Path(path), {k: v[-1] for k, v in parse_qs(query).items()}


def _holder() -> str:
    """Who holds a lease: host, process and a token of its own (two Stores in
    one process are two holders)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _alive(holder: str) -> bool:
    """Whether a lease's holder (`host:pid:token`) still runs (known only on
    this host; a holder on another host counts as alive until its lease goes
    stale)."""
    host, pid = (holder.rsplit(":", 2) + ["", ""])[:2]
    return not known_gone(host, pid)


#: The layout this rulec writes. 1: runs, rules, results, leases (before
#: the schema table); 2: the schema table; 3: the rungs table.
SCHEMA_VERSION = 3


def _stamp(connection, sa, schema, version: int) -> None:
    connection.execute(schema.delete())
    connection.execute(schema.insert().values(version=version))


#: version -> the function that migrates a database from it to version + 1
#: (in one transaction, with the connection and the tables).
MIGRATIONS = {
    1: lambda connection, sa, tables: None,  # the layout is unchanged: stamping is all
    2: lambda connection, sa, tables: None,  # a new table, which create_all made
}


def _tables(sa):
    meta = sa.MetaData()
    runs = sa.Table(
        "runs", meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
    )
    rules = sa.Table(
        "rules", meta,
        sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("canon_hash", sa.String(32), nullable=False),
        sa.Column("func_hash", sa.String(32)),
        sa.Column("parent", sa.BigInteger),
        sa.Column("mutation", sa.String(32)),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("failure", sa.Text),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("fresh", sa.Integer),
        sa.Column("spread", sa.Float),
        sa.Column("loss", sa.Float),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("duplicate", sa.String(16)),
        sa.Column("duplicate_of", sa.BigInteger),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("timings", sa.Text, nullable=False),
        sa.Column("worker", sa.String(128)),
        sa.Column("created", sa.Float, nullable=False),
        sa.Index("rules_by_score", "run", "score"),
    )
    results = sa.Table(
        "results", meta,
        sa.Column("run", sa.Integer, primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("seed", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("accuracy", sa.Float, nullable=False),
        sa.Column("loss", sa.Float),
        sa.Column("epochs", sa.Integer, nullable=False),
        sa.Column("steps", sa.BigInteger, nullable=False),
        sa.Column("failure", sa.Text),
    )
    leases = sa.Table(
        "leases", meta,
        sa.Column("run", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("renewed", sa.Float, nullable=False),
    )
    schema = sa.Table(
        "schema", meta,
        sa.Column("version", sa.Integer, nullable=False),
    )
    rungs = sa.Table(
        "rungs", meta,
        sa.Column("run", sa.Integer, primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rung", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("loss", sa.Float),
    )
    return meta, runs, rules, results, leases, schema, rungs


RULE_COLUMNS = ("idx", "generation", "text", "canon_hash", "func_hash", "parent", "mutation",
                "passed", "failure", "score", "fresh", "spread", "loss", "size", "duplicate",
                "duplicate_of", "seconds", "timings", "worker", "created")


#: A rule's columns that Store.write copies from its record as they are,
#: then the ones it makes (in _RULE_INSERT's order)
_RULE_MADE = ("run", "timings", "seconds", "score", "created")
_RULE_PLAIN = tuple(name for name in RULE_COLUMNS if name not in _RULE_MADE)
_RULE_INSERT = (*_RULE_PLAIN, *_RULE_MADE)


def _timings_json(timings: dict) -> str:
    """json.dumps(timings) for a dict of hurdle names (plain words) to
    seconds: the same text, a third of the time (the coordinator writes one
    per rule drawn); anything else goes through json."""
    parts = []
    for key, value in timings.items():
        if not (type(key) is str and key.isascii() and key.isidentifier()
                and type(value) is float and math.isfinite(value)):
            return json.dumps(timings)
        parts.append(f'"{key}": {value!r}')
    return "{" + ", ".join(parts) + "}"


class Store:
    """A search's database (see the module docstring). `readonly` opens it
    for reading only (report, export): nothing is created or changed, so a
    database on read-only storage can be read."""

    def __init__(self, db: str, readonly: bool = False) -> None:
        sa = _sqlalchemy()
        self.sa, self.db, self.readonly = sa, db, readonly
        self.url = database_url(db)
        self.leased: int | None = None
        self.holder = _holder()
        sqlite = self.url.startswith("sqlite:///")
        if sqlite:
            path, query = _sqlite_path(self.url)
            if readonly and str(path) not in ("", ":memory:") \
                    and not path.exists():
                raise SpaceError(f"{db}: no such database")
            if readonly or query.get("mode") == "ro":
                self.readonly = readonly = True
                # a URI connection: sqlite3 then honours mode=ro (and immutable)
                self.url = f"sqlite:///file:{path}?mode=ro&uri=true"
        if self.url.startswith("postgresql"):
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise SpaceError("PostgreSQL needs psycopg 3: pip install 'rulec[postgres]'") \
                    from None
        try:
            self.engine = sa.create_engine(self.url)
        except Exception as exc:  # a malformed URL, an unknown dialect
            raise SpaceError(f"--db {db}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(connection, _record):
                cursor = connection.cursor()
                if not readonly:
                    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL keeps commits atomic
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()
        tables = _tables(sa)
        (self.meta, self.runs, self.rules, self.results, self.leases, self.schema,
         self.rungs) = tables
        if readonly:
            try:
                names = set(sa.inspect(self.engine).get_table_names())
            except sa.exc.OperationalError:
                if not sqlite:
                    raise
                # a WAL database on storage where SQLite cannot make its -shm
                # file: read it as immutable (no writer can be running there)
                self.engine.dispose()
                self.engine = sa.create_engine(f"sqlite:///file:{path}?immutable=1&uri=true")
                with self.guard("read"):
                    names = set(sa.inspect(self.engine).get_table_names())
            if not {"runs", "rules", "results"} <= names:
                raise SpaceError(f"{db}: not a rulec search database (no runs and rules tables)")
            self._check_version(names)
            return
        for attempt in range(3):  # two coordinators starting at once race to create
            try:
                self.meta.create_all(self.engine)
                break
            except sa.exc.OperationalError as exc:
                if "already exists" in str(exc) and attempt < 2:
                    continue
                raise SpaceError(f"cannot open the database {db}: {_first_line(exc)}") \
                    from None
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
            except sa.exc.DatabaseError as exc:
                raise SpaceError(f"{db}: not a rulec search database ({_first_line(exc)})") \
                    from None
        self._migrate()

    def version(self) -> int:
        """The layout version of the database (1 if it has no schema table)."""
        sa = self.sa
        with self.guard("read"), self.engine.connect() as connection:
            if "schema" not in set(sa.inspect(connection).get_table_names()):
                return 1
            row = connection.execute(sa.select(self.schema.c.version)).first()
        return 1 if row is None else int(row[0])

    def _check_version(self, names=None) -> int:
        version = self.version()
        if version > SCHEMA_VERSION:
            raise SpaceError(f"{self.db}: made by a newer rulec (database layout {version}; "
                             f"this rulec reads up to {SCHEMA_VERSION}): upgrade rulec "
                             "(pip install -U .) to read or resume it")
        return version

    def _migrate(self) -> None:
        """Bring an older layout up to SCHEMA_VERSION, one step per
        transaction (a step killed halfway leaves the version before it)."""
        sa = self.sa
        tables = (self.runs, self.rules, self.results, self.leases, self.schema)
        version = self._check_version()
        with self.guard("migrate"), self.engine.begin() as connection:
            if connection.execute(sa.select(sa.func.count()).select_from(
                    self.schema)).scalar_one() == 0 and version == 1:
                is_new = connection.execute(sa.select(sa.func.count()).select_from(
                    self.runs)).scalar_one() == 0
                if is_new:  # a database made just now: the current layout
                    _stamp(connection, sa, self.schema, SCHEMA_VERSION)
                    return
        while version < SCHEMA_VERSION:
            with self.guard("migrate"), self.engine.begin() as connection:
                MIGRATIONS[version](connection, sa, tables)
                _stamp(connection, sa, self.schema, version + 1)
            version += 1

    @contextlib.contextmanager
    def guard(self, action: str):
        """Database failures as one-line StoreErrors that say nothing is lost."""
        sa = self.sa
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            if (isinstance(exc, sa.exc.IntegrityError) and action == "write"
                    and "unique" in str(exc.orig).lower()):
                cause = ("another coordinator is writing the same run (a rule it wrote "
                         "is already stored)")
            else:
                cause = _first_line(exc)
            raise StoreError(f"the database {self.db} failed to {action}: {cause}. Every batch "
                             "written before is kept: run the same command to resume") from None

    def close(self) -> None:
        if self.leased is not None:
            with contextlib.suppress(Exception):
                self.release(self.leased)
        self.engine.dispose()

    # ----------------------------------------------------------------- runs

    def run(self, key: str, settings: dict, config: dict, version: str) -> tuple[int, bool]:
        """(run id, whether it is new) of the run with `key`, made if missing."""
        sa = self.sa
        with self.guard("find the run"), self.engine.begin() as connection:
            row = connection.execute(sa.select(self.runs.c.id).where(
                self.runs.c.key == key)).first()
            if row is not None:
                return row[0], False
            result = connection.execute(self.runs.insert().values(
                key=key, settings=json.dumps(settings, sort_keys=True),
                config=json.dumps(config, sort_keys=True), created=time.time(),
                version=version))
            return result.inserted_primary_key[0], True

    def lease(self, run: int) -> None:
        """Take run `run` for this process, or refuse (StoreError) when another
        live coordinator holds it: one writer per run. A lease whose holder
        died on this host, or that was not renewed for LEASE_SECONDS, is taken
        over."""
        sa, me, now = self.sa, self.holder, time.time()
        table = self.leases
        with self.guard("take the run"), self.engine.begin() as connection:
            row = connection.execute(sa.select(table.c.holder, table.c.renewed)
                                     .where(table.c.run == run)).first()
            if row is None:
                try:
                    with connection.begin_nested():
                        connection.execute(table.insert().values(run=run, holder=me,
                                                                 renewed=now))
                except sa.exc.IntegrityError:
                    row = connection.execute(sa.select(table.c.holder, table.c.renewed)
                                             .where(table.c.run == run)).first()
            if row is not None:
                holder, renewed = row
                if holder != me and _alive(holder) and now - renewed < LEASE_SECONDS:
                    raise StoreError(
                        f"run {run} in {self.db} is being searched by another coordinator "
                        f"({holder}, last seen {now - renewed:.0f} s ago); wait for it to "
                        "finish or stop it, or search another run (other settings or --seed) "
                        "in the same database")
                connection.execute(table.update().where(table.c.run == run)
                                   .values(holder=me, renewed=now))
        self.leased = run

    def release(self, run: int) -> None:
        table = self.leases
        with self.engine.begin() as connection:
            connection.execute(table.delete().where((table.c.run == run)
                                                    & (table.c.holder == self.holder)))
        self.leased = None

    def list_runs(self) -> list[dict]:
        sa = self.sa
        with self.guard("read"), self.engine.connect() as connection:
            rows = connection.execute(sa.select(self.runs).order_by(self.runs.c.id)).all()
        return [dict(row._mapping) for row in rows]

    def count(self, run: int) -> int:
        """How many rules run `run` has stored."""
        sa = self.sa
        query = sa.select(sa.func.count()).select_from(self.rules).where(
            self.rules.c.run == run)
        with self.guard("read"), self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # ---------------------------------------------------------------- rules

    def write(self, run: int, records: list[dict]) -> None:
        """Store finished rules and their results in one transaction (and renew
        this coordinator's lease on the run). The coordinator stores every
        rule a search draws, so a rule's row goes straight to a tuple in
        _RULE_INSERT's order, its timings to JSON by _timings_json."""
        if not records:
            return
        now = time.time()
        rule_rows, result_rows, rung_rows = [], [], []
        for r in records:
            get = r.get
            timings = get("timings") or {}
            rule_rows.append((
                *[get(name) for name in _RULE_PLAIN], run, _timings_json(timings),
                float(sum(timings.values())), float(get("score") or 0.0),
                get("created") or now))
            if not get("duplicate"):
                for result in get("results") or ():
                    result_rows.append({"run": run, "idx": r["idx"], **result})
                for rung, (score, loss) in enumerate(get("rungs") or ()):
                    rung_rows.append({"run": run, "idx": r["idx"], "rung": rung,
                                      "score": float(score), "loss": loss})
        with self.guard("write"), self.engine.begin() as connection:
            self._insert(connection, self.rules, _RULE_INSERT, rule_rows)
            for table, rows in ((self.results, result_rows), (self.rungs, rung_rows)):
                if rows:  # dicts of the same keys: a learner's few rows
                    names = list(rows[0])
                    self._insert(connection, table, names,
                                 [tuple(row[name] for name in names) for row in rows])
            if self.leased == run:
                connection.execute(self.leases.update().where(self.leases.c.run == run)
                                   .values(renewed=now))

    def _insert(self, connection, table, names, rows: list[tuple]) -> None:
        """`rows` (tuples of plain Python values, in the order of `names`)
        into `table`, in one executemany of the driver's own SQL. Through
        table.insert(), SQLAlchemy spent four times the driver's time on each
        row's parameters, and the coordinator stores every rule a search
        draws (the columns' types need no conversion: numbers and text)."""
        dialect = self.engine.dialect
        quote = dialect.identifier_preparer.quote
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) "
               f"VALUES ({', '.join([marker] * len(names))})")
        connection.exec_driver_sql(sql, rows)

    def results_of(self, run: int, idx: int) -> list[dict]:
        """A rule's results: one row per task and seed (task, seed, accuracy,
        loss, epochs, steps, failure), by task then seed."""
        sa = self.sa
        table = self.results
        query = sa.select(table.c.task, table.c.seed, table.c.accuracy, table.c.loss,
                          table.c.epochs, table.c.steps, table.c.failure).where(
            (table.c.run == run) & (table.c.idx == idx)).order_by(table.c.task, table.c.seed)
        with self.guard("read"), self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def rung_scores_of(self, run: int) -> list[dict]:
        """Every (idx, rung, score, loss) of successive halving stored for a
        run."""
        sa = self.sa
        table = self.rungs
        query = sa.select(table.c.idx, table.c.rung, table.c.score, table.c.loss).where(
            table.c.run == run)
        with self.guard("read"), self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def rules_of(self, run: int, columns=RULE_COLUMNS, order: str = "idx",
                 limit: int | None = None, where=None) -> list[dict]:
        sa = self.sa
        table = self.rules
        query = sa.select(*[table.c[name] for name in columns]).where(table.c.run == run)
        if where is not None:
            query = query.where(where(table.c))
        if order == "idx":
            query = query.order_by(table.c.idx)
        else:
            query = query.order_by(table.c.score.desc(), table.c.size, table.c.idx)
        if limit is not None:
            query = query.limit(limit)
        with self.guard("read"), self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
