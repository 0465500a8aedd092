#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile users neither bloat vfiod nor take its event loop from others, on the
4,113-function tree of mkfixture --generate-bench 16 255 (the helpers are
test-daemon.py's). The figures are printed as "#" lines.

With the default limits and --request-rate 0 (every call served), uid 1000 holds 128
Monitor streams, one read and the others not, while root's lease traffic feeds them
events, and uid 1001 holds 128 connections that send ListDevices and never read:

- the daemon's RSS stays under 64 MiB, and is back under 32 MiB once they close;
- the streams that do not read are ended, once past the uid's share of queued output,
  with a LimitExceeded that names the limit; the one that reads is not;
- the ListDevices calls wait (nothing is lost): a connection that reads at last gets all
  its replies;
- meanwhile uid 1002's GetInfo p99 stays under 10 ms.

With the default request rate, uid 1001 calls ListDevices as fast as it can: it is
charged by the size of the replies (refused past its rate), and uid 1002's GetInfo p99
stays under 10 ms.

On an AddressSanitizer build the bounds on RSS and latency are printed, not checked.

usage: test-daemon-mem.py VFIOD MKFIXTURE
"""

import importlib.util
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

spec = importlib.util.spec_from_file_location(
    "test_daemon", os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-daemon.py"))
td = importlib.util.module_from_spec(spec)
spec.loader.exec_module(td)
check, connect, send, recv, error_of, Daemon = (
    td.check, td.connect, td.send, td.recv, td.error_of, td.Daemon)

MONITOR_UID, LIST_UID, PROBE_UID = 1000, 1001, 1002
CONNS = 128  # the default --max-connections-per-uid
GETINFO = {"method": "org.varlink.service.GetInfo", "parameters": {}}
LIST = {"method": "io.vfiod.ListDevices", "parameters": {}}
MONITOR = {"method": "io.vfiod.Monitor", "parameters": {}, "more": True}
# The last PF's VFs are on vfio-pci (its vfdriver): leases take them.
LEASE_PF_BUS = 0x10 + 15 * 2
LEASED = [f"0000:{LEASE_PF_BUS:02x}:00.{fn}" for fn in range(1, 5)]


def frame(obj):
    return json.dumps(obj).encode() + b"\0"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def sanitized(pid):
    """Whether the daemon runs with AddressSanitizer: its shadow memory and quarantine
    make RSS, and its checks latency, say nothing of the daemon's own."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def bound(ok, what, detail, pid):
    """check() for a bound on RSS or latency, only told on a sanitizer build."""
    if sanitized(pid):
        print(f"# not checked (AddressSanitizer build): {what}")
    else:
        check(ok, what, detail)


def make_tree(mkfixture, root):
    """The bench tree, its last PF's VFs on vfio-pci, with stand-in device nodes (memory
    devices made with mknod, as bench/host-daemon.sh does) for the ones leased."""
    desc = subprocess.run([mkfixture, "--generate-bench", "16", "255"], check=True,
                          capture_output=True, text=True).stdout
    lines = desc.splitlines()
    pf = next(i for i, x in enumerate(lines) if x.startswith(f"dev 0000:{LEASE_PF_BUS:02x}:00.0 "))
    lines[pf] = lines[pf].replace("vfdriver=iavf", "vfdriver=vfio-pci")
    path = root + ".txt"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run([mkfixture, path, root], check=True)
    os.makedirs(os.path.join(root, "dev/vfio/devices"), exist_ok=True)
    os.mknod(os.path.join(root, "dev/iommu"), 0o600 | 0o020000, os.makedev(1, 3))
    for i, addr in enumerate(LEASED):
        minor = (3, 5, 7, 8)[i]
        d = os.path.realpath(os.path.join(root, "sys/bus/pci/devices", addr))
        os.makedirs(os.path.join(d, f"vfio-dev/vfio{i}"))
        with open(os.path.join(d, f"vfio-dev/vfio{i}/dev"), "w") as f:
            f.write(f"1:{minor}\n")
        os.mknod(os.path.join(root, f"dev/vfio/devices/vfio{i}"), 0o600 | 0o020000,
                 os.makedev(1, minor))
        os.symlink(os.path.join("../..", os.path.relpath(d, os.path.join(root, "sys")),
                                f"vfio-dev/vfio{i}"),
                   os.path.join(root, f"sys/dev/char/1:{minor}"))


def proc_entries(root):
    """This process's stat and status below the root, where the daemon checks a lease
    holder (the tree has no /proc of its own)."""
    me = os.path.join(root, "proc", str(os.getpid()))
    os.makedirs(me, exist_ok=True)
    for name in ("stat", "status"):
        with open(f"/proc/self/{name}") as src, open(os.path.join(me, name), "w") as dst:
            dst.write(src.read())


class Child:
    """A process as uid, running fn(arg, out) (out: a pipe to write one JSON line); it
    waits for a line on its input before fn's second half (see the callers)."""

    def __init__(self, uid, fn, *args):
        r_in, self.w_in = os.pipe()
        self.r_out, w_out = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self.w_in)
                os.close(self.r_out)
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                with os.fdopen(r_in) as inp, os.fdopen(w_out, "w") as out:
                    fn(inp, out, *args)
            except BaseException as e:  # noqa: BLE001 (told to the parent)
                try:
                    os.write(w_out, (json.dumps({"error": repr(e)}) + "\n").encode())
                except OSError:
                    pass
            os._exit(0)
        os.close(r_in)
        os.close(w_out)
        self.out = os.fdopen(self.r_out)

    def say(self, text="go"):
        os.write(self.w_in, (text + "\n").encode())

    def hear(self, timeout=60):
        if not select.select([self.out], [], [], timeout)[0]:
            return {"error": "no answer"}
        line = self.out.readline()
        return json.loads(line) if line else {"error": "child exited"}

    def wait(self):
        os.close(self.w_in)
        os.waitpid(self.pid, 0)


