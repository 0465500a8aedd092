#!/usr/bin/python3 -S
"""A minimal io.vfiod client that can receive file descriptors, for the lab.

  vfiod_call.py call SOCKET METHOD [JSON]   one call; prints the reply message
  vfiod_call.py hold SOCKET [--backend B] [--fork|--in-flight] DEVICE...
                                            Acquire, check the fds, print a
                                            summary, then wait to be killed;
                                            with --fork a child keeps the fds
                                            too (its pid in the summary) and
                                            outlives a killed parent; with
                                            --in-flight the fds are sent over a
                                            socket to a child that never reads
                                            them, and closed here: they stay
                                            open in flight, in no process
  vfiod_call.py release-open SOCKET DEVICE [--unbound] [--wait]
                                            Acquire, bind the device to its iommufd
                                            (not with --unbound), call Release while
                                            still holding the fds, close them, call
                                            Release again; prints both replies. With
                                            --wait: prints {"lease": N} first, then
                                            waits for SIGUSR1 and makes the two
                                            Release calls on a new connection (the
                                            daemon may have restarted in between)
  vfiod_call.py monitor SOCKET              Monitor: print each event as a JSON
                                            line until killed
Only the standard library: the guest runs the host's python3.
"""
import array
import fcntl
import json
import os
import signal
import socket
import struct
import sys


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def call(s, method, params, fds=()):
    msg = json.dumps({"method": method, "parameters": params}).encode() + b"\0"
    if fds:
        s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        s.sendall(msg)
    buf, got = b"", []
    while b"\0" not in buf:
        data, fds_in, _flags, _addr = socket.recv_fds(s, 65536, 16)
        if not data:
            raise SystemExit("the daemon closed the connection")
        buf += data
        got += fds_in
    return json.loads(buf[: buf.index(b"\0")]), got


def fd_target(fd):
    return os.readlink(f"/proc/self/fd/{fd}")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "call":
        params = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
        reply, fds = call(connect(sys.argv[2]), sys.argv[3], params)
        for fd in fds:
            os.close(fd)
        print(json.dumps(reply))
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "hold":
        s = connect(sys.argv[2])
        args, params, fork, in_flight = sys.argv[3:], {}, False, False
        if args[:1] == ["--backend"]:
            params["backend"], args = args[1], args[2:]
        if args[:1] == ["--fork"]:
            fork, args = True, args[1:]
        if args[:1] == ["--in-flight"]:
            in_flight, args = True, args[1:]
        params["devices"] = args
        reply, fds = call(s, "io.vfiod.Acquire", params)
        if "error" in reply:
            print(json.dumps(reply), flush=True)
            return 3
        p = reply["parameters"]
        summary = {
            "lease": p["lease"],
            "backend": p["backend"],
            "memlock": p.get("memlock"),
            "nfds": len(fds),
            "iommufd": fd_target(fds[p["iommufd"]]) if "iommufd" in p else None,
            "container": fd_target(fds[p["container"]]) if "container" in p else None,
            "devices": {d["address"]: fd_target(fds[d["fd"]]) for d in p["devices"]},
            "pid": os.getpid(),
        }
        if fork:
            child = os.fork()
            if child == 0:
                os.close(1)
                signal.pause()
                os._exit(0)
            summary["child"] = child
        if in_flight:
            near, far = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            child = os.fork()
            if child == 0:
                near.close()
                for fd in fds:  # only the socket: the files are in it, not in here
                    os.close(fd)
                os.close(1)
                signal.pause()  # holds the receiving end, never reads
                os._exit(0)
            far.close()
            near.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            for fd in fds:
                os.close(fd)
            summary["child"] = child
        print(json.dumps(summary), flush=True)
        # Hold the fds (and so the devices) until killed; close stdout so a
        # reader of the summary is not kept waiting.
        os.close(1)
        signal.pause()
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "release-open":
        opts, unbound, wait = sys.argv[4:], False, False
        while opts:
            if opts[0] == "--unbound":
                unbound, opts = True, opts[1:]
            elif opts[0] == "--wait":
                wait, opts = True, opts[1:]
            else:
                print(__doc__, file=sys.stderr)
                return 2
        s = connect(sys.argv[2])
        reply, fds = call(s, "io.vfiod.Acquire", {"devices": [sys.argv[3]]})
        if "error" in reply:
            print(json.dumps(reply))
            return 3
        p = reply["parameters"]
        lease = p["lease"]
        # Use the device as a VMM would: bind its cdev to the iommufd
        # (VFIO_DEVICE_BIND_IOMMUFD, _IO(';', 118), struct of argsz, flags,
        # iommufd, out_devid).
        # With --unbound the fd is only kept: it could still be bound later.
        if not unbound:
            fcntl.ioctl(fds[p["devices"][0]["fd"]], 0x3B76,
                        struct.pack("IIiI", 16, 0, fds[p["iommufd"]], 0))
        if wait:
            # Blocked before the line goes out: a signal sent on reading it waits.
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
            print(json.dumps({"lease": lease}), flush=True)
            signal.sigwait([signal.SIGUSR1])
            s.close()
            s = connect(sys.argv[2])
        refused, _ = call(s, "io.vfiod.Release", {"lease": lease})
        for fd in fds:
            os.close(fd)
        released, _ = call(s, "io.vfiod.Release", {"lease": lease})
        print(json.dumps({"while_open": refused, "after_close": released}))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "monitor":
        s = connect(sys.argv[2])
        s.sendall(json.dumps({"method": "io.vfiod.Monitor", "more": True}).encode() + b"\0")
        buf = b""
        while True:
            data = s.recv(65536)
            if not data:
                return 0
            buf += data
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                print(msg.decode(), flush=True)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
