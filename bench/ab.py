"""This checkout against an earlier revision, side by side in one run: the hot paths before and after a change.

    python3 bench/ab.py --base c3ad544                       # refresh-only and GET /me, SQLite and PostgreSQL
    python3 bench/ab.py --base main~3 --db sqlite --runs 5

The base revision is checked out into a git worktree under --out-dir with its own venv (made once). Both servers
start as `make bench` starts sessionward (`serve --workers 2`, production, on CPU 0, each on a database of its
own) and stay up together; the load generator (CPU 1) runs against one, then the other, round by round, so each
pair sees the same host. Per database: refresh-only (16 clients) and protected-only (every request a GET /me);
the medians of --runs rounds and the ratio after / before.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
import pg
from harness import BENCH, ROOT, Load, Server, log, start_server, stop_server
from run import PROTECTED_ONLY_EVERY, Bench, measure_once, sessionward_env

LOADS = {"refresh-only": ("refresh-only", 10), "protected-only": ("mixed", PROTECTED_ONLY_EVERY)}  # loadgen mode, K
RATE = {"refresh-only": "refresh_per_s", "protected-only": "protected_per_s"}


def base_checkout(bench: Bench, revision: str) -> Path:
    """A worktree of `revision` with its venv; reused while it is at that commit."""
    commit = harness.run(["git", "-C", str(ROOT), "rev-parse", f"{revision}^{{commit}}"], capture_output=True)
    commit_id = commit.stdout.strip()
    tree = bench.args.out_dir / "ab-base"
    current = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    if current.returncode != 0 or current.stdout.strip() != commit_id:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)
        harness.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit_id])
    if not (tree / ".venv" / "bin" / "sessionward").exists():
        harness.run(["python3", "-m", "venv", str(tree / ".venv")])
        harness.run([str(tree / ".venv" / "bin" / "pip"), "install", "--quiet", "-e", f"{tree}[postgres]"], timeout=900)
    return tree


def database_url(bench: Bench, db: str, name: str) -> str:
    if db == "sqlite":
        folder = bench.work / name
        folder.mkdir(exist_ok=True)
        return f"sqlite:///{folder / 'sessionward.db'}"
    return bench.pg.recreate(f"ab_{name}", "sessionward")


def start(bench: Bench, name: str, checkout: Path, db: str, offset: int) -> Server:
    port = bench.port(offset)
    env = sessionward_env(bench, database_url(bench, db, name))
    env["DATA_DIR"] = str(bench.work / name)
    (bench.work / name).mkdir(exist_ok=True)
    command = [str(checkout / ".venv" / "bin" / "sessionward"), "serve", "--workers", "2", "--port", str(port)]
    return start_server(f"{name}-{db}", command, port, env, bench.work, bench.out)


def compare(bench: Bench, db: str, base: Path) -> dict[str, Any]:
    servers = {"before": start(bench, "before", base, db, 1), "after": start(bench, "after", ROOT, db, 3)}
    results: dict[str, Any] = {mode: {"before": [], "after": []} for mode in LOADS}
    try:
        for run in range(bench.args.runs):
            for mode, (loadgen_mode, every) in LOADS.items():
                for side, server in servers.items():  # the same order every round: before, then after
                    roots = [server.pid] + ([bench.pg.postmaster] if db == "postgres" else [])
                    load = Load(server, "sessionward.json", loadgen_mode, every, roots=roots)
                    results[mode][side].append(measure_once(bench, load, f"{db}-{side}-{mode}", run))
    finally:
        for server in servers.values():
            stop_server(server)
    return results


def summary(results: dict[str, Any]) -> list[str]:
    lines = ["| database | load | before (req/s) | after (req/s) | after / before | p99 before / after (ms) |"]
    lines.append("|---|---|---|---|---|---|")
    for db, by_mode in results.items():
        for mode, sides in by_mode.items():
            rate = {side: statistics.median(run[RATE[mode]] for run in runs) for side, runs in sides.items()}
            p99_key = "refresh_p99_ms" if mode == "refresh-only" else "protected_p99_ms"
            p99 = {side: statistics.median(run[p99_key] or 0 for run in runs) for side, runs in sides.items()}
            ratio = rate["after"] / rate["before"] if rate["before"] else float("nan")
            lines.append(
                f"| {db} | {mode} | {rate['before']:.0f} | {rate['after']:.0f} | {ratio:.3f} "
                f"| {p99['before']:.1f} / {p99['after']:.1f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the revision to compare against (a commit, tag, main~N)")
    parser.add_argument("--runs", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--duration", type=float, default=8, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each window")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"], help="default: both")
    parser.add_argument("--quiet-wait", type=float, default=10, help="max s to wait for a quiet host before a run")
    parser.add_argument("--noisy", type=float, default=25, help="foreign CPU (%% of a core) that makes a run noisy")
    parser.add_argument("--retries", type=int, default=1, help="repeats of a noisy run")
    parser.add_argument("--port-base", type=int, default=18280)
    parser.add_argument("--pg", default="15/bench:5433", help="the dedicated cluster, version/name:port")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/sessionward-bench"))
    args = parser.parse_args()
    args.db = args.db or ["sqlite", "postgres"]
    harness.ensure_venv(harness.LOADGEN_VENV, BENCH / "loadgen-requirements.txt")
    out = args.out_dir / ("ab-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
    work = args.out_dir / "ab-work"
    shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True)
    work.mkdir()
    bench = Bench(args, out, work)
    base = base_checkout(bench, args.base)
    if "postgres" in args.db:
        cluster, port = args.pg.split(":")
        bench.cluster = pg.ensure_cluster(*cluster.split("/"), int(port))
    results: dict[str, Any] = {}
    try:
        for db in args.db:
            results[db] = compare(bench, db, base)
    finally:
        if bench.cluster:
            bench.cluster.stop_if_started_here()
    head = harness.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True).stdout.strip()
    (out / "summary.json").write_text(json.dumps({"base": args.base, "head": head, "results": results}, indent=1))
    print(f"\nbefore: {args.base}, after: {head} (working tree), {args.runs} rounds of {args.duration:.0f} s")
    print("\n".join(summary(results)))
    log(f"raw results in {out}")


if __name__ == "__main__":
    main()
