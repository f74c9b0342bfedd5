"""Private service instances for the tests that stop or restart a service (``tests/chaos``,
``tests/orderpath``): the shared PostgreSQL on 5432, the shared InfluxDB on 8086 (and the shared broker
on 5672, see ``tests/stackkit.py`` ``PrivateBroker``) are NEVER stopped, restarted or reconfigured.

* :class:`PrivatePostgres` — a PostgreSQL cluster of the test's own: ``initdb`` into a fresh folder,
  served on a free loopback port by ``pg_ctl`` (as the ``postgres`` OS user when the test runs as
  root, which PostgreSQL refuses to run as), restarted at will, removed afterwards.
* :class:`PrivateInflux` — an ``influxd`` (1.x) of the test's own on free ports, to take down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.factories import free_port

POSTGRES_LIB = Path("/usr/lib/postgresql")
"""Where Debian installs the PostgreSQL server binaries (``<version>/bin``), which are not on PATH."""


def _bin(name: str) -> str:
    """The path of a PostgreSQL server binary; FAILS the test (never skips) when it is missing."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(POSTGRES_LIB.glob(f"*/bin/{name}"))
        if not candidates:
            pytest.fail(f"{name} is not installed: the PostgreSQL restart tests need the server binaries")
        found = str(candidates[-1])
    return found


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder on a free port (trust authentication, loopback only)."""

    def __init__(self) -> None:
        initdb = _bin("initdb")
        self.base = Path(tempfile.mkdtemp(prefix="tradeswarm-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        try:
            if self._as_postgres:
                shutil.chown(self.base, "postgres", "postgres")
            self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    @property
    def admin_dsn(self) -> str:
        """DSN of the ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        """DSN of ``database`` on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, database: str) -> str:
        """Create ``database`` on this cluster; return its DSN."""
        import asyncpg

        admin = await asyncpg.connect(self.admin_dsn, timeout=30)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        return self.dsn(database)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self.base)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}")
        return result

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options, "-w",
                  "-t", "60", *extra, action)  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._ctl("start")

    def restart(self) -> None:
        """Stop (fast: every connection is cut) and start again."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the server (immediate: nothing of it must outlive the test)."""
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-m", "immediate")

    def remove(self) -> None:
        """Stop and delete the cluster."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateInflux:
    """An InfluxDB 1.x server (``influxd``) of the test's own: temporary folder, free loopback ports."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tradeswarm-influx-"))
        self.port = free_port()
        rpc = free_port()
        self.config = self.base / "influxdb.conf"
        self.config.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{self.base}/meta"\n'
            f'[data]\n  dir = "{self.base}/data"\n  wal-dir = "{self.base}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start ``influxd`` and wait until it answers ``/ping``."""
        exe = shutil.which("influxd")
        if exe is None:
            pytest.fail("influxd is not installed: the InfluxDB outage scenario needs it")
        with (self.base / "influxd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [exe, "-config", str(self.config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"private influxd did not start: {(self.base / 'influxd.log').read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def count(self, database: str, query: str) -> int:
        """The first value of an InfluxQL ``SELECT count(...)`` (0 when nothing or unreachable)."""
        try:
            answer = httpx.get(f"{self.url}/query", params={"db": database, "q": query}, timeout=10).json()
            return int(answer["results"][0]["series"][0]["values"][0][1])
        except (httpx.HTTPError, KeyError, IndexError, ValueError, TypeError):
            return 0

    def remove(self) -> None:
        """Stop and delete everything."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
