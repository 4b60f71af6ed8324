"""What the bench reads from /proc (Linux only): CPU time, child processes, socket owners."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the command name: [0] is the state, [1] the parent pid."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds since boot, all cores: busy (not idle, iowait or steal), and stolen."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    idle, iowait, steal = ticks[3], ticks[4], ticks[7]
    return (sum(ticks) - idle - iowait - steal) / CLOCK_TICKS, steal / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process; 0 once it is gone."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(stat_fields(entry.name)[1])
            except OSError:
                continue
            if parent == pid:
                children.append(int(entry.name))
    return children


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def server_ends(server_port: int, pids: Sequence[int]) -> dict[int, int]:
    """Client port -> the pid (among ``pids``) holding the server end of that connection."""
    inodes: dict[int, int] = {}  # socket inode -> client port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(local.rsplit(":", 1)[1], 16) == server_port and inode:
                inodes[inode] = int(remote.rsplit(":", 1)[1], 16)
    owners: dict[int, int] = {}
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:["):
                client_port = inodes.get(int(target[8:-1]))
                if client_port:
                    owners[client_port] = pid
    return owners
