"""Warm workers for student jobs (runtime.warm_workers; CPU only).

Every Snakemake job is a fresh Python. A demo student spends about 3.5 s of its 11 s
starting Python, importing torch and, at its first optimizer step, torch._dynamo (torch.optim
imports it), none of which a second run in the same process pays again (docs/performance.md
"Start-up cost of a job"). With warm workers the distill_student script hands its job
(igkd.training.student_job.StudentJob, plain data) to a worker process that has done all
that already, and waits. The worker runs the same function the script would, on the same
files and log: the job's outputs, checkpoint, resume and params (so what reruns when) are
those of a job in its own process, bit for bit (tests/test_worker.py).

Each running job holds a slot, a flock on <folder>/slot<i>.lock (the first free i); a slot
has at most one worker, listening on <folder>/slot<i>.sock, started by the first job that
finds none and serving one job at a time, so there are never more workers than jobs that
ran at once. <folder> is named after the Python, its module path, the working directory
and the job's code fingerprint: a worker never runs other code than the job's own. A
worker ends after WORKER_IDLE_S without a job, and at once when the job's own process goes
away (Snakemake stopped it): the run keeps its last checkpoint, as a killed job does.

Stdlib only at import: the job's own process stays small.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WORKER_IDLE_S = 120  # a worker outlives its last job by this much, then exits
WORKER_START_S = 300  # the longest a job waits for a new worker to listen (imports on a busy machine)
READY_S = 60  # an idle worker answers at once; one that does not is not used
KILLED_EXIT = 3  # a worker's exit status when its job's process went away mid-job
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~104-108 bytes


def worker_folder(code: str, root: str | None = None) -> Path:
    """Where the slots of workers for this Python, path, folder and code live."""
    key = json.dumps([sys.executable, sys.path, os.getcwd(), code])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(root or tempfile.gettempdir()) / f"igkd-workers-{os.getuid()}" / digest


def submit(job, root: str | None = None) -> int | None:
    """Run `job` in a warm worker and return its exit status; None when no worker can
    be had (socket path too long, the worker failed to start): the caller then runs it.
    A worker that dies mid-job is exit status 1, its log named."""
    folder = worker_folder(job.worker_key, root)
    if len(str(folder / "slot999.sock")) > MAX_SOCKET_PATH:
        print(
            f"no warm worker ({folder} is too long a path for a socket): training in the job's own process",
            file=sys.stderr,
        )
        return None
    folder.mkdir(parents=True, exist_ok=True)
    slot_lock, slot = _claim_slot(folder)
    with slot_lock:
        sock_path, worker_log = folder / f"slot{slot}.sock", folder / f"slot{slot}.log"
        conn = _connect(sock_path) or _start_worker(sock_path, worker_log)
        if conn is None:
            print(f"no warm worker (see {worker_log}): training in the job's own process", file=sys.stderr)
            return None
        with conn:
            conn.sendall(json.dumps(dataclasses.asdict(job)).encode() + b"\n")
            reply = _read_line(conn)
    if not reply:
        print(f"error: the warm worker stopped during the job (see {worker_log} and {job.log})", file=sys.stderr)
        return 1
    result = json.loads(reply)
    if result["error"]:
        print(result["error"], file=sys.stderr, flush=True)
    return int(result["rc"])


def _claim_slot(folder: Path):
    """(open lock file holding its flock, slot index): the first slot no running job holds."""
    slot = 0
    while True:
        handle = open(folder / f"slot{slot}.lock", "a")  # noqa: SIM115 - held for the job
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            slot += 1
            continue
        return handle, slot


def _connect(sock_path: Path) -> socket.socket | None:
    """A connection the slot's worker has accepted (it answers `ready`), or None."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(READY_S)
    try:
        conn.connect(str(sock_path))
        if _read_line(conn) == "ready":
            conn.settimeout(None)  # the job itself takes as long as it takes
            return conn
    except OSError:
        pass
    conn.close()
    return None


def _start_worker(sock_path: Path, worker_log: Path) -> socket.socket | None:
    """Start the slot's worker (its own session: Snakemake's signals to the job do not reach
    it) and connect once it listens; None if it exits or never listens."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with open(worker_log, "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "igkd.training.worker", str(sock_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + WORKER_START_S
    while time.monotonic() < deadline and process.poll() is None:
        conn = _connect(sock_path) if sock_path.exists() else None
        if conn is not None:
            return conn
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
    return None


def _read_line(conn: socket.socket) -> str:
    """One newline-terminated message, or '' when the other end closed first."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return ""
        data += chunk
    return data.decode().rstrip("\n")


def serve(sock_path: str) -> None:
    """The worker: warm up, then run the jobs of one slot one at a time until idle."""
    from igkd.training.student_job import warm_up

    warm_up()
    path = Path(sock_path)
    path.unlink(missing_ok=True)  # a dead worker's socket
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    inode = path.stat().st_ino
    server.listen(1)
    server.settimeout(WORKER_IDLE_S)
    served = 0
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                break
            with conn:
                conn.settimeout(None)
                served += 1
                _serve_one(conn, served)
    finally:
        # unlink first: a job that finds no socket starts a new worker, whose socket this
        # one must then not remove (the inode says whose it is)
        if path.exists() and path.stat().st_ino == inode:
            path.unlink()
        server.close()


def _serve_one(conn: socket.socket, served: int) -> None:
    from igkd.training.student_job import StudentJob

    conn.sendall(b"ready\n")
    request = _read_line(conn)
    if not request:
        return  # the job's process gave up before sending
    job = StudentJob(**json.loads(request))
    done = threading.Event()
    threading.Thread(target=_exit_if_client_leaves, args=(conn, done), daemon=True).start()
    rc, error = _run_here(job, served)
    done.set()
    conn.sendall(json.dumps({"rc": rc, "error": error}).encode() + b"\n")


def _exit_if_client_leaves(conn: socket.socket, done: threading.Event) -> None:
    """The job's process never writes again: end of stream means it is gone (stopped by
    Snakemake or killed); stop training at once, as its own process would have."""
    with contextlib.suppress(OSError):
        conn.recv(1)
    if not done.is_set():
        os._exit(KILLED_EXIT)


def _run_here(job, served: int) -> tuple[int, str | None]:
    """Run one job in this process with its log as stderr, as the script would; restore
    this worker's stderr afterwards. (exit status, the one line to print or None)."""
    from igkd.runtime import CLEAN_ERRORS, clean_error_line
    from igkd.training.student_job import run_student_job

    saved = sys.stderr, sys.excepthook
    try:
        run_student_job(job, started=f"in warm worker {os.getpid()} (its job {served})")
        return 0, None
    except CLEAN_ERRORS as err:
        line = clean_error_line(err)
        print(line, file=sys.stderr, flush=True)
        return 1, line
    except Exception as err:  # noqa: BLE001 - reported to the job like an uncaught error in its own process
        import traceback

        traceback.print_exc(file=sys.stderr)
        return 1, f"error: {type(err).__name__}: {err} (traceback in {job.log})"
    finally:
        if sys.stderr is not saved[0]:
            sys.stderr.close()
        sys.stderr, sys.excepthook = saved


if __name__ == "__main__":
    serve(sys.argv[1])
