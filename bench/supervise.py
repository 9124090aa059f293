"""The measuring half of bench/supervise.sh (which installs the peers and builds launch).

Five supervisors, each PID 1 of a fresh PID namespace (`unshare --pid --fork
--mount-proc`), supervising N copies of `helper up FIFO`: a process that writes one byte
to a FIFO the bench holds ("I run"), then sleeps until a signal ends it (SIGTERM's
default action, so it stops at once). The same helper for every tool, executed directly
(s6's `./run` is a symlink to it: no shell in between).

  start-up  from the exec of `unshare` to the N-th byte on the FIFO (every process has
            run its first instruction and written), ms
  shutdown  from SIGTERM to the supervisor to the exit of `unshare`, which returns once
            PID 1 has exited and the kernel has reaped everything in the namespace, ms
  idle      10 processes, settled for 2 s: Rss and Pss summed over /proc/PID/smaps_rollup
            of every process of the supervisor (everything in the namespace that is not
            one of the helpers: s6-supervise per service, circusd's, launch alone), and
            wake-ups: the context switches (voluntary and not) of all their threads over
            10 s, per second
  logs      one process writes 1 GiB in 100-byte lines, relayed by the supervisor to
            its stdout, a pipe read by `helper count`; RSS and PSS of the supervisor once
            the reader has every line, its peak (VmHWM), and the time it took
  reload    10 processes, the tool's own reload of an unchanged configuration, end to
            end as an operator types it (client start-up included), ms: `launch reload`,
            `supervisorctl update`, `circusctl reloadconfig` wait until it is done;
            `s6-svscanctl -a` only asks (so does launch's `kill -HUP`, the second row)

Every figure is the median of ROUNDS rounds; within a round the tools take turns, so
that a machine busy with other work weighs on all of them alike.
"""

import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

LAUNCH = os.environ["LAUNCH"]
# An older launch, measured as one more tool ("before").
BASELINE = os.environ.get("BASELINE")
HELPER = os.environ["HELPER"]
CIRCUSD = os.environ["CIRCUSD"]
CIRCUSCTL = os.environ["CIRCUSCTL"]
HORUST = os.environ["HORUST"]
ROUNDS = int(os.environ.get("ROUNDS", "5"))
IDLE_ROUNDS = min(ROUNDS, int(os.environ.get("IDLE_ROUNDS", "3")))
LOG_ROUNDS = int(os.environ.get("LOG_ROUNDS", "3"))
LOG_BYTES = int(os.environ.get("LOG_BYTES", str(1 << 30)))
SIZES = [int(n) for n in os.environ.get("SIZES", "1 10 100").split()]
TOOLS = os.environ.get("TOOLS", "launch supervisord circus s6 horust").split()
if BASELINE and "before" not in TOOLS:
    TOOLS.insert(1, "before")
FIGURES = os.environ.get("FIGURES", "startstop idle reload logs").split()
LINE = 100
NS = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
WORK = tempfile.mkdtemp(prefix="supervise-bench.")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---- each tool's configuration ----------------------------------------------------

def setup_launch(d, procs, binary=LAUNCH):
    os.makedirs(f"{d}/project", exist_ok=True)
    os.makedirs(f"{d}/data", exist_ok=True)
    with open(f"{d}/project/launch.yml", "w") as f:
        f.write("processes:\n")
        for name, argv, logs in procs:
            extra = ", log_prefix: true, restart: never" if logs else ""
            f.write(f"  {name}: {{command: {json.dumps(argv)}{extra}}}\n")
    return [binary, "run", "--root", d, "--control", f"{d}/control.sock"]


