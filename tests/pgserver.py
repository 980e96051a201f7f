"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free
port, one fresh database per test. Run as the ``postgres`` user when the tests run as root (initdb refuses root).

Missing binaries fail the tests (CI must install the Debian package ``postgresql``); a developer without
PostgreSQL may set ``LOOKALIKE_TEST_SKIP_POSTGRES=1`` to skip them instead.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

SKIP_ENV = "LOOKALIKE_TEST_SKIP_POSTGRES"
USER = "lookalike"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb, else the folder of an initdb on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A running server; :meth:`new_database` gives a SQLAlchemy URL of an empty database."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="lookalike-pg-"))
        self.port = free_port()
        self._counter = itertools.count()
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._owner:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._owner:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}\n{log}")

    def start(self) -> None:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")
        atexit.register(self.stop)  # also when the session ends without tearing its fixtures down

    def stop(self) -> None:
        if not self.root.exists():
            return
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"test_{next(self._counter)}"
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        return self.url(name)


def start_server() -> PostgresServer:
    """Start a server, or fail (skip only when the developer opted out) when PostgreSQL is not installed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = ("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on "
                   f"PATH: install them with `apt-get install postgresql` (make system-deps), or set {SKIP_ENV}=1")
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    server = PostgresServer(bin_dir)
    server.start()
    return server
