"""sessionward side by side with the peer (Django + DRF + SimpleJWT), in one run; writes bench/RESULTS.md.

Both servers start the way a user starts them (`sessionward serve --workers 2`, gunicorn with 2 workers) and are
pinned to CPU 0 with PostgreSQL; the load generator runs on CPU 1. Scenarios, each on SQLite and PostgreSQL:

  compare  refresh-only (16 clients) and mixed (10 protected GETs per refresh): peer, then sessionward;
           sessionward's refresh-only run is repeated while bench/login_storm.py keeps 10 logins in flight,
           and its protected-only rate (GET /me, almost no refreshes) is taken for the hello comparison
  hello    bench/hello.py, the same stack with no work behind the endpoints, driven the same way: a run of it
           after each of sessionward's protected-only runs (with compare)
  scale    PostgreSQL: refresh-only on 10 k refresh-token rows and on 1 M sessions / 5 M refresh tokens, a run of
           each in turn

    python3 bench/run.py                              # what `make bench` runs
    python3 bench/run.py --runs 3 --duration 20       # the full run
    python3 bench/run.py --scenarios scale            # only the scale scenario

Raw results (every load generator JSON, server logs, summary.json) go to --out-dir, not into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
import pg
import report
import scale
from harness import BENCH, ROOT, Load, Server, log, measure, start_server, stop_server, wait_quiet, worker_rss_mb

SESSIONWARD = ROOT / ".venv" / "bin" / "sessionward"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
UNLIMITED = "1000000/minute"
PROTECTED_ONLY_EVERY = 100_000  # mixed mode with this K: every request of the window is a GET /me
SCALE_BASELINE = (2_000, 10_000)  # sessions, refresh tokens


@dataclass
class Bench:
    args: argparse.Namespace
    out: Path
    work: Path
    cluster: pg.Cluster | None = None
    results: dict[str, Any] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)

    def port(self, offset: int) -> int:
        return int(self.args.port_base) + offset

    def show(self, name: str, command: list[str]) -> None:
        """Keep `command` for the report, with paths relative to the repository."""
        self.commands[name] = " ".join(command).replace(f"{ROOT}/", "").replace(str(self.out), "$OUT")

    @property
    def pg(self) -> pg.Cluster:
        if self.cluster is None:
            raise SystemExit("this scenario needs PostgreSQL")
        return self.cluster


# --- servers -------------------------------------------------------------------------------------------------


def start_peer(bench: Bench, db: str) -> Server:
    env = harness.clean_env(DJANGO_SETTINGS_MODULE="peer.settings", PEER_DB=db, PEER_CONN_MAX_AGE="600")
    if db == "sqlite":
        env["PEER_SQLITE_PATH"] = str(bench.work / "peer.sqlite3")
    else:
        bench.pg.recreate("peerbench", "peerbench")
        env["PEER_PG_PORT"] = str(bench.pg.port)
    python, peer_dir = str(harness.PEER_VENV / "bin" / "python"), BENCH / "peer"
    harness.run([python, "manage.py", "migrate", "-v", "0"], cwd=peer_dir, env=env)
    harness.run([python, "manage.py", "bench_users", "--count", str(bench.args.clients)], cwd=peer_dir, env=env)
    command = [str(harness.PEER_VENV / "bin" / "gunicorn"), "peer.wsgi:application", "--workers", "2"]
    command += ["--worker-class", "sync", "--bind", f"127.0.0.1:{bench.port(0)}", "--no-control-socket"]
    command += ["--timeout", "120", "--log-level", "warning"]
    settings = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("PEER_") and k != "PEER_SQLITE_PATH")
    bench.show(f"peer, in bench/peer, {settings}", ["taskset", "-c", "0", *command])
    return start_server(f"peer-{db}", command, bench.port(0), env, peer_dir, bench.out)


def sessionward_env(bench: Bench, database_url: str) -> dict[str, str]:
    """As a deployment sets it: production, a JWT secret; rate limits high enough never to answer 429 here."""
    return harness.clean_env(
        ENV="production",
        DATABASE_URL=database_url,
        DATA_DIR=str(bench.work),
        JWT_SECRET="bench-jwt-secret-" + "0123456789" * 4,
        LOGIN_RATE_LIMIT=UNLIMITED,
        REGISTER_RATE_LIMIT=UNLIMITED,
        REFRESH_RATE_LIMIT=UNLIMITED,
        CLEANUP_SCHEDULE="off",
    )


def sessionward_url(bench: Bench, db: str, database: str = "sessionward_bench") -> str:
    if db == "sqlite":
        return f"sqlite:///{bench.work / 'sessionward.db'}"
    return bench.pg.recreate(database, "sessionward")


def start_sessionward(bench: Bench, name: str, database_url: str, offset: int = 1) -> Server:
    command = [str(SESSIONWARD), "serve", "--workers", "2", "--port", str(bench.port(offset))]
    env = sessionward_env(bench, database_url)
    settings = " ".join(f"{k}={v}" for k, v in env.items() if k.endswith(("_LIMIT", "ENV", "SCHEDULE")))
    bench.show(f"sessionward, with DATABASE_URL, DATA_DIR, JWT_SECRET and {settings}", ["taskset", "-c", "0", *command])
    return start_server(name, command, bench.port(offset), env, bench.work, bench.out)


def start_hello(bench: Bench) -> Server:
    command = [str(PROJECT_PYTHON), str(BENCH / "hello.py"), "--workers", "2", "--port", str(bench.port(2))]
    bench.show("hello", ["taskset", "-c", "0", *command])
    return start_server("hello", command, bench.port(2), harness.clean_env(), bench.work, bench.out)


def roots(bench: Bench, server: Server, db: str) -> list[int]:
    """The process trees of the system under test: the server, and PostgreSQL when it is used."""
    return [server.pid] + ([bench.pg.postmaster] if db == "postgres" else [])


def finish(server: Server, into: dict[str, Any]) -> None:
    into["rss_mb"] = worker_rss_mb(server)
    stop_server(server)
    into["log_problems"] = harness.log_problems(server.log_path)


# --- measurements --------------------------------------------------------------------------------------------


def figures(result: dict[str, Any]) -> dict[str, Any]:
    endpoints, host = result["endpoints"], result["host"]
    return {
        "refresh_per_s": result["refresh_per_s"],
        "protected_per_s": result["protected_per_s"],
        "refresh_p50_ms": endpoints.get("refresh", {}).get("p50_ms"),
        "refresh_p99_ms": endpoints.get("refresh", {}).get("p99_ms"),
        "protected_p50_ms": endpoints.get("protected", {}).get("p50_ms"),
        "protected_p99_ms": endpoints.get("protected", {}).get("p99_ms"),
        "server_cpu_ms": host.get("server_cpu_ms_per_request"),
        "cpu0_pct": host.get("cpu0_busy_pct"),
        "foreign_pct": host.get("foreign_cpu_pct_of_one_core"),
        "loadgen_cpu_pct": result.get("loadgen_cpu_pct"),
        "errors": result["errors"],
    }


def measure_once(bench: Bench, load: Load, label: str, run: int) -> dict[str, Any]:
    """One run; a run whose window saw more foreign CPU than --noisy is repeated (at most --retries times)."""
    args, attempt = bench.args, 1
    while True:
        if not load.extra_own:  # with a helper of ours running, the host is not quiet by design
            wait_quiet(load.roots, args.quiet_wait)
        log(f"=== {label} run {run + 1}/{args.runs}")
        result = figures(measure(load, args, bench.out / f"{label}-run{run + 1}-{attempt}.json"))
        if (result["foreign_pct"] or 0) <= args.noisy or attempt > args.retries:
            return result
        log(f"foreign CPU {result['foreign_pct']} % of a core > {args.noisy} %: repeating the run")
        attempt += 1


def measure_runs(bench: Bench, load: Load, label: str) -> list[dict[str, Any]]:
    return [measure_once(bench, load, label, run) for run in range(bench.args.runs)]


def storm_run(bench: Bench, load: Load, label: str, run: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The refresh-only load while bench/login_storm.py keeps 10 logins in flight (pinned to the client CPU)."""
    out = bench.out / f"{label}-logins-run{run + 1}.json"
    command = ["taskset", "-c", harness.CLIENT_CPU, str(harness.LOADGEN_VENV / "bin" / "python")]
    command += [str(BENCH / "login_storm.py"), "--base-url", load.server.url, "--out", str(out), "--concurrency", "10"]
    command += ["--max-seconds", str(300 + bench.args.warmup + bench.args.duration)]
    bench.show("login storm", command)
    wait_quiet(load.roots, bench.args.quiet_wait)
    storm = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        if storm.stdout is None or storm.stdout.readline().strip() != "@@storm-ready":
            raise SystemExit("login_storm.py did not start")
        stormy = Load(load.server, load.config, "refresh-only", roots=load.roots, extra_own=[storm.pid])
        result = measure_once(bench, stormy, label, run)
    finally:
        harness.stop_helper(storm)
    return result, json.loads(out.read_text())


