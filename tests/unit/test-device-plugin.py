#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiod-device-plugin against a kubelet stand-in, on the two-socket fixture tree.

The stand-in is built from the kubelet's own v1beta1 api.proto (stubs generated now with
Debian's protoc and grpc_python_plugin) and serves Registration on kubelet.sock; a
stand-in vfiod answers io.vfiod.ListLeases on a varlink socket. Checked:

- registration of both pools (version, endpoint, resource, preferred allocation on);
- ListAndWatch: the pool with health and NUMA nodes; a VF removed from the tree and a
  VF leased from vfiod each turn Unhealthy, within a second; the CDI spec follows;
- Allocate: CDI names, DeviceSpecs (/dev/iommu once), environment (the VFs' PF, KubeVirt's
  PCI_RESOURCE_ variable); unknown ids, another pool's ids and a leased device are gRPC
  errors that change nothing;
- GetPreferredAllocation: exact choices; an impossible size is INVALID_ARGUMENT;
- re-registration when kubelet restarts (its socket and the plugins' removed, a new
  kubelet.sock), and a working plugin socket afterwards;
- SIGTERM: exit 0, sockets removed;
- bad input: a configuration that does not parse (exit 1, the file and the reason), a CDI
  directory that is a symbolic link (refused, named; the pools are served anyway).

