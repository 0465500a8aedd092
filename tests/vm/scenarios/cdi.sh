#!/bin/bash
# topology: basic debian-6.12
# boot: own
#
# Containers get vfiod's devices through CDI, with Debian's podman (4.3) and crun on the
# real kernel: iommufd nodes on the lab's kernel, type1 group nodes on Debian's.
#   1. vfiod --cdi-dir /var/run/cdi keeps the spec of a pools file exporting the edu at
#      01:00.0 and the VFs of the igb at 02:00.0; the edu is bound through the daemon.
#   2. An image made with `podman import` from a tar holding only a static probe
#      (helpers/cdi-probe.c; no registry is reachable): `podman run --device
#      vfiod.io/pci=EDU` runs it, and it gets the kernel's answer on the nodes it was
#      given: an IOAS allocated and the cdev bound to it, or the group viable.
#   3. The edu at 07:00.0, on vfio-pci but in no pool, has no entry: podman refuses it.
#   4. VFs carved by `vfioctl sriov --numvfs 2` through the daemon are in the spec within
#      1 s, and gone within 1 s of `--numvfs 0`.
#   5. vfiod-device-plugin, registered with a kubelet stand-in, allocates the edu, and
#      podman runs the probe with the CDI names Allocate returned.
#
# podman in a guest without systemd, on a read-only /etc: what each option is for
#   --cgroup-manager cgroupfs  no systemd to ask for a scope; crun writes cgroup2 itself,
#                              so cgroup2 must be mounted at /sys/fs/cgroup;
#   --events-backend file      no journald;
#   --storage-driver vfs, --root/--runroot/--tmpdir on a tmpfs: nothing written under
#                              /var/lib/containers or /run/libpod, and vfs needs no
#                              overlay mount over a tmpfs;
#   --network-config-dir       the default, under /etc, is read-only;
#   --network none             no network plugin is installed, and none is needed.
# The lab's kernel carries what crun uses for the default container (kernel.config:
# /proc/self/setgroups of user namespaces, IPC namespace and mqueue, pids controller,
# seccomp, cgroup BPF device filter); Debian's kernels have all of it.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfiod=$(lab_bin daemon/vfiod)
vfioctl=$(lab_bin cli/vfioctl)
lab_vfio_modules
tmp=$(mktemp -d)
rundir=/run/vfiod
export VFIOD_SOCKET=$rundir/io.vfiod VFIOD_ADMIN_SOCKET=$rundir/io.vfiod.admin
# The daemon's journal. Not exported: a vfioctl given a state directory works on its own
# instead of asking the daemon.
state=/run/vfiod-lab-cdi
export TMPDIR=$tmp
cdidir=/var/run/cdi
spec=$cdidir/vfiod.io-pci.json
EDU=0000:01:00.0
EDU_OUT=0000:07:00.0 # bound to vfio-pci, in no pool
IGB=0000:02:00.0

# spec_names: the CDI device names of the spec, one a line (nothing when it is absent).
spec_names() {
	[[ -f $spec ]] || return 0
	python3 -S -c 'import json, sys
for d in json.load(open(sys.argv[1]))["devices"]: print(d["name"])' "$spec"
}
spec_has() { spec_names | grep -qxF "$1"; }
spec_lacks() { ! spec_has "$1"; }
spec_has_all() {
	local n
	for n; do spec_has "$n" || return 1; done
}
spec_lacks_all() {
	local n
	for n; do spec_has "$n" && return 1; done
	return 0
}

# What the scenario changes, put back at its end whatever happened.
made_cdidir=0
mounted_cgroup=0
daemon_pid=
cleanup() {
	local rc=$?
	if [[ -n $daemon_pid ]]; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	[[ $(cat /sys/bus/pci/devices/$IGB/sriov_numvfs) == 0 ]] ||
		VFIOD_STATE_DIR=$state "$vfioctl" sriov "$IGB" --numvfs 0 >/dev/null 2>&1 || true
	VFIOD_STATE_DIR=$state "$vfioctl" restore --all >/dev/null 2>&1 || true
	rm -f "$spec"
	((made_cdidir)) && rmdir "$cdidir" 2>/dev/null
	((mounted_cgroup)) && umount /sys/fs/cgroup
	rm -rf "$tmp" "$state" "$rundir"
	return "$rc"
}
trap cleanup EXIT

