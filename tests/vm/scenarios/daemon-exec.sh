#!/bin/bash
# topology: basic debian-6.1 debian-6.12
# boot: own
#
# Devices leased from the vfiod daemon to a real, unprivileged QEMU (edu at 01:00.0,
# alone in its group, no host driver; and a VF of the igb at 02:00.0, carved onto
# vfio-pci through the daemon's admin socket):
#   1. vfioctl exec as uid 65534: the daemon's policy grants 1234:11e8 and the igb's
#      VFs 0-1, with memlock unlimited; QEMU gets -object iommufd / -device vfio-pci with
#      the received fds and realizes both devices ('info pci'); the lease ends when QEMU
#      exits and the edu goes back to no driver. A QEMU killed with SIGKILL has its
#      devices reset and returned within 1 s. Root, which the policy does not name, is
#      refused.
#   2. vfioctl qemu-attach as uid 65534 into a running QEMU over QMP: a device_add that
#      QEMU refuses (no such bus) is undone and its lease released; then the device is
#      hot-plugged into a free root port, with the lease held by QEMU (whose memlock
#      limit the daemon raised), and released when QEMU quits.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
vfiod=$(lab_bin daemon/vfiod)
lab_vfio_modules
EDU=0000:01:00.0
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
tmp=$(mktemp -d)
chmod 755 "$tmp"
install -d -o 65534 -g 65534 "$tmp/vm"

IGB=0000:02:00.0
cat >"$tmp/policy.json" <<'EOF'
{"rules": [{"users": ["nobody"], "operations": ["list", "acquire"],
            "devices": ["1234:11e8"], "memlock": "unlimited"},
           {"users": ["nobody"], "operations": ["acquire"],
            "devices": ["0000:02:00.0/vf0-1"], "memlock": "unlimited", "on_release": "pool"}]}
EOF
"$vfiod" --socket "$tmp/io.vfiod" --admin-socket "$tmp/io.vfiod.admin" \
	--runtime-dir "$tmp/run" --state-dir /run/vfiod-lab-exec --policy "$tmp/policy.json" \
	-v >"$tmp/vfiod.log" 2>&1 &
daemon=$!
lab_wait_socket "$tmp/io.vfiod" || fail "vfiod did not start" "$(cat "$tmp/vfiod.log")"
export VFIOD_SOCKET=$tmp/io.vfiod

# wait_driver NAME: the daemon undoes a lease once it sees its holder exit.
wait_driver() {
	for _ in $(seq 100); do
		[[ $(lab_driver_of $EDU) == "$1" ]] && return 0
		sleep 0.1
	done
	return 1
}

base=$(lab_driver_of $EDU)
check_eq "edu starts without a driver" - "$base"

# Carve two igb VFs straight onto vfio-pci: vfioctl, run as root while vfiod runs, has
# the daemon do it over its admin socket.
export VFIOD_ADMIN_SOCKET=$tmp/io.vfiod.admin
out=$("$vfioctl" --json sriov "$IGB" --numvfs 2 2>&1) || true
VF=$(basename "$(readlink -f /sys/bus/pci/devices/$IGB/virtfn0 2>/dev/null)" 2>/dev/null || true)
vf_driver=$(basename "$(readlink -f /sys/bus/pci/devices/$VF/driver 2>/dev/null)" 2>/dev/null || true)
[[ -n $VF && $vf_driver == vfio-pci ]] && grep -q "calls io.vfiod.SetNumVFs" "$tmp/vfiod.log" &&
	pass "vfioctl sriov --numvfs 2 went through vfiod (SetNumVFs) and carved $VF onto vfio-pci" ||
	fail "vfioctl sriov through the daemon" "$out"$'\n'"$(tail -n 5 "$tmp/vfiod.log")"
# ConfigureVF over the admin socket, read back by iproute2.
client="/usr/bin/python3 -S $(dirname "$VFIOD_LAB_LIB")/helpers/vfiod_call.py"
out=$($client call "$VFIOD_ADMIN_SOCKET" io.vfiod.ConfigureVF \
	"{\"pf\": \"$IGB\", \"vf\": 0, \"mac\": \"02:11:22:33:44:55\", \"vlan\": 100, \"qos\": 3, \"trust\": true, \"spoof_check\": false}")