def setup_supervisord(d, procs):
    with open(f"{d}/supervisord.conf", "w") as f:
        f.write(f"[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\n"
                f"pidfile={d}/supervisord.pid\n"
                f"[unix_http_server]\nfile={d}/supervisor.sock\n"
                f"[supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n"
                f"[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                f"supervisor.rpcinterface:make_main_rpcinterface\n")
        for name, argv, logs in procs:
            # Output to supervisord's own stdout, as launch's goes to its own.
            f.write(f"[program:{name}]\ncommand={' '.join(argv)}\nstartsecs=0\n"
                    f"stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n"
                    f"redirect_stderr=true\nautorestart={'false' if logs else 'true'}\n")
    return ["supervisord", "-c", f"{d}/supervisord.conf"]


def setup_circus(d, procs):
    with open(f"{d}/circus.ini", "w") as f:
        f.write(f"[circus]\nendpoint = ipc://{d}/circus.sock\n"
                f"pubsub_endpoint = ipc://{d}/circus-pub.sock\n"
                f"statsd = False\n")
        for name, argv, logs in procs:
            f.write(f"[watcher:{name}]\ncmd = {argv[0]}\nargs = {' '.join(argv[1:])}\n"
                    f"numprocesses = 1\ncopy_env = True\n")
            if logs:
                # Circus's relay with a prefix per line, as log_prefix.
                f.write("respawn = False\nstdout_stream.class = FancyStdoutStream\n"
                        "stdout_stream.color = green\n")
    return [CIRCUSD, f"{d}/circus.ini"]


def setup_s6(d, procs):
    scan = f"{d}/scan"
    os.makedirs(scan, exist_ok=True)
    for name, argv, logs in procs:
        svc = f"{scan}/{name}"
        os.makedirs(svc, exist_ok=True)
        if argv[1] == "up":
            os.symlink(HELPER, f"{svc}/run")
        else:
            script(f"{svc}/run", f"#!/bin/sh\nexec {' '.join(argv)}\n")
        if logs:
            # s6's relay: a logger service on the pipe s6-svscan holds, copying every
            # line to its stdout (s6-svscan's).
            os.makedirs(f"{svc}/log", exist_ok=True)
            script(f"{svc}/log/run", "#!/usr/bin/execlineb -P\ns6-log 1\n")
    return ["s6-svscan", scan]


def setup_horust(d, procs):
    os.makedirs(f"{d}/services", exist_ok=True)
    os.makedirs(f"{d}/uds", exist_ok=True)
    for name, argv, logs in procs:
        with open(f"{d}/services/{name}.toml", "w") as f:
            f.write(f'command = "{" ".join(argv)}"\n[termination]\nwait = "5s"\n')
    return [HORUST, "--services-path", f"{d}/services", "--uds-folder-path", f"{d}/uds"]


def script(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


SETUP = {"launch": setup_launch, "supervisord": setup_supervisord, "circus": setup_circus,
         "s6": setup_s6, "horust": setup_horust,
         "before": lambda d, procs: setup_launch(d, procs, BASELINE)}


def reload_async(tool, run):
    """The tool's request to reload that returns before the reload is done (what
    s6-svscanctl does); None where it has none that does not restart the processes."""
    return {
        "launch": ["kill", "-s", "HUP", str(run.init)],
        "before": ["kill", "-s", "HUP", str(run.init)],
        "s6": ["s6-svscanctl", "-a", f"{run.dir}/scan"],
    }.get(tool)


def reload_command(tool, d):
    """The tool's reload of its configuration, waiting until it is done (but s6's, which
    has no such thing); None where it has none."""
    return {
        "launch": [LAUNCH, "reload", "--control", f"{d}/control.sock"],
        "before": [BASELINE or LAUNCH, "reload", "--control", f"{d}/control.sock"],
        # `update` rereads the files and applies the difference (4.x).
        "supervisord": ["supervisorctl", "-c", f"{d}/supervisord.conf", "update"],
        # `reloadconfig` rereads and applies the difference; `reload` would restart
        # every process, which is not what launch's reload does.
        "circus": [CIRCUSCTL, "--endpoint", f"ipc://{d}/circus.sock", "reloadconfig"],
        # Asynchronous: returns once the rescan is asked for, not once done.
        "s6": ["s6-svscanctl", "-a", f"{d}/scan"],
        "horust": None,
    }[tool]


# ---- processes ---------------------------------------------------------------------

def procs_table():
    """{pid: (ppid, exe)} of every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        table[int(entry)] = (int(stat[stat.rindex(")") + 2:].split()[1]), exe)
    return table


def child_of(parent, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for pid, (ppid, _) in procs_table().items():
            if ppid == parent:
                return pid
        time.sleep(0.002)
    raise RuntimeError(f"no child of {parent}")


def supervisor_pids(init):
    """The supervisor's own processes: init and its descendants but the helpers."""
    table = procs_table()
    found, todo = [], [init]
    while todo:
        pid = todo.pop()
        if table.get(pid, (0, ""))[1] != HELPER:
            found.append(pid)
        todo.extend(p for p, (pp, _) in table.items() if pp == pid)
    return found


def rollup(pids):
    rss = pss = hwm = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return rss, pss, hwm


def switches(pids):
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                            total += int(line.split()[1])
            except OSError:
                pass
    return total


class Run:
    """One supervisor, started under unshare with its processes writing to a FIFO."""

    def __init__(self, tool, n, procs=None, stdout=subprocess.DEVNULL):
        self.dir = d = f"{WORK}/{tool}-{n}-{time.monotonic_ns()}"
        os.makedirs(d)
        self.fifo = f"{d}/up.fifo"
        os.mkfifo(self.fifo)
        # Read and write: the bench is a writer too, so the FIFO never reads as ended.
        self.fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        if procs is None:
            procs = [(f"p{i}", [HELPER, "up", self.fifo], False) for i in range(1, n + 1)]
        argv = SETUP[tool](d, procs)
        env = dict(os.environ, BENCH_FIFO=self.fifo)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(NS + argv, stdout=stdout, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=env, cwd=d)
        self.init = child_of(self.proc.pid)

    def wait_up(self, n, timeout=60):
        """ms from the exec of unshare until n processes have written."""
        got = 0
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        end = self.t0 + timeout
        while got < n:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"only {got} of {n} processes ran within {timeout} s")
            if poller.poll(left * 1000):
                try:
                    got += len(os.read(self.fd, 4096))
                except BlockingIOError:
                    pass
        return (time.monotonic() - self.t0) * 1000

    def stop(self):
        """ms from SIGTERM to the supervisor until unshare has exited."""
        t0 = time.monotonic()
        os.kill(self.init, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return float("inf")
        return (time.monotonic() - t0) * 1000

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.init, signal.SIGKILL)
            self.proc.wait()
        os.close(self.fd)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the figures -------------------------------------------------------------------

def startstop(results):
    for n in SIZES:
        for tool in TOOLS:
            run = Run(tool, n)
            try:
                results.setdefault(f"start-{n}", {}).setdefault(tool, []).append(run.wait_up(n))
                time.sleep(0.5)  # settled: every supervisor has done its start-up work
                results.setdefault(f"stop-{n}", {}).setdefault(tool, []).append(run.stop())
            finally:
                run.close()


def idle(results):
    for tool in TOOLS:
        run = Run(tool, 10)
        try:
            run.wait_up(10)
            time.sleep(2)
            pids = supervisor_pids(run.init)
            rss, pss, _ = rollup(pids)
            c0 = switches(pids)
            time.sleep(10)
            c1 = switches(pids)
            for key, value in (("rss", rss), ("pss", pss), ("wakeups", (c1 - c0) / 10),
                               ("nprocs", len(pids))):
                results.setdefault(f"idle-{key}", {}).setdefault(tool, []).append(value)
        finally:
            run.stop()
            run.close()


def reload(results):
    for tool in TOOLS:
        run = Run(tool, 10)
        try:
            run.wait_up(10)
            time.sleep(1)
            for key, cmd in (("reload", reload_command(tool, run.dir)),
                             ("reload-async", reload_async(tool, run))):
                if cmd is None:
                    continue
                times = []
                for _ in range(5):
                    t0 = time.monotonic()
                    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    times.append((time.monotonic() - t0) * 1000)
                    if done.returncode != 0:
                        raise RuntimeError(f"{tool}: {cmd} failed: {done.stderr.decode()}")
                    time.sleep(0.2)
                results.setdefault(key, {}).setdefault(tool, []).append(statistics.median(times))
        finally:
            run.stop()
            run.close()


def logs(results):
    lines = LOG_BYTES // LINE
    for tool in TOOLS:
        if tool == "horust":
            continue
        read, write = os.pipe()
        done = f"{WORK}/logs-done"
        if os.path.exists(done):
            os.remove(done)
        reader = subprocess.Popen([HELPER, "count", str(lines), done], stdin=read)
        os.close(read)
        procs = [("spew", [HELPER, "spew", str(lines * LINE)], True)]
        run = Run(tool, 1, procs=procs, stdout=write)
        os.close(write)
        try:
            end = time.monotonic() + float(os.environ.get("LOG_TIMEOUT", "900"))
            while not os.path.exists(done) and time.monotonic() < end:
                time.sleep(0.05)
            if not os.path.exists(done):
                log(f"{tool}: the reader did not get every line in time")
                continue
            with open(done) as f:
                # The reader's CLOCK_MONOTONIC, which is Python's monotonic clock too.
                took = int(f.read()) / 1e9 - run.t0
            time.sleep(1)
            rss, pss, hwm = rollup(supervisor_pids(run.init))
            for key, value in (("rss", rss), ("pss", pss), ("hwm", hwm), ("secs", took)):
                results.setdefault(f"logs-{key}", {}).setdefault(tool, []).append(value)
        finally:
            run.stop()
            run.close()
            reader.wait()


def main():
    results = {}
    for r in range(1, ROUNDS + 1):
        for figure, fn in (("startstop", startstop), ("idle", idle), ("reload", reload)):
            if figure in FIGURES and (figure != "idle" or r <= IDLE_ROUNDS):
                log(f"round {r} of {ROUNDS}: {figure}")
                fn(results)
    if "logs" in FIGURES:
        for r in range(1, LOG_ROUNDS + 1):
            log(f"logs, round {r} of {LOG_ROUNDS}: {LOG_BYTES} bytes through each relay")
            logs(results)
    with open(os.environ.get("RESULTS", f"{WORK}/results.json"), "w") as f:
        json.dump(results, f)
    table(results)
    shutil.rmtree(WORK, ignore_errors=True)


def table(results):
    def med(key, tool):
        values = results.get(key, {}).get(tool)
        return statistics.median(values) if values else None

    def row(label, key, fmt):
        cells = []
        for tool in TOOLS:
            v = med(key, tool)
            cells.append("n/a" if v is None else fmt(v))
        print(f"| {label} | " + " | ".join(cells) + " |")

    ms = lambda v: "timed out" if v == float("inf") else f"{v:.0f}" if v >= 10 else f"{v:.1f}"
    kib = lambda v: f"{v:.0f}"
    print("| | " + " | ".join(TOOLS) + " |")
    print("|---" * (len(TOOLS) + 1) + "|")
    for n in SIZES:
        row(f"start-up to all running, {n} processes, ms", f"start-{n}", ms)
    for n in SIZES:
        row(f"shutdown, {n} processes, ms", f"stop-{n}", ms)
    row("idle RSS, 10 processes, KiB (all the supervisor's processes)", "idle-rss", kib)
    row("idle PSS, 10 processes, KiB", "idle-pss", kib)
    row("the supervisor's processes", "idle-nprocs", lambda v: f"{v:.0f}")
    row("idle wake-ups per second (context switches over 10 s)", "idle-wakeups",
        lambda v: f"{v:.1f}")
    row("reload, unchanged configuration, until done, ms", "reload", ms)
    row("reload asked for, returning at once (launch: kill -HUP), ms", "reload-async", ms)
    gib = LOG_BYTES / (1 << 30)
    row(f"RSS after relaying {gib:g} GiB of logs, KiB", "logs-rss", kib)
    row(f"PSS after relaying {gib:g} GiB of logs, KiB", "logs-pss", kib)
    row("peak RSS while relaying (VmHWM), KiB", "logs-hwm", kib)
    row(f"time to relay {gib:g} GiB, s", "logs-secs", lambda v: f"{v:.1f}")
    print()
    print(f"Medians of {ROUNDS} rounds (idle: {IDLE_ROUNDS}, logs: {LOG_ROUNDS}).")


if __name__ == "__main__":
    main()