# --- scenarios -----------------------------------------------------------------------------------------------


def compare_peer(bench: Bench, db: str) -> dict[str, Any]:
    server = start_peer(bench, db)
    into: dict[str, Any] = {}
    try:
        for mode in ("refresh-only", "mixed"):
            load = Load(server, "peer_simplejwt.json", mode, roots=roots(bench, server, db))
            into[mode] = measure_runs(bench, load, f"{db}-peer-{mode}")
    finally:
        finish(server, into)
    return into


def compare_sessionward(bench: Bench, db: str) -> dict[str, Any]:
    server = start_sessionward(bench, f"sessionward-{db}", sessionward_url(bench, db))
    into: dict[str, Any] = {"refresh-only": [], "storm": [], "logins": []}
    try:
        quiet = Load(server, "sessionward.json", "refresh-only", roots=roots(bench, server, db))
        for run in range(bench.args.runs):  # quiet, then storm, run by run: the pair sees the same host
            into["refresh-only"].append(measure_once(bench, quiet, f"{db}-sessionward-refresh-only", run))
            result, logins = storm_run(bench, quiet, f"{db}-sessionward-storm", run)
            into["storm"].append(result)
            into["logins"].append(logins)
        mixed = Load(server, "sessionward.json", "mixed", roots=quiet.roots)
        into["mixed"] = measure_runs(bench, mixed, f"{db}-sessionward-mixed")
        protected = Load(server, "sessionward.json", "mixed", PROTECTED_ONLY_EVERY, roots=quiet.roots)
        if "hello" in bench.args.scenarios:
            into["protected-only"], into["hello"] = protected_and_hello(bench, db, protected)
        else:
            into["protected-only"] = measure_runs(bench, protected, f"{db}-sessionward-protected-only")
    finally:
        finish(server, into)
    return into