ifname=$(ls /sys/bus/pci/devices/$IGB/net | head -n1)
vfline=$(ip link show dev "$ifname" | grep -E '^ +vf 0 ' | tr -s ' ' || true)
[[ $vfline == *"02:11:22:33:44:55"* && $vfline == *"vlan 100, qos 3"* && $vfline == *"spoof checking off"* && $vfline == *"trust on"* ]] &&
	pass "ConfigureVF set VF 0's MAC, VLAN 100 qos 3, trust on, spoof checking off (ip link:$vfline)" ||
	fail "ConfigureVF over the admin socket" "$out"$'\n'"$vfline"
out=$($client call "$VFIOD_ADMIN_SOCKET" io.vfiod.ConfigureVF "{\"pf\": \"$IGB\", \"vf\": 0, \"qos\": 3}")
check_eq "ConfigureVF: a qos without its vlan is an invalid parameter" \
	"org.varlink.service.InvalidParameter qos" \
	"$(python3 -S -c 'import json,sys; m=json.loads(sys.argv[1]); print(m.get("error"), m.get("parameters",{}).get("parameter"))' "$out")"
vf_id=$(printf '%s:%s' "$(cut -c3- /sys/bus/pci/devices/$VF/vendor)" "$(cut -c3- /sys/bus/pci/devices/$VF/device)")

# 1. exec
# QEMU takes handed-over VFIO handles only with iommufd, so exec and qemu-attach of a
# QEMU need it (the type1 hand-off to QEMU is another scenario's).
if lab_has_iommufd "vfioctl exec of QEMU (leased edu and VF, SIGKILL of the VMM)"; then
qemu=(qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S -display none -nodefaults
	-monitor stdio)
out=$(printf 'info pci\nquit\n' | timeout 120 "${NOBODY[@]}" "$vfioctl" --json exec \
	--device 01:00.0 --device "$VF" -- "${qemu[@]}" 2>&1) && rc=0 || rc=$?
