"""Untrusted Python, run in a bubblewrap sandbox (Debian's `bubblewrap` package).

What the code sees: a read-only /usr and this server's Python (its prefix and its virtual
environment, bound at their own paths so numpy and matplotlib import), a fresh /proc and
/dev, and a work folder of its own (/sandbox, a size-limited tmpfs) holding copies of the
thread's files and an empty `outputs/`. No /etc, no home, no project, no network (a network
namespace with nothing in it), no other process (a pid namespace), nothing kept afterwards.

What it may use: CPU time, memory, processes and file size are rlimits (`prlimit`); wall time
and printed output are watched from here, and the sandbox is killed when either runs out.

As root, bwrap runs without a user namespace and the code runs as an unprivileged uid of
its own (setpriv), so the process limit counts only the sandbox's processes (root's would be
unlimited). As any other user, bwrap makes a user namespace, which the kernel must allow.
Output files come back through a pipe as a tar stream (runner.py), read here with limits:
the code can never make the server open a path it chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import shutil
import signal
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

RUNNER = Path(__file__).with_name("runner.py")
WORK = "/sandbox"  # the code's working folder, inside the sandbox
CODE = "/code/main.py"
RESERVED = {"outputs"}  # names in the work folder a thread's file cannot take
UID_BASE, UIDS = 200_000, 1_000  # as root: each run gets a uid of its own from this range
_next_uid = itertools.count()


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing, or cannot make its namespaces here; the text says which."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 10
    wall_seconds: float = 30.0
    memory_mb: int = 1024  # address space of each process
    processes: int = 32
    output_chars: int = 20_000  # of standard output and errors together, kept
    file_mb: int = 20  # any one file written, and all output files together
    work_mb: int = 100  # the work folder
    files: int = 10  # output files kept

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(**{key.lower(): value for key, value in settings.CHATAPP_SANDBOX.items()})


@dataclass(frozen=True)
class File:
    name: str
    data: bytes
    content_type: str = ""


@dataclass
class Result:
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    files: list[File] = field(default_factory=list)
    problem: str = ""  # why the sandbox stopped the code, in plain words

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.problem


def bwrap() -> str:
    from django.conf import settings

    found = shutil.which(settings.CHATAPP_SANDBOX_BWRAP)
    if found is None:
        raise SandboxUnavailable(
            "The code interpreter needs bubblewrap, which is not installed on this server "
            "(Debian: apt-get install bubblewrap)."
        )
    return found


def bound_paths() -> list[str]:
    """The directories the interpreter needs, outside /usr: its prefixes."""
    paths = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    return sorted(p for p in paths if not p.startswith("/usr/"))


def parents(path: str) -> list[str]:
    """/a/b/c -> [/a, /a/b]: made traversable (0755) before /a/b/c is bound."""
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: n + 1]) for n in range(len(parts))]


def command(
    limits: Limits, inputs: Sequence[tuple[int, str]], code_fd: int, outputs_fd: int
) -> list[str]:
    """The whole command line: prlimit, then bwrap, then (as root) setpriv, then Python."""
    as_root = os.geteuid() == 0
    args = [
        shutil.which("prlimit") or "prlimit",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",  # SIGXCPU, then SIGKILL
        f"--as={limits.memory_mb * 2**20}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_mb * 2**20}",
        "--core=0",
        "--nofile=256",
        "--",
        bwrap(),
        "--die-with-parent",
        "--new-session",  # no terminal to inject input into
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/bin",
        "/bin",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        str(16 * 2**20),
        "--tmpfs",
        "/tmp",
    ]
    if not as_root:
        args += ["--unshare-user"]
    if os.path.isdir("/etc/fonts"):  # font settings only: matplotlib asks fontconfig
        args += ["--perms", "0755", "--dir", "/etc", "--ro-bind", "/etc/fonts", "/etc/fonts"]
    made: set[str] = set()
    for path in bound_paths():
        for parent in parents(path):
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/code", "--perms", "0444", "--file", str(code_fd), CODE]
    args += ["--ro-bind", str(RUNNER), "/code/runner.py"]
    args += ["--perms", "1777", "--size", str(limits.work_mb * 2**20), "--tmpfs", WORK]
    args += ["--perms", "1777", "--dir", f"{WORK}/outputs"]
    for fd, name in inputs:
        args += ["--perms", "0666", "--file", str(fd), f"{WORK}/{name}"]
    args += ["--chdir", WORK, "--clearenv"]
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": WORK,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "CHATAPP_OUTPUTS_FD": str(outputs_fd),  # where runner.py sends the output files
    }
    for name, value in environment.items():
        args += ["--setenv", name, value]
    if as_root:
        uid = str(UID_BASE + next(_next_uid) % UIDS)
        args += [
            shutil.which("setpriv") or "/usr/bin/setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
    return [*args, sys.executable, "-I", "-B", "-u", "/code/runner.py"]


def memfd(name: str, data: bytes) -> int:
    """An in-memory file holding `data`, read from its start: what bwrap's --file copies."""
    fd = os.memfd_create(name, 0)
    view = memoryview(data)
    while view:  # os.write may write less than it is given
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def usable_name(name: str) -> bool:
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
        and name not in RESERVED
    )


