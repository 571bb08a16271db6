"""The backend as real `chargeshare serve` processes on one database, for simulations that crash it
or spread it over a cluster: one process reached directly, or several behind HAProxy (round robin,
WebSockets tunnelled, a dead process taken out by its health check and its clients sent elsewhere).

Every process follows the simulation's clock (`adapters.shared_clock`), and the simulation holds
that clock while a process starts, so a start's seconds on a loaded machine are no simulated time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from chargeshare.adapters.shared_clock import ENV as SIM_CLOCK_ENV
from chargeshare.adapters.shared_clock import MAX_SLOTS, PublishedClock
from chargeshare.bootstrap import Config
from chargeshare.failpoints import EXIT_CODE as FAILPOINT_EXIT

# Bounds, not expectations: a loaded two-core machine takes seconds to import and start a server.
START_WITHIN_S = 60.0
STOP_WITHIN_S = 30.0
POLL_S = 0.05
MAX_PROCESSES = 16
FAILPOINT_FILE = "failpoints"  # beside the clock file: the failpoints armed in every process


class BackendFailed(RuntimeError):
    """A backend process would not start (or HAProxy would not); the message carries its log."""


class _KilledWhileStarting(Exception):
    """A fault killed the process before it answered: down again by choice, not a failed start."""


# Put in front of every child's command (`python -c`): the kernel kills the child as soon as the
# simulation dies, even by SIGKILL or an uncaught SIGTERM that runs no clean-up, so no server or
# HAProxy outlives its run. PR_SET_PDEATHSIG survives the exec; it fires when the *thread* that
# spawned the child ends, so children are spawned from the event loop's thread, never a worker's.
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG): " + os.strerror(ctypes.get_errno()))
if os.getppid() != int(sys.argv[1]):
    os._exit(0)  # the simulation died before the line above could see to it
os.execv(sys.argv[2], sys.argv[2:])
"""


def dying_with_us(command: list[str]) -> list[str]:
    """`command` run so that it ends when this process does (Linux; elsewhere as it is)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def reserve_port() -> socket.socket:
    """A loopback port held for the whole run: bound but never listening. A server of ours still
    listens on it (it sets SO_REUSEADDR too), but while that server is down no other program can
    bind it, nor the kernel hand it to an outgoing connection as its local port, so a restart on it
    cannot find it taken."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def port_of(reserved: socket.socket) -> int:
    port: int = reserved.getsockname()[1]
    return port


def node_env(config: Config, clock_file: Path, slot: int) -> dict[str, str]:
    """What a process is started with: the simulation's own configuration, so that tokens, rules and
    limits are one across processes and restarts, and its clock."""
    rules = config.rules
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGESHARE_")}
    env.update(
        {
            "CHARGESHARE_DATABASE_URL": config.database_url,
            "CHARGESHARE_LOCKS": "on" if config.locks_enabled else "off",
            "CHARGESHARE_JWT_SECRET": config.jwt_secret,
            "CHARGESHARE_GRID_SEED": str(config.grid_seed),
            "CHARGESHARE_PASSWORD_HASH": config.password_hash,
            "CHARGESHARE_HASH_QUEUE": str(config.hash_queue),
            "CHARGESHARE_SIGNUPS_PER_MINUTE": (
                "off"
                if config.limits.signup_per_address is None
                else str(config.limits.signup_per_address.per_minute)
            ),
            "CHARGESHARE_PAYMENT_LEASE_S": str(rules.payment_lease_s),
            "CHARGESHARE_HOLD_PLACEMENT_TIMEOUT_S": str(rules.hold_placement_timeout_s),
            "CHARGESHARE_PAST_START_TOLERANCE_S": str(rules.past_start_tolerance_s),
            "CHARGESHARE_REPLAY_WINDOW_S": str(rules.replay_window_s),
            "CHARGESHARE_LOST_STOP_GRACE_S": str(rules.lost_stop_grace_s),
            "CHARGESHARE_COMMAND_RESEND_AFTER_S": str(rules.command_resend_after_s),
            SIM_CLOCK_ENV: f"{clock_file}#{slot}",
            "CHARGESHARE_FAILPOINT_FILE": str(clock_file.parent / FAILPOINT_FILE),
        }
    )
    if config.redis_url is not None:
        env["CHARGESHARE_REDIS_URL"] = config.redis_url
    # The simulator's own checkout, wherever it runs from.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Node:
    """One `serve` process, across its crashes and restarts, always on the same port."""

    index: int
    port: int
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    killed: bool = False  # this run ended by `kill`, not on its own
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.logs / f"serve-{self.index}-{self.runs}.log"

    def spawn(self, env: dict[str, str], allow_unknown: bool) -> None:
        self.runs += 1
        self.killed = False
        self._close_log()
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            dying_with_us(
                [
                    *(sys.executable, "-m", "chargeshare", "serve"),
                    *("--port", str(self.port), "--log-level", "warning"),
                    "--allow-unknown-chargers" if allow_unknown else "--known-chargers-only",
                ]
            ),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for the simulation is not the server's to take
        )

    def output(self, run: int | None = None) -> str:
        """What the process wrote in its latest run (or in `run`)."""
        path = self.log_path if run is None else self.logs / f"serve-{self.index}-{run}.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """kill -9: no clean-up of any kind, as a crash."""
        if self.running:
            assert self.proc is not None
            self.killed = True
            self.proc.kill()
            self.proc.wait(timeout=STOP_WITHIN_S)

    def terminate(self) -> None:
        """A clean stop (SIGTERM, as a supervisor sends), killed if it takes too long."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_WITHIN_S)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


