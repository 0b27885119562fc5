"""A real ``python -m orchestrator serve`` subprocess for end-to-end tests, and tiny HTTP helpers.

Output goes to a log file (no pipe to fill up); ``start`` waits for ``/readyz`` and raises with
the server's log if it dies or does not get ready; ``stop`` terminates, then kills.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


TEST_PYTHON_ALLOW = "examples,tests"


def cli_env(event_log_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for CLI subprocesses: the repo importable, the event log in tmp, and
    authentication off (these servers listen on 127.0.0.1; test_auth_http.py tests it on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env["ORCHESTRATOR_EVENT_LOG_URL"] = event_log_url
    env["PYTHONUNBUFFERED"] = "1"
    env["ORCHESTRATOR_PYTHON_ALLOW"] = TEST_PYTHON_ALLOW  # the step functions of examples and tests
    env["ORCHESTRATOR_AUTH"] = "off"
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    """(status, JSON body) of one request; error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


class ServerProcess:
    """One server subprocess; ``url`` is valid after ``start()``."""

    def __init__(self, env: Mapping[str, str], args: Sequence[str], log_path: Path) -> None:
        self.env = dict(env)
        self.args = list(args)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> str:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-m",
            "orchestrator",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *self.args,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if http_json("GET", self.url + "/readyz")[0] == 200:
                    return self.url
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout}s:\n{self.output()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a crash."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


class Port0Server(ServerProcess):
    """A server subprocess on a port the OS picks (``--port 0``; no free-port race): its URL is
    read from the server's own ``serving on`` line in the log."""

    READY = re.compile(rb"serving on (http://\S+)")

    def start(self, timeout: float = 30.0) -> str:
        command = [sys.executable, "-m", "orchestrator", "serve", "--host", "127.0.0.1", "--port", "0", *self.args]
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            start = log.tell()
            self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(start)
                found = self.READY.search(log.read())
            if found:
                self.url = found.group(1).decode()
                return self.url
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout}s:\n{self.output()}")
