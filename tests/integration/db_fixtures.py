"""Database fixtures for the storage tests: a fresh database per test, and ways to lose it.

With ``TEST_DATABASE_URL`` set (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
each test gets its own PostgreSQL database, created from the server's ``postgres``
database under a random name and dropped afterwards; without it, an SQLite file in the
test's ``tmp_path``. Import the fixtures into a test module to use them.

Outages are real: for PostgreSQL the recorder connects through `TcpProxy`, a small TCP
forwarder the test stops (every connection cut, new ones refused) and starts again on the
same port; for SQLite another connection holds the write lock (`SqliteWriteLock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from realtime_voice.storage.database import normalize_url
from realtime_voice.storage.migrate import upgrade_database

__all__ = [
    "Outage",
    "SqliteWriteLock",
    "TcpProxy",
    "database_url",
    "is_postgres",
    "migrated_url",
    "outage",
]


def _test_url() -> URL | None:
    raw = os.environ.get("TEST_DATABASE_URL", "").strip()
    return normalize_url(raw) if raw else None


def is_postgres(url: str | URL) -> bool:
    """The URL names a PostgreSQL database."""
    return normalize_url(url).get_backend_name() == "postgresql"


@contextlib.contextmanager
def _fresh_postgres_database(base: URL) -> Iterator[URL]:
    name = f"rv_test_{secrets.token_hex(6)}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database for this test (PostgreSQL when TEST_DATABASE_URL is set)."""
    base = _test_url()
    if base is None:
        yield f"sqlite:///{tmp_path / 'db' / 'calls.db'}"
        return
    with _fresh_postgres_database(base) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """`database_url`, migrated to the newest revision."""
    upgrade_database(database_url)
    return database_url


class TcpProxy:
    """Forwards TCP connections to ``target``; `stop` makes the target unreachable.

    Args:
        target_host: where to forward.
        target_port: its port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (on the same port as before after a `stop`)."""
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._tasks.difference_update(pipes)
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


class SqliteWriteLock:
    """Holds an SQLite file's write lock from another connection: writers get "locked"."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def acquire(self) -> None:
        """Take the lock (``BEGIN EXCLUSIVE``)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        self._conn = conn

    def release(self) -> None:
        """Give it back."""
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None


class Outage(Protocol):
    """A way to make the recorder's database unreachable and bring it back."""

    url: str

    async def begin(self) -> None:
        """The database is now unreachable for writes."""
        ...

    async def end(self) -> None:
        """It is back."""
        ...


class _PostgresOutage:
    def __init__(self, proxy: TcpProxy, url: str) -> None:
        self.proxy = proxy
        self.url = url

    async def begin(self) -> None:
        await self.proxy.stop()

    async def end(self) -> None:
        await self.proxy.start()


class _SqliteOutage:
    def __init__(self, lock: SqliteWriteLock, url: str) -> None:
        self.lock = lock
        self.url = url

    async def begin(self) -> None:
        self.lock.acquire()

    async def end(self) -> None:
        self.lock.release()


@pytest.fixture
async def outage(migrated_url: str) -> AsyncIterator[Outage]:
    """The migrated database as the recorder should reach it (``outage.url``), breakable.

    PostgreSQL: ``outage.url`` goes through a `TcpProxy`. SQLite: the same file, whose
    write lock `Outage.begin` takes from another connection.
    """
    url = normalize_url(migrated_url)
    if url.get_backend_name() == "postgresql":
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        through = url.set(host="127.0.0.1", port=proxy.port)
        try:
            yield _PostgresOutage(proxy, through.render_as_string(hide_password=False))
        finally:
            await proxy.stop()
        return
    lock = SqliteWriteLock(Path(url.database or ""))
    try:
        yield _SqliteOutage(lock, migrated_url)
    finally:
        lock.release()