HAPROXY_CONFIG = """\
global
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout check 2s
    option redispatch
    retries 3
frontend chargeshare
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /healthz
    # A killed process refuses at once and drops its links itself; a busy one must not be taken out.
    default-server check inter 500ms fall 3 rise 2
{servers}
"""


class Balancer:
    """HAProxy in front of the processes."""

    def __init__(self, nodes: list[Node], workdir: Path, port: int) -> None:
        self.port = port
        self.config_path = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        servers = "\n".join(f"    server node{n.index} 127.0.0.1:{n.port}" for n in nodes)
        self.config_path.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("haproxy")
        if binary is None:
            raise BackendFailed("HAProxy is not installed (Debian: apt-get install haproxy)")
        check = subprocess.run([binary, "-c", "-q", "-f", str(self.config_path)], capture_output=True)
        if check.returncode != 0:
            raise BackendFailed(f"HAProxy refused its configuration: {check.stderr.decode()[-2000:]}")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                dying_with_us([binary, "-db", "-f", str(self.config_path)]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_WITHIN_S)


class BackendProcesses:
    """`processes` backends on the configuration's database, for a simulation on `clock`."""

    def __init__(
        self,
        config: Config,
        clock: PublishedClock,
        workdir: Path,
        processes: int = 1,
        *,
        allow_unknown_chargers: bool = False,
    ) -> None:
        if not 1 <= processes <= min(MAX_PROCESSES, MAX_SLOTS):
            raise ValueError(f"processes must be from 1 to {MAX_PROCESSES}, got {processes}")
        self.config, self.clock, self.workdir = config, clock, workdir
        self.allow_unknown = allow_unknown_chargers
        self._ports = [reserve_port() for _ in range(processes + (processes > 1))]
        self.nodes = [Node(i, port_of(self._ports[i]), workdir) for i in range(processes)]
        self.balancer = Balancer(self.nodes, workdir, port_of(self._ports[-1])) if processes > 1 else None
        self.crashes = 0
        self.restarts = 0
        self.failpoint_exits = 0
        # Processes found ended on their own before `exited` was asked (a restart found them down),
        # and the run each ended, so that neither the end nor its log is lost to the restart.
        self._ended: list[int] = []
        self.ended_runs: dict[int, int] = {}
        self._failpoints = workdir / FAILPOINT_FILE
        self._failpoints.write_text("")
        clock.gone = lambda slot: not self.nodes[slot].running

    @property
    def http_url(self) -> str:
        port = self.nodes[0].port if self.balancer is None else self.balancer.port
        return f"http://127.0.0.1:{port}"

    @property
    def ocpp_url(self) -> str:
        return self.http_url.replace("http://", "ws://", 1) + "/ocpp"

    async def start(self) -> None:
        """Every process up and answering (and HAProxy seeing them all), time held meanwhile."""
        with self.clock.hold():
            for node in self.nodes:
                node.spawn(node_env(self.config, self.clock.path, node.index), self.allow_unknown)
            await asyncio.gather(*(self._answering(n) for n in self.nodes))
            if self.balancer is not None:
                self.balancer.start()
                await self._balanced()
        self.clock.followers.update(n.index for n in self.nodes)

    def crash(self, index: int) -> None:
        """kill -9 one process; time no longer waits for it."""
        node = self.nodes[index]
        self.clock.followers.discard(index)
        if node.running:
            node.kill()
            self.crashes += 1

    async def restart(self, index: int) -> None:
        """Start a crashed process again on its port; time stands still until it answers. Another
        fault may `crash` it again before it does (faults overlap): it then stays down, as that
        fault meant, rather than failing its restart."""
        node = self.nodes[index]
        if node.running:
            return
        if index in self.clock.followers:  # it ended on its own, and nobody has asked yet
            self._taken_out(index)
            self._ended.append(index)
        with self.clock.hold():
            node.spawn(node_env(self.config, self.clock.path, index), self.allow_unknown)
            try:
                await self._answering(node)
            except _KilledWhileStarting:
                return
        self.clock.followers.add(index)
        self.restarts += 1

    def arm(self, failpoint: str) -> None:
        """Every process exits at `failpoint` when it next gets there (chargeshare.failpoints)."""
        self._failpoints.write_text(failpoint)

    def disarm(self) -> None:
        self._failpoints.write_text("")

    def ended_on_their_own(self) -> list[int]:
        """Processes that ended on their own (at a failpoint, or of a bug) since `exited` was last
        asked, though restarted since; a process a fault killed is not one (`crash` stopped
        following it)."""
        down = [n.index for n in self.nodes if n.index in self.clock.followers and not n.running]
        return [*self._ended, *down]

    def exited(self) -> list[int]:
        """Processes that ended on their own since last asked; time no longer waits for them."""
        gone = self.ended_on_their_own()
        for index in gone[len(self._ended) :]:
            self._taken_out(index)
        self._ended = []
        return gone

    def _taken_out(self, index: int) -> None:
        node = self.nodes[index]
        self.clock.followers.discard(index)
        if node.proc is not None and node.proc.returncode == FAILPOINT_EXIT:
            self.failpoint_exits += 1
        self.crashes += 1
        self.ended_runs[index] = node.runs

    def up(self) -> list[int]:
        return [n.index for n in self.nodes if n.running]

    def stop(self) -> None:
        """Clean stops (each writes what it holds back, as `serve` does on SIGTERM)."""
        self.clock.followers.clear()
        for node in self.nodes:
            node.terminate()
        if self.balancer is not None:
            self.balancer.stop()
        for reserved in self._ports:
            reserved.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- process {n.index} (run {n.runs}) ---\n{n.output()[-3000:]}" for n in self.nodes
        )

    async def _answering(self, node: Node) -> None:
        deadline = time.monotonic() + START_WITHIN_S
        async with httpx.AsyncClient(base_url=node.url, timeout=5) as http:
            while True:
                if not node.running:
                    if node.killed:
                        raise _KilledWhileStarting
                    raise BackendFailed(
                        f"backend process {node.index} exited while starting:\n{node.output()[-3000:]}"
                    )
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise BackendFailed(
                        f"backend process {node.index} did not answer within {START_WITHIN_S:g} s"
                    )
                await asyncio.sleep(POLL_S)

    async def _balanced(self) -> None:
        """HAProxy forwards (its first health checks passed): every process answers through it."""
        deadline = time.monotonic() + START_WITHIN_S
        async with httpx.AsyncClient(base_url=self.http_url, timeout=5) as http:
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert self.balancer is not None and self.balancer.proc is not None
                if self.balancer.proc.poll() is not None:
                    raise BackendFailed(f"HAProxy exited: {self.balancer.log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise BackendFailed("HAProxy did not forward to the backend in time")
                await asyncio.sleep(POLL_S)
