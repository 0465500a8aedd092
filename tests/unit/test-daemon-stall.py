#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""No client stalls or bloats vfiod: the daemon on a fixture tree, driven over raw
sockets (the helpers are test-daemon.py's).

- Calls sent in one write are all answered, also when the replies fill the socket on
  the way (1,500 GetInfo; ListDevices ahead of GetInfo); a client that does not read is
  not read from once its replies are over the bound, and the daemon does not grow.
- A call over the size limit is refused and its connection closed, however its bytes
  are split across writes.
- A call not whole --call-timeout after its first byte closes the connection, however
  often bytes trickle in, and the fds that came with it are closed.
- Control characters in what a client sends reach the log escaped, never as a line.
- The admin socket has its own reserve past --max-connections; a daemon whose fd limit
  is short of --max-connections serves fewer connections and says so; at the fd limit
  accept() pauses (one log line, no busy loop) and resumes once fds are free.

usage: test-daemon-stall.py VFIOD MKFIXTURE FIXTURES_DIR
"""

import importlib.util
import json
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import time

spec = importlib.util.spec_from_file_location(
    "test_daemon", os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-daemon.py"))
td = importlib.util.module_from_spec(spec)
spec.loader.exec_module(td)
check, connect, send, recv, error_of, closed, Daemon = (
    td.check, td.connect, td.send, td.recv, td.error_of, td.closed, td.Daemon)

MACHINE = td.MACHINE
GETINFO = {"method": "org.varlink.service.GetInfo", "parameters": {}}
LIST = {"method": "io.vfiod.ListDevices", "parameters": {}}


def frame(obj):
    return json.dumps(obj).encode() + b"\0"


def read_replies(s, want, timeout=20):
    """Up to want messages from s, within timeout seconds overall."""
    s.settimeout(1)
    buf, got, end = b"", [], time.time() + timeout
    while len(got) < want and time.time() < end:
        try:
            d = s.recv(1 << 20)
        except (TimeoutError, socket.timeout):
            continue
        except ConnectionResetError:
            break
        if not d:
            break
        buf += d
        *whole, buf = buf.split(b"\0")
        got += [json.loads(m) for m in whole]
    return got


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def new_daemon(vfiod, root, tmp, name, *args, **kw):
    sub = os.path.join(tmp, name)
    os.makedirs(sub)
    os.chmod(sub, 0o755)
    shutil.copy(os.path.join(tmp, "policy.json"), os.path.join(sub, "policy.json"))
    return Daemon(vfiod, root, sub, *args, **kw)


def pipelined(d):
    s = connect(d.sock)
    s.sendall(frame(LIST) * 20 + frame(GETINFO) * 3)
    got = read_replies(s, 23)
    check(len(got) == 23 and all("devices" in r["parameters"] for r in got[:20])
          and all("interfaces" in r["parameters"] for r in got[20:]),
          "20 ListDevices and 3 GetInfo in one write: 23 replies, in order", f"{len(got)} replies")
    s.close()

    s = connect(d.sock)
    s.sendall(frame(GETINFO) * 1500)
    got = read_replies(s, 1500)
    check(len(got) == 1500 and all("interfaces" in r.get("parameters", {}) for r in got),
          "1,500 GetInfo in one write: 1,500 replies", f"{len(got)} replies")
    s.close()

    # A client that sends and never reads: the daemon stops reading it once its replies
    # are over the bound (the client's send blocks), and it does not grow meanwhile.
    rss = rss_kib(d.proc.pid)
    s = connect(d.sock)
    s.setblocking(False)
    batch, sent = frame(LIST) * 100, 0
    end = time.time() + 10
    while sent < 100000 and time.time() < end:
        try:
            n = s.send(batch)
        except BlockingIOError:
            if not select.select([], [s], [], 1)[1]:
                break  # the daemon reads no more
            continue
        if n != len(batch):
            s.setblocking(True)
            s.sendall(batch[n:])
            s.setblocking(False)
        sent += 100
    time.sleep(0.5)
    grown = rss_kib(d.proc.pid) - rss
    check(sent < 100000, "a client that does not read is not read from",
          f"{sent} calls sent without blocking")
    check(grown < 16 * 1024, "... and the daemon does not grow for it", f"{grown} KiB more")
    s.setblocking(True)
    got = read_replies(s, sent, timeout=60)
    check(len(got) == sent, f"once it reads, all its {sent} calls are answered",
          f"{len(got)} replies")
    s.close()


def oversized(d):
    big = frame({"method": "io.vfiod.ListGroups", "parameters": {"x": "a" * 70000}})
    ok = frame(GETINFO)
    splits = {"in one write": [big],
              "split at 60,000": [big[:60000], big[60000:]],
              "split at 65,536": [big[:65536], big[65536:]],
              "split at 65,537": [big[:65537], big[65537:]],
              "with its NUL alone": [big[:-1], big[-1:]],
              "split at its first byte": [big[:1], big[1:]],
              "after a whole call": [ok + big[:100], big[100:]]}
    for name, parts in splits.items():
        s = connect(d.sock)
        try:
            for i, p in enumerate(parts):
                if i:
                    time.sleep(0.2)  # its own read
                s.sendall(p)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = read_replies(s, 2 if parts[0].startswith(ok) else 1, timeout=5)
        last = got[-1] if got else None
        check(error_of(last) == "io.vfiod.ProtocolError"
              and last["parameters"].get("reason") == "message larger than the limit",
              f"a 70,000-byte call {name} is refused", got)
        check(closed(s), f"... and its connection closed ({name})")
        s.close()


def slow_calls(d):
    time.sleep(0.5)  # the connections before are gone
    base = d.fds()
    # Half a call, then a byte every 0.2 s: closed a second after its first byte.
    s = connect(d.sock)
    text = frame(GETINFO)
    s.sendall(text[:10])
    t0, reply, gone = time.time(), None, False
    for i in range(10, len(text) - 1):
        if select.select([s], [], [], 0.2)[0]:
            reply = read_replies(s, 1, timeout=1)
            gone = True
            break
        try:
            s.send(text[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            gone = True
            break
    took = time.time() - t0
    check(gone and took < 3, "a call dribbled in a byte at a time is cut off after "
          "--call-timeout 1", f"closed: {gone}, after {took:.1f} s")
    check(bool(reply) and error_of(reply[0]) == "io.vfiod.ProtocolError",
          "... with a ProtocolError that says so", reply)
    s.close()

    # 16 fds with a call that never ends: gone with the connection.
    devnull = [os.open("/dev/null", os.O_RDONLY) for _ in range(16)]
    s = connect(d.sock)
    send_partial = b'{"method":"io.vfiod.ListGroups","par'
    s.sendmsg([send_partial], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                td.array.array("i", devnull))])
    for fd in devnull:
        os.close(fd)
    n, end = d.fds(), time.time() + 0.8
    while n <= base + 16 and time.time() < end:
        time.sleep(0.02)
        n = d.fds()
    check(n > base + 16, "16 fds with half a call are held by the daemon", f"{n - base} more")
    check(closed(s, timeout=4), "... until --call-timeout closes the connection")
    s.close()
    n = d.settled_fds(base)
    check(n == base, "... with the fds", f"{base} before, {n} after")

    # A call sent in pieces within the deadline is served.
    s = connect(d.sock)
    for i in range(0, len(text), 20):
        s.sendall(text[i:i + 20])
        time.sleep(0.1)
    got = read_replies(s, 1, timeout=5)
    check(got and "interfaces" in got[0].get("parameters", {}),
          "a call sent in pieces within the deadline is answered", got)
    s.close()


def log_escapes(d):
    forged = "<0>vfiod: FORGED"
    s = connect(d.sock)
    send(s, {"method": "io.vfiod.X\n" + forged + "\r\x1b[2J", "parameters": {}})
    r = recv(s)
    check(error_of(r) == "org.varlink.service.MethodNotFound", "a method name with a newline "
          "is MethodNotFound", r)
    s.close()
    time.sleep(0.2)
    lines = d.output().splitlines()
    check(not any(line.startswith(forged) for line in lines),
          "a newline in a call does not forge a log line")
    check(all(re.match(r"<[0-7]>vfiod: ", line) for line in lines),
          "every log line is the daemon's own, with its priority",
          [x for x in lines if not re.match(r"<[0-7]>vfiod: ", x)][:3])
    check(any("io.vfiod.X\\n" + forged + "\\r\\x1b[2J" in line for line in lines),
          "the control characters are in the log escaped")


def admin_reserve(vfiod, root, tmp):
    d = new_daemon(vfiod, root, tmp, "admin", "--max-connections", "4", "--request-rate", "0")
    try:
        held = [connect(d.sock) for _ in range(4)]
        time.sleep(0.3)
        r = call_on(connect(d.sock), GETINFO)
        check(error_of(r) == "io.vfiod.LimitExceeded"
              and r["parameters"].get("limit") == "connections",
              "a fifth public connection is past --max-connections 4", r)
        r = call_on(connect(d.admin), GETINFO)
        check("interfaces" in r.get("parameters", {}),
              "the admin socket is served with --max-connections used up", r)
        admins = [connect(d.admin) for _ in range(16)]
        time.sleep(0.3)
        r = ask(admins[-1], GETINFO)
        check("interfaces" in r.get("parameters", {}), "16 admin connections are served", r)
        r = call_on(connect(d.admin), GETINFO)
        check(error_of(r) == "io.vfiod.LimitExceeded"
              and r["parameters"].get("limit") == "admin_connections",
              "a 17th admin connection is refused: admin_connections", r)
        for s in held + admins:
            s.close()
    finally:
        check(d.stop() == 0, "the admin-reserve daemon exits 0")


def call_on(s, msg):
    """The reply to msg on s, or the refusal that came first; s is closed."""
    r = ask(s, msg)
    s.close()
    return r


def ask(s, msg):
    """The reply to msg on s, or the refusal that came first (None: nothing)."""
    try:
        send(s, msg)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        r = recv(s)
    except (TimeoutError, socket.timeout, ConnectionResetError):
        r = None
    return r


def fd_limit(vfiod, root, tmp):
    # Started short of fds for --max-connections: fewer connections, said at start.
    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (320, 320))
    d = new_daemon(vfiod, root, tmp, "fdlimit", "--request-rate", "0", preexec_fn=low)
    try:
        m = re.search(r"serving at most (\d+) connections", d.output())
        check(m, "a daemon whose fd limit is short of --max-connections says so",
              d.output()[-500:])
        fit = int(m.group(1)) if m else 20
        held = [connect(d.sock) for _ in range(fit)]
        time.sleep(0.3)
        r = call_on(held.pop(), GETINFO)
        check("interfaces" in r.get("parameters", {}), f"its {fit} connections are served", r)
        held.append(connect(d.sock))
        time.sleep(0.3)
        s = connect(d.sock)
        s.settimeout(3)
        r = ask(s, GETINFO)
        check(error_of(r) == "io.vfiod.LimitExceeded", f"connection {fit + 1} is refused "
              "with LimitExceeded (not left waiting for an fd)", r)
        s.close()
        for s in held:
            s.close()
    finally:
        check(d.stop() == 0, "that daemon exits 0")

    # Its fd limit lowered while it runs: accept() fails with EMFILE. It pauses, logs
    # once, spins no CPU, and accepts again once connections close.
    d = new_daemon(vfiod, root, tmp, "emfile", "--request-rate", "0")
    try:
        base = d.quiet_fds()
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (base + 10, base + 10))
        conns = [connect(d.sock) for _ in range(40)]
        cpu = cpu_seconds(d.proc.pid)
        time.sleep(2)
        cpu = cpu_seconds(d.proc.pid) - cpu
        said = [x for x in d.output().splitlines() if "accept" in x]
        check(cpu < 0.5, "at its fd limit the daemon does not spin", f"{cpu:.2f} s of CPU in 2 s")
        check(len(said) == 1 and "Too many open files" in said[0],
              "... and says so once", f"{len(said)} lines: {said[:2]}")
        for s in conns:
            s.close()
        time.sleep(0.2)
        s = connect(d.sock)
        s.settimeout(5)
        send(s, GETINFO)
        try:
            r = recv(s)
        except (TimeoutError, socket.timeout):
            r = None
        check(r and "interfaces" in r.get("parameters", {}),
              "once fds are free it accepts and serves again", r)
        s.close()
        check(any("accepting connections again" in x for x in d.output().splitlines()),
              "... and says so")
    finally:
        check(d.stop() == 0, "the EMFILE daemon exits 0")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    vfiod, mkfixture, fixtures = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: needs root (the daemon writes the tree; prlimit on it)")
        return 77
    tmp = td.scratch("test-daemon-stall-")
    try:
        root = os.path.join(tmp, "root")
        subprocess.run([mkfixture, os.path.join(fixtures, "machines", MACHINE + ".txt"), root],
                       check=True)
        with open(os.path.join(tmp, "policy.json"), "w") as f:
            json.dump({"rules": [{"users": ["root"], "operations": ["list"]}]}, f)
        d = new_daemon(vfiod, root, tmp, "main", "--request-rate", "0", "--call-timeout", "1",
                       "--idle-timeout", "30", "-v")
        try:
            pipelined(d)
            oversized(d)
            slow_calls(d)
            log_escapes(d)
            check(d.proc.poll() is None, "the daemon is still running", d.output()[-2000:])
        finally:
            rc = d.stop()
            check(rc == 0, "the daemon exits 0 on SIGTERM", f"status {rc}")
        admin_reserve(vfiod, root, tmp)
        fd_limit(vfiod, root, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.failures} failure(s)")
    return 1 if td.failures else 0


if __name__ == "__main__":
    sys.exit(main())
