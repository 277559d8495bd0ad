#!/usr/bin/env python3
"""bench/bench.py: the driver of `make bench` (see bench/README.md).

Runs every scenario against every server in turn (Meridian, rocketmq-rust's NameServer, any
already-running peer given by address, and loadgen's echo server as the lookup ceiling and the
registration floor), with the same
loadgen settings and the same CPU sets, then prints one ratio table per scenario and writes
bench/results/<date>-<commit>.json (every loadgen figure, machine, commit, exact commands) and
PNG plots (drawn by the meridian-bench-plot crate).

It owns orchestration only: every figure comes from meridian-loadgen's --json output, and every
process it starts is stopped by PID. It must not run in `make test`. Standard library only, so
a fresh machine needs nothing beyond what `make bench` builds.
"""

import argparse
import datetime
import json
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
MERIDIAN_BIN = os.path.join(RELEASE, "meridian")
LOADGEN_BIN = os.path.join(RELEASE, "meridian-loadgen")
PLOT_BIN = os.path.join(RELEASE, "meridian-bench-plot")
RMQ_BIN_DEFAULT = os.path.join(ROOT, "target", "peers", "bin", "rocketmq-namesrv-rust")

# Ports of the servers this driver starts: PORT_BASE + index (loopback only), or a free port the
# kernel picks when that one is taken (another server on the host must never be measured).
PORT_BASE = 29870
# Lines of a server's log quoted when it fails to start.
SERVER_LOG_TAIL_LINES = 3
# The account of the auth comparison (--auth): written into the run directory, never a real one.
AUTH_ACCESS_KEY = "benchAccessKey"
# How long a started server may take to accept connections.
SERVER_READY_TIMEOUT_S = 15.0
# How long a stopped server may take to exit after SIGTERM before it gets SIGKILL.
SERVER_STOP_TIMEOUT_S = 5.0
# How long a /metrics scrape of a bench Meridian may take.
METRICS_SCRAPE_TIMEOUT_S = 10.0
# Registration stages the server times (histograms meridian_registration_<stage>_seconds), in
# the order a registration passes them; see bench/README.md, "Where registration time goes".
REGISTRATION_STAGES = ("receive", "inflate", "scan", "apply", "publish")
# The register scenario's changed re-sends: a broker's periodic re-send after a few topics changed.
RESEND_CHANGE_FRACTION = 0.01
# Interval of RSS samples (memory scenario).
RSS_SAMPLE_INTERVAL_S = 0.1
# A Java NameServer refuses frames above 16 MiB (~80k topics); 60k topics is the largest size
# every peer accepts, so registrations above this are skipped on peers given by address.
EXTERNAL_REGISTER_TOPICS_MAX = 60_000

# Scenario sizes: (quick, full).
SIZES = {
    "lookup_duration": ("3s", "10s"),
    "lookup_inflights": ([4], [4, 16]),
    "register_topics": ([60_000, 100_000], [60_000, 100_000, 1_000_000]),
    "storm_duration": ("4s", "20s"),
    # Topics in total, each on MEMORY_WIDTH of MEMORY_BROKERS brokers: 100k and 1M entries.
    "memory_topics": (50_000, 500_000),
    "memory_duration": ("2s", "3s"),
    # (brokers, topics per broker, re-registration period, duration: half quiet, half periods).
    "scale_shape": ((50, 2_000, "5s", "10s"), (1_000, 10_000, "30s", "120s")),
}
LOOKUP_TOPICS = 10_000
LOOKUP_BROKERS = 4
LOOKUP_CONNECTIONS = 32
OPEN_LOOP_INFLIGHT_CAP = 64  # a cap only: the window must never limit the open-loop rate
OPEN_LOOP_FRACTION = 0.5  # of the slowest peer's closed-loop maximum
# 20 brokers x 50k topics keeps every registration near 11 MB, under the 16 MiB frame cap of
# Java and rocketmq-rust, so every peer can hold the full 1M entries.
MEMORY_BROKERS = 20
MEMORY_WIDTH = 2
# scale: open-loop lookups per second (well below any peer's maximum: latency, not throughput).
SCALE_RATE = 5_000
# scale: a peer is run at fewer brokers when the full shape would take more RSS than this, at
# SCALE_PEER_BYTES_PER_ENTRY (rocketmq-rust measured 1871 B per entry in the memory scenario).
SCALE_PEER_RSS_BUDGET = 10 << 30
SCALE_PEER_BYTES_PER_ENTRY = 1_900
# scale: the longest load from empty loadgen allows before it fails the run (bounds the run).
SCALE_LOAD_TIMEOUT_S = 90

started_pids = []  # every process this driver started and has not reaped yet


def log(msg=""):
    print(msg, flush=True)


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(rmq_bin):
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = bool(sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]))
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "commit": commit,
        "dirty": dirty,
        "rustc": sh(["rustc", "--version"]),
        "rocketmq_namesrv_rust": " ".join(sh([rmq_bin, "--version"]).split()[-1:]) if os.path.exists(rmq_bin) else None,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# ---------------------------------------------------------------------------------------------
# Servers


class Server:
    """One peer. kind: meridian | rmq-rust | ceiling | floor | external (running already, not ours).
    ceiling and floor are both loadgen's echo server: the lookup ceiling, and the registration
    floor (it receives a registration, checks its CRC32 and answers, see bench/README.md).

    auth_of: for a Meridian with authentication on (--auth), the name of its auth-off twin; the
    server then verifies every request and loadgen signs every request it sends there."""

    def __init__(self, name, kind, addr, pid=None, shards=None, auth_of=None):
        self.name, self.kind, self.addr = name, kind, addr
        self.shards = shards  # Meridian only
        self.auth_of = auth_of
        self.pid = pid  # known for started servers, optional for external ones
        self.proc = None
        self.command = None
        self.metrics_addr = None  # a started Meridian's /metrics address (a free loopback port)

    @property
    def started_by_us(self):
        return self.kind != "external"

    def start(self, args, run_dir, label):
        """Starts the server and waits until it accepts; RuntimeError naming the reason (and the
        tail of its log) if it cannot, with nothing of it left running. A Meridian whose free
        metrics port was taken in the meantime is started once more on another."""
        try:
            self.start_once(args, run_dir, label)
        except RuntimeError as e:
            if self.kind != "meridian" or "cannot listen for metrics" not in str(e):
                raise
            self.start_once(args, run_dir, label)

    def start_once(self, args, run_dir, label):
        if not self.started_by_us:
            return
        self.stop()  # never two of ours at once, even after an earlier failure
        workdir = os.path.join(run_dir, f"{self.name}-{label}")
        os.makedirs(workdir, exist_ok=True)
        env = dict(os.environ)
        host, port = self.addr.rsplit(":", 1)
        if port_in_use(host, int(port)):
            raise RuntimeError(f"{self.addr} is already taken by a process the bench did not start")
        if self.kind == "meridian":
            # Metrics on a free loopback port the kernel picks (the registration stages are read
            # from them), never the default port, which may belong to a Meridian already running.
            self.metrics_addr = f"127.0.0.1:{free_port()}"
            cmd = [MERIDIAN_BIN, "--listen", self.addr, "--data-dir", workdir, "--shards", str(self.shards),
                   "--set", f"metricsListen={self.metrics_addr}"]
            if self.auth_of:
                cmd += ["--set", "authEnabled=true", "--set", f"authAccountsFile={args.auth_accounts}",
                        "--set", "authBrokerRequests=true", "--set", "authReadRequests=true"]
        elif self.kind == "rmq-rust":
            env["ROCKETMQ_HOME"] = workdir
            cmd = [args.rmq_namesrv, "--listenPort", port, "--bindAddress", host]
        else:
            cmd = [LOADGEN_BIN, "echo-server", "--listen", self.addr, "--threads", str(args.echo_threads), "-d", "1h"]
        cmd = ["taskset", "-c", args.server_cpus] + cmd  # taskset execs: the PID is the server's
        self.command = (f"ROCKETMQ_HOME={workdir} " if self.kind == "rmq-rust" else "") + " ".join(cmd)
        log_path = os.path.join(workdir, "server.log")
        with open(log_path, "wb") as logf:
            try:
                self.proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            except OSError as e:
                raise RuntimeError(f"cannot run {cmd[0]}: {e}") from None
        self.pid = self.proc.pid
        started_pids.append(self.pid)
        deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"exited with {code}: {log_tail(log_path)} ({os.path.relpath(log_path, ROOT)})")
            try:
                socket.create_connection((host, int(port)), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"not accepting on {self.addr} after {SERVER_READY_TIMEOUT_S:.0f}s: "
                           f"{log_tail(log_path)} ({os.path.relpath(log_path, ROOT)})")

    def stop(self):
        if self.proc is None:
            return
        stop_pid(self.proc)
        self.proc = None
        self.pid = None


