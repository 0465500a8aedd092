#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiod against a fixture tree, on this host (no IOMMU needed).

- A third-party client (Debian's python3-varlink) calls GetInfo, ListDevices and
  ShowDevice and gets what vfioctl prints for the same tree.
- The policy: uid 65534 has no rule and is refused list, show, audit, monitor and bind;
  uid 1000 gets list, audit and monitor, and bind on one device only; refusals change
  nothing in the tree (driver_override files, driver links).
- Bad input on raw sockets: truncated, oversized and invalid JSON, fds sent with calls
  that take none, too many fds, unknown methods and interfaces, 1,000 idle connections
  and the per-uid connection limit: each gets its varlink error, the daemon keeps
  serving others, and its open fds are back to where they were.
- The daemon is alive at the end and exits 0 on SIGTERM.
- A device that appears after the daemon's scan, with no uevent to say so (none come
  below --root): a call that names it finds it.
- A rule that names devices scopes list, show, audit and monitor alike: ListDevices and
  ListGroups hold only its devices (and their groups), Audit audits only them, Monitor
  tells only their events; a rule for every device audits the whole host.
- No rule binds or hands out a bridge: with "8086:*" the host bridge and the ISA bridge
  are refused (DeviceBusy, naming the bridge) and the tree is left alone.
- What a crash leaves: a lease record glued after a piece cut off mid-line is adopted
  (its holder lives), the piece is logged with its raw text; the journal's leftover
  temporary files are removed and logged, other files kept.
- Reclaim of adopted leases whose holder lives: past the timeout the holder and the
  device it keeps are named and the lease stays; a device open nowhere ends its lease;
  force ends the other without killing the holder; NotLeased, a bad timeout and a uid
  without the bind right are refused.

usage: test-daemon.py VFIOD VFIOCTL MKFIXTURE FIXTURES_DIR
"""

import array
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MACHINE = "workstation-rpl-82576-sriov"
BIND_OK = "0000:06:00.0"  # uid 1000 may bind it (it is in use: the daemon says busy)
BIND_NO = "0000:05:00.0"  # nobody may bind it
SHOW = "0000:07:10.0"
NOBODY, USER = 65534, 1000

failures = 0


def check(ok, what, detail=""):
    global failures
    if ok:
        print(f"ok - {what}")
    else:
        failures += 1
        print(f"FAIL - {what}" + (f": {detail}" if detail else ""))


# ---- raw varlink over a UNIX socket ------------------------------------------------


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(10)
    return s


def send(s, obj, fds=()):
    data = json.dumps(obj).encode() + b"\0"
    if fds:
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        s.sendall(data)


def recv(s):
    """One message, or None when the daemon closed the connection first."""
    buf = b""
    while not buf.endswith(b"\0"):
        d = s.recv(1 << 20)
        if not d:
            return None
        buf += d
    first, _, rest = buf.partition(b"\0")
    assert not rest, "more than one message"
    return json.loads(first)


def call(path_or_sock, method, params=None, fds=(), **extra):
    s = connect(path_or_sock) if isinstance(path_or_sock, str) else path_or_sock
    msg = {"method": method, "parameters": params or {}}
    msg.update(extra)
    send(s, msg, fds)
    reply = recv(s)
    if isinstance(path_or_sock, str):
        s.close()
    return reply


def error_of(reply):
    return reply.get("error") if reply else "connection closed"


def closed(s, timeout=5):
    """Whether the daemon closes s (end of file) within timeout seconds."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except (TimeoutError, socket.timeout):
        return False
    except ConnectionResetError:
        return True


# ---- the daemon --------------------------------------------------------------------