def drain(socks, quiet=0.5):
    """Reads socks until each is at its end or has been quiet that long: for each, its
    messages and whether it ended."""
    bufs, ended = {s: b"" for s in socks}, set()
    for s in socks:
        s.setblocking(False)
    live = list(socks)
    while live:
        ready = select.select(live, [], [], quiet)[0]
        if not ready:
            break
        for s in ready:
            try:
                d = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                d = b""
            if d:
                bufs[s] += d
            else:
                ended.add(s)
                live.remove(s)
    return [([json.loads(m) for m in bufs[s].split(b"\0") if m], s in ended) for s in socks]


def monitors(inp, out, sock):
    """CONNS Monitor streams; the first is read all along (by a thread), the others not
    until told."""
    conns = []
    for _ in range(CONNS):
        s = connect(sock)
        send(s, MONITOR)
        conns.append(s)
    started = sum(1 for s in conns if (recv(s) or {}).get("parameters", {}).get("event"))
    reader = {"events": 0, "ended": False, "stop": False}

    def read_all(s):
        s.settimeout(0.2)
        buf = b""
        while not reader["stop"]:
            try:
                d = s.recv(1 << 16)
            except (TimeoutError, socket.timeout):
                continue
            if not d:
                reader["ended"] = True
                return
            buf += d
            *whole, buf = buf.split(b"\0")
            reader["events"] += len(whole)

    th = threading.Thread(target=read_all, args=(conns[0],))
    th.start()
    out.write(json.dumps({"started": started}) + "\n")
    out.flush()
    inp.readline()
    reader["stop"] = True
    th.join()
    got = drain(conns[1:])
    errors = {json.dumps(m, sort_keys=True) for msgs, _ in got for m in msgs if "error" in m}
    out.write(json.dumps({
        "reader_events": reader["events"], "reader_ended": reader["ended"],
        "ended": sum(1 for _, e in got if e),
        "events": sum(1 for msgs, _ in got for m in msgs if "event" in m.get("parameters", {})),
        "errors": sorted(errors)}) + "\n")
    out.flush()
    inp.readline()
    for s in conns:
        s.close()