# The probe, static: the image holds nothing else.
check "the probe builds statically" \
	gcc -std=gnu11 -O2 -static -I"$VFIOD_LAB_CHECKOUT/vfio" -o "$tmp/cdi-probe" \
	"$VFIOD_LAB_CHECKOUT/tests/vm/helpers/cdi-probe.c"

if ! mountpoint -q /sys/fs/cgroup; then
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
	mounted_cgroup=1
fi
if [[ ! -d $cdidir ]]; then
	mkdir -p "$cdidir"
	made_cdidir=1
fi

cat >"$tmp/policy.json" <<'EOF'
{"rules": [{"users": ["*"], "operations": ["list"]}]}
EOF
cat >"$tmp/pools.json" <<EOF
{
  "cdi_kind": "vfiod.io/pci",
  "pools": [
    {"name": "edu", "devices": ["$EDU"]},
    {"name": "igb-vf", "devices": ["$IGB/vf*"]}
  ]
}
EOF

# 1. The daemon keeps the spec; the edu joins it when the daemon has bound it.
"$vfiod" --policy "$tmp/policy.json" --runtime-dir "$rundir" --socket "$VFIOD_SOCKET" \
	--admin-socket "$VFIOD_ADMIN_SOCKET" --state-dir "$state" --cdi-dir "$cdidir" \
	--pools "$tmp/pools.json" \
	-v >>"$tmp/vfiod.log" 2>&1 &
daemon_pid=$!
if wait_until 10 test -S "$VFIOD_ADMIN_SOCKET" >/dev/null; then
	pass "vfiod --cdi-dir $cdidir starts"
else
	fail "vfiod --cdi-dir $cdidir starts" "$(tail -n 20 "$tmp/vfiod.log")"
fi
out=$("$vfioctl" bind "$EDU" "$EDU_OUT" 2>&1) && rc=0 || rc=$?
check_eq "vfioctl bind $EDU $EDU_OUT: both bound by vfiod" "0 2" "$rc $(grep -c 'bound by vfiod' <<<"$out")"
ms=$(wait_until 5 spec_has "$EDU") &&
	pass "the edu $EDU is in $spec (${ms} ms after the bind returned)" ||
	fail "the edu $EDU is not in $spec" "$(cat "$spec" 2>&1)"
check "$EDU_OUT, on $(lab_driver_of "$EDU_OUT") but in no pool, has no entry" spec_lacks "$EDU_OUT"
if [[ -c /dev/iommu ]]; then
	want_nodes="/dev/iommu /dev/vfio/devices/"
else
	want_nodes="/dev/vfio/vfio /dev/vfio/$(basename "$(readlink /sys/bus/pci/devices/$EDU/iommu_group)")"