def log_tail(path):
    """The last few non-empty lines of a server log, on one line, for a failure message."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no log"
    return " | ".join(lines[-SERVER_LOG_TAIL_LINES:])[-400:] or "empty log"


def port_in_use(host, port):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def free_port():
    """A loopback port nothing holds now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_stages(server):
    """{stage: [sum_s, count]} of the registration stage histograms of a started Meridian's
    /metrics; {} for any other server, or with the reason under "error" if the scrape fails."""
    if server.kind != "meridian" or not server.metrics_addr:
        return {}
    try:
        with urllib.request.urlopen(f"http://{server.metrics_addr}/metrics", timeout=METRICS_SCRAPE_TIMEOUT_S) as r:
            text = r.read().decode("utf-8", "replace")
    except OSError as e:
        return {"error": f"/metrics at {server.metrics_addr}: {e}"}
    stages = {}
    for line in text.splitlines():
        m = re.match(r"meridian_registration_(\w+)_seconds_(sum|count) (\S+)$", line)
        if m and m.group(1) in REGISTRATION_STAGES:
            stages.setdefault(m.group(1), [0.0, 0])[0 if m.group(2) == "sum" else 1] = float(m.group(3))
    return stages


def stage_means(before, after):
    """{stage: (mean seconds per registration, registrations)} between two scrapes; a stage
    with no registration between them maps to (None, 0)."""
    means = {}
    for stage in REGISTRATION_STAGES:
        (s0, n0), (s1, n1) = before.get(stage, [0.0, 0]), after.get(stage, [0.0, 0])
        n = int(n1 - n0)
        means[stage] = ((s1 - s0) / n if n > 0 else None, n)
    return means