def listers(inp, out, sock, calls):
    """CONNS connections that each send calls ListDevices and never read; then the last
    one reads all its replies."""
    conns = []
    for _ in range(CONNS):
        s = connect(sock)
        s.setblocking(False)
        try:
            s.send(frame(LIST) * calls)
        except BlockingIOError:
            pass
        conns.append(s)
    out.write(json.dumps({"connected": len(conns)}) + "\n")
    out.flush()
    inp.readline()
    for s in conns[:-1]:
        s.close()
    s = conns[-1]
    s.setblocking(True)
    s.settimeout(20)
    buf, got = b"", 0
    try:
        while got < calls:
            d = s.recv(1 << 20)
            if not d:
                break
            buf += d
            *whole, buf = buf.split(b"\0")
            got += sum(1 for m in whole if b'"devices"' in m[:64])
    except (TimeoutError, socket.timeout):
        pass
    s.close()
    out.write(json.dumps({"replies": got}) + "\n")
    out.flush()
    inp.readline()


def prober(inp, out, sock):
    """GetInfo after GetInfo on one connection until told to stop: the latencies."""
    s = connect(sock)
    lat = []
    out.write(json.dumps({"probing": True}) + "\n")
    out.flush()
    while not select.select([inp], [], [], 0)[0]:
        t = time.perf_counter()
        send(s, GETINFO)
        r = recv(s)
        lat.append((time.time(), time.perf_counter() - t))
        if not r or "interfaces" not in r.get("parameters", {}):
            out.write(json.dumps({"error": f"GetInfo: {r}"}) + "\n")
            return
        time.sleep(0.002)
    inp.readline()
    s.close()
    out.write(json.dumps({"latencies": lat}) + "\n")
    out.flush()


def list_loop(inp, out, sock, seconds):
    """ListDevices after ListDevices, each reply read, for that long: how many were
    answered and how many refused."""
    s = connect(sock)
    n, refused, other, buf = 0, 0, [], b""
    out.write(json.dumps({"listing": True}) + "\n")
    out.flush()
    end = time.time() + seconds
    while time.time() < end:
        send(s, LIST)
        while b"\0" not in buf:
            d = s.recv(1 << 20)
            if not d:
                break
            buf += d
        msg, _, buf = buf.partition(b"\0")
        if msg.startswith(b'{"parameters":{"devices":'):
            n += 1
        elif b'"request_rate"' in msg:
            refused += 1
            time.sleep(0.001)
        else:
            other.append(msg[:200].decode(errors="replace"))
            break
    s.close()
    out.write(json.dumps({"lists": n, "refused": refused, "other": other}) + "\n")
    out.flush()


def lease_traffic(d, seconds, rate=250):
    """Acquire and Release on the admin socket for that long, at most rate a second:
    nine events each for the monitors. Returns the rounds made and the largest RSS seen
    meanwhile (KiB)."""
    s = connect(d.admin)
    rounds, peak, start = 0, rss_kib(d.proc.pid), time.time()
    while time.time() < start + seconds:
        ahead = start + rounds / rate - time.time()
        if ahead > 0:
            time.sleep(ahead)
        send(s, {"method": "io.vfiod.Acquire", "parameters": {"devices": LEASED}})
        s.settimeout(10)
        data, anc, _, _ = s.recvmsg(1 << 16, socket.CMSG_SPACE(16 * 4))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for fd in td.array.array("i", payload[:len(payload) - len(payload) % 4]):
                    os.close(fd)
        r = json.loads(data.rstrip(b"\0"))
        if "lease" not in r.get("parameters", {}):
            check(False, "root's lease traffic runs", r)
            break
        send(s, {"method": "io.vfiod.Release",
                 "parameters": {"lease": r["parameters"]["lease"]}})
        recv(s)
        rounds += 1
        if rounds % 20 == 0:
            peak = max(peak, rss_kib(d.proc.pid))
    s.close()
    return rounds, max(peak, rss_kib(d.proc.pid))