def protected_and_hello(bench: Bench, db: str, protected: Load) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """sessionward's protected-only runs, each followed by one of hello.py (started beside it, idle meanwhile):
    the pair sees the same host."""
    server = start_hello(bench)
    ours: list[dict[str, Any]] = []
    into: dict[str, Any] = {"protected-only": []}
    try:
        hello = Load(server, "sessionward.json", "mixed", PROTECTED_ONLY_EVERY, roots=[server.pid])
        for run in range(bench.args.runs):
            ours.append(measure_once(bench, protected, f"{db}-sessionward-protected-only", run))
            into["protected-only"].append(measure_once(bench, hello, f"{db}-hello-protected-only", run))
    finally:
        finish(server, into)
    return ours, into


def scale_fill(bench: Bench, database: str, sessions: int, tokens: int) -> tuple[str, dict[str, Any]]:
    url = sessionward_url(bench, "postgres", database)
    harness.run([str(SESSIONWARD), "migrate"], env=sessionward_env(bench, url), cwd=bench.work)
    log(f"filling {sessions:,} sessions and {tokens:,} refresh tokens")
    started = time.perf_counter()
    bench.pg.psql(scale.fill_sql(sessions, tokens), database, timeout=bench.args.fill_timeout)
    into: dict[str, Any] = {"sessions": sessions, "tokens": tokens, "fill_s": time.perf_counter() - started}
    log(f"filled in {into['fill_s']:.1f} s")
    return url, into


def scale_scenario(bench: Bench) -> dict[str, Any]:
    """Refresh-only on the small and on the large database, a run of each in turn (one server on each, the other
    idle meanwhile): the pair sees the same host."""
    steps = {"baseline": SCALE_BASELINE, "large": (bench.args.sessions, bench.args.tokens)}
    into: dict[str, Any] = {}
    servers: dict[str, Server] = {}
    try:
        for offset, (step, (sessions, tokens)) in zip((1, 3), steps.items(), strict=True):
            url, into[step] = scale_fill(bench, f"sessionward_scale_{step}", sessions, tokens)
            servers[step] = start_sessionward(bench, f"sessionward-scale-{step}", url, offset)
        loads = {
            step: Load(server, "sessionward.json", "refresh-only", roots=roots(bench, server, "postgres"))
            for step, server in servers.items()
        }
        for run in range(bench.args.runs):
            for step, load in loads.items():
                runs = into[step].setdefault("refresh-only", [])
                runs.append(measure_once(bench, load, f"scale-{step}-refresh-only", run))
    finally:
        for step, server in servers.items():
            finish(server, into[step])
        for step in steps:
            bench.pg.drop(f"sessionward_scale_{step}")
    return into


# --- the run -------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": os.uname().release,
        "loadavg_start": os.getloadavg(),
    }