fi
nodes=$(python3 -S -c 'import json, sys
for d in json.load(open(sys.argv[1]))["devices"]:
    if d["name"] == sys.argv[2]:
        print(" ".join(n["path"] for n in d["containerEdits"]["deviceNodes"]))' "$spec" "$EDU")
check "the edu's nodes are those of the kernel's backend ($nodes)" \
	bash -c '[[ "$1" == "$2"* ]]' _ "$nodes" "$want_nodes"

# 2. podman: an imported image, the edu given by its CDI name.
podman=(podman --root "$tmp/storage" --runroot "$tmp/runroot" --tmpdir "$tmp/libpod"
	--storage-driver vfs --cgroup-manager cgroupfs --events-backend file
	--network-config-dir "$tmp/networks")
mkdir -p "$tmp/rootfs/dev" "$tmp/rootfs/proc" "$tmp/rootfs/sys" "$tmp/networks"
cp "$tmp/cdi-probe" "$tmp/rootfs/cdi-probe"
tar -C "$tmp/rootfs" -cf "$tmp/probe.tar" .
check "podman import makes the image from a tar of the probe alone" \
	"${podman[@]}" import "$tmp/probe.tar" localhost/vfiod-cdi-probe:lab
run=("${podman[@]}" run --rm --network none)
out=$("${run[@]}" --device "vfiod.io/pci=$EDU" localhost/vfiod-cdi-probe:lab /cdi-probe 2>&1) &&
	rc=0 || rc=$?
printf '%s\n' "$out" | sed 's/^/    | /'
key=${EDU//[:.]/_}
if [[ -c /dev/iommu ]]; then
	check "in the container, the probe allocates an IOAS on /dev/iommu" \
		grep -q "^PASS $key: IOMMU_IOAS_ALLOC gave IOAS" <<<"$out"
	check "... and binds the edu's cdev to it" \
		grep -q "^PASS $key: VFIO_DEVICE_BIND_IOMMUFD of /dev/vfio/devices/vfio[0-9]* gave devid" <<<"$out"
else
	check "in the container, the probe gets the API version on /dev/vfio/vfio" \
		grep -q "^PASS $key: VFIO_GET_API_VERSION gave 0" <<<"$out"
	check "... and VFIO_GROUP_GET_STATUS says the edu's group is viable" \
		grep -q "^PASS $key: VFIO_GROUP_GET_STATUS on /dev/vfio/[0-9]*: viable" <<<"$out"
fi
check_eq "podman run --device vfiod.io/pci=$EDU exits 0, no probe check failed" "0 0" \
	"$rc $(grep -c '^FAIL' <<<"$out" || true)"

# 3. A device outside the pools cannot be named.
out=$("${run[@]}" --device "vfiod.io/pci=$EDU_OUT" localhost/vfiod-cdi-probe:lab /cdi-probe 2>&1) &&
	rc=0 || rc=$?
if ((rc != 0)) && ! grep -q '^PASS' <<<"$out"; then
	pass "podman refuses --device vfiod.io/pci=$EDU_OUT (exit $rc: $(grep -m1 -i error <<<"$out"))"
else
	fail "podman ran a container with $EDU_OUT, which no pool exports" "$out"
fi

# 4. VFs carved through the daemon come and go in the spec.
out=$("$vfioctl" sriov "$IGB" --numvfs 2 2>&1) && rc=0 || rc=$?
check_eq "vfioctl sriov $IGB --numvfs 2 exits 0" 0 "$rc"
check "... the carve was vfiod's job" grep -q "sriov of $IGB.*worker pid" "$tmp/vfiod.log"
vfs=()
for l in /sys/bus/pci/devices/$IGB/virtfn*; do
	[[ -e $l ]] && vfs+=("$(basename "$(readlink -f "$l")")")
done
check_eq "the kernel has 2 VFs" 2 "${#vfs[@]}"
ms=$(wait_until 1 spec_has_all "${vfs[@]}") &&
	pass "the VFs ${vfs[*]} are in the spec ${ms} ms after the carve returned (within 1 s)" ||
	fail "the VFs ${vfs[*]} are not in the spec 1 s after the carve" "$(spec_names)"
if ((${#vfs[@]})); then
	out=$("${run[@]}" --device "vfiod.io/pci=${vfs[0]}" localhost/vfiod-cdi-probe:lab \
		/cdi-probe 2>&1) && rc=0 || rc=$?
	printf '%s\n' "$out" | sed 's/^/    | /'
	check_eq "a container given the VF ${vfs[0]} gets the kernel's answer on its nodes" "0 0" \
		"$rc $(grep -c '^FAIL' <<<"$out" || true)"
fi
out=$("$vfioctl" sriov "$IGB" --numvfs 0 2>&1) && rc=0 || rc=$?
check_eq "vfioctl sriov $IGB --numvfs 0 exits 0, vfiod's job" "0 2" \
	"$rc $(grep -c "sriov of $IGB.*worker pid" "$tmp/vfiod.log")"
# (vfiod takes them out before its worker touches the kernel: already gone at the return)
at_return=no
spec_lacks_all "${vfs[@]}" && at_return=yes
ms=$(wait_until 1 spec_lacks_all "${vfs[@]}") &&
	pass "the VFs are gone from the spec ${ms} ms after --numvfs 0 returned (within 1 s; gone at the return: $at_return)" ||
	fail "VFs still in the spec 1 s after --numvfs 0" "$(spec_names)"
check "the edu stays in the spec" spec_has "$EDU"

# 5. Kubernetes: a kubelet stand-in (helpers/kubelet_allocate.py) registers
#    vfiod-device-plugin, which asks this vfiod for its leases and leaves the spec to it,
#    and has it allocate the edu; podman resolves the CDI names Allocate returned.
plugin=$(lab_bin fleet/device-plugin/vfiod-device-plugin)
mkdir "$tmp/kubelet"
out=$(python3 "$VFIOD_LAB_CHECKOUT/tests/vm/helpers/kubelet_allocate.py" "$plugin" \
	"$VFIOD_LAB_CHECKOUT/fleet/device-plugin/api.proto" "$tmp/kubelet" "$tmp/pools.json" \
	"$VFIOD_SOCKET" vfiod.io/edu "$EDU" 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" | sed 's/^/    | /'
# field NAME: one field of the helper's answer, as JSON (null when there is none).
field() {
	python3 -S -c 'import json, sys
try:
    v = json.loads(sys.argv[1].splitlines()[-1]).get(sys.argv[2])
except (ValueError, IndexError, AttributeError):
    v = None
print(json.dumps(v))' "$out" "$1"
}
check_eq "the kubelet stand-in ran (exit 0), no gRPC error" "0 null" "$rc $(field error)"
check "the edu's pool registers with it as vfiod.io/edu" \
	grep -qF '"vfiod.io/edu"' <<<"$(field registered)"
check_eq "ListAndWatch lists the edu, healthy" '"Healthy"' "$(python3 -S -c 'import json, sys
print(json.dumps((json.loads(sys.argv[1]) or {}).get(sys.argv[2], [None])[0]))' \
	"$(field devices)" "$EDU")"
check_eq "Allocate names the edu's CDI device" "[\"vfiod.io/pci=$EDU\"]" "$(field cdi_devices)"
check "... with its nodes as DeviceSpecs ($want_nodes...)" \
	grep -qF "\"${want_nodes%% *}\"" <<<"$(field device_specs)"
check "... and its address in the environment" grep -qF "\"$EDU\"" <<<"$(field envs)"
check_eq "vfiod-device-plugin stops on SIGTERM (exit 0)" 0 "$(field plugin_exit)"
# (a here-string, not a process substitution: the guest has no /dev/fd)
mapfile -t names <<<"$(python3 -S -c 'import json, sys
for n in json.loads(sys.argv[1]) or []: print(n)' "$(field cdi_devices)")"
devices=()
for n in "${names[@]}"; do [[ -n $n ]] && devices+=(--device "$n"); done
if ((${#devices[@]})); then
	out=$("${run[@]}" "${devices[@]}" localhost/vfiod-cdi-probe:lab /cdi-probe 2>&1) &&
		rc=0 || rc=$?
	printf '%s\n' "$out" | sed 's/^/    | /'
	check_eq "podman runs the probe with Allocate's names (${names[*]}); no check failed" \
		"0 0 yes" "$rc $(grep -c '^FAIL' <<<"$out" || true) $(grep -q "^PASS $key" <<<"$out" && echo yes)"
else
	fail "podman runs the probe with Allocate's names" "Allocate returned none"
fi

# Undo: the edus back to no driver, the daemon stopped; cleanup removes the rest.
out=$("$vfioctl" unbind "$EDU" "$EDU_OUT" 2>&1) && rc=0 || rc=$?
check_eq "vfioctl unbind $EDU $EDU_OUT by vfiod" "0 2" "$rc $(grep -c 'by vfiod' <<<"$out")"
ms=$(wait_until 5 spec_lacks "$EDU") &&
	pass "the edu leaves the spec with its unbind" ||
	fail "the edu is still in the spec after its unbind" "$(spec_names)"
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
check_eq "vfiod stops on SIGTERM" 0 "$rc"
check_eq "the edus are back on no driver" "- -" "$(lab_driver_of "$EDU") $(lab_driver_of "$EDU_OUT")"

printf '    | %s\n' "$(grep -c . "$tmp/vfiod.log") daemon log lines:"
sed 's/^/    | /' "$tmp/vfiod.log"
lab_done