class Daemon:
    def __init__(self, vfiod, root, tmp, *args, preexec_fn=None):
        self.sock = os.path.join(tmp, "io.vfiod")
        self.admin = os.path.join(tmp, "io.vfiod.admin")
        self.log = open(os.path.join(tmp, "vfiod.log"), "w+")
        self.proc = subprocess.Popen(
            [vfiod, "--root", root, "--socket", self.sock, "--admin-socket", self.admin,
             "--runtime-dir", os.path.join(tmp, "run"), "--state-dir", "/var/lib/vfiod",
             "--policy", os.path.join(tmp, "policy.json"), *args],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        for _ in range(200):
            if os.path.exists(self.sock) and os.path.exists(self.admin):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(self.sock):
            raise SystemExit(f"vfiod did not start:\n{self.output()}")

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        """SIGTERM (unless it has exited already), then its exit status, or "hung"
        when it is still there 10 s later (it is killed then)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "hung"

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def quiet_fds(self, still=1.0, timeout=10):
        """The daemon's fd count once it has not changed for `still` seconds: after the
        start, when the journal's recovery worker (a pidfd and a pipe) is gone."""
        end = time.time() + timeout
        n, since = self.fds(), time.time()
        while time.time() - since < still and time.time() < end:
            time.sleep(0.05)
            m = self.fds()
            if m != n:
                n, since = m, time.time()
        return n

    def settled_fds(self, want, timeout=5):
        """The daemon's fd count once it stops changing (or reaches want)."""
        end = time.time() + timeout
        n = self.fds()
        while n != want and time.time() < end:
            time.sleep(0.05)
            n = self.fds()
        return n


def scratch(prefix):
    """A temporary directory that other uids can reach (the sockets are in it), and room
    for thousands of connections: the soft RLIMIT_NOFILE raised."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    return tmp


# ---- clients as other uids ----------------------------------------------------------


# This file, copied by main() into the scratch directory, where any uid can read it: the
# clients of other uids run it, and the checkout may sit in a directory only root can
# enter (a clone into mktemp -d).
CLIENT = None


def as_uid(uid, sock, calls):
    """Runs calls [(method, params, extra)] from a process with uid/gid uid (setpriv);
    returns the replies."""
    out = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
         sys.executable, CLIENT, "--client", sock, json.dumps(calls)],
        capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"client as uid {uid} failed: {out.stderr}")
    return json.loads(out.stdout)


def monitor_main(sock):
    """A Monitor as this uid: "ready" once subscribed, then every event until 2 s pass
    without one, as a JSON list."""
    s = connect(sock)
    send(s, {"method": "io.vfiod.Monitor", "parameters": {}, "more": True})
    first = recv(s)
    print("ready" if first and "error" not in first else json.dumps(first), flush=True)
    events = []
    s.settimeout(2.0)
    buf = b""
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            buf += d
            while b"\0" in buf:
                msg, _, buf = buf.partition(b"\0")
                events.append(json.loads(msg)["parameters"]["event"])
    except (TimeoutError, socket.timeout):
        pass
    print(json.dumps(events), flush=True)


def client_main(sock, calls):
    replies = []
    for method, params, extra in json.loads(calls):
        s = connect(sock)
        msg = {"method": method, "parameters": params}
        msg.update(extra)
        send(s, msg)
        s.settimeout(1.0)
        try:
            replies.append(recv(s))
        except (TimeoutError, socket.timeout):
            replies.append({"pending": True})  # a Monitor that was not refused
        s.close()
    print(json.dumps(replies))


# ---- the tree ------------------------------------------------------------------------


def tree_state(root):
    """Every device's driver_override contents and driver link."""
    base = os.path.join(root, "sys/bus/pci/devices")
    state = {}
    for d in sorted(os.listdir(base)):
        p = os.path.join(base, d)
        try:
            with open(os.path.join(p, "driver_override"), "rb") as f:
                override = f.read()
        except FileNotFoundError:
            override = None
        drv = os.path.join(p, "driver")
        state[d] = (override, os.readlink(drv) if os.path.islink(drv) else None)
    return state


# ---- the checks ------------------------------------------------------------------------


def third_party_client(d, vfioctl, root):
    import varlink

    with varlink.Client(address=f"unix:{d.sock}") as client:
        info = client.open("org.varlink.service")
        got = info.GetInfo()
        check("io.vfiod" in got["interfaces"], "python3-varlink: GetInfo names io.vfiod", got)
        vf = client.open("io.vfiod")  # parses the interface description the daemon serves
        devices = vf.ListDevices()["devices"]
        want = json.loads(subprocess.run([vfioctl, "--root", root, "--json", "list"],
                                         capture_output=True, text=True, check=True).stdout)
        want_addrs = [x["address"] for x in want["devices"]]
        check([x["address"] for x in devices] == want_addrs,
              f"python3-varlink: ListDevices returns the {len(want_addrs)} functions vfioctl lists")
        shown = vf.ShowDevice(SHOW)["device"]
        want = json.loads(subprocess.run([vfioctl, "--root", root, "--json", "show", SHOW],
                                         capture_output=True, text=True, check=True).stdout)
        want.pop("warnings", None)
        diff = sorted(k for k in set(shown) | set(want) if shown.get(k) != want.get(k))
        check(not diff, "python3-varlink: ShowDevice equals vfioctl show --json", diff)
        try:
            vf.ShowDevice("0000:ee:00.0")
            check(False, "python3-varlink: ShowDevice of a missing device fails")
        except varlink.VarlinkError as e:
            check(e.error() == "io.vfiod.NoSuchDevice",
                  "python3-varlink: a missing device is io.vfiod.NoSuchDevice", e.error())
        desc = info.GetInterfaceDescription("io.vfiod")["description"]
        with open(os.path.join(os.path.dirname(__file__), "../../api/io.vfiod.varlink")) as f:
            check(desc == f.read(), "the served io.vfiod description is api/io.vfiod.varlink")


def policy(d, root):
    before = tree_state(root)
    calls = [
        ["io.vfiod.ListDevices", {}, {}],
        ["io.vfiod.ListGroups", {}, {}],
        ["io.vfiod.ShowDevice", {"address": SHOW}, {}],
        ["io.vfiod.Audit", {"devices": [SHOW]}, {}],
        ["io.vfiod.Monitor", {}, {"more": True}],
        ["io.vfiod.Bind", {"devices": [BIND_NO]}, {}],
        ["io.vfiod.Bind", {"devices": [BIND_OK]}, {}],
        ["io.vfiod.Unbind", {"devices": [BIND_NO]}, {}],
        ["io.vfiod.Acquire", {"devices": [SHOW]}, {}],
        ["io.vfiod.SetNumVFs", {"pf": "0000:07:00.0", "numvfs": 0}, {}],
    ]
    names = ["list", "groups", "show", "audit", "monitor", f"bind {BIND_NO}", f"bind {BIND_OK}",
             "unbind", "acquire", "sriov"]
    r = as_uid(NOBODY, d.sock, calls)
    for name, reply in zip(names, r):
        check(error_of(reply) == "io.vfiod.PermissionDenied",
              f"uid {NOBODY} (no rule) is refused {name}", reply)
    r = as_uid(USER, d.sock, calls)
    got = dict(zip(names, r))
    check(len(got["list"].get("parameters", {}).get("devices", [])) > 50,
          f"uid {USER} may list", got["list"])
    check("groups" in got["groups"].get("parameters", {}), f"uid {USER} may list groups")
    check(got["show"].get("parameters", {}).get("device", {}).get("address") == SHOW,
          f"uid {USER} may show", got["show"])
    check("report" in got["audit"].get("parameters", {}), f"uid {USER} may audit",
          got["audit"])
    m = got["monitor"]
    check(m == {"pending": True} or (m.get("continues") is True and "error" not in m),
          f"uid {USER} may monitor (the stream stays open)", m)
    check(error_of(got[f"bind {BIND_NO}"]) == "io.vfiod.PermissionDenied",
          f"uid {USER} is refused bind on {BIND_NO}, outside its rule", got[f"bind {BIND_NO}"])
    check(error_of(got["unbind"]) == "io.vfiod.PermissionDenied",
          f"uid {USER} is refused unbind on {BIND_NO}")
    check(error_of(got["acquire"]) == "io.vfiod.PermissionDenied",
          f"uid {USER} is refused acquire (no rule grants it)", got["acquire"])
    check(error_of(got["sriov"]) == "io.vfiod.PermissionDenied",
          f"uid {USER} is refused sriov (no rule grants it)")
    # The grant passes the policy and stops at the next check: the device is in use.
    check(error_of(got[f"bind {BIND_OK}"]) == "io.vfiod.DeviceBusy",
          f"uid {USER} passes the policy for bind on {BIND_OK} (then: busy)", got[f"bind {BIND_OK}"])
    check(tree_state(root) == before, "no driver_override or driver link changed")


def bad_input(d, peer_uid_sock):
    base = d.fds()

    # Truncated: half a call, then the client leaves; or half a call left hanging.
    s = connect(d.sock)
    s.sendall(b'{"method":"io.vfiod.ListDev')
    s.close()
    hanging = connect(d.sock)
    hanging.sendall(b'{"method":"io.vfiod.ListDevices","parameters":{')
    r = as_uid(USER, d.sock, [["io.vfiod.ListGroups", {}, {}]])[0]
    check("groups" in r.get("parameters", {}), "a half-sent call does not hold up others", r)
    hanging.close()

    # Invalid JSON, not an object, no method, parameters not an object: an error each,
    # and the connection still serves the next call.
    s = connect(d.sock)
    for raw, err in [(b"{not json", "io.vfiod.ProtocolError"),
                     (b"[1,2]", "io.vfiod.ProtocolError"),
                     (b'{"a":1} trailing', "io.vfiod.ProtocolError"),
                     (b'{"parameters":{}}', "io.vfiod.ProtocolError"),
                     (b'{"method":"io.vfiod.ListGroups","parameters":[]}',
                      "org.varlink.service.InvalidParameter"),
                     (b'{"method":"io.vfiod.ShowDevice","parameters":{"address":7}}',
                      "org.varlink.service.InvalidParameter"),
                     (b'{"method":"io.vfiod.ShowDevice","parameters":{"address":"1:2:3"}}',
                      "io.vfiod.InvalidAddress")]:
        s.sendall(raw + b"\0")
        reply = recv(s)
        check(error_of(reply) == err, f"{raw.decode()!r} is answered {err}", reply)
    check("groups" in call(s, "io.vfiod.ListGroups").get("parameters", {}),
          "the connection still serves calls after bad ones")
    s.close()

    # Every method reads its parameters through one table: a parameter it does not know
    # (a typo that would otherwise be ignored: "froce") is refused by name, as are a wrong
    # type, an empty string, and an address list with a duplicate; a null reads as absent.
    for method, params, name in [
            ("io.vfiod.ListDevices", {"verbose": True}, "verbose"),
            ("org.varlink.service.GetInfo", {"x": 1}, "x"),
            ("io.vfiod.Bind", {"devices": [SHOW], "froce": True}, "froce"),
            ("io.vfiod.Bind", {"devices": [SHOW], "force": "yes"}, "force"),
            ("io.vfiod.Bind", {"devices": [SHOW, SHOW]}, "devices"),
            ("io.vfiod.Unbind", {}, "devices"),
            ("io.vfiod.SetNumVFs", {"pf": SHOW, "numvfs": 70000}, "numvfs"),
            ("io.vfiod.SetNumVFs", {"pf": SHOW, "numvfs": 1, "driver": ""}, "driver"),
            ("io.vfiod.ConfigureVF", {"pf": SHOW, "vf": 0, "vlan": 4096}, "vlan"),
            ("io.vfiod.ConfigureVF", {"pf": SHOW, "vf": 0, "qos": 3}, "qos"),
            ("io.vfiod.Release", {"lease": 0}, "lease"),
            ("io.vfiod.Acquire", {"devices": [SHOW], "holder_fd": 1}, "holder_fd"),
            ("io.vfiod.Audit", {"fail_on": "severe"}, "fail_on"),
            ("io.vfiod.ShowDevice", {"address": SHOW, "\x01": 1}, "\x01")]:
        raw = json.dumps({"method": method, "parameters": params})
        s = connect(d.sock)
        s.sendall(raw.encode() + b"\0")
        r = recv(s)
        s.close()
        check(error_of(r) == "org.varlink.service.InvalidParameter" and
              r["parameters"].get("parameter") == name,
              f"{method} with {json.dumps(params)} is refused, naming {name!r}", r)
    r = call(d.sock, "io.vfiod.ShowDevice", {"address": SHOW, "nothing": None})
    check(error_of(r) == "org.varlink.service.InvalidParameter",
          "an unknown parameter is refused even when null", r)
    r = call(d.sock, "io.vfiod.Audit", {"devices": None, "fail_on": None})
    check("report" in r.get("parameters", {}), "null optionals read as absent", r)

    # Unknown methods and interfaces.
    r = call(d.sock, "io.vfiod.Frobnicate")
    check(error_of(r) == "org.varlink.service.MethodNotFound"
          and r["parameters"].get("method") == "io.vfiod.Frobnicate",
          "an unknown method is org.varlink.service.MethodNotFound", r)
    r = call(d.sock, "com.example.Thing.Do")
    check(error_of(r) == "org.varlink.service.InterfaceNotFound",
          "an unknown interface is org.varlink.service.InterfaceNotFound", r)

    # Oversized: past the limit without a NUL; then a whole one past the limit.
    s = connect(d.sock)
    s.sendall(b'{"method":"io.vfiod.ListGroups","parameters":{"x":"' + b"a" * 70000)
    r = recv(s)
    check(error_of(r) == "io.vfiod.ProtocolError", "70,000 bytes without an end are refused", r)
    check(closed(s), "and that connection is closed")
    s.close()
    s = connect(d.sock)
    big = json.dumps({"method": "io.vfiod.ListGroups", "parameters": {"x": "a" * 70000}})
    try:
        s.sendall(big.encode() + b"\0")
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = recv(s)
    check(error_of(r) == "io.vfiod.ProtocolError", "a whole 70,000-byte call is refused", r)
    s.close()

    # fds with calls that take none, with Acquire without holder_fd, and too many.
    devnull = [os.open("/dev/null", os.O_RDONLY) for _ in range(20)]
    r = call(d.sock, "io.vfiod.ListDevices", fds=devnull[:3])
    check(error_of(r) == "io.vfiod.UnexpectedFileDescriptors" and r["parameters"]["count"] == 3,
          "3 fds with ListDevices are refused", r)
    r = call(d.sock, "io.vfiod.Acquire", {"devices": [SHOW]}, fds=devnull[:2])
    check(error_of(r) == "io.vfiod.UnexpectedFileDescriptors",
          "2 fds with Acquire are refused", r)
    r = call(d.admin, "io.vfiod.Acquire", {"devices": [SHOW], "holder_fd": 0}, fds=devnull[:1])
    check(error_of(r) == "org.varlink.service.InvalidParameter",
          "a holder_fd that is no pidfd is refused", r)
    r = call(d.sock, "io.vfiod.ListGroups", fds=devnull)
    check(error_of(r) == "io.vfiod.ProtocolError", "20 fds with one call are refused", r)
    for fd in devnull:
        os.close(fd)

    # 1,000 idle connections: held, others still served, then the per-uid limit. A
    # connection costs the daemon its socket and, where the kernel has SO_PEERPIDFD,
    # the peer's pidfd.
    one = connect(d.sock)
    per_conn = d.settled_fds(base + 2) - base
    one.close()
    d.settled_fds(base)
    check(per_conn in (1, 2), "one connection costs the daemon one or two fds", per_conn)
    idle = [connect(d.sock) for _ in range(1000)]
    # The daemon accepts them in its own time: wait until it holds them all.
    n = d.settled_fds(base + 1000 * per_conn, timeout=20)
    check(n == base + 1000 * per_conn, "the daemon holds 1,000 idle connections",
          f"{n - base} fds more")
    r = as_uid(USER, d.sock, [["io.vfiod.ListGroups", {}, {}]])[0]
    check("groups" in r.get("parameters", {}), "another uid is served meanwhile", r)
    check("groups" in call(d.admin, "io.vfiod.ListGroups").get("parameters", {}),
          "the admin socket is served meanwhile")
    extra = [connect(d.sock) for _ in range(30)]
    refused = [recv(s) for s in extra[-6:]]
    check(all(error_of(x) == "io.vfiod.LimitExceeded"
              and x["parameters"].get("limit") == "connections_per_uid" for x in refused),
          "connections past the per-uid limit (1,024) are refused with LimitExceeded",
          refused[:1])
    for s in idle + extra:
        s.close()
    n = d.settled_fds(base, timeout=20)
    check(n == base, "the daemon's open fds are back to where they were", f"{base} before, {n} after")


APPEARS = "0000:00:16.0"


def appeared(vfiod, root, tmp):
    """A device missing at the daemon's scan (its sysfs entry moved away) and put back
    while it runs, with no uevent: ShowDevice names it and gets it, where the cached scan
    alone would answer NoSuchDevice; a device that is not there is still NoSuchDevice."""
    sub = os.path.join(tmp, "appeared")
    os.makedirs(sub)
    os.chmod(sub, 0o755)
    shutil.copy(os.path.join(tmp, "policy.json"), os.path.join(sub, "policy.json"))
    entry = os.path.join(root, "sys/bus/pci/devices", APPEARS)
    away = os.path.join(sub, "entry")
    os.rename(entry, away)
    d = Daemon(vfiod, root, sub)
    try:
        listed = [x["address"] for x in call(d.sock, "io.vfiod.ListDevices")["parameters"]["devices"]]
        check(listed and APPEARS not in listed, "a device missing from sysfs is not listed",
              listed)
        check(error_of(call(d.sock, "io.vfiod.ShowDevice", {"address": APPEARS})) ==
              "io.vfiod.NoSuchDevice", "... and ShowDevice of it is NoSuchDevice")
        os.rename(away, entry)
        got = call(d.sock, "io.vfiod.ShowDevice", {"address": APPEARS})
        check(got.get("parameters", {}).get("device", {}).get("address") == APPEARS,
              "once it is in sysfs, ShowDevice finds it without a uevent", got)
        check(error_of(call(d.sock, "io.vfiod.ShowDevice", {"address": "0000:7f:1f.7"})) ==
              "io.vfiod.NoSuchDevice", "an address that is nowhere is still NoSuchDevice")
    finally:
        if os.path.lexists(away):
            os.rename(away, entry)
        rc = d.stop()
        check(rc == 0, "that daemon exits 0 on SIGTERM", f"status {rc}")


def limits(vfiod, root, tmp):
    """A second daemon with tight limits: idle connections are closed, and calls past the
    per-uid rate get LimitExceeded while the daemon keeps serving."""
    sub = os.path.join(tmp, "limits")
    os.makedirs(sub)
    os.chmod(sub, 0o755)
    shutil.copy(os.path.join(tmp, "policy.json"), os.path.join(sub, "policy.json"))
    d = Daemon(vfiod, root, sub, "--idle-timeout", "1", "--request-rate", "5")
    try:
        # The first timer makes the event loop's timerfd for its clock, once: count
        # from after one connection has come and gone.
        warm = connect(d.sock)
        closed(warm, timeout=5)
        warm.close()
        time.sleep(0.3)
        base = d.fds()
        s = connect(d.sock)
        check(closed(s, timeout=5), "an idle connection is closed after --idle-timeout 1")
        s.close()
        n = d.settled_fds(base)
        check(n == base, "... and its fds are gone", f"{base} before, {n} after")
        s = connect(d.sock)
        replies = []
        for _ in range(30):
            send(s, {"method": "io.vfiod.ListGroups", "parameters": {}})
            replies.append(recv(s))
        limited = [r for r in replies if error_of(r) == "io.vfiod.LimitExceeded"]
        served = [r for r in replies if "groups" in r.get("parameters", {})]
        check(limited and limited[0]["parameters"].get("limit") == "request_rate" and
              10 <= len(served) < 30,
              "30 calls at once against --request-rate 5: the burst (10) is served, the rest "
              "get LimitExceeded request_rate", f"{len(served)} served, {len(limited)} limited")
        s.close()
        time.sleep(1.2)
        check("groups" in call(d.sock, "io.vfiod.ListGroups").get("parameters", {}),
              "a second later the uid is served again")
    finally:
        rc = d.stop()
        check(rc == 0, "the limits daemon exits 0 on SIGTERM", f"status {rc}")


SCOPED, BRIDGER = 1001, 1002
COVERED = ["0000:07:10.0", "0000:07:10.2"]  # 0000:07:00.0/vf0-1
UNCOVERED = "0000:07:10.4"
HOST_BRIDGE, ISA_BRIDGE = "0000:00:00.0", "0000:00:1f.0"


def scoped(vfiod, root, tmp):
    """A daemon whose policy scopes uid 1001's list, audit and monitor to two VFs, gives
    uid 1000 list and audit everywhere, and uid 1002 bind and acquire on "8086:*"."""
    sub = os.path.join(tmp, "scoped")
    os.makedirs(sub)
    os.chmod(sub, 0o755)
    with open(os.path.join(sub, "policy.json"), "w") as f:
        json.dump({"rules": [
            {"users": [SCOPED], "operations": ["list", "audit", "monitor"],
             "devices": ["0000:07:00.0/vf0-1"]},
            {"users": [USER], "operations": ["list", "audit"]},
            {"users": [BRIDGER], "operations": ["bind", "acquire"], "devices": ["8086:*"]},
        ]}, f)
    before = tree_state(root)
    d = Daemon(vfiod, root, sub)
    try:
        names = ["list", "groups", "show", "show other", "audit", "audit other"]
        r = dict(zip(names, as_uid(SCOPED, d.sock, [
            ["io.vfiod.ListDevices", {}, {}],
            ["io.vfiod.ListGroups", {}, {}],
            ["io.vfiod.ShowDevice", {"address": COVERED[0]}, {}],
            ["io.vfiod.ShowDevice", {"address": UNCOVERED}, {}],
            ["io.vfiod.Audit", {}, {}],
            ["io.vfiod.Audit", {"devices": [UNCOVERED]}, {}],
        ])))
        listed = [x["address"] for x in r["list"].get("parameters", {}).get("devices", [])]
        check(listed == COVERED, "a scoped list rule: ListDevices holds only its devices", listed)
        groups = r["groups"].get("parameters", {}).get("groups", [])
        members = [[m["address"] for m in g["devices"]] for g in groups]
        check(len(groups) == 2 and all(set(m) & set(COVERED) for m in members),
              "... ListGroups only the groups that hold them", members)
        check(r["show"].get("parameters", {}).get("device", {}).get("address") == COVERED[0] and
              error_of(r["show other"]) == "io.vfiod.PermissionDenied",
              "... ShowDevice shows them and refuses another", r["show other"])
        scope = r["audit"].get("parameters", {}).get("report", {}).get("scope", {})
        check(scope.get("devices") == COVERED,
              "a scoped audit rule: Audit audits only its devices", scope)
        check(error_of(r["audit other"]) == "io.vfiod.PermissionDenied",
              "... and refuses to audit another", r["audit other"])
        whole = as_uid(USER, d.sock, [["io.vfiod.Audit", {}, {}]])[0]
        scope = whole.get("parameters", {}).get("report", {}).get("scope", {})
        check(scope.get("kind") == "host",
              "a rule for every device: Audit without devices audits the whole host", scope)

        # Monitor: the admin changes an uncovered device, then a covered one.
        mon = subprocess.Popen(
            ["setpriv", f"--reuid={SCOPED}", f"--regid={SCOPED}", "--clear-groups",
             sys.executable, CLIENT, "--monitor", d.sock],
            stdout=subprocess.PIPE, text=True)
        ready = mon.stdout.readline().strip()
        check(ready == "ready", "a scoped monitor rule: Monitor subscribes", ready)
        for a in (UNCOVERED, COVERED[1]):
            got = call(d.admin, "io.vfiod.Unbind", {"devices": [a]})
            check("restored" in got.get("parameters", {}), f"the admin unbinds {a}", got)
        events = json.loads(mon.stdout.readline() or "[]")
        mon.wait(timeout=10)
        seen = [e.get("address") for e in events]
        check(seen == [COVERED[1]], "... Monitor tells only the events of its devices", seen)

        names = ["bind host bridge", "acquire host bridge", "bind ISA bridge"]
        r = dict(zip(names, as_uid(BRIDGER, d.sock, [
            ["io.vfiod.Bind", {"devices": [HOST_BRIDGE]}, {}],
            ["io.vfiod.Acquire", {"devices": [HOST_BRIDGE]}, {}],
            ["io.vfiod.Bind", {"devices": [ISA_BRIDGE]}, {}],
        ])))
        for name, what in [("bind host bridge", "host bridge, class 0600"),
                           ("acquire host bridge", "host bridge, class 0600"),
                           ("bind ISA bridge", "ISA bridge, class 0601")]:
            reply = r[name]
            check(error_of(reply) == "io.vfiod.DeviceBusy" and
                  what in reply.get("parameters", {}).get("reason", ""),
                  f'"8086:*" does not reach a bridge: {name} is refused naming the {what}',
                  reply)
        after = tree_state(root)
        changed = sorted(k for k in before if before[k] != after.get(k))
        check(set(changed) <= {UNCOVERED, COVERED[1]},
              "no bridge's driver_override or driver link changed", changed)
    finally:
        rc = d.stop()
        check(rc == 0, "the scoped daemon exits 0 on SIGTERM", f"status {rc}\n{d.output()[-2000:]}")


def leftovers(vfiod, root, tmp):
    """A daemon that starts where a crash left a lease record cut off mid-line with a
    whole one appended after it, and temporary files in the journal. Below --root there
    is no proc/ to find a holder in: a lease that is read is ended, which the log tells."""
    sub = os.path.join(tmp, "leftovers")
    os.makedirs(os.path.join(sub, "run", "leases"))
    os.chmod(sub, 0o755)
    shutil.copy(os.path.join(tmp, "policy.json"), os.path.join(sub, "policy.json"))
    journal = os.path.join(root, "var/lib/vfiod/journal")
    os.makedirs(journal, exist_ok=True)
    own, other = ".0000:07:10.6.json.tmp", ".keep.tmp"
    for name in (own, other):
        with open(os.path.join(journal, name), "w") as f:
            f.write('{"address":')
    piece = '+{"id":5,"uid":0,"pid":1'
    record = ('+{"id":9,"uid":0,"pid":4242,"starttime":77,"backend":"iommufd",'
              '"on_release":"pool","devices":["0000:07:10.6"],"adopted":false}')
    with open(os.path.join(sub, "run", "leases", "log"), "w") as f:
        f.write(piece + record + "\n")
    d = Daemon(vfiod, root, sub)
    try:
        call(d.admin, "io.vfiod.ListGroups")  # served once the start is over
        out = d.output()
        check("lease 9 of pid 4242 ends (lease-expired): returning its 1 device(s)" in out,
              "a lease record glued after one cut off mid-line is read (and its gone holder's "
              "lease ended)", out[-2000:])
        check("log:1: a record cut off before it names its holder and a device" in out and
              piece in out, "... and the cut-off piece is logged with its raw text", out[-2000:])
        # The journal's recovery runs in a worker that may still be at it after the
        # first call is served.
        removed = f"removed /var/lib/vfiod/journal/{own}"
        deadline = time.monotonic() + 10
        while removed not in out and time.monotonic() < deadline:
            time.sleep(0.05)
            out = d.output()
        check(not os.path.exists(os.path.join(journal, own)) and
              os.path.exists(os.path.join(journal, other)),
              "the journal's leftover temporary file is removed, another file kept",
              os.listdir(journal))
        check(removed in out, "... and its removal logged",
              out[-2000:])
    finally:
        os.unlink(os.path.join(journal, other))
        rc = d.stop()
        check(rc == 0, "the leftovers daemon exits 0 on SIGTERM", f"status {rc}")


def reclaim(vfiod, root, tmp):
    """Reclaim on adopted type1 leases whose holder is a real process (a child that holds
    /dev/null at fd 5). The tree's proc/ says that fd is group 40's node, so the daemon
    finds it, takes a copy, and sends the request through it: the kernel refuses (a
    /dev/null is no VFIO group), which the answer tells. The other lease's device is open
    nowhere. Timeouts, force, the errors, and a lease that stays untouched."""
    sub = os.path.join(tmp, "reclaim")
    os.makedirs(os.path.join(sub, "run", "leases"))
    os.chmod(sub, 0o755)
    shutil.copy(os.path.join(tmp, "policy.json"), os.path.join(sub, "policy.json"))
    held, free = "0000:07:10.6", "0000:07:10.2"
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 5, inheritable=True)
    holder = subprocess.Popen(["sleep", "120"], pass_fds=(5,))
    os.close(5)
    os.close(devnull)
    proc = os.path.join(root, "proc", str(holder.pid))
    try:
        os.makedirs(os.path.join(proc, "fd"))
        with open(f"/proc/{holder.pid}/stat") as f:
            stat = f.read()
        with open(os.path.join(proc, "stat"), "w") as f:
            f.write(stat)
        os.symlink("/dev/vfio/40", os.path.join(proc, "fd", "5"))
        start = stat[stat.rindex(")") + 2:].split()[19]
        with open(os.path.join(sub, "run", "leases", "log"), "w") as f:
            for lid, dev in ((7, held), (8, free)):
                f.write(f'+{{"id":{lid},"uid":{USER},"pid":{holder.pid},"starttime":{start},'
                        f'"backend":"type1","on_release":"restore","devices":["{dev}"],'
                        '"adopted":false}\n')
        d = Daemon(vfiod, root, sub)
        try:
            leases = call(d.admin, "io.vfiod.ListLeases").get("parameters", {}).get("leases", [])
            check(sorted(l["id"] for l in leases) == [7, 8],
                  "reclaim: both leases of the living holder are adopted", leases)
            t0 = time.monotonic()
            r = call(d.admin, "io.vfiod.Reclaim", {"device": held, "timeout": 1})
            took = time.monotonic() - t0
            e = r.get("parameters", {})
            check(error_of(r) == "io.vfiod.ReclaimTimedOut" and e.get("lease") == 7 and
                  e.get("pid") == holder.pid and
                  e.get("open") == [{"address": held, "pid": holder.pid}],
                  "reclaim: a holder that keeps the device past the timeout is named, with "
                  "the device it keeps open", r)
            check(1.0 <= took < 5, "... after the 1 s timeout", f"{took:.2f} s")
            check(f"pid {holder.pid}'s file 5 is not {held}'s VFIO node" in e.get("reason", ""),
                  "... and the request's failure is told: the fd is no VFIO node, and no "
                  "ioctl went to it", r)
            leases = call(d.admin, "io.vfiod.ListLeases")["parameters"]["leases"]
            check([l["state"] for l in leases if l["id"] == 7] == ["active"],
                  "... and lease 7 stays as it was", leases)
            r = call(d.admin, "io.vfiod.Reclaim", {"device": free, "timeout": 5})
            check(r.get("parameters") == {"lease": 8, "pid": holder.pid, "forced": False},
                  "reclaim: a device open nowhere ends its lease at once", r)
            leases = call(d.admin, "io.vfiod.ListLeases")["parameters"]["leases"]
            check([l["id"] for l in leases] == [7], "... and lease 8 is gone", leases)
            r = call(d.admin, "io.vfiod.Reclaim", {"device": free})
            check(error_of(r) == "io.vfiod.NotLeased", "reclaim: a device no lease holds: "
                  "NotLeased", r)
            r = call(d.admin, "io.vfiod.Reclaim", {"device": held, "timeout": 3601})
            check(error_of(r) == "org.varlink.service.InvalidParameter",
                  "reclaim: a timeout past 3600 s is refused", r)
            r = as_uid(NOBODY, d.sock, [("io.vfiod.Reclaim", {"device": held}, {})])[0]
            check(error_of(r) == "io.vfiod.PermissionDenied",
                  "reclaim: a uid without the bind right is refused", r)
            r = call(d.admin, "io.vfiod.Reclaim", {"device": held, "timeout": 0, "force": True})
            check(r.get("parameters") == {"lease": 7, "pid": holder.pid, "forced": True},
                  "reclaim --force: the lease ends although the holder keeps the device", r)
            check(holder.poll() is None, "... and the holder is not killed")
            leases = call(d.admin, "io.vfiod.ListLeases")["parameters"]["leases"]
            check([(l["state"], l.get("pending")) for l in leases] ==
                  [("ending", [{"address": held, "state": "waiting for its files to close"}])],
                  "... and the device it keeps open waits for its file to close", leases)
            os.unlink(os.path.join(proc, "fd", "5"))  # as the holder would close it
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                leases = call(d.admin, "io.vfiod.ListLeases")["parameters"]["leases"]
                if not leases:
                    break
                time.sleep(0.1)
            check(leases == [], "... and the lease is gone once that file is closed", leases)
            out = d.output()
            check("lease 7 of pid %d ends (lease-reclaimed)" % holder.pid in out,
                  "... and the log tells the lease-reclaimed end", out[-2000:])
        finally:
            rc = d.stop()
            check(rc == 0, "the reclaim daemon exits 0 on SIGTERM", f"status {rc}")
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(os.path.join(root, "proc"), ignore_errors=True)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        client_main(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--monitor":
        monitor_main(sys.argv[2])
        return 0
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    vfiod, vfioctl, mkfixture, fixtures = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: needs root (clients run as other uids, the daemon writes the tree)")
        return 77
    global CLIENT
    tmp = scratch("test-daemon-")
    try:
        CLIENT = os.path.join(tmp, "client.py")
        shutil.copyfile(os.path.abspath(__file__), CLIENT)
        os.chmod(CLIENT, 0o644)
        root = os.path.join(tmp, "root")
        subprocess.run([mkfixture, os.path.join(fixtures, "machines", MACHINE + ".txt"), root],
                       check=True)
        with open(os.path.join(tmp, "policy.json"), "w") as f:
            json.dump({"rules": [
                {"users": ["root", USER], "operations": ["list", "audit", "monitor"]},
                {"users": [USER], "operations": ["bind"], "devices": [BIND_OK]},
            ]}, f)
        d = Daemon(vfiod, root, tmp, "--max-connections-per-uid", "1024")
        try:
            third_party_client(d, vfioctl, root)
            policy(d, root)
            bad_input(d, None)
            check(d.proc.poll() is None, "the daemon is still running", d.output()[-2000:])
        finally:
            rc = d.stop()
            check(rc == 0, "the daemon exits 0 on SIGTERM", f"status {rc}\n{d.output()[-2000:]}")
        limits(vfiod, root, tmp)
        appeared(vfiod, root, tmp)
        scoped(vfiod, root, tmp)
        leftovers(vfiod, root, tmp)
        reclaim(vfiod, root, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
