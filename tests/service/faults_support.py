"""Helpers for the fault tests (``test_faults.py``): a real ``soilwatch serve`` process that can be
killed with SIGKILL and started again, slow and big raw uploads, a throwaway PostgreSQL cluster that
can be restarted, a small tmpfs, and an in-process "disk full" for writes under one folder.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "SOILWATCH",
    "PG_BIN",
    "Server",
    "free_port",
    "multipart_body",
    "send_raw",
    "write_transaction_open",
    "PgCluster",
    "start_pg_cluster",
    "tmpfs",
    "full_disk_under",
]

SOILWATCH = str(Path(sys.executable).with_name("soilwatch"))
PG_BIN = Path(os.environ.get("SOILWATCH_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``soilwatch serve`` (migrations on) for ``url`` with ``data_dir``, on a fixed port across restarts."""

    url: str
    data_dir: Path
    log: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self, timeout_s: float = 60.0) -> Server:
        self.port = self.port or free_port()
        env = {**os.environ, "SOILWATCH_DATABASE_URL": self.url, "SOILWATCH_DATA_DIR": str(self.data_dir)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [SOILWATCH, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"soilwatch serve did not start: {self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def multipart_body(field: str, filename: str, content: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one file and some text fields; returns (body, content type)."""
    boundary = "soilwatchfaulttest0123456789"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
              "Content-Type: application/octet-stream\r\n\r\n".encode())  # fmt: skip
    out.write(content)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def send_raw(port: int, path: str, token: str, body: bytes, content_type: str, *, send_bytes: int | None = None,
             chunk: int = 64 * 1024, pause_s: float = 0.0) -> socket.socket:  # fmt: skip
    """POST ``body`` over a raw socket, ``chunk`` bytes at a time with ``pause_s`` between, stopping after
    ``send_bytes`` (default: all). Returns the open socket (read the answer, or leave it cut off)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    sock.sendall(head.encode())
    end = len(body) if send_bytes is None else send_bytes
    for start in range(0, end, chunk):
        sock.sendall(body[start : min(start + chunk, end)])
        if pause_s:
            time.sleep(pause_s)
    return sock


def write_transaction_open(url: str) -> bool:
    """True while another connection holds an open write transaction on the database at ``url``: SQLite's
    write lock is taken (``BEGIN IMMEDIATE`` fails at once), or a PostgreSQL backend has a transaction id."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        conn = sqlite3.connect(parsed.database or "", timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as exc:
            return "locked" in str(exc)
        finally:
            conn.close()
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as pg:
            busy = pg.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"))  # fmt: skip
    finally:
        engine.dispose()
    return bool(busy)


# ----------------------------------------------------------------------------------------- PostgreSQL
@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster of its own (PGDATA, port), so restarting it disturbs no other test."""

    pgdata: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str, timeout_s: float = 60.0) -> None:
        opts = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-o", opts, "-l", str(self.pgdata / "log"),
                      "-w", *args], timeout_s)  # fmt: skip

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: active sessions are cut off, the server is down for a moment."""
        self.pg_ctl("restart", "-m", "fast")

    def destroy(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.pgdata.parent, ignore_errors=True)


def _as_postgres(cmd: list[str], timeout_s: float) -> None:
    if os.geteuid() == 0:  # initdb and the server refuse to run as root
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr or done.stdout}")


def start_pg_cluster() -> PgCluster | str:
    """initdb and start a new cluster on a free port; the reason as a string when that is not possible."""
    if not (PG_BIN / "initdb").exists() or not Path("/usr/share/postgresql/15/extension/postgis.control").exists():
        return f"PostgreSQL 15 + PostGIS binaries not found under {PG_BIN} (run: bash dev/postgres.sh)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start PostgreSQL as the postgres user"
    parent = Path(tempfile.mkdtemp(prefix="soilwatch-pg-fault-"))
    pgdata = parent / "data"
    pgdata.mkdir()
    if os.geteuid() == 0:
        shutil.chown(parent, "postgres")
        shutil.chown(pgdata, "postgres")
    try:
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres"], 120)
        cluster = PgCluster(pgdata, free_port())
        cluster.pg_ctl("start")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(parent, ignore_errors=True)
        return f"could not start a throwaway PostgreSQL cluster: {exc}"
    return cluster


# ----------------------------------------------------------------------------------------- full disks
@contextmanager
def tmpfs(path: Path, size: str = "8m") -> Iterator[bool]:
    """Mount a tmpfs of ``size`` at ``path``; yields False (nothing mounted) without the permission."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


class _FullFile:
    """A file that accepts ``budget`` more bytes, then fails as a full disk does (ENOSPC)."""

    def __init__(self, raw: Any, budget: list[int]) -> None:
        self._raw, self._budget = raw, budget

    def write(self, data: bytes) -> int:
        room = self._budget[0]
        if len(data) > room:
            self._raw.write(data[:room])
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= len(data)
        return int(self._raw.write(data))

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@contextmanager
def full_disk_under(folder: Path, free_bytes: int) -> Iterator[None]:
    """Files opened for writing with ``Path.open`` under ``folder`` share ``free_bytes`` of space; past
    it a write raises ``OSError(ENOSPC)`` — the code path of a full disk, without root."""
    real_open = Path.open
    budget = [free_bytes]
    root = folder.resolve()

    def fake_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        if ("w" in mode or "a" in mode) and self.resolve().is_relative_to(root):
            return _FullFile(handle, budget)
        return handle

    Path.open = fake_open  # type: ignore[method-assign]
    try:
        yield
    finally:
        Path.open = real_open  # type: ignore[method-assign]
