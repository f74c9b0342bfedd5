"""Private service instances for the chaos scenarios that stop a service: the shared PostgreSQL on
5432 (and the shared broker on 5672) are NEVER stopped, restarted or reconfigured.

* :class:`PrivatePostgres` — a PostgreSQL cluster of the test's own: ``initdb`` into a fresh folder,
  served on a free loopback port by ``pg_ctl`` (as the ``postgres`` OS user when the test runs as
  root, which PostgreSQL refuses to run as), restarted at will, removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import free_port


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        if not candidates:
            pytest.fail(f"{name} is not installed: the PostgreSQL restart scenario needs the server binaries")
        found = str(candidates[-1])
    return found


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder on a free port (trust authentication, loopback only)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tradeswarm-chaos-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def admin_dsn(self) -> str:
        """DSN of the ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        """DSN of ``database`` on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

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


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL cluster (see :class:`PrivatePostgres`)."""
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
