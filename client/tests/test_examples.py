"""The examples run as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PASSWORD, Server, register

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _keep_calling(server: Server, tokens: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(EXAMPLES / "keep_calling.py"), "--server", server.base_url]
    command += ["--token-file", str(tokens), "--minutes", "0.005", "--every", "0.1", *extra]
    env = {**os.environ, "SESSIONWARD_PASSWORD": PASSWORD}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_keep_calling_signs_in_once_and_a_second_run_continues_the_session(
    server: Server, email: str, tmp_path: Path
) -> None:
    register(server, email)
    tokens = tmp_path / "tokens.json"
    first = _keep_calling(server, tokens, "--email", email)
    assert first.returncode == 0, first.stderr
    assert f"signed in as {email}" in first.stdout
    assert "call 1: 200" in first.stdout
    second = _keep_calling(server, tokens)
    assert second.returncode == 0, second.stderr
    assert "continuing session" in second.stdout
    assert "call 1: 200" in second.stdout