usage: test-device-plugin.py PLUGIN API_PROTO MKFIXTURE FIXTURES_DIR ADD_VFIO_NODES
"""

import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubelet_standin import (generate_stubs, health, kubelet_start,  # noqa: E402
                             next_list, registered)

# The check() of the daemon's tests (test-daemon.py), which counts the failures.
_spec = importlib.util.spec_from_file_location(
    "test_daemon", os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-daemon.py"))
td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(td)
check = td.check


class Leases:
    """A stand-in vfiod: io.vfiod.ListLeases over varlink, leasing self.devices."""

    def __init__(self, path):
        self.devices = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.sock.accept()
            with conn:
                data = b""
                while not data.endswith(b"\0"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if not data.endswith(b"\0"):
                    continue
                call = json.loads(data[:-1])
                if call.get("method") == "io.vfiod.ListLeases":
                    leases = [{"id": 1, "uid": 0, "pid": 1, "backend": "iommufd",
                               "on_release": "pool", "devices": list(self.devices)}
                              ] if self.devices else []
                    reply = {"parameters": {"leases": leases}}
                else:
                    reply = {"error": "org.varlink.service.MethodNotFound",
                             "parameters": {"method": call.get("method")}}
                conn.sendall(json.dumps(reply).encode() + b"\0")


def spec_names(cdi_dir):
    try:
        with open(os.path.join(cdi_dir, "vfiod.io-pci.json")) as f:
            return [d["name"] for d in json.load(f)["devices"]]
    except FileNotFoundError:
        return None


def main():
    plugin, proto, mkfixture, fixtures, add_nodes = sys.argv[1:6]
    tmp = tempfile.mkdtemp(prefix="vfiod-test-device-plugin.")
    proc = None
    try:
        generate_stubs(os.path.abspath(proto), os.path.join(tmp, "stubs"))
        import api_pb2 as api
        import api_pb2_grpc as api_grpc

        tree = os.path.join(tmp, "tree")
        subprocess.run(["python3", mkfixture, os.path.join(fixtures, "fleet-numa.txt"), tree],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["sh", add_nodes, tree, "iommufd"], check=True)
        plugdir = os.path.join(tmp, "device-plugins")
        cdi = os.path.join(tmp, "cdi")
        os.mkdir(plugdir)
        pools = os.path.join(tmp, "pools.json")
        with open(pools, "w") as f:
            json.dump({"pools": [{"name": "igb-vf", "devices": ["8086:10ca"]},
                                 {"name": "edu", "devices": ["1234:11e8"]}]}, f)
        leases = Leases(os.path.join(tmp, "vfiod.sock"))

        registrations = queue.Queue()
        kubelet = kubelet_start(api_grpc, api, os.path.join(plugdir, "kubelet.sock"),
                                registrations)
        proc = subprocess.Popen([plugin, "--root", tree, "--config", pools, "--plugin-dir",
                                 plugdir, "--cdi-dir", cdi, "--daemon",
                                 os.path.join(tmp, "vfiod.sock"), "--interval", "100",
                                 "--rescan", "100"])  # no uevents below --root

        regs = registered(registrations, 2)
        check([(r.version, r.endpoint, r.resource_name,
                r.options.get_preferred_allocation_available) for r in regs] ==
              [("v1beta1", "vfiod-edu.sock", "vfiod.io/edu", True),
               ("v1beta1", "vfiod-igb-vf.sock", "vfiod.io/igb-vf", True)],
              "both pools register with kubelet", str(regs))

        channel = grpc.insecure_channel("unix://" + os.path.join(plugdir, "vfiod-igb-vf.sock"))
        stub = api_grpc.DevicePluginStub(channel)
        opts = stub.GetDevicePluginOptions(api.Empty())
        check(opts.get_preferred_allocation_available, "options offer preferred allocation")

        stream = stub.ListAndWatch(api.Empty())
        first, _ = next_list(stream, lambda r: True)
        h = health(first) if first else {}
        vfs = sorted(h)
        check(len(vfs) == 16 and all(v[0] == "Healthy" for v in h.values()),
              "ListAndWatch lists the pool's 16 VFs, healthy", str(h))
        check(h.get("0000:01:10.2", (None, None))[1] == [0] and
              h.get("0000:81:10.7", (None, None))[1] == [1],
              "each VF carries its NUMA node", str(h))
        check(len(spec_names(cdi) or []) == 17, "the CDI spec holds the 17 exported devices")

        # The host takes a VF away: it turns Unhealthy and leaves the CDI spec.
        os.unlink(os.path.join(tree, "sys/bus/pci/devices/0000:81:10.7"))
        resp, took = next_list(stream, lambda r: health(r).get("0000:81:10.7", ("",))[0] ==
                               "Unhealthy")
        check(resp is not None and took < 1.0 and
              sum(1 for v in health(resp).values() if v[0] == "Healthy") == 15,
              f"a removed VF turns Unhealthy ({took:.2f} s)")
        deadline = time.monotonic() + 2
        while "0000:81:10.7" in (spec_names(cdi) or []) and time.monotonic() < deadline:
            time.sleep(0.05)
        check("0000:81:10.7" not in (spec_names(cdi) or []) and len(spec_names(cdi)) == 16,
              "the removed VF leaves the CDI spec")

        # Leased from vfiod outside Kubernetes: Unhealthy, and Allocate refuses it.
        leases.devices = ["0000:01:10.4"]
        resp, took = next_list(stream, lambda r: health(r).get("0000:01:10.4", ("",))[0] ==
                               "Unhealthy")
        check(resp is not None and took < 1.0, f"a VF leased from vfiod turns Unhealthy "
              f"({took:.2f} s)")

        alloc = stub.Allocate(api.AllocateRequest(container_requests=[
            api.ContainerAllocateRequest(devices_ids=["0000:01:10.2", "0000:81:10.1"])]))
        c = alloc.container_responses[0]
        check([d.name for d in c.cdi_devices] ==
              ["vfiod.io/pci=0000:01:10.2", "vfiod.io/pci=0000:81:10.1"],
              "Allocate names the CDI devices", str(c.cdi_devices))
        check([(d.container_path, d.host_path, d.permissions) for d in c.devices] ==
              [("/dev/iommu", "/dev/iommu", "rw"),
               ("/dev/vfio/devices/vfio4", "/dev/vfio/devices/vfio4", "rw"),
               ("/dev/vfio/devices/vfio11", "/dev/vfio/devices/vfio11", "rw")],
              "Allocate gives the device nodes, /dev/iommu once", str(c.devices))
        check(c.envs.get("PCI_RESOURCE_VFIOD_IO_IGB_VF") == "0000:01:10.2,0000:81:10.1" and
              c.envs.get("VFIOD_PCI_0000_81_10_1_PF") == "0000:81:00.1" and
              c.envs.get("VFIOD_PCI_0000_01_10_2_NUMA_NODE") == "0",
              "Allocate sets the environment", str(dict(c.envs)))

        spec_before = spec_names(cdi)
        for ids, code, what in [
                (["0000:01:10.2", "0000:09:00.0"], grpc.StatusCode.NOT_FOUND, "an unknown id"),
                (["0000:00:03.0"], grpc.StatusCode.NOT_FOUND, "another pool's device"),
                (["0000:81:10.7"], grpc.StatusCode.NOT_FOUND, "a removed device"),
                (["0000:01:10.4"], grpc.StatusCode.FAILED_PRECONDITION, "a leased device")]:
            try:
                stub.Allocate(api.AllocateRequest(container_requests=[
                    api.ContainerAllocateRequest(devices_ids=ids)]))
                check(False, f"Allocate of {what} fails")
            except grpc.RpcError as e:
                check(e.code() == code, f"Allocate of {what} is {code.name}",
                      f"{e.code()} {e.details()}")

        # What kubelet offers: the healthy ones (81:10.7 is gone, 01:10.4 leased).
        every = sorted(d for d in h if d not in ("0000:81:10.7", "0000:01:10.4"))
        pref = stub.GetPreferredAllocation(api.PreferredAllocationRequest(container_requests=[
            api.ContainerPreferredAllocationRequest(available_deviceIDs=every,
                                                    allocation_size=2),
            api.ContainerPreferredAllocationRequest(available_deviceIDs=every,
                                                    must_include_deviceIDs=["0000:81:10.3"],
                                                    allocation_size=2),
            api.ContainerPreferredAllocationRequest(available_deviceIDs=every,
                                                    must_include_deviceIDs=["0000:81:10.3"],
                                                    allocation_size=6)]))
        got = [list(r.deviceIDs) for r in pref.container_responses]
        check(got == [["0000:01:10.0", "0000:01:10.2"], ["0000:81:10.1", "0000:81:10.3"],
                      ["0000:81:10.0", "0000:81:10.1", "0000:81:10.2", "0000:81:10.3",
                       "0000:81:10.4", "0000:81:10.5"]],
              "GetPreferredAllocation packs by PF, then NUMA node", str(got))
        for req, code, what in [
                (dict(available_deviceIDs=every[:3], allocation_size=4),
                 grpc.StatusCode.INVALID_ARGUMENT, "a size larger than what is available"),
                (dict(available_deviceIDs=every[:3], must_include_deviceIDs=every[:3],
                      allocation_size=2), grpc.StatusCode.INVALID_ARGUMENT,
                 "a size smaller than the must-include devices"),
                (dict(available_deviceIDs=["0000:01:10.0", "bogus"], allocation_size=1),
                 grpc.StatusCode.NOT_FOUND, "an unknown id")]:
            try:
                stub.GetPreferredAllocation(api.PreferredAllocationRequest(
                    container_requests=[api.ContainerPreferredAllocationRequest(**req)]))
                check(False, f"GetPreferredAllocation with {what} fails")
            except grpc.RpcError as e:
                check(e.code() == code, f"GetPreferredAllocation with {what} is {code.name}",
                      f"{e.code()} {e.details()}")
        check(spec_names(cdi) == spec_before, "the refused calls changed nothing in the spec")
        again = stub.Allocate(api.AllocateRequest(container_requests=[
            api.ContainerAllocateRequest(devices_ids=["0000:01:10.2"])]))
        check(len(again.container_responses[0].cdi_devices) == 1,
              "Allocate still works after the refusals")
        stream.cancel()
        channel.close()

        # kubelet restarts: it removes every socket in its directory and makes a new one.
        kubelet.stop(0).wait()
        for name in os.listdir(plugdir):
            os.unlink(os.path.join(plugdir, name))
        registrations = queue.Queue()
        kubelet = kubelet_start(api_grpc, api, os.path.join(plugdir, "kubelet.sock"),
                                registrations)
        regs = registered(registrations, 2)
        check([r.resource_name for r in regs] == ["vfiod.io/edu", "vfiod.io/igb-vf"],
              "both pools register again after kubelet restarts", str(regs))
        channel = grpc.insecure_channel("unix://" + os.path.join(plugdir, "vfiod-edu.sock"))
        stub = api_grpc.DevicePluginStub(channel)
        stream = stub.ListAndWatch(api.Empty())
        first, _ = next_list(stream, lambda r: True)
        check(first is not None and health(first) == {"0000:00:03.0": ("Healthy", [])},
              "the plugin serves on its new socket", str(first))
        stream.cancel()
        channel.close()

        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        proc = None
        left = sorted(n for n in os.listdir(plugdir) if n != "kubelet.sock")
        check(rc == 0 and left == [], "SIGTERM: exit 0, sockets removed", f"{rc} {left}")

        # Bad input: a configuration that does not parse stops it with the reason; a CDI
        # directory that is a symbolic link is refused and the pools are served anyway.
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            f.write('{"pools": [{"name": "x", "devices": ["8086:zzzz"]}]}')
        run = subprocess.run([plugin, "--root", tree, "--config", bad, "--plugin-dir", plugdir],
                             capture_output=True, text=True, timeout=10)
        check(run.returncode == 1 and bad in run.stderr and
              'bad device selector "8086:zzzz"' in run.stderr,
              "a configuration that does not parse is refused with its reason", run.stderr)
        link = os.path.join(tmp, "cdi-link")
        os.symlink(cdi, link)
        registrations = queue.Queue()
        proc = subprocess.Popen([plugin, "--root", tree, "--config", pools, "--plugin-dir",
                                 plugdir, "--cdi-dir", link, "--daemon", "", "--rescan", "100"],
                                stderr=subprocess.PIPE, text=True)
        kubelet.stop(0).wait()
        kubelet = kubelet_start(api_grpc, api, os.path.join(plugdir, "kubelet.sock"),
                                registrations)
        regs = registered(registrations, 2)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=10)[1]
        proc = None
        check(len(regs) == 2 and f"CDI spec directory {link} is a symbolic link" in err,
              "a CDI directory that is a symbolic link is refused, the pools still served",
              err)
        kubelet.stop(0)
    finally:
        if proc:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{td.failures} failed")
    return 1 if td.failures else 0


if __name__ == "__main__":
    sys.exit(main())
