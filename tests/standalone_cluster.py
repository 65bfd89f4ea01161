"""A real Spark standalone cluster on 127.0.0.1 for the tests: one master and N workers started with
the daemon script bundled in pyspark (`sbin/spark-daemon.sh`, what start-master.sh and
start-worker.sh run), each worker a separate JVM with its own executors, so one can be killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (the executors a worker launched, their Python workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found += [child, *_children(child)]
    return found


class StandaloneCluster:
    """Start with `start()`, stop with `stop()`; `kill_worker(i)` is a crash (SIGKILL, no clean-up)."""

    def __init__(self, root: Path, workers: int = 2, cores: int = 1, memory: str = "3g") -> None:
        self.root, self.workers, self.cores, self.memory = root, workers, cores, memory
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        for d in ("pid", "log", "work"):
            (root / d).mkdir(parents=True, exist_ok=True)

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_PID_DIR": str(self.root / "pid"),
            "SPARK_LOG_DIR": str(self.root / "log"),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_IDENT_STRING": f"mpdrec-test-{self.port}",
        }

    def _daemon(self, action: str, cls: str, instance: int, *args: str) -> None:
        subprocess.run(
            ["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), action, cls, str(instance), *args],
            env=self._env(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )

    def start_worker(self, i: int) -> None:
        self._daemon(
            "start",
            WORKER_CLASS,
            i,
            "--host",
            "127.0.0.1",
            "--cores",
            str(self.cores),
            "--memory",
            self.memory,
            "--webui-port",
            str(free_port()),
            "--work-dir",
            str(self.root / "work"),
            self.url,
        )

    def start(self) -> None:
        self._daemon(
            "start", MASTER_CLASS, 1, "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port)
        )
        for i in range(1, self.workers + 1):
            self.start_worker(i)
        self.wait_for_workers(self.workers)

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
                state = json.load(r)
        except OSError:
            return 0
        return sum(w["state"] == "ALIVE" for w in state["workers"])

    def wait_for_workers(self, n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_workers() < n:
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in sorted((self.root / "log").glob("*.out")))
                raise RuntimeError(f"{n} workers did not register with {self.url} in {timeout} s:\n{logs}")
            time.sleep(0.5)

    def worker_pid(self, i: int) -> int:
        pid_file = self.root / "pid" / f"spark-mpdrec-test-{self.port}-{WORKER_CLASS}-{i}.pid"
        return int(pid_file.read_text())

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker i's JVM and everything it launched: its executors die with it."""
        pid = self.worker_pid(i)
        for p in [*_children(pid), pid]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove_finished_apps(self) -> None:
        """Executors' working directories (each holds an unpacked environment archive)."""
        for app in (self.root / "work").glob("app-*"):
            shutil.rmtree(app, ignore_errors=True)

    def stop(self) -> None:
        for i in range(1, self.workers + 1):
            try:
                self.kill_worker(i)
            except (OSError, ValueError):
                pass
        self._daemon("stop", MASTER_CLASS, 1)