def p99(values):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))] if v else float("inf")


def probe_figures(m, t0, t1):
    """uid PROBE_UID's GetInfo latencies between t0 and t1: printed; their p99 (ms)."""
    lat = [x for when, x in m.get("latencies", []) if t0 <= when <= t1]
    q = p99(lat) * 1000
    print(f"# uid {PROBE_UID}: {len(lat)} GetInfo, p50 "
          f"{sorted(lat)[len(lat) // 2] * 1000 if lat else 0:.2f} ms, p99 {q:.2f} ms, "
          f"max {max(lat, default=0) * 1000:.1f} ms")
    return len(lat), q


def new_daemon(vfiod, root, tmp, name, *args):
    """A daemon with a directory of its own for its sockets, policy and log."""
    sub = os.path.join(tmp, name)
    os.makedirs(sub)
    os.chmod(sub, 0o755)
    with open(os.path.join(sub, "policy.json"), "w") as f:
        # (A rule that names devices scopes list too: root lists the whole tree by a
        # rule of its own.)
        json.dump({"rules": [{"users": [MONITOR_UID, LIST_UID, PROBE_UID, "root"],
                              "operations": ["list", "monitor"]},
                             {"users": ["root"], "operations": ["acquire"],
                              "devices": LEASED, "on_release": "pool"}]}, f)
    return Daemon(vfiod, root, sub, *args)


def reap(kids):
    for k in kids:
        try:
            os.kill(k.pid, 9)
            os.waitpid(k.pid, 0)
        except OSError:
            pass


def slow_readers(vfiod, root, tmp):
    """The default limits but --request-rate 0: every call is served."""
    d = new_daemon(vfiod, root, tmp, "slow", "--request-rate", "0")
    kids = []
    try:
        r = td.call(d.sock, "io.vfiod.ListDevices")
        n = len(r.get("parameters", {}).get("devices", []))
        check(n == 4113, "the tree has 4,113 functions", n)
        base = rss_kib(d.proc.pid)

        probe = Child(PROBE_UID, prober, d.sock)
        kids.append(probe)
        check(probe.hear().get("probing"), f"uid {PROBE_UID} calls GetInfo")
        t0 = time.time()
        mon = Child(MONITOR_UID, monitors, d.sock)
        kids.append(mon)
        m = mon.hear()
        check(m.get("started") == CONNS, f"uid {MONITOR_UID} holds {CONNS} Monitor streams", m)
        lis = Child(LIST_UID, listers, d.sock, 4)
        kids.append(lis)
        m = lis.hear()
        check(m.get("connected") == CONNS,
              f"uid {LIST_UID} holds {CONNS} connections that sent ListDevices", m)
        peak = rss_kib(d.proc.pid)
        rounds, busy = lease_traffic(d, 8)
        peak = max(peak, busy, rss_kib(d.proc.pid))
        print(f"# RSS: {base / 1024:.1f} MiB at start, {peak / 1024:.1f} MiB at most under "
              f"load ({rounds} Acquire+Release meanwhile)")
        bound(peak < 64 * 1024, "the daemon's RSS stays under 64 MiB", f"{peak} KiB",
              d.proc.pid)

        mon.say()
        m = mon.hear()
        t1 = time.time()
        print(f"# monitors: the reader read {m.get('reader_events')} events; of the others "
              f"{m.get('ended')} were ended, {m.get('events')} events read")
        errs = [json.loads(e) for e in m.get("errors", [])]
        check(m.get("ended", 0) > 0 and m.get("events", 0) > 0,
              "streams that do not read are ended once past the uid's share", m)
        check(len(errs) == 1 and errs[0].get("error") == "io.vfiod.LimitExceeded"
              and errs[0].get("parameters", {}).get("limit") == "output_per_uid",
              "... with a LimitExceeded that names output_per_uid", errs)
        check(not m.get("reader_ended")
              and m.get("reader_events", 0) > m.get("events", 0) / CONNS,
              "the stream that reads is not ended, and gets its events", m)
        lis.say()
        m = lis.hear()
        check(m.get("replies") == 4, "a ListDevices connection that reads at last gets all "
              "4 replies", m)
        mon.say()
        lis.say()
        for k in (mon, lis):
            k.wait()
        kids = [probe]

        # Memory goes back once they are gone (the daemon trims its heap within a second
        # of freeing a lot).
        closed, end = rss_kib(d.proc.pid), time.time() + 5
        time.sleep(1.5)
        after = rss_kib(d.proc.pid)
        while after >= 32 * 1024 and time.time() < end and not sanitized(d.proc.pid):
            time.sleep(0.2)
            after = rss_kib(d.proc.pid)
        print(f"# RSS: {closed / 1024:.1f} MiB as they closed")
        print(f"# RSS: {after / 1024:.1f} MiB after they closed")
        bound(after < 32 * 1024, "... and is back under 32 MiB after they close",
              f"{after} KiB", d.proc.pid)

        probe.say()
        n, q = probe_figures(probe.hear(), t0, t1)
        bound(n > 100 and q < 10, f"uid {PROBE_UID}'s GetInfo p99 stays under 10 ms "
              "meanwhile", f"{q:.1f} ms", d.proc.pid)
        probe.wait()
        kids = []
        check(d.proc.poll() is None, "the daemon is still running", d.output()[-2000:])
    finally:
        reap(kids)
        rc = d.stop()
        check(rc == 0, "the daemon exits 0 on SIGTERM", f"status {rc}")