def pick_port(preferred):
    """preferred when nothing listens on it or holds it bound, else a free port the kernel picks."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def stop_pid(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.pid in started_pids:
        started_pids.remove(proc.pid)


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB, or (None, None) if the process is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0])
    except OSError:
        return None, None
    return fields.get("VmRSS"), fields.get("VmHWM")


# ---------------------------------------------------------------------------------------------
# Loadgen


def run_loadgen(args, run_dir, label, server, lg_args, timeout_s, on_stderr_line=None):
    """Runs one bounded loadgen; returns (json or None, error text or None, command string)."""
    json_path = os.path.join(run_dir, f"{label}-{server.name}.json")
    cmd = [LOADGEN_BIN] + lg_args + ["-n", server.addr, "--json", json_path]
    if args.loadgen_cpus:
        cmd += ["--cpus", args.loadgen_cpus]
    if server.pid:
        cmd += ["--pid", str(server.pid)]
    if server.auth_of:
        cmd += ["--credentials", args.auth_credentials]  # keeps the secret off the command line
    out_path = os.path.join(run_dir, f"{label}-{server.name}.out")
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        started_pids.append(proc.pid)
        stderr_tail = []

        def read_stderr():
            for line in proc.stderr:
                stderr_tail.append(line)
                del stderr_tail[:-20]
                if on_stderr_line:
                    on_stderr_line(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            # Ctrl-C semantics: loadgen drains, unregisters and still writes its JSON.
            timed_out = True
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        started_pids.remove(proc.pid)
        reader.join(5)
    command = " ".join(cmd)
    result = None
    if os.path.exists(json_path):
        with open(json_path) as f:
            result = json.load(f)
    if timed_out:
        return result, f"timed out after {timeout_s:.0f}s", command
    if proc.returncode not in (0, 3) or result is None:
        tail = "".join(stderr_tail).strip().splitlines()[-1:] or ["no output"]
        return result, f"loadgen exit {proc.returncode}: {tail[0][:120]}", command
    return result, None, command


def unexpected_errors(result):
    if not result:
        return None
    n = result.get("errors_unexpected", 0)
    if not n:
        return None
    keys = list(result.get("errors", {}).items())[:2]
    for phase in result.get("lookups", []):
        keys += list(phase.get("errors", {}).items())[:2]
    text = f"{n} unexpected errors ({', '.join(f'{k}: {v}' for k, v in keys[:3])})"
    examples = list((result.get("error_examples") or {}).values())[:1]
    return text + (f"; e.g. {str(examples[0])[:160]}" if examples else "")


def lookup_phase(result, phase=None):
    for p in (result or {}).get("lookups", []):
        if phase is None or p.get("phase") == phase or p.get("name") == phase:
            return p
    return None


def event(result, name):
    events = (result or {}).get("events_us", {})
    for key in (name, f"{name}.all-targets"):
        if key in events:
            return events[key]
    return None


def target_cores(result):
    targets = ((result or {}).get("cpu") or {}).get("targets") or []
    return targets[0].get("cores") if targets else None


# ---------------------------------------------------------------------------------------------
# Tables


class Table:
    """Rows of one scenario: label, unit, better ('higher'|'lower'), value per server name."""

    def __init__(self, title, servers, note=None):
        self.title, self.note = title, note
        self.servers = servers
        self.rows = []
        self.footnotes = []

    def row(self, label, unit, better, values):
        self.rows.append({"label": label, "unit": unit, "better": better, "values": values})

    def skip(self, reason):
        """A cell that was not measured; the reason is printed under the table."""
        if reason not in self.footnotes:
            self.footnotes.append(reason)
        return {"skip": self.footnotes.index(reason) + 1}

    def flag(self, value, reason):
        """A measured value from a run with unexpected errors: shown with !n, reason under the table."""
        if value is None or not reason:
            return value
        if reason not in self.footnotes:
            self.footnotes.append(reason)
        return {"value": value, "flag": self.footnotes.index(reason) + 1}

    def to_json(self):
        return {"title": self.title, "note": self.note, "rows": self.rows, "footnotes": self.footnotes}

    def render(self):
        names = [s.name for s in self.servers]
        peers = [s.name for s in self.servers if s.kind not in ("meridian", "ceiling", "floor")]
        twins = [(s.name, s.auth_of) for s in self.servers if s.auth_of]
        has_ceiling = any(s.kind == "ceiling" for s in self.servers) and any(
            num(r["values"].get("ceiling")) is not None for r in self.rows
        )
        header = (["scenario"] + names + [f"vs {p}" for p in peers] + (["of ceiling"] if has_ceiling else [])
                  + ["auth vs off" if off == "meridian" else f"{on} vs {off}" for on, off in twins])
        lines = []
        losses = []
        body = []
        for r in self.rows:
            cells = [r["label"]] + [fmt(r["values"].get(n), r["unit"]) for n in names]
            m = r["values"].get("meridian")
            for p in peers + (["ceiling"] if has_ceiling else []):
                ratio = ratio_of(m, r["values"].get(p), r["better"])
                cells.append("-" if ratio is None else f"{ratio:.2f}")
                if ratio is not None and ratio < 0.95 and p != "ceiling":
                    losses.append(f"{r['label'].strip()} vs {p}: {ratio:.2f}")
            for on, off in twins:  # the same convention: < 1 = what authentication costs
                ratio = ratio_of(r["values"].get(on), r["values"].get(off), r["better"])
                cells.append("-" if ratio is None else f"{ratio:.2f}")
            body.append(cells)
        widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
        fmt_row = lambda row: "  ".join(  # noqa: E731
            str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)
        )
        lines.append(f"## {self.title}")
        if self.note:
            lines.append(self.note)
        lines.append(fmt_row(header))
        lines += [fmt_row(row) for row in body]
        for i, reason in enumerate(self.footnotes, 1):
            lines.append(f"  [{i}]: {reason}")
        if losses:
            lines.append("  Meridian loses: " + "; ".join(losses))
        return "\n".join(lines)


def num(value):
    """The number in a cell (plain or flagged), or None for a skipped or empty one."""
    if isinstance(value, dict):
        value = value.get("value")
    return value if isinstance(value, (int, float)) else None


def ratio_of(meridian, peer, better):
    """>1 means Meridian is better: meridian/peer for throughput, peer/meridian otherwise."""
    meridian, peer = num(meridian), num(peer)
    if not isinstance(meridian, (int, float)) or not isinstance(peer, (int, float)):
        return None
    if better is None or meridian <= 0 or peer <= 0:
        return None
    return meridian / peer if better == "higher" else peer / meridian


def fmt(value, unit):
    if value is None:
        return "-"
    if isinstance(value, dict):
        if "skip" in value:
            return f"skip[{value['skip']}]"
        if "na" in value:
            return "n/a"
        if "n" in value:
            return f"{fmt(value['value'], unit)} ({value['n']})"
        if "flag" in value:
            return f"{fmt(value['value'], unit)} !{value['flag']}"
        return str(value)
    if unit == "rps":
        return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
    if unit == "us":
        if value >= 1_000_000:
            return f"{value / 1e6:.2f}s"
        if value >= 1000:
            return f"{value / 1000:.2f}ms"
        return f"{value:.0f}us" if value >= 10 else f"{value:.1f}us"
    if unit == "MiB":
        return f"{value:.1f}MiB"
    if unit == "B":
        return f"{value:.0f}B"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "cores":
        return f"{value:.2f}"
    return f"{value}"


# ---------------------------------------------------------------------------------------------
# Scenarios


class Bench:
    def __init__(self, args, servers, run_dir):
        self.args, self.servers, self.run_dir = args, servers, run_dir
        self.quick = 0 if args.quick else 1
        self.tables = []
        self.runs = []  # every loadgen run: scenario, server, command, server command, result
        self.plots = []
        self.open_rate = None
        self.start_failures = {}  # server name -> reasons it failed to start, in order
        self.replay = None  # stored runs when re-rendering a results JSON (--replay)

    def size(self, key):
        if key == "register_topics" and self.args.register_topics:
            return [int(x) for x in self.args.register_topics.split(",") if x]
        return SIZES[key][self.quick]

    def each(self, label, lg_args, timeout_s, servers=None, before=None, on_line=None, after=None):
        """Runs one loadgen per server (fresh server each time); yields (server, result, error).
        before(server) and after(server) (called with the server still running, after loadgen)
        return dicts stored as the run's "extra"."""
        for server in servers or self.servers:
            if self.replay is not None:
                stored = [r for r in self.replay if r["scenario"] == label and r["server"] == server.name]
                if not stored:
                    yield server, None, "not in the replayed results"
                    continue
                self.runs.append(stored[0])
                yield server, stored[0]["loadgen"], stored[0]["error"]
                continue
            t0 = time.monotonic()
            try:
                server.start(self.args, self.run_dir, label)
            except RuntimeError as e:
                log(f"  {label:<28} {server.name:<13} server failed to start: {e}")
                self.start_failures.setdefault(server.name, []).append(f"{label}: {e}")
                self.runs.append({"scenario": label, "server": server.name, "server_command": server.command,
                                  "loadgen_command": None, "error": f"server failed to start: {e}", "extra": {},
                                  "server_rss_end_kib": None, "server_hwm_end_kib": None, "loadgen": None})
                yield server, None, f"failed to start: {e}"
                continue
            extra = before(server) if before else {}
            server_args = lg_args(server) if callable(lg_args) else lg_args
            result, error, command = run_loadgen(
                self.args, self.run_dir, label, server, server_args, timeout_s, on_line(server) if on_line else None
            )
            server_rss = rss_kib(server.pid) if server.pid else (None, None)
            if after:
                extra.update(after(server))
            server.stop()
            errors = [e for e in (error, unexpected_errors(result)) if e]
            error = "; ".join(errors) if errors else None
            self.runs.append({"scenario": label, "server": server.name, "server_command": server.command,
                              "loadgen_command": command, "error": error, "extra": extra,
                              "server_rss_end_kib": server_rss[0], "server_hwm_end_kib": server_rss[1],
                              "loadgen": result})
            status = error or "ok"
            log(f"  {label:<28} {server.name:<13} {time.monotonic() - t0:6.1f}s  {status}")
            yield server, result, error

    def lookup_closed(self):
        d = self.size("lookup_duration")
        groups, series = [], {s.name: [] for s in self.servers}
        for k in self.size("lookup_inflights"):
            label = f"lookup-{LOOKUP_CONNECTIONS}x{k}"
            t = Table(f"lookup, closed loop: {LOOKUP_TOPICS} topics on {LOOKUP_BROKERS} brokers, "
                      f"{LOOKUP_CONNECTIONS} connections x {k} in flight, {d}", self.servers)
            vals = {r: {} for r in ("rps", "p50", "p99", "p999", "cpu")}
            lat = {}
            for server, result, error in self.each(label, lambda s: self.lookup_args(s, k, d), 120):
                self.fill_lookup(t, vals, lat, server, result, error)
            t.row(f"lookup {LOOKUP_CONNECTIONS}x{k} rps", "rps", "higher", vals["rps"])
            t.row("  p50", "us", "lower", vals["p50"])
            t.row("  p99", "us", "lower", vals["p99"])
            t.row("  p99.9", "us", "lower", vals["p999"])
            t.row("  server CPU per lookup", "us", "lower", vals["cpu"])
            self.tables.append(t)
            self.plots.append({"name": label, "kind": "latency", "title": f"{t.title}: latency percentiles",
                               "series": [{"name": n, "values": v} for n, v in lat.items()]})
            groups.append(f"closed {LOOKUP_CONNECTIONS}x{k}")
            for s in self.servers:
                series[s.name].append(num(vals["rps"].get(s.name)))
            if k == 4:
                peers = [num(v) for n, v in vals["rps"].items() if num(v) and n != "ceiling"]
                if peers:
                    self.open_rate = int(min(peers) * OPEN_LOOP_FRACTION)
        return groups, series

    def lookup_args(self, server, k, d, rate=None):
        lg = ["lookup", "--topics", str(LOOKUP_TOPICS), "--brokers", self.brokers_for(server),
              "-c", str(LOOKUP_CONNECTIONS), "-k", str(k), "-d", d, "-q"]
        return lg + (["--rate", str(rate)] if rate else [])

    def brokers_for(self, server):
        # The echo server stores nothing: it answers every lookup with one pre-encoded route of
        # realistic size, so loadgen registers no brokers there and checks answers for shape only.
        return "0" if server.kind == "ceiling" else str(LOOKUP_BROKERS)

    def fill_lookup(self, t, vals, lat, server, result, error, phase=None):
        p = lookup_phase(result, phase)
        if p is None or not p.get("answered"):
            cell = t.skip(f"{server.name}: {error or 'no lookup figures'}")
            for v in vals.values():
                v[server.name] = cell
            return p
        lu = p["latency_us"]
        flag = f"{server.name}: {error}" if error else None
        vals["rps"][server.name] = t.flag(p["throughput_rps"], flag)
        vals["p50"][server.name] = t.flag(lu["p50_us"], flag)
        vals["p99"][server.name] = t.flag(lu["p99_us"], flag)
        vals["p999"][server.name] = t.flag(lu["p999_us"], flag)
        if "cpu" in vals:
            cores = target_cores(result)
            vals["cpu"][server.name] = cores * 1e6 / p["throughput_rps"] if cores and p["throughput_rps"] else t.skip(
                f"{server.name}: CPU unknown (no PID for a peer given by address)")
        lat[server.name] = [lu["p50_us"], lu["p90_us"], lu["p99_us"], lu["p999_us"], lu["max_us"]]
        return p

    def lookup_open(self):
        d = self.size("lookup_duration")
        if not self.open_rate:
            log("  open loop skipped: no closed-loop maximum was measured")
            return None
        rate = self.open_rate
        label = "lookup-open"
        t = Table(f"lookup, open loop at {rate}/s (= {OPEN_LOOP_FRACTION} x the slowest peer's closed-loop 32x4 "
                  f"maximum): {LOOKUP_TOPICS} topics, {LOOKUP_CONNECTIONS} connections, window cap "
                  f"{OPEN_LOOP_INFLIGHT_CAP}, {d}; latency from the intended send time", self.servers)
        vals = {r: {} for r in ("rps", "p50", "p99", "p999", "cpu", "lag")}
        lat = {}
        lg = lambda s: self.lookup_args(s, OPEN_LOOP_INFLIGHT_CAP, d, rate)  # noqa: E731
        for server, result, error in self.each(label, lg, 120):
            p = self.fill_lookup(t, vals, lat, server, result, error)
            if p and p.get("answered"):
                vals["lag"][server.name] = t.flag(p["send_lag_us"]["p99_us"], f"{server.name}: {error}" if error else None)
        t.row(f"lookup open {rate}/s rps", "rps", "higher", vals["rps"])
        t.row("  p50", "us", "lower", vals["p50"])
        t.row("  p99", "us", "lower", vals["p99"])
        t.row("  p99.9", "us", "lower", vals["p999"])
        t.row("  send lag p99 (loadgen)", "us", None, vals["lag"])  # loadgen's own lag: no ratio
        t.row("  server CPU per lookup", "us", "lower", vals["cpu"])
        self.tables.append(t)
        self.plots.append({"name": label, "kind": "latency", "title": f"lookup open loop {rate}/s: latency percentiles",
                           "series": [{"name": n, "values": v} for n, v in lat.items()]})
        return vals["rps"]

    def servers_with_floor(self):
        """(servers, floors): the servers without the ceiling, plus the echo server as the floor
        (the same client work against a server that does the least), if it takes part."""
        floors = [Server("floor", "floor", s.addr) for s in self.servers if s.kind == "ceiling"]
        return [s for s in self.servers if s.kind != "ceiling"] + floors, floors

    def register(self):
        # The echo server takes part as the floor: it receives each registration, checks its
        # CRC32 and answers, so every NameServer's answer time reads as a multiple of it.
        servers, floors = self.servers_with_floor()
        meridians = [s for s in servers if s.kind == "meridian"]
        t = Table("big registration: 1 broker, realistic topic names, first registration, one unchanged re-send "
                  "(same data version), two re-sends with 1% of the topics changed (new data version; median "
                  "shown), then unregister; times until answered and until visible to lookups"
                  + ("; floor = loadgen's echo server: receives the frame, checks its CRC32, answers "
                     "(its lookups are fixed, so 'visible' is n/a)" if floors else ""), servers)
        stages = Table("where registration time goes: the server's own stage times (/metrics before and after each "
                       "run), mean per registration of the run: the first and the two 1%-changed re-sends (in brackets: "
                       "how many the stage timed; the unchanged re-send is received and applied but not scanned)",
                       meridians)
        for topics in self.size("register_topics"):
            label = f"register-{topics // 1000}k"
            timeout_s = 120 if topics <= 100_000 else 600
            lg = ["register", "--topics", str(topics), "--topic-names", "realistic", "--brokers", "1", "--repeat", "3",
                  "--unchanged-resends", "1", "--change-fraction", str(RESEND_CHANGE_FRACTION),
                  "-d", f"{timeout_s}s", "--register-timeout", f"{timeout_s}s", "-q"]
            vals = {r: {} for r in ("answer", "visible", "resend", "changed", "unreg", "hwm")}
            stage_vals = {r: {} for r in REGISTRATION_STAGES + ("client",)}
            run_servers = []
            for s in servers:
                if s.kind == "external" and topics > EXTERNAL_REGISTER_TOPICS_MAX:
                    cell = t.skip(f"{s.name} (by address) above {EXTERNAL_REGISTER_TOPICS_MAX} topics: a Java "
                                  f"NameServer refuses frames > 16 MiB")
                    for v in vals.values():
                        v[s.name] = cell
                else:
                    run_servers.append(s)
            lg_for = lambda s: lg + answers_only_for(s)  # noqa: E731
            scrape = lambda s: {"stages": scrape_stages(s)} if s.kind == "meridian" else {}  # noqa: E731
            after = lambda s: {"stages_after": scrape_stages(s)} if s.kind == "meridian" else {}  # noqa: E731
            for server, result, error in self.each(label, lg_for, timeout_s + 60, servers=run_servers,
                                                   before=scrape, after=after):
                first, visible = event(result, "register.first"), event(result, "visible.first")
                if server.kind == "meridian":
                    self.fill_stages(stages, stage_vals, server, first)
                if server.kind == "floor" and first:
                    visible = {"na": 1}  # nothing to see: its lookups are fixed
                if not first or not visible:
                    cell = t.skip(f"{server.name} {topics} topics: {error or 'registration not answered or not visible'}")
                    for v in vals.values():
                        v[server.name] = cell
                    continue
                vals["answer"][server.name] = first["p50_us"]
                vals["visible"][server.name] = visible if "na" in visible else visible["p50_us"]
                # The first registration was measured; a later step that failed gets its own cell.
                for key, name, what in (("resend", "register.resend-unchanged", "re-send"),
                                        ("changed", "register.resend-changed", "changed re-send")):
                    resend = event(result, name)
                    vals[key][server.name] = resend["p50_us"] if resend else t.skip(
                        f"{server.name} {topics} topics: no {what} answered{': ' + error if error else ''}")
                unreg = event(result, "visible.unregister")
                if server.kind == "floor":
                    vals["unreg"][server.name] = {"na": 1}
                else:
                    vals["unreg"][server.name] = unreg["p50_us"] if unreg else t.skip(
                        f"{server.name} {topics} topics: unregister not visible{': ' + error if error else ''}")
                hwm = self.runs[-1]["server_hwm_end_kib"]
                vals["hwm"][server.name] = hwm / 1024 if hwm else t.skip(f"{server.name}: RSS unknown (no PID)")
            n = f"{topics // 1000}k" if topics < 1_000_000 else f"{topics // 1_000_000}M"
            t.row(f"register {n} answered", "us", "lower", vals["answer"])
            t.row(f"  {n} visible", "us", "lower", vals["visible"])
            t.row(f"  {n} unchanged re-send", "us", "lower", vals["resend"])
            t.row(f"  {n} 1% changed re-send", "us", "lower", vals["changed"])
            t.row(f"  {n} unregister visible", "us", "lower", vals["unreg"])
            t.row(f"  {n} server peak RSS", "MiB", "lower", vals["hwm"])
            if floors:
                for key, what in (("answer", "answered"), ("resend", "re-send"), ("changed", "changed re-send")):
                    t.row(f"  {n} {what} / floor", "x", None, floor_multiples(vals[key], servers))
            for stage in REGISTRATION_STAGES:
                stages.row(f"{n} {stage}" if stage == REGISTRATION_STAGES[0] else f"  {n} {stage}", "us", None,
                           stage_vals[stage])
            stages.row(f"  {n} answered (client, first)", "us", None, stage_vals["client"])
        self.tables.append(t)
        if meridians:
            self.tables.append(stages)

    def fill_stages(self, t, vals, server, first):
        """The stage cells of one Meridian run: mean ms per registration from the scrapes
        stored with the run (so --replay shows them too)."""
        extra = self.runs[-1]["extra"] if self.runs and self.runs[-1]["server"] == server.name else {}
        before, after = extra.get("stages"), extra.get("stages_after")
        failed = next((x["error"] for x in (before, after) if x and "error" in x), None)
        if failed or not before or not after:
            cell = t.skip(f"{server.name}: {failed or 'no /metrics scrape'}")
            for v in vals.values():
                v[server.name] = cell
            return
        for stage, (mean_s, count) in stage_means(before, after).items():
            vals[stage][server.name] = {"value": mean_s * 1e6, "n": count} if count else {"na": 1}
        vals["client"][server.name] = first["p50_us"] if first else None

    def storm(self):
        if not self.open_rate:
            return
        servers, floors = self.servers_with_floor()
        d = self.size("storm_duration")
        rate = self.open_rate
        t = Table(f"registration storm: open loop {rate}/s, {LOOKUP_TOPICS} topics on {LOOKUP_BROKERS} brokers, "
                  f"{d} (first half quiet, second half every broker re-registers every 100ms with 1% changed)"
                  + ("; floor = loadgen's echo server (answers only)" if floors else ""), servers)
        vals = {r: {} for r in ("quiet", "storm", "ratio", "regs")}
        lg = ["storm", "--topics", str(LOOKUP_TOPICS), "--brokers", str(LOOKUP_BROKERS), "-c", str(LOOKUP_CONNECTIONS),
              "-k", str(OPEN_LOOP_INFLIGHT_CAP), "--rate", str(rate), "--storm-period", "100ms",
              "--storm-change-fraction", "0.01", "-d", d, "-q"]
        lg_for = lambda s: lg + answers_only_for(s)  # noqa: E731
        for server, result, error in self.each("storm", lg_for, 180, servers=servers):
            quiet, storm = lookup_phase(result, "quiet"), lookup_phase(result, "storm")
            if not quiet or not storm or not quiet.get("answered") or not storm.get("answered"):
                cell = t.skip(f"{server.name}: {error or 'no quiet/storm figures'}")
                for v in vals.values():
                    v[server.name] = cell
                continue
            flag = f"{server.name}: {error}" if error else None
            vals["quiet"][server.name] = t.flag(quiet["latency_us"]["p99_us"], flag)
            vals["storm"][server.name] = t.flag(storm["latency_us"]["p99_us"], flag)
            vals["ratio"][server.name] = t.flag(storm["latency_us"]["p99_us"] / max(quiet["latency_us"]["p99_us"], 1), flag)
            storm_ev = event(result, "register.storm")
            vals["regs"][server.name] = t.flag(storm_ev["p99_us"], flag) if storm_ev else t.skip(
                f"{server.name}: no storm registrations answered")
        t.row("storm lookup p99 quiet", "us", "lower", vals["quiet"])
        t.row("  lookup p99 during storm", "us", "lower", vals["storm"])
        t.row("  p99 storm / quiet", "x", "lower", vals["ratio"])
        t.row("  re-registration p99 answer", "us", "lower", vals["regs"])
        if num(vals["storm"].get("floor")):
            t.row("  p99 during storm / floor's", "x", None, floor_multiples(vals["storm"], servers))
        self.tables.append(t)

    def memory(self):
        servers = [s for s in self.servers if s.kind != "ceiling"]
        topics = self.size("memory_topics")
        entries = topics * MEMORY_WIDTH
        d = self.size("memory_duration")
        t = Table(f"memory: VmRSS idle (1 s after start) and with {entries:,} topic-on-broker entries "
                  f"({topics:,} realistic topics, each on {MEMORY_WIDTH} of {MEMORY_BROKERS} brokers), "
                  f"sampled during a light lookup load (4 connections x 4)", servers)
        vals = {r: {} for r in ("idle", "loaded", "hwm", "per_entry")}
        samples = {}

        def before(server):
            if not server.pid:
                return {}
            time.sleep(1.0)
            idle = rss_kib(server.pid)[0]
            samples[server.name] = {"idle": idle, "load": []}
            return {"idle_rss_kib": idle}

        def on_line(server):
            def handle(line):
                # Progress lines look like "[   1.0s] load | ..."; sample only during the load phase,
                # when every broker is registered and answering.
                m = re.match(r"\s*\[\s*[\d.]+s\]\s+(\S+)\s+\|", line)
                if m and m.group(1) == "load" and server.pid and server.name in samples:
                    samples[server.name]["load"].append(rss_kib(server.pid)[0])
            return handle

        lg = ["lookup", "--topics", str(topics), "--brokers", str(MEMORY_BROKERS), "--width", str(MEMORY_WIDTH),
              "--topic-names", "realistic", "-c", "4", "-k", "4", "-d", d, "--progress-interval", "200ms",
              "--register-timeout", "120s"]
        for server, result, error in self.each("memory", lg, 300, servers=servers, before=before, on_line=on_line):
            extra = self.runs[-1]["extra"] if self.runs and self.runs[-1]["server"] == server.name else {}
            if server.name in samples:
                extra["load_rss_kib"] = samples[server.name]["load"]
            elif extra.get("idle_rss_kib"):  # --replay
                samples[server.name] = {"idle": extra["idle_rss_kib"], "load": extra.get("load_rss_kib", [])}
            s = samples.get(server.name)
            if not s:
                cell = t.skip(f"{server.name}: RSS unknown (no PID for a peer given by address)")
                for v in vals.values():
                    v[server.name] = cell
                continue
            vals["idle"][server.name] = s["idle"] / 1024 if s["idle"] else None
            load = [x for x in s["load"] if x]
            if error or not load:
                cell = t.skip(f"{server.name}: {error or 'no RSS sample during the load phase'}")
                for key in ("loaded", "hwm", "per_entry"):
                    vals[key][server.name] = cell
                continue
            loaded = max(load)
            vals["loaded"][server.name] = loaded / 1024
            hwm = self.runs[-1]["server_hwm_end_kib"]
            vals["hwm"][server.name] = hwm / 1024 if hwm else None
            vals["per_entry"][server.name] = (loaded - (s["idle"] or 0)) * 1024 / entries
        n = f"{entries // 1_000_000}M" if entries >= 1_000_000 else f"{entries // 1000}k"
        t.row("memory idle RSS", "MiB", "lower", vals["idle"])
        t.row(f"  RSS with {n} entries", "MiB", "lower", vals["loaded"])
        t.row("  peak RSS (VmHWM)", "MiB", "lower", vals["hwm"])
        t.row("  bytes per entry (loaded-idle)", "B", "lower", vals["per_entry"])
        self.tables.append(t)

    def scale(self):
        """The 10M-entry target: B brokers x T topics loaded from empty, then lookups quiet and while
        every broker re-registers once per period with 1% changed (loadgen's scale scenario)."""
        # With the floor, the p99 during / quiet of a server that does the least is the share of
        # the client and the host, and each server's p99 reads as a multiple of the floor's.
        servers, floors = self.servers_with_floor()
        brokers, per_broker, period, d = self.size("scale_shape")
        shapes = {s.name: scale_shape_for(s, brokers, per_broker) for s in servers}
        shape_text = "; ".join(f"{n}: {b} x {t:,} = {b * t / 1e6:g}M entries" for n, (b, t) in shapes.items())
        t = Table(f"scale: brokers x topics (realistic names, each topic on 2..10 brokers), loaded from empty "
                  f"(8 registrations in flight), then open loop {SCALE_RATE}/s for {d}: first half quiet, second "
                  f"half every broker re-registering once per {period} with 1% changed"
                  + ("; floor = loadgen's echo server (answers only: nothing to see, nothing kept)" if floors else ""),
                  servers,
                  note=f"shapes: {shape_text}" + ("" if len(set(shapes.values())) == 1 else
                                                 " (shapes differ: no ratio on rows that grow with the shape)"))
        keys = ("entries", "load", "rss", "per_entry", "cpu", "quiet", "periods", "ratio", "reg")
        vals = {k: {} for k in keys}

        def lg(server):
            b, tp = shapes[server.name]
            return ["scale", "--brokers", str(b), "--topics-per-broker", str(tp), "--period", period, "-d", d,
                    "--rate", str(SCALE_RATE), "-k", str(OPEN_LOOP_INFLIGHT_CAP), "--change-fraction", "0.01",
                    "--load-timeout", f"{SCALE_LOAD_TIMEOUT_S}s", "-q"] + answers_only_for(server)

        timeout_s = SCALE_LOAD_TIMEOUT_S + parse_seconds(d) + 120
        for server, result, error in self.each("scale", lg, timeout_s, servers=servers):
            figures = ((result or {}).get("results") or {}).get("scale")
            floor = server.kind == "floor"
            load_key = "load_answered_s" if floor else "load_visible_s"
            if not figures or figures.get(load_key) is None:
                cell = t.skip(f"{server.name}: {error or 'no scale figures'}")
                for v in vals.values():
                    v[server.name] = cell
                continue
            flag = f"{server.name}: {error}" if error else None
            put = lambda key, value: vals[key].__setitem__(  # noqa: E731
                server.name, value if isinstance(value, dict) else t.flag(value, flag))
            n = figures["entries"]
            put("entries", f"{n / 1e6:g}M ({figures['brokers']}x{figures['topics_per_broker']})")
            put("load", figures[load_key] * 1e6)
            rss = figures.get("server_rss_end_kib")
            # The floor keeps no route state: its RSS is connection buffers, not a cost per entry.
            put("rss", {"na": 1} if floor else rss / 1024 if rss else None)
            put("per_entry", {"na": 1} if floor else figures.get("server_rss_bytes_per_entry_end"))
            put("cpu", figures.get("server_cpu_pct_of_core_periods"))
            put("quiet", figures["p99_quiet_us"] or None)
            put("periods", figures["p99_periods_us"] or None)
            put("ratio", figures["p99_ratio_periods_vs_quiet"] or None)
            put("reg", (figures.get("register_period_us") or {}).get("p99_us") or None)
        same = len(set(shapes.values())) == 1
        grows = "lower" if same else None
        t.row("scale entries (brokers x topics)", "", None, vals["entries"])
        t.row("  load from empty, all visible", "us", grows, vals["load"])
        t.row("  RSS at the end", "MiB", grows, vals["rss"])
        t.row("  RSS bytes per entry (end-before)", "B", "lower", vals["per_entry"])
        t.row(f"  CPU per {period} period (% of one core)", "", grows, vals["cpu"])
        t.row("  lookup p99 quiet", "us", "lower", vals["quiet"])
        t.row("  lookup p99 during re-registrations", "us", "lower", vals["periods"])
        t.row("  p99 during / quiet", "x", "lower", vals["ratio"])
        t.row("  re-registration p99 answer", "us", "lower", vals["reg"])
        if num(vals["periods"].get("floor")):
            t.row("  p99 during / floor's p99 during", "x", None, floor_multiples(vals["periods"], servers))
        self.tables.append(t)


