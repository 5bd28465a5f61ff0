"""The fleet's datastore: SQLite by default, PostgreSQL for a team, through SQLAlchemy Core.

It never holds a key, not even encrypted: a key is its fingerprint (the keyed hash every
keysentry report uses), its kind and its redacted form. Re-verifying a key means reading its
blob again from the mirror, which the occurrence names.

- Migrations run themselves: `schema_version` holds the number of the last one applied; each
  opening applies the missing ones in a transaction (under an advisory lock on PostgreSQL,
  `BEGIN IMMEDIATE` on SQLite), so many workers opening at once migrate once.
- Many workers write at once: SQLite in WAL mode with a long busy timeout and every write
  transaction taken `IMMEDIATE` (no lock upgrade to deadlock on); PostgreSQL as it comes.
- One transaction per repository result: its row, its keys, its occurrences and its line in
  the scan are written together or not at all, so a worker killed mid-write leaves nothing
  half-written, and a retry of the same repository updates the same rows (unique keys on
  url, fingerprint and (repository, fingerprint, path)): nothing duplicated.
- Verification is claimed per key: a worker verifies a key only if its claim (a token and a
  time) takes; a claim older than the lease is taken over, so a dead worker's claim does not
  block the key forever, and a live one's keeps every other worker away from it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from keysentry.errors import ConfigError

CLAIM_LEASE = dt.timedelta(minutes=10)

metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer))

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False, unique=True),  # without credentials
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False, default=""),
    sa.Column("fork", sa.Boolean, nullable=False, default=False),
    sa.Column("archived", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.Text),  # ok | failed
    sa.Column("error", sa.Text),
    sa.Column("scanned_at", sa.Text),
    sa.Column("last_scan_id", sa.Integer),
)

scans = sa.Table(
    "scans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("finished_at", sa.Text),
    sa.Column("status", sa.Text, nullable=False),  # running | done | incomplete
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
)

scan_repositories = sa.Table(
    "scan_repositories",
    metadata,
    sa.Column("scan_id", sa.Integer, sa.ForeignKey("scans.id"), primary_key=True),
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("status", sa.Text, nullable=False),  # ok | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("blobs", sa.Integer, nullable=False, default=0),  # objects read by this scan
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("findings", sa.Integer, nullable=False, default=0),
    sa.Column("seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("error", sa.Text),
    sa.Column("finished_at", sa.Text, nullable=False),
)

keys = sa.Table(
    "keys",
    metadata,
    sa.Column("fingerprint", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("redacted", sa.Text, nullable=False),
    sa.Column("verdict", sa.Text),  # None: not verified (yet, or verification was off)
    sa.Column("detail", sa.Text),
    sa.Column("project", sa.Text),
    sa.Column("owner", sa.Text),
    sa.Column("key_id", sa.Text),
    sa.Column("revoke_command", sa.Text),
    sa.Column("verified_at", sa.Text),
    sa.Column("verified_scan_id", sa.Integer),
    sa.Column("claim", sa.Text),
    sa.Column("claimed_at", sa.Text),
    sa.Column("first_seen", sa.Text, nullable=False),
    sa.Column("last_seen", sa.Text, nullable=False),
)

occurrences = sa.Table(
    "occurrences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), nullable=False),
    sa.Column("fingerprint", sa.Text, sa.ForeignKey("keys.fingerprint"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("line", sa.Integer),
    sa.Column("blob", sa.Text),
    sa.Column("introduced_commit", sa.Text),
    sa.Column("introduced_author", sa.Text),
    sa.Column("introduced_date", sa.Text),
    sa.Column("removed_commit", sa.Text),
    sa.Column("removed_date", sa.Text),
    sa.Column("at_head", sa.Boolean),
    sa.Column("refs", sa.Text),  # JSON list of ref names
    sa.Column("commits", sa.Integer),
    sa.Column("in_history", sa.Boolean, nullable=False, default=True),
    sa.Column("first_seen", sa.Text, nullable=False),
    sa.Column("last_seen", sa.Text, nullable=False),
    sa.Column("last_scan_id", sa.Integer, nullable=False),
    sa.UniqueConstraint("repository_id", "fingerprint", "path"),
)


sa.Index("occurrences_by_key", occurrences.c.fingerprint)


def _create_v1(connection: Connection) -> None:
    """The first schema: every table above."""
    metadata.create_all(connection, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1]


class Occurrence(NamedTuple):
    """One key in one repository at one path, with its exposure timeline; no key."""

    fingerprint: str
    kind: str
    redacted: str
    path: str
    line: int
    blob: str | None
    introduced_commit: str | None
    introduced_author: str | None
    introduced_date: str | None
    removed_commit: str | None
    removed_date: str | None
    at_head: bool | None
    refs: tuple[str, ...]
    commits: int


class RepoResult(NamedTuple):
    """What one task learned about one repository: written in one transaction."""

    url: str
    name: str
    owner: str
    fork: bool
    archived: bool
    blobs: int
    bytes: int
    seconds: float
    attempts: int
    occurrences: tuple[Occurrence, ...]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def engine_for(url: str) -> Engine:
    """An engine for a store URL or a plain path (SQLite). `postgresql://` means psycopg 3."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError("--store takes a SQLite path or a postgresql:// URL") from None
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 120})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"--store: {parsed.get_backend_name()} is not supported (SQLite, PostgreSQL)")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's `begin` event issues BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=120000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _insert(connection: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class Store:
    """The datastore at `url`, migrated to the current schema when opened."""

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        try:
            self._migrate()
        except sa.exc.OperationalError as exc:
            raise ConfigError(f"--store: cannot open the datastore: {_reason(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def _migrate(self) -> None:
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(72317)"))
            schema_version.create(connection, checkfirst=True)
            current = connection.execute(sa.select(schema_version.c.version)).scalar()
            applied = current or 0
            if applied > len(MIGRATIONS):
                raise ConfigError(
                    f"--store: the datastore's schema (v{applied}) is newer than this keysentry"
                )
            for migration in MIGRATIONS[applied:]:
                migration(connection)
            if current is None:
                connection.execute(schema_version.insert().values(version=len(MIGRATIONS)))
            elif applied != len(MIGRATIONS):
                connection.execute(schema_version.update().values(version=len(MIGRATIONS)))

    @property
    def version(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(schema_version.c.version)).scalar_one())

    # -- scans -------------------------------------------------------------------------------

    def open_scan(self, source: str, urls: list[str], fresh: bool) -> tuple[int, set[str]]:
        """The scan to run: the last one if it was interrupted or left repositories failed,
        over the same source (then the urls it already finished are returned, to skip), else
        a new one."""
        with self.engine.begin() as connection:
            last = connection.execute(
                sa.select(scans.c.id, scans.c.status, scans.c.source)
                .order_by(scans.c.id.desc())
                .limit(1)
            ).first()
            unfinished = last is not None and last.status in ("running", "incomplete")
            if unfinished and not fresh and last is not None and last.source == source:
                connection.execute(
                    scans.update().where(scans.c.id == last.id).values(status="running")
                )
                done = connection.execute(
                    sa.select(repositories.c.url)
                    .join(scan_repositories)
                    .where(scan_repositories.c.scan_id == last.id)
                    .where(scan_repositories.c.status == "ok")
                ).scalars()
                return int(last.id), set(done) & set(urls)
            scan_id = connection.execute(
                scans.insert().values(
                    started_at=now(), status="running", source=source, total=len(urls)
                )
            ).inserted_primary_key
            assert scan_id is not None
            return int(scan_id[0]), set()

    def finish_scan(self, scan_id: int, complete: bool) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                scans.update()
                .where(scans.c.id == scan_id)
                .values(finished_at=now(), status="done" if complete else "incomplete")
            )

    def scan_rows(self, scan_id: int) -> list[dict[str, Any]]:
        """What each repository of a scan came to: url, status, attempts, blobs, bytes..."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(repositories.c.url, repositories.c.name, scan_repositories)
                .join(repositories)
                .where(scan_repositories.c.scan_id == scan_id)
                .order_by(repositories.c.name)
            )
            return [dict(row._mapping) for row in rows]

    # -- keys and verification -----------------------------------------------------------------

    def add_keys(self, found: Iterable[tuple[str, str, str]]) -> None:
        """Record (fingerprint, kind, redacted) of keys not yet known, unverified."""
        rows = [
            {"fingerprint": f, "kind": k, "redacted": r, "first_seen": now(), "last_seen": now()}
            for f, k, r in sorted(set(found))
        ]
        if not rows:
            return
        with self.engine.begin() as connection:
            statement = _insert(connection, keys).on_conflict_do_nothing()
            connection.execute(statement, rows)

    def claim(self, fingerprints: Iterable[str], token: str, scan_id: int) -> list[str]:
        """The keys this worker is to verify: those never verified, or left unknown by an
        earlier scan, whose claim it took (no live claim by another worker)."""
        taken = []
        stale = (dt.datetime.now(dt.timezone.utc) - CLAIM_LEASE).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        needs_verdict = sa.or_(
            keys.c.verdict.is_(None),
            sa.and_(
                keys.c.verdict == "unknown",
                sa.or_(keys.c.verified_scan_id.is_(None), keys.c.verified_scan_id != scan_id),
            ),
        )
        with self.engine.begin() as connection:
            for fingerprint in sorted(set(fingerprints)):
                done = connection.execute(
                    keys.update()
                    .where(keys.c.fingerprint == fingerprint)
                    .where(needs_verdict)
                    .where(sa.or_(keys.c.claim.is_(None), keys.c.claimed_at < stale))
                    .values(claim=token, claimed_at=now())
                )
                if done.rowcount == 1:
                    taken.append(fingerprint)
        return taken

    def set_verdicts(self, verdicts: dict[str, dict[str, Any]], token: str, scan_id: int) -> None:
        """Each claimed key's verdict (status, detail, project, owner, key_id,
        revoke_command), and its claim released."""
        with self.engine.begin() as connection:
            for fingerprint, info in verdicts.items():
                connection.execute(
                    keys.update()
                    .where(keys.c.fingerprint == fingerprint)
                    .where(keys.c.claim == token)
                    .values(
                        verdict=info["status"],
                        detail=info.get("detail"),
                        project=info.get("project_id") or info.get("project"),
                        owner=info.get("owner"),
                        key_id=info.get("key_id"),
                        revoke_command=info.get("revoke_command"),
                        verified_at=now(),
                        verified_scan_id=scan_id,
                        claim=None,
                        claimed_at=None,
                    )
                )

    def release(self, token: str) -> None:
        """Give back claims a worker took but could not fulfil."""
        with self.engine.begin() as connection:
            connection.execute(
                keys.update().where(keys.c.claim == token).values(claim=None, claimed_at=None)
            )

    # -- results -------------------------------------------------------------------------------

    def record(self, scan_id: int, result: RepoResult) -> None:
        """A repository's whole result, in one transaction."""
        stamp = now()
        with self.engine.begin() as connection:
            repo_id = self._repository(connection, result, stamp, "ok", None, scan_id)
            if result.occurrences:
                key_rows = {
                    o.fingerprint: {
                        "fingerprint": o.fingerprint,
                        "kind": o.kind,
                        "redacted": o.redacted,
                        "first_seen": stamp,
                        "last_seen": stamp,
                    }
                    for o in result.occurrences
                }
                statement = _insert(connection, keys)
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[keys.c.fingerprint],
                        set_={"last_seen": statement.excluded.last_seen},
                    ),
                    list(key_rows.values()),
                )
                rows = [_occurrence_row(o, repo_id, scan_id, stamp) for o in result.occurrences]
                statement = _insert(connection, occurrences)
                updated = {
                    name: statement.excluded[name]
                    for name in rows[0]
                    if name not in ("repository_id", "fingerprint", "path", "first_seen")
                }
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=["repository_id", "fingerprint", "path"], set_=updated
                    ),
                    rows,
                )
            # What this scan no longer finds was rewritten out of the history (a force push):
            # it stays on record, as gone, since whoever fetched before still has the key.
            connection.execute(
                occurrences.update()
                .where(occurrences.c.repository_id == repo_id)
                .where(occurrences.c.last_scan_id != scan_id)
                .values(in_history=False)
            )
            self._scan_line(
                connection,
                scan_id,
                repo_id,
                status="ok",
                attempts=result.attempts,
                blobs=result.blobs,
                bytes=result.bytes,
                findings=len(result.occurrences),
                seconds=result.seconds,
                error=None,
                finished_at=stamp,
            )

    def record_failure(self, scan_id: int, repo: RepoResult, error: str, attempts: int) -> None:
        """A repository that could not be scanned, with why: reported, never dropped."""
        stamp = now()
        with self.engine.begin() as connection:
            repo_id = self._repository(connection, repo, stamp, "failed", error, scan_id)
            self._scan_line(
                connection,
                scan_id,
                repo_id,
                status="failed",
                attempts=attempts,
                blobs=0,
                bytes=0,
                findings=0,
                seconds=0.0,
                error=error,
                finished_at=stamp,
            )

    @staticmethod
    def _repository(
        connection: Connection,
        result: RepoResult,
        stamp: str,
        status: str,
        error: str | None,
        scan_id: int,
    ) -> int:
        values = {
            "url": result.url,
            "name": result.name,
            "owner": result.owner,
            "fork": result.fork,
            "archived": result.archived,
            "status": status,
            "error": error,
            "scanned_at": stamp,
            "last_scan_id": scan_id,
        }
        statement = _insert(connection, repositories)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[repositories.c.url],
                set_={k: statement.excluded[k] for k in values if k != "url"},
            ),
            [values],
        )
        found = connection.execute(
            sa.select(repositories.c.id).where(repositories.c.url == result.url)
        ).scalar_one()
        return int(found)

    @staticmethod
    def _scan_line(connection: Connection, scan_id: int, repo_id: int, **values: Any) -> None:
        statement = _insert(connection, scan_repositories)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["scan_id", "repository_id"],
                set_={k: statement.excluded[k] for k in values},
            ),
            [{"scan_id": scan_id, "repository_id": repo_id, **values}],
        )

    # -- reading -------------------------------------------------------------------------------

    def exposures(self, since: str | None = None) -> Iterator[dict[str, Any]]:
        """Every occurrence with its key and repository, oldest introduction first;
        with `since` (an ISO date), only those the store first saw on or after it."""
        query = (
            sa.select(
                occurrences,
                keys.c.kind,
                keys.c.redacted,
                keys.c.verdict,
                keys.c.detail,
                keys.c.project,
                keys.c.owner,
                keys.c.key_id,
                keys.c.revoke_command,
                repositories.c.name.label("repository"),
                repositories.c.url.label("repository_url"),
            )
            .join(keys, keys.c.fingerprint == occurrences.c.fingerprint)
            .join(repositories, repositories.c.id == occurrences.c.repository_id)
            .order_by(
                occurrences.c.introduced_date,
                repositories.c.name,
                occurrences.c.path,
                occurrences.c.fingerprint,
            )
        )
        if since:
            query = query.where(occurrences.c.first_seen >= since)
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                record = dict(row._mapping)
                record["refs"] = json.loads(record["refs"] or "[]")
                yield record

    def scan_keys(self, scan_id: int) -> tuple[int, int]:
        """(distinct keys, live keys) among what this scan found, by their stored verdicts."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(keys.c.fingerprint, keys.c.verdict)
                .join(occurrences, occurrences.c.fingerprint == keys.c.fingerprint)
                .where(occurrences.c.last_scan_id == scan_id)
                .distinct()
            ).all()
        return len(rows), sum(1 for row in rows if row.verdict in ("live", "live-restricted"))

    def failures(self) -> list[dict[str, Any]]:
        """Repositories whose last scan failed, with why."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(repositories.c.name, repositories.c.url, repositories.c.error)
                .where(repositories.c.status == "failed")
                .order_by(repositories.c.name)
            )
            return [dict(row._mapping) for row in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                table.name: int(
                    connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
                for table in (repositories, scans, keys, occurrences)
            }


def _occurrence_row(o: Occurrence, repo_id: int, scan_id: int, stamp: str) -> dict[str, Any]:
    return {
        "repository_id": repo_id,
        "fingerprint": o.fingerprint,
        "path": o.path,
        "line": o.line,
        "blob": o.blob,
        "introduced_commit": o.introduced_commit,
        "introduced_author": o.introduced_author,
        "introduced_date": o.introduced_date,
        "removed_commit": o.removed_commit,
        "removed_date": o.removed_date,
        "at_head": o.at_head,
        "refs": json.dumps(list(o.refs)),
        "commits": o.commits,
        "in_history": True,
        "first_seen": stamp,
        "last_seen": stamp,
        "last_scan_id": scan_id,
    }


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