class Capped:
    """Reads a stream into memory up to `limit` bytes; `over` says whether it had more."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data, self.over = limit, bytearray(), False

    async def drain(self, stream: asyncio.StreamReader, stop: asyncio.Event) -> None:
        # Read to the end even past the limit: a pipe left unread never reports its end,
        # and the process would never be seen to finish.
        while chunk := await stream.read(65536):
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room and not self.over:
                self.over = True
                stop.set()


async def run(code: str, inputs: Sequence[File] = (), limits: Limits | None = None) -> Result:
    """Run `code` with copies of `inputs` in its work folder; never raises for what the code
    does (that is in the Result), only SandboxUnavailable when there is no sandbox."""
    limits = limits or Limits.from_settings()
    fds: list[int] = []
    read_end = write_end = -1
    try:
        code_fd = memfd("main.py", code.encode())
        fds.append(code_fd)
        placed = []
        for file in inputs:
            if usable_name(file.name):
                fd = memfd(file.name, file.data)
                fds.append(fd)
                placed.append((fd, file.name))
        read_end, write_end = os.pipe()
        args = command(limits, placed, code_fd, write_end)
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(*fds, write_end),
            env={"PATH": "/usr/bin:/bin"},
            start_new_session=True,
        )
        os.close(write_end)
        write_end = -1
        return await watch(process, read_end, limits)
    finally:
        for fd in (*fds, read_end, write_end):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


async def watch(process: asyncio.subprocess.Process, outputs_fd: int, limits: Limits) -> Result:
    loop = asyncio.get_running_loop()
    files_reader = asyncio.StreamReader(limit=2**20)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(files_reader), os.fdopen(os.dup(outputs_fd), "rb")
    )
    stop = asyncio.Event()
    printed = Capped(limits.output_chars * 4)  # bytes: a character is at most 4
    errors = Capped(limits.output_chars * 4)
    archive = Capped(limits.file_mb * 2**20 + limits.files * 2048 + 10240)
    readers = asyncio.gather(
        printed.drain(process.stdout, stop),  # type: ignore[arg-type]
        errors.drain(process.stderr, stop),  # type: ignore[arg-type]
        archive.drain(files_reader, stop),
        process.wait(),
    )
    stopper = asyncio.ensure_future(stop.wait())
    problem = ""
    try:
        done, _ = await asyncio.wait(
            {readers, stopper}, timeout=limits.wall_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if readers not in done:
            if stopper in done:
                problem = too_much(printed, errors, archive, limits)
            else:
                problem = f"It did not finish within {limits.wall_seconds:g} seconds."
            kill(process)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(readers, 5)
    finally:
        stopper.cancel()
        transport.close()
        if process.returncode is None:
            kill(process)
            await process.wait()
        readers.cancel()
    code = process.returncode
    stdout = text(printed.data, limits.output_chars)
    stderr = text(errors.data, limits.output_chars)
    files, unpacked = unpack(bytes(archive.data), limits)
    problem = problem or explain(code, stderr, limits) or unpacked
    return Result(code, stdout, stderr, files, problem)


def kill(process: asyncio.subprocess.Process) -> None:
    """The sandbox goes with bwrap: its pid namespace dies with its first process, which
    bwrap made to die with bwrap (--die-with-parent)."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def too_much(printed: Capped, errors: Capped, archive: Capped, limits: Limits) -> str:
    if printed.over or errors.over:
        return f"It printed more than {limits.output_chars} characters, so it was stopped."
    return f"Its output files came to more than {limits.file_mb} MB, so it was stopped."


# bwrap exits with 128 + the signal that killed the code.
KILLED_BY = {128 + sig: sig for sig in (signal.SIGXCPU, signal.SIGKILL, signal.SIGSEGV)}


def explain(code: int | None, stderr: str, limits: Limits) -> str:
    """Why the code died, when a limit killed it (a signal, or Python's MemoryError)."""
    if code == 1 and stderr.startswith("bwrap:"):
        raise SandboxUnavailable(f"The sandbox could not start here: {stderr.strip()}")
    killed = KILLED_BY.get(code or 0)
    if killed in (signal.SIGXCPU, signal.SIGKILL):
        return f"It used more than {limits.cpu_seconds} seconds of CPU time, so it was stopped."
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return f"It ran out of memory (the limit is {limits.memory_mb} MB)."
    if "File too large" in stderr:
        return f"It wrote a file larger than {limits.file_mb} MB."
    if killed is not None:
        return f"It was stopped by the signal {signal.Signals(killed).name}."
    return ""


def text(data: bytes | bytearray, limit: int) -> str:
    shown = bytes(data).decode("utf-8", errors="replace")
    return shown if len(shown) <= limit else shown[:limit] + "\n… (cut here)"


def unpack(data: bytes, limits: Limits) -> tuple[list[File], str]:
    """The plain files of the tar stream the runner sent, within the limits; and a note when
    some were left out."""
    files: list[File] = []
    left_out = 0
    if not data:
        return files, ""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive:
                if not member.isreg() or not usable_name(member.name):
                    continue
                if len(files) >= limits.files:
                    left_out += 1
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    files.append(File(member.name, handle.read()))
    except (tarfile.TarError, EOFError, OSError):
        return files, "Its output files could not all be read back."
    note = f"{left_out} more output files were left out (at most {limits.files})."
    return files, note if left_out else ""


async def check() -> None:
    """SandboxUnavailable, saying why, unless a trivial sandbox runs here."""
    result = await run("print('ok')", limits=Limits(wall_seconds=30))
    if result.stdout.strip() != "ok":
        detail = (result.stderr or result.problem or f"exit code {result.exit_code}").strip()
        raise SandboxUnavailable(f"The sandbox could not run Python here: {detail}")