def costly_calls(vfiod, root, tmp):
    """The default request rate: a uid that calls ListDevices as fast as it can."""
    d = new_daemon(vfiod, root, tmp, "costly")
    kids = []
    try:
        td.call(d.sock, "io.vfiod.ListDevices")  # the scan
        probe = Child(PROBE_UID, prober, d.sock)
        kids.append(probe)
        check(probe.hear().get("probing"), f"uid {PROBE_UID} calls GetInfo")
        t0 = time.time()
        lister = Child(LIST_UID, list_loop, d.sock, 3)
        kids.append(lister)
        lister.hear()
        m = lister.hear()
        t1 = time.time()
        print(f"# uid {LIST_UID}: {m.get('lists')} ListDevices answered in 3 s, "
              f"{m.get('refused')} refused")
        check(not m.get("other") and 0 < m.get("lists", 0) < 3 * 100
              and m.get("refused", 0) > 0,
              "a ListDevices of 4,113 devices costs its caller more than one call of "
              "--request-rate", m)
        probe.say()
        n, q = probe_figures(probe.hear(), t0, t1)
        bound(n > 100 and q < 10, f"uid {PROBE_UID}'s GetInfo p99 stays under 10 ms "
              "meanwhile", f"{q:.1f} ms", d.proc.pid)
        for k in (lister, probe):
            k.wait()
        kids = []
    finally:
        reap(kids)
        rc = d.stop()
        check(rc == 0, "that daemon exits 0 on SIGTERM", f"status {rc}")


def run(vfiod, root, tmp):
    proc_entries(root)
    slow_readers(vfiod, root, tmp)
    costly_calls(vfiod, root, tmp)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    vfiod, mkfixture = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: needs root (other uids, mknod)")
        return 77
    tmp = td.scratch("test-daemon-mem-")
    try:
        root = os.path.join(tmp, "root")
        t0 = time.time()
        make_tree(mkfixture, root)
        print(f"# tree made in {time.time() - t0:.1f} s")
        run(vfiod, root, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.failures} failure(s)")
    return 1 if td.failures else 0


if __name__ == "__main__":
    sys.exit(main())