def versions(bench: Bench) -> dict[str, str]:
    def output(command: list[str]) -> str:
        return subprocess.run(command, check=True, text=True, capture_output=True, timeout=60, cwd=ROOT).stdout.strip()

    project = "sessionward fastapi uvicorn sqlalchemy asyncpg aiosqlite argon2-cffi"
    peer = "django djangorestframework djangorestframework-simplejwt gunicorn psycopg"
    script = "import sys, importlib.metadata as m; print(', '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))"
    found = {
        "project": output([str(PROJECT_PYTHON), "-c", script, *project.split()]),
        "sqlite": output([str(PROJECT_PYTHON), "-c", "import sqlite3; print(sqlite3.sqlite_version)"]),
        "python": output([str(PROJECT_PYTHON), "-c", "import platform; print(platform.python_version())"]),
        "peer": output([str(harness.PEER_VENV / "bin" / "python"), "-c", script, *peer.split()]),
        "loadgen": output([str(harness.LOADGEN_VENV / "bin" / "python"), "-c", script, "aiohttp", "uvloop"]),
        "commit": output(["git", "rev-parse", "--short", "HEAD"]),
        "dirty": "yes" if output(["git", "status", "--porcelain", "src"]) else "no",
    }
    if bench.cluster:
        found["postgresql"] = bench.cluster.version_string()
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs per measurement; medians are reported")
    parser.add_argument("--duration", type=float, default=8, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each window")
    parser.add_argument("--clients", type=int, default=16, help="clients (and users) of the load generator")
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"], help="default: both")
    parser.add_argument("--scenarios", default="compare,hello,scale", help="comma-separated: compare,hello,scale")
    parser.add_argument("--sessions", type=int, default=1_000_000, help="scale: bulk sessions")
    parser.add_argument("--tokens", type=int, default=5_000_000, help="scale: bulk refresh-token rows")
    parser.add_argument("--fill-timeout", type=float, default=900, help="scale: limit of one fill, s")
    parser.add_argument("--quiet-wait", type=float, default=5, help="max s to wait for a quiet host before a run")
    parser.add_argument("--noisy", type=float, default=25, help="foreign CPU (%% of a core) that makes a run noisy")
    parser.add_argument("--retries", type=int, default=0, help="repeats of a noisy run")
    parser.add_argument("--port-base", type=int, default=18180, help="peer, sessionward, hello: + 0/1/2 (scale: + 1/3)")
    parser.add_argument("--pg", default="15/bench:5433", help="the dedicated cluster, version/name:port")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/sessionward-bench"))
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    args.db = args.db or ["sqlite", "postgres"]
    args.scenarios = args.scenarios.split(",")
    return args


def prepare(args: argparse.Namespace) -> Bench:
    for tool in ("taskset", "pg_ctlcluster", "runuser"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed")
    harness.ensure_venv(harness.LOADGEN_VENV, BENCH / "loadgen-requirements.txt")
    harness.ensure_venv(harness.PEER_VENV, BENCH / "peer" / "requirements.txt")
    out = args.out_dir / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    work = args.out_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True)
    work.mkdir()
    bench = Bench(args, out, work)
    if "postgres" in args.db or "scale" in args.scenarios:
        cluster, port = args.pg.split(":")
        bench.cluster = pg.ensure_cluster(*cluster.split("/"), int(port))
    return bench


def run_scenarios(bench: Bench) -> None:
    args = bench.args
    for db in args.db if "compare" in args.scenarios else []:
        bench.results[db] = {"peer": compare_peer(bench, db), "sessionward": compare_sessionward(bench, db)}
        shutil.rmtree(bench.work, ignore_errors=True)
        bench.work.mkdir()
    if "scale" in args.scenarios:
        bench.results["scale"] = scale_scenario(bench)


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    bench = prepare(args)
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine()}
    meta["command"] = " ".join(["python3", "bench/run.py", *sys.argv[1:]])
    try:
        meta["versions"] = versions(bench)
        run_scenarios(bench)
    finally:
        if bench.cluster:
            bench.cluster.stop_if_started_here()
    meta["machine"]["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = time.monotonic() - started
    meta["servers"] = bench.commands
    meta["raw"] = str(bench.out)
    summary = {"meta": meta, "args": {k: str(v) for k, v in vars(args).items()}, "results": bench.results}
    (bench.out / "summary.json").write_text(json.dumps(summary, indent=1))
    text = report.markdown(summary)
    args.results.write_text(text)
    print(text)
    log(f"done in {meta['elapsed_s'] / 60:.1f} min; raw results in {bench.out}")


if __name__ == "__main__":
    main()
