#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Plays kubelet for one vfiod-device-plugin on the live host and prints what it got.

Serves Registration on DIR/device-plugins/kubelet.sock (the stand-in of
tests/unit/kubelet_standin.py, built from the kubelet's v1beta1 api.proto), starts
PLUGIN with --config POOLS, --daemon SOCKET and no CDI spec of its own (vfiod keeps it),
waits for RESOURCE to register, reads the first ListAndWatch answer and asks Allocate
for the ids given. One JSON object on stdout:

  {"registered": [resource names], "devices": {id: [health, [NUMA nodes]]},
   "cdi_devices": [names], "device_specs": [[container path, host path, permissions]],
   "envs": {name: value}, "error": null or the gRPC error, "plugin_exit": N}

usage: kubelet_allocate.py PLUGIN API_PROTO DIR POOLS SOCKET RESOURCE ID...
"""

import json
import os
import queue
import signal
import subprocess
import sys
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "unit"))
from kubelet_standin import (generate_stubs, health, kubelet_start,  # noqa: E402
                             next_list, registered)


def main():
    if len(sys.argv) < 8:
        sys.exit(__doc__.rsplit("usage: ", 1)[1])
    plugin, proto, workdir, pools, daemon, resource = sys.argv[1:7]
    ids = sys.argv[7:]
    generate_stubs(os.path.abspath(proto), os.path.join(workdir, "stubs"))
    import api_pb2 as api
    import api_pb2_grpc as api_grpc

    plugdir = os.path.join(workdir, "device-plugins")
    os.mkdir(plugdir)
    registrations = queue.Queue()
    kubelet = kubelet_start(api_grpc, api, os.path.join(plugdir, "kubelet.sock"),
                            registrations)
    log = open(os.path.join(workdir, "plugin.log"), "w")
    proc = subprocess.Popen([plugin, "--config", pools, "--plugin-dir", plugdir,
                             "--cdi-dir", "", "--daemon", daemon], stdout=log, stderr=log)
    out = {"registered": [], "devices": {}, "cdi_devices": [], "device_specs": [],
           "envs": {}, "error": None, "plugin_exit": None}
    try:
        # Every pool registers; wait for the one asked for, or 10 s.
        regs = []
        deadline = time.monotonic() + 10
        while (not any(r.resource_name == resource for r in regs) and
               time.monotonic() < deadline):
            regs += registered(registrations, 1, timeout=deadline - time.monotonic())
        out["registered"] = sorted(r.resource_name for r in regs)
        reg = next((r for r in regs if r.resource_name == resource), None)
        if reg is not None:
            channel = grpc.insecure_channel("unix://" + os.path.join(plugdir, reg.endpoint))
            stub = api_grpc.DevicePluginStub(channel)
            first, _ = next_list(stub.ListAndWatch(api.Empty()), lambda r: True, timeout=10)
            if first is not None:
                out["devices"] = health(first)
            try:
                resp = stub.Allocate(api.AllocateRequest(container_requests=[
                    api.ContainerAllocateRequest(devices_ids=ids)]), timeout=10)
                c = resp.container_responses[0]
                out["cdi_devices"] = [d.name for d in c.cdi_devices]
                out["device_specs"] = [[d.container_path, d.host_path, d.permissions]
                                       for d in c.devices]
                out["envs"] = dict(c.envs)
            except grpc.RpcError as e:
                out["error"] = f"{e.code().name}: {e.details()}"
            channel.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out["plugin_exit"] = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out["plugin_exit"] = proc.wait()
        kubelet.stop(None)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