def scale_shape_for(server, brokers, per_broker):
    """(brokers, topics per broker) a server runs the scale table at: the full shape for Meridian,
    fewer brokers for a peer whose RSS at the full shape would pass SCALE_PEER_RSS_BUDGET."""
    if server.kind in ("meridian", "floor"):
        return brokers, per_broker
    most = SCALE_PEER_RSS_BUDGET // (SCALE_PEER_BYTES_PER_ENTRY * per_broker)
    return max(2, min(brokers, most)), per_broker


def answers_only_for(server):
    """loadgen's flag for the floor: its lookups show no registrations."""
    return ["--answers-only"] if server.kind == "floor" else []


def floor_multiples(values, servers):
    """Each server's value of a row as a multiple of the floor's (empty if the floor has none)."""
    floor = num(values.get("floor"))
    return {s.name: num(values.get(s.name)) / floor for s in servers
            if floor and num(values.get(s.name)) is not None}


def parse_seconds(text):
    """'120s' / '2m' / '500ms' -> seconds."""
    m = re.fullmatch(r"([\d.]+)(ms|s|m)?", text)
    if not m:
        raise ValueError(f"bad duration {text!r}")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value * 60 if m.group(2) == "m" else value


def parse_peers(text):
    """PEERS="java=127.0.0.1:19876 other=127.0.0.1:19877/PID" (space or comma separated)."""
    servers = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        name, sep, rest = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            sys.exit(f"bench: bad PEERS entry {item!r}; expected name=host:port[/pid]")
        addr, _, pid = rest.partition("/")
        if not re.fullmatch(r"[\d.]+:\d+", addr):
            sys.exit(f"bench: bad address in PEERS entry {item!r}")
        if pid and (not pid.isdigit() or not os.path.exists(f"/proc/{pid}")):
            sys.exit(f"bench: peer {name}: no process {pid} on this host (PEERS entry {item!r})")
        servers.append(Server(name, "external", addr, int(pid) if pid else None))
    return servers


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short durations and smaller sizes (< 3 min)")
    ap.add_argument("--peers", default=os.environ.get("PEERS", ""), help="running peers: name=host:port[/pid] ...")
    ap.add_argument("--rmq-namesrv", default=RMQ_BIN_DEFAULT, help="rocketmq-namesrv-rust binary ('' to leave out)")
    ap.add_argument("--no-ceiling", action="store_true",
                    help="leave out loadgen's echo server (the lookup ceiling and the registration floor)")
    ap.add_argument("--server-cpus", default=f"0-{(os.cpu_count() or 1) - 1}", help="taskset CPU list of every server")
    ap.add_argument("--loadgen-cpus", default="", help="loadgen --cpus (default: unpinned, 1 thread)")
    # loadgen runs on the same machine and needs about one CPU at full load; the ceiling (echo
    # server) has one thread. One CPU left to loadgen gives Meridian the same budget.
    ap.add_argument("--shards", type=int, default=max(1, (os.cpu_count() or 1) - 1),
                    help="Meridian --shards (default: CPUs - 1, one CPU is left to loadgen)")
    ap.add_argument("--also-shards", default=os.environ.get("ALSO_SHARDS", ""),
                    help="comma list of further Meridian --shards values, each run as its own server")
    ap.add_argument("--auth", action="store_true", default=os.environ.get("AUTH", "0") not in ("", "0"),
                    help="also run meridian-auth: the same build with authEnabled, authBrokerRequests and "
                         "authReadRequests on, loadgen signing every request (default: $AUTH)")
    ap.add_argument("--echo-threads", type=int, default=1, help="echo-server --threads (the ceiling)")
    ap.add_argument("--only", default="", help="comma list of scenarios: lookup,register,storm,memory,scale")
    ap.add_argument("--register-topics", default="",
                    help="comma list of registration sizes in topics (default: 60000,100000 quick; "
                         "60000,100000,1000000 full)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--replay", default="", help="re-render tables and plots of a results JSON (measures nothing)")
    args = ap.parse_args()
    replay = None
    if args.replay:
        with open(args.replay) as f:
            replay = json.load(f)
        args.quick = replay["quick"]
        args.register_topics = ",".join(str(n) for n in replay.get("register_topics", []))
        args.peers, args.rmq_namesrv, args.no_ceiling = "", "", True  # servers come from the file

    for binary in (MERIDIAN_BIN, LOADGEN_BIN) if replay is None else ():
        if not os.access(binary, os.X_OK):
            sys.exit(f"bench: missing {binary}; run `make bench` (it builds it)")
    addr = lambda offset: f"127.0.0.1:{pick_port(PORT_BASE + offset)}"  # noqa: E731
    servers = [Server("meridian", "meridian", addr(0), shards=args.shards)]
    if args.auth:  # next to its twin, so the two runs of each scenario are back to back
        servers.append(Server("meridian-auth", "meridian", addr(3), shards=args.shards, auth_of="meridian"))
    for i, n in enumerate(filter(None, args.also_shards.split(","))):
        servers.append(Server(f"meridian-{n}sh", "meridian", addr(10 + i), shards=int(n)))
    if args.rmq_namesrv:
        if not os.access(args.rmq_namesrv, os.X_OK):
            sys.exit(f"bench: missing {args.rmq_namesrv}; run `make peer-namesrv` or pass --rmq-namesrv ''")
        servers.append(Server("rmq-rust", "rmq-rust", addr(1)))
    servers += parse_peers(args.peers)
    if not args.no_ceiling:
        servers.append(Server("ceiling", "ceiling", addr(2)))
    if replay is not None:
        servers = [Server(s["name"], s["kind"], s["addr"], auth_of=s.get("auth_of")) for s in replay["servers"]]
    for s in servers if replay is None else ():
        if s.kind == "external":
            host, port = s.addr.rsplit(":", 1)
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
            except OSError as e:
                sys.exit(f"bench: peer {s.name} at {s.addr} is not reachable: {e}")

    machine = machine_info(args.rmq_namesrv) if replay is None else replay["machine"]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if replay is not None:
        stamp = machine["date_utc"][:10].replace("-", "") + "-000000"
    run_dir = os.path.join(ROOT, "target", "bench", f"{stamp}-{machine['commit']}" if replay is None else "replay")
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    if args.auth and replay is None:
        write_auth_files(args, run_dir)
    placement = (f"servers: taskset -c {args.server_cpus} (Meridian --shards {args.shards}"
                 + "".join(f", meridian-{n}sh --shards {n}" for n in filter(None, args.also_shards.split(",")))
                 + "; "
                 f"rocketmq-rust's tokio runtime as it defaults; echo server {args.echo_threads} thread), one at a time; "
                 f"loadgen: 1 thread (its body encodes on a SCHED_IDLE thread), " + (f"--cpus {args.loadgen_cpus}" if args.loadgen_cpus else
                                           "unpinned (kernel-scheduled over every CPU)"))
    header = [
        f"meridian bench ({'QUICK' if args.quick else 'full'}) {machine['date_utc']}",
        f"commit {machine['commit']}{' (dirty tree)' if machine['dirty'] else ''} | {machine['cpu_model']}, "
        f"{machine['cores']} CPUs | kernel {machine['kernel']} | {machine['rustc']} | "
        f"loadavg at start {' '.join(machine['loadavg_at_start'])}",
        f"peers: " + ", ".join(f"{s.name} ({s.kind}, {s.addr})" for s in servers)
        + (f" | rocketmq-namesrv-rust {machine['rocketmq_namesrv_rust']}" if args.rmq_namesrv else ""),
        f"placement: {placement}",
        "ratios: >1 = Meridian better (throughput: meridian / peer; latency, time, memory: peer / meridian); "
        "'of ceiling' = the same ratio against loadgen's echo server; 'answered / floor' = a registration's answer "
        "time as a multiple of the same echo server's (it receives the frame, checks its CRC32 and answers)",
    ] + ([
        "auth: meridian-auth = the same binary with authEnabled, authBrokerRequests and authReadRequests on "
        "(every request verified), loadgen signing every request (--credentials); 'auth vs off' = "
        "meridian-auth against meridian in the same convention (< 1 = what verification costs)",
    ] if any(s.auth_of for s in servers) else []) + [
        f"every server is started fresh for every run; logs, loadgen JSON and output: {os.path.relpath(run_dir, ROOT)}",
    ]
    if replay is not None:
        note = "tables re-rendered by --replay from the loadgen results stored by this run"
        header = [h for h in replay["header"] if h != note] + [note]
        placement = replay["placement"]
    log("\n".join(header))
    log()

    bench = Bench(args, servers, run_dir)
    if replay is not None:
        bench.replay = replay["runs"]
    only = set(filter(None, args.only.split(",")))
    t0 = time.monotonic()
    interrupted = False
    try:
        bar_groups, bar_series = [], {s.name: [] for s in servers}
        if not only or "lookup" in only:
            bar_groups, bar_series = bench.lookup_closed()
            open_rps = bench.lookup_open()
            if open_rps:
                bar_groups.append(f"open {bench.open_rate}/s")
                for s in servers:
                    bar_series[s.name].append(num(open_rps.get(s.name)))
            bench.plots.append({"name": "lookup-throughput", "kind": "bars", "title": "lookup throughput (answered/s)",
                                "y_label": "lookups/s", "groups": bar_groups,
                                "series": [{"name": n, "values": v} for n, v in bar_series.items()]})
        if not only or "register" in only:
            bench.register()
        if not only or "storm" in only:
            if bench.open_rate is None:
                bench.open_rate = 20_000  # --only without lookup: a fixed rate every peer sustains
            bench.storm()
        if not only or "memory" in only:
            bench.memory()
        if not only or "scale" in only:
            bench.scale()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: printing what was measured")
    finally:
        for s in servers:
            s.stop()
    elapsed = time.monotonic() - t0

    tables_text = "\n\n".join(t.render() for t in bench.tables)
    log()
    log("\n".join(header))
    log()
    log(tables_text)
    log()
    log(f"bench took {replay['elapsed_s']:.0f}s (replayed)" if replay else f"bench took {elapsed:.0f}s")

    base = os.path.join(args.out, f"{stamp[:8]}-{machine['commit']}{'-quick' if args.quick else ''}")
    results_path, n = base + ".json", 1
    while replay is None and os.path.exists(results_path):  # another run of the same commit today
        n += 1
        results_path = f"{base}-{n}.json"
    if replay is not None:
        # The stored run stays as it was measured; its re-rendering goes next to --out.
        name = os.path.splitext(os.path.basename(args.replay))[0]
        results_path = os.path.join(os.path.abspath(args.out), f"{name}-replayed.json")
    results = {
        "quick": args.quick, "interrupted": interrupted, "machine": machine,
        "register_topics": bench.size("register_topics"),
        "elapsed_s": replay["elapsed_s"] if replay else round(elapsed, 1),
        "placement": placement, "header": header,
        "servers": [{"name": s.name, "kind": s.kind, "addr": s.addr, "auth_of": s.auth_of} for s in servers],
        "tables": [t.to_json() for t in bench.tables], "tables_text": tables_text, "plots": bench.plots,
        "runs": bench.runs,
    }
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(run_dir, "tables.txt"), "w") as f:
        f.write("\n".join(header) + "\n\n" + tables_text + "\n")
    log(f"results: {os.path.relpath(results_path, ROOT)}")
    log("commands (exact; PIDs and ports as used):")
    seen = set()
    for r in bench.runs:
        for c in (r["server_command"], r["loadgen_command"]):
            if c and c not in seen:
                seen.add(c)
        log(f"  [{r['scenario']} / {r['server']}] {r['server_command'] or '(running peer)'}")
        log(f"      {r['loadgen_command'] or '(no loadgen: ' + (r['error'] or 'not run') + ')'}")
    if os.access(PLOT_BIN, os.X_OK) and bench.plots:
        prefix = results_path[: -len(".json")]
        p = subprocess.run([PLOT_BIN, results_path, prefix], capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            log("plots: " + " ".join(os.path.relpath(x, ROOT) for x in p.stdout.split()))
        else:
            log(f"plots skipped: {p.stderr.strip()}")
    else:
        log(f"plots skipped: {os.path.relpath(PLOT_BIN, ROOT)} not built (make bench builds it)")
    if interrupted:
        return 130
    if bench.start_failures:
        for name, reasons in bench.start_failures.items():
            log(f"bench: {name} failed to start in {len(reasons)} run(s); first: {reasons[0]}")
        return 1
    return 0


def write_auth_files(args, run_dir):
    """The server's accounts file and loadgen's credentials file of the --auth comparison; a fresh
    secret per run, and only in the run directory."""
    secret = secrets.token_hex(16)
    args.auth_accounts = os.path.join(run_dir, "auth-accounts.properties")
    args.auth_credentials = os.path.join(run_dir, "auth-credentials.properties")
    for path, text in ((args.auth_accounts, f"{AUTH_ACCESS_KEY}={secret}\n"),
                       (args.auth_credentials, f"accessKey={AUTH_ACCESS_KEY}\nsecretKey={secret}\n")):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)


def cleanup_started(*_):
    for pid in list(started_pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (cleanup_started(), sys.exit(143)))
    try:
        sys.exit(main())
    finally:
        cleanup_started()