line=$(tr -d '\r' <<<"$out" | sed -n '/PCI device 1234:11e8/,/ id "/p' | tr -s ' \n' ' ' || true)
vf_qemu_id=vfiod-${VF//[:.]/-}
vf_line=$(tr -d '\r' <<<"$out" | sed -n "/PCI device $vf_id/,/ id \"/p" | tr -s ' \n' ' ' || true)
[[ $rc == 0 && $line == *'id "vfiod-0000-01-00-0"'* ]] &&
	pass "QEMU as uid 65534 under vfioctl exec realizes the leased edu: 'info pci' shows:$line" ||
	fail "vfioctl exec of QEMU as uid 65534 (exit $rc)" "$out"
[[ $rc == 0 && $vf_line == *"id \"$vf_qemu_id\""* ]] &&
	pass "... and the leased igb VF ($vf_id):$vf_line" ||
	fail "the igb VF $VF is not in QEMU's 'info pci' (exit $rc)" "$out"
lab_verdicts "exec's JSON line" python3 -S - "$(head -n1 <<<"$out")" <<'EOF'
import json, sys
try:
    d = json.loads(sys.argv[1])
except Exception as e:
    print(f"FAIL exec --json: the first line of output is not JSON ({e}): {sys.argv[1]!r}")
    sys.exit(0)
dev = (d.get("devices") or [{}])[0]
ok = (d.get("backend") == "iommufd" and d.get("memlock") == -1 and dev.get("address") == "0000:01:00.0"
      and isinstance(dev.get("fd"), int) and isinstance(d.get("iommufd"), int)
      and dev.get("qemu_id") == "vfiod-0000-01-00-0"
      and f"vfio-pci,iommufd=vfiod-iommufd0,fd={dev.get('fd')},id=vfiod-0000-01-00-0" in d.get("command", []))
print(("PASS" if ok else "FAIL") + f" exec --json: first line names lease {d.get('lease')}, iommufd, memlock unlimited, the fds and the QEMU arguments")
if not ok:
    print(sys.argv[1])
EOF
wait_driver "$base" && pass "the lease ended with QEMU: edu is back to no driver" ||
	fail "edu is still on $(lab_driver_of $EDU) after QEMU exited" "$(tail -n 20 "$tmp/vfiod.log")"

# SIGKILL to the VMM: the daemon sees its holder die through the pidfd.
"${NOBODY[@]}" "$vfioctl" exec --device 01:00.0 --device "$VF" -- \
	qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S -display none -nodefaults \
	-monitor none </dev/null >"$tmp/qemu-kill.log" 2>&1 &
vmm=$!
for _ in $(seq 200); do
	[[ $(lab_leases_recorded "$tmp/run/leases" | wc -l) == 1 ]] && lab_leases_recorded "$tmp/run/leases" | grep -q "$VF" && break
	sleep 0.1
done
sleep 2 # let QEMU open and realize the devices
# The clock starts once the VMM is dead: closing its VFIO files makes the kernel reset
# the devices (vfio-pci does that at close, a bus reset for the edu takes it a second),
# and that is the kernel's time, spent before the process is gone.
kill -9 "$vmm"
wait "$vmm" 2>/dev/null || true
start=$(date +%s%N)
while [[ $(lab_driver_of $EDU) != "$base" || -n $(lab_leases_recorded "$tmp/run/leases") ]]; do
	(($(date +%s%N) - start > 3000000000)) && break
	sleep 0.01
done
ms=$((($(date +%s%N) - start) / 1000000))
((ms <= 1000)) && pass "VMM killed with SIGKILL: edu restored, VF back in the pool, lease gone ${ms} ms after the VMM died" ||
	fail "VMM killed: devices not returned within 1 s (${ms} ms, edu on $(lab_driver_of $EDU))" "$(tail -n 20 "$tmp/vfiod.log")"
vf_driver=$(basename "$(readlink -f /sys/bus/pci/devices/$VF/driver 2>/dev/null)" 2>/dev/null || true)
check_eq "the pooled VF stays on vfio-pci for the next lease" vfio-pci "$vf_driver"
fi

out=$("$vfioctl" exec --device 01:00.0 -- /bin/true 2>&1) && rc=0 || rc=$?
[[ $rc == 1 && $out == *"0000:01:00.0: the daemon's policy does not allow uid 0 to acquire it"* ]] &&
	pass "root, not in the policy, is refused with: $out" ||
	fail "exec as root (exit $rc)" "$out"

# 2. qemu-attach
if lab_has_iommufd "vfioctl qemu-attach into a running QEMU"; then
"${NOBODY[@]}" qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S -display none -nodefaults \
	-device pcie-root-port,id=rp1,chassis=1,slot=1 \
	-device pcie-root-port,id=rp2,chassis=2,slot=2 \
	-qmp "unix:$tmp/vm/qmp,server=on,wait=off" >"$tmp/qemu.log" 2>&1 &
qemu_pid=$!
lab_wait_socket "$tmp/vm/qmp" || fail "QEMU did not start" "$(cat "$tmp/qemu.log")"

out=$("${NOBODY[@]}" "$vfioctl" qemu-attach --qmp "$tmp/vm/qmp" --bus nosuchbus $EDU 2>&1) &&
	rc=0 || rc=$?
[[ $rc == 1 && $out == *"QEMU refused device_add"* && $out == *"released"* ]] &&
	pass "a device_add QEMU refuses is undone and its lease released: ${out//$'\n'/ | }" ||
	fail "qemu-attach onto a missing bus (exit $rc)" "$out"
objs=$(lab_qmp "$tmp/vm/qmp" "info qom-tree" 2>&1 || true)
[[ $objs != *vfiod-iommufd* ]] && pass "no vfiod iommufd object is left in QEMU" ||
	fail "an iommufd object survived the undo" "$objs"
wait_driver "$base" || fail "edu stayed on $(lab_driver_of $EDU) after the undo"

out=$(timeout 120 "${NOBODY[@]}" "$vfioctl" qemu-attach --qmp "$tmp/vm/qmp" --bus rp1 $EDU 2>&1) &&
	rc=0 || rc=$?
[[ $rc == 0 && $out == *"attached to QEMU pid $qemu_pid"* ]] &&
	pass "qemu-attach hot-plugs edu into QEMU pid $qemu_pid: $out" ||
	fail "qemu-attach into rp1 (exit $rc)" "$out"
# QEMU never ran the guest's firmware (-S), so no bus number is behind rp1 yet and
# 'info pci' stops at the port: the device tree shows the realized device.
tree=$(lab_qmp "$tmp/vm/qmp" "info qtree" 2>&1 || true)
line=$(tr -d '\r' <<<"$tree" | grep -A1 'dev: vfio-pci, id "vfiod-0000-01-00-0"' | tr -s ' \n' ' ' || true)
[[ -n $line && $tree == *'bus: rp1'* ]] && pass "QEMU's device tree holds it below rp1:$line" ||
	fail "the hot-plugged device is not in QEMU's device tree" "$tree"
out=$(timeout 120 "${NOBODY[@]}" "$vfioctl" qemu-attach --qmp "$tmp/vm/qmp" --bus rp2 "$VF" 2>&1) &&
	rc=0 || rc=$?
tree=$(lab_qmp "$tmp/vm/qmp" "info qtree" 2>&1 || true)
[[ $rc == 0 && $tree == *"dev: vfio-pci, id \"$vf_qemu_id\""* && $tree == *'bus: rp2'* ]] &&
	pass "qemu-attach hot-plugs the igb VF $VF into the same QEMU, below rp2" ||
	fail "qemu-attach of the VF into rp2 (exit $rc)" "$out"$'\n'"$tree"
limit=$(prlimit --pid "$qemu_pid" --memlock --output SOFT --noheadings 2>&1 || true)
check_eq "the daemon raised QEMU's RLIMIT_MEMLOCK (the lease holder's)" unlimited "${limit// /}"
[[ $(lab_driver_of $EDU) == vfio-pci ]] && pass "the lease outlives vfioctl: edu stays on vfio-pci" ||
	fail "edu is on $(lab_driver_of $EDU) after vfioctl exited"
out=$("$vfioctl" leases 2>&1) || true
[[ $out == *"pid $qemu_pid  uid 65534"* && $out == *"$EDU"* && $out == *"$VF"* ]] &&
	pass "vfioctl leases (root, admin socket) lists QEMU's leases: ${out//$'\n'/ | }" ||
	fail "vfioctl leases" "$out"
nobody_view=$("${NOBODY[@]}" "$vfioctl" --json leases 2>&1) || true
n_own=$(python3 -S -c 'import json,sys; print(len(json.loads(sys.argv[1])["leases"]))' "$nobody_view" 2>/dev/null || echo "?")
check_eq "uid 65534 sees its 2 leases over the public socket" 2 "$n_own"
lease_id=$(sed -n "s/^lease \([0-9]*\)  pid $qemu_pid .*/\1/p" <<<"$out" | head -n1)
out=$("$vfioctl" release "$lease_id" 2>&1) && rc=0 || rc=$?
[[ $rc == 1 && $out == *"still"* ]] &&
	pass "vfioctl release of a lease whose device QEMU holds open is refused: $out" ||
	fail "vfioctl release while QEMU holds the device (exit $rc)" "$out"
lab_qmp "$tmp/vm/qmp" quit >/dev/null 2>&1 || true
wait "$qemu_pid" 2>/dev/null || true
wait_driver "$base" && pass "the lease ended with QEMU: edu is back to no driver" ||
	fail "edu is still on $(lab_driver_of $EDU) after QEMU quit" "$(tail -n 20 "$tmp/vfiod.log")"
fi

# bind and unbind through the daemon too: the monitor-free proof is the daemon's log.
out=$("$vfioctl" bind $EDU 2>&1) && rc=0 || rc=$?
[[ $rc == 0 && $(lab_driver_of $EDU) == vfio-pci && $out == *"bound by vfiod"* ]] &&
	grep -q "calls io.vfiod.Bind" "$tmp/vfiod.log" &&
	pass "vfioctl bind went through vfiod: $out" || fail "vfioctl bind through the daemon (exit $rc)" "$out"
out=$("$vfioctl" unbind $EDU 2>&1) && rc=0 || rc=$?
[[ $rc == 0 && $(lab_driver_of $EDU) == - ]] && grep -q "calls io.vfiod.Unbind" "$tmp/vfiod.log" &&
	pass "vfioctl unbind went through vfiod: $out" || fail "vfioctl unbind through the daemon (exit $rc)" "$out"
# (the host's root is read-only here: the direct path's journal goes where the daemon's is)
out=$(VFIOD_STATE_DIR=/run/vfiod-lab-exec "$vfioctl" --no-daemon bind $EDU 2>&1) && rc=0 || rc=$?
n_bind=$(grep -c "calls io.vfiod.Bind" "$tmp/vfiod.log")
[[ $rc == 0 && $(lab_driver_of $EDU) == vfio-pci && $n_bind == 1 ]] &&
	pass "--no-daemon binds directly (the daemon saw no second Bind)" ||
	fail "vfioctl --no-daemon bind (exit $rc, $n_bind Bind calls)" "$out"
VFIOD_STATE_DIR=/run/vfiod-lab-exec "$vfioctl" --no-daemon unbind $EDU >/dev/null 2>&1 || true

out=$("$vfioctl" sriov "$IGB" --numvfs 0 2>&1) || true
[[ ! -e /sys/bus/pci/devices/$VF && $(basename "$(readlink -f /sys/bus/pci/devices/$IGB/driver)") == igb ]] &&
	pass "vfioctl sriov --numvfs 0 (through vfiod) removes the VFs and leaves the PF on igb" ||
	fail "sriov --numvfs 0 through the daemon" "$out"

kill "$daemon"
wait "$daemon" 2>/dev/null || true
rm -rf "$tmp"
lab_done
