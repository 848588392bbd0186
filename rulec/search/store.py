"""Where a search keeps every rule it evaluated: SQLite (a file, the default)
or PostgreSQL (a URL), through SQLAlchemy Core.

Tables (docs/search.md has the full schema):
  runs     one row per run: its settings and strategy, found again by `key`
  rules    one row per rule: text, hashes, parent and mutation, how many
           hurdles it passed, why it failed, score, size, timings, worker
  results  one row per (rule, task, seed) a rule was trained on

The coordinator is the only writer. Each batch of finished rules is one
transaction, so a run killed at any moment keeps every batch written before.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .space import SpaceError


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
    return meta, runs, rules, results


RULE_COLUMNS = ("idx", "generation", "text", "canon_hash", "func_hash", "parent", "mutation",
                "passed", "failure", "score", "fresh", "spread", "loss", "size", "duplicate",
                "duplicate_of", "seconds", "timings", "worker", "created")


class Store:
    """A search's database (see the module docstring)."""

    def __init__(self, db: str, must_exist: bool = False) -> None:
        sa = _sqlalchemy()
        self.sa = sa
        self.url = database_url(db)
        if self.url.startswith("sqlite:///") and must_exist:
            path = Path(self.url[len("sqlite:///"):])
            if not path.exists():
                raise SpaceError(f"{db}: no such database")
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
                cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                cursor.execute("PRAGMA synchronous=NORMAL")  # WAL keeps commits atomic
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()
        self.meta, self.runs, self.rules, self.results = _tables(sa)
        try:
            self.meta.create_all(self.engine)
        except sa.exc.OperationalError as exc:
            raise SpaceError(f"cannot open the database {db}: {exc.orig}") from None
        except sa.exc.DatabaseError as exc:
            raise SpaceError(f"{db}: not a rulec search database ({exc.orig})") from None

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- runs

    def run(self, key: str, settings: dict, config: dict, version: str) -> tuple[int, bool]:
        """(run id, whether it is new) of the run with `key`, made if missing."""
        sa = self.sa
        with self.engine.begin() as connection:
            row = connection.execute(sa.select(self.runs.c.id).where(
                self.runs.c.key == key)).first()
            if row is not None:
                return row[0], False
            result = connection.execute(self.runs.insert().values(
                key=key, settings=json.dumps(settings, sort_keys=True),
                config=json.dumps(config, sort_keys=True), created=time.time(),
                version=version))
            return result.inserted_primary_key[0], True

    def list_runs(self) -> list[dict]:
        sa = self.sa
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(self.runs).order_by(self.runs.c.id)).all()
        return [dict(row._mapping) for row in rows]

    # ---------------------------------------------------------------- rules

    def write(self, run: int, records: list[dict]) -> None:
        """Store finished rules and their results in one transaction."""
        if not records:
            return
        now = time.time()
        rule_rows, result_rows = [], []
        for r in records:
            row = {name: r.get(name) for name in RULE_COLUMNS}
            row["run"] = run
            row["timings"] = json.dumps(r.get("timings") or {})
            row["seconds"] = float(sum((r.get("timings") or {}).values()))
            row["score"] = float(r.get("score") or 0.0)
            row["created"] = r.get("created") or now
            rule_rows.append(row)
            if not r.get("duplicate"):
                for result in r.get("results") or ():
                    result_rows.append({"run": run, "idx": r["idx"], **result})
        with self.engine.begin() as connection:
            connection.execute(self.rules.insert(), rule_rows)
            if result_rows:
                connection.execute(self.results.insert(), result_rows)

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
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
