"""Processes for the benchmark: venvs, servers pinned to the server CPU, the load generator with host probes.

Every process is started here, with a time limit, and stopped by the PID it was started with.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hostmon

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVER_CPU = "0"
CLIENT_CPU = "1"
LOADGEN_VENV = Path("/tmp/loadgen-venv")
PEER_VENV = Path("/tmp/peer-venv")
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def run(command: list[str], timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    log("$ " + " ".join(command))
    return subprocess.run(command, check=True, text=True, timeout=timeout, **kwargs)


def clean_env(**extra: str) -> dict[str, str]:
    """A small environment: nothing from the caller's shell configures a server by accident."""
    return {**{k: os.environ[k] for k in BASE_ENV if k in os.environ}, **extra}


def ensure_venv(path: Path, requirements: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(path)])
        run([str(path / "bin" / "pip"), "install", "--quiet", "-r", str(requirements)], timeout=900)
    return python


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def start_server(name: str, command: list[str], port: int, env: dict[str, str], cwd: Path, out_dir: Path) -> Server:
    """Start `command` pinned to the server CPU (taskset execs it, so the PID is the server's)."""
    if port_open(port):
        raise SystemExit(f"port {port} is already in use; pick others with --port-base")
    log_path = out_dir / f"{name}.log"
    log("$ " + " ".join(command))
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *command], cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    server = Server(name, process, port, log_path)
    try:
        wait_ready(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_ready(server: Server, limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{server.name} did not answer on {server.url} within {limit_s:.0f} s")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def stop_server(server: Server) -> None:
    """SIGTERM to the PID we started, SIGKILL after 20 s; then any of its workers that outlived it."""
    tree = {pid: _cmdline(pid) for pid in hostmon.tree_pids(server.pid)}
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
    for pid, cmdline in tree.items():
        if pid != server.pid and cmdline and _cmdline(pid) == cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stop_helper(process: subprocess.Popen[str]) -> None:
    """SIGTERM to a helper we started (it writes its results and exits), SIGKILL after 60 s."""
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def log_problems(path: Path) -> int:
    """Lines of a server log at warning level or above, and tracebacks (sessionward logs JSON, gunicorn text)."""
    problem = re.compile(r'"level": ?"(warning|error|critical)"|\[(ERROR|CRITICAL|WARNING)\]|^Traceback')
    with path.open(errors="replace") as lines:
        return sum(1 for line in lines if problem.search(line))


def worker_rss_mb(server: Server) -> list[float]:
    """VmRSS of each worker process under the server's master (not the master, not a resource tracker)."""
    workers = [pid for pid in hostmon.tree_pids(server.pid)[1:] if b"resource_tracker" not in _cmdline(pid)]
    return [kib / 1024 for kib in map(_rss_kib, workers) if kib is not None]


def _rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)


@dataclass
class Load:
    """One load generator run: `mode` against `server` with the shared config `config`."""

    server: Server
    config: str
    mode: str
    refresh_every: int = 10
    roots: list[int] = field(default_factory=list)  # process trees that are the system under test
    extra_own: list[int] = field(default_factory=list)  # our helpers (not foreign, not server)


def wait_quiet(roots: list[int], max_wait_s: float) -> dict[str, Any]:
    quiet = hostmon.quiet_wait(roots, max_wait_s=max_wait_s)
    if not quiet["quiet"]:
        log(f"host still busy after {max_wait_s:.0f} s ({quiet['foreign_pct_at_start']} % of a core); measuring")
    return quiet


def loadgen_command(load: Load, args: Any, out: Path) -> list[str]:
    return [
        "taskset", "-c", CLIENT_CPU, str(LOADGEN_VENV / "bin" / "python"), str(BENCH / "loadgen.py"),
        "--config", str(BENCH / "configs" / load.config), "--base-url", load.server.url,
        "--mode", load.mode, "-c", str(args.clients), "-n", str(args.clients), "-k", str(load.refresh_every),
        "-w", str(args.warmup), "-d", str(args.duration), "--markers", "--out", str(out),
    ]  # fmt: skip


def measure(load: Load, args: Any, out: Path) -> dict[str, Any]:
    """Run the load generator on the client CPU; probe the host at its window markers."""
    command = loadgen_command(load, args, out)
    log("$ " + " ".join(command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    limit = 400 + args.warmup + args.duration
    watchdog = threading.Timer(limit, lambda: process.poll() is None and process.kill())
    watchdog.start()
    try:
        probes = _probe_window(process, load)
        code = process.wait()
    finally:
        watchdog.cancel()
    if code != 0 or not out.exists():
        raise SystemExit(f"the load generator failed (exit {code}): {' '.join(command)}")
    result = json.loads(out.read_text())
    result["host"] = _host_figures(result, probes, process.pid, args.duration)
    out.write_text(json.dumps(result, indent=1))
    return result


def _probe_window(process: subprocess.Popen[str], load: Load) -> list[tuple[hostmon.Probe, float]]:
    probes = []
    for line in process.stdout or ():
        if line.startswith("@@window-"):
            server_s = sum(hostmon.tree_cpu(root) for root in load.roots)
            probes.append((hostmon.Probe(load.roots + load.extra_own), server_s))
        elif line.strip():
            print("   ", line.rstrip(), flush=True)
    return probes


def _host_figures(
    result: dict[str, Any], probes: list[tuple[hostmon.Probe, float]], pid: int, duration: float
) -> dict[str, Any]:
    if len(probes) != 2:
        return {"error": "no window markers"}
    (before, server_before), (after, server_after) = probes
    loadgen_s = (result.get("loadgen_cpu_pct") or 0.0) * duration / 100
    host = after.diff(before, extra_own_s=loadgen_s, exclude_pids={pid})
    requests = sum(endpoint["ok"] for endpoint in result["endpoints"].values())
    host["server_cpu_s"] = round(server_after - server_before, 2)
    host["server_cpu_ms_per_request"] = 1000 * (server_after - server_before) / requests if requests else None
    return host
