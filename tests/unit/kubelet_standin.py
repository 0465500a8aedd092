# SPDX-License-Identifier: LGPL-2.1-or-later
"""A kubelet stand-in for vfiod-device-plugin's tests (unit and lab): stubs generated
from the kubelet's v1beta1 api.proto with Debian's protoc and grpc_python_plugin, a
Registration service on kubelet.sock, and readers of a plugin's ListAndWatch stream."""

import os
import queue
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc


def generate_stubs(proto, out):
    os.makedirs(out)
    subprocess.run(["protoc", f"--proto_path={os.path.dirname(proto)}",
                    f"--python_out={out}", f"--grpc_out={out}",
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", proto],
                   check=True)
    sys.path.insert(0, out)


def kubelet_start(api_grpc, api, path, registrations):
    class Registration(api_grpc.RegistrationServicer):
        def Register(self, request, context):
            registrations.put(request)
            return api.Empty()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    api_grpc.add_RegistrationServicer_to_server(Registration(), server)
    server.add_insecure_port("unix://" + path)
    server.start()
    return server


def registered(registrations, n, timeout=10):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.append(registrations.get(timeout=0.2))
        except queue.Empty:
            pass
    return sorted(got, key=lambda r: r.resource_name)


def health(resp):
    return {d.ID: (d.health, [n.ID for n in d.topology.nodes]) for d in resp.devices}


def next_list(stream, pred, timeout=3):
    """The first ListAndWatch response for which pred holds, and how long it took."""
    start = time.monotonic()
    result = [None]

    def reader():
        for resp in stream:
            if pred(resp):
                result[0] = resp
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    return result[0], time.monotonic() - start
