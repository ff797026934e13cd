"""The dedicated PostgreSQL cluster of the benchmark (Debian `pg_createcluster`), pinned to the server CPU.

The machine's main cluster is never touched. Databases are recreated for each measurement.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import hostmon
from harness import SERVER_CPU, log, run

ROLES = {"peerbench": "peerbench", "sessionward": "sessionward"}  # role -> password (loopback only)


@dataclass
class Cluster:
    version: str
    name: str
    port: int
    started_here: bool = False

    @property
    def postmaster(self) -> int:
        pid = hostmon.find_postmaster(self.port)
        if pid is None:
            raise SystemExit(f"no PostgreSQL listens on port {self.port}")
        return pid

    def psql(self, sql: str, database: str = "postgres", timeout: float = 120) -> str:
        command = ["runuser", "-u", "postgres", "--", "psql", "-p", str(self.port), "-d", database]
        command += ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        return subprocess.run(command, input=sql, check=True, text=True, capture_output=True, timeout=timeout).stdout

    def recreate(self, database: str, owner: str) -> str:
        """Drop and create `database`; returns its URL for `owner`."""
        self.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE);")
        self.psql(f"CREATE DATABASE {database} OWNER {owner};")
        return f"postgresql://{owner}:{ROLES[owner]}@127.0.0.1:{self.port}/{database}"

    def drop(self, database: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE);")

    def version_string(self) -> str:
        return self.psql("SHOW server_version;").strip()

    def stop_if_started_here(self) -> None:
        if self.started_here:
            run(["pg_ctlcluster", self.version, self.name, "stop"], timeout=120)


def _status(version: str, name: str) -> str | None:
    listing = subprocess.run(["pg_lsclusters", "-h"], check=True, text=True, capture_output=True, timeout=30).stdout
    for line in listing.splitlines():
        fields = line.split()
        if fields[:2] == [version, name]:
            return fields[3]
    return None


def ensure_cluster(version: str, name: str, port: int) -> Cluster:
    """Create (once) and start the cluster under taskset, so the postmaster and every backend share CPU 0."""
    cluster = Cluster(version, name, port)
    status = _status(version, name)
    if status is None:
        run(["pg_createcluster", version, name, "--port", str(port)], timeout=180)
    if status != "online":
        run(["taskset", "-c", SERVER_CPU, "pg_ctlcluster", version, name, "start"], timeout=120)
        cluster.started_here = True
    fixed = hostmon.enforce_affinity([cluster.postmaster], [int(SERVER_CPU)])
    if fixed:
        log(f"re-pinned {len(fixed)} PostgreSQL process(es) of {version}/{name} to CPU {SERVER_CPU}")
    for role, password in ROLES.items():
        cluster.psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; END IF; END $$;"
        )
    return cluster
