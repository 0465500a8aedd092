#!/bin/bash
# topology: basic debian-6.1 debian-6.12
# boot: own
#
# Devices handed to an unprivileged QEMU with the type1 backend: the daemon's choice on
# a kernel without iommufd (Debian's), forced with --backend type1 where iommufd exists.
# QEMU opens the group nodes itself (-device vfio-pci,host= / device_add host=); the
# lease opens each node to QEMU's uid with an ACL entry and puts the node back exactly
# when it ends. Devices: the edu at 01:00.0 (restored to no driver at lease end) and a
# VF of the igb at 02:00.0 (pooled: its group node stays, and must be as before).
#   1. vfioctl exec: QEMU as uid 65534 realizes both ('info pci'); uid 65533 gets EACCES
#      on the nodes while the lease lives; QEMU killed with SIGKILL: devices back and the
#      VF's node exactly as before (stat, getfacl) within 1 s.
#   2. vfioctl qemu-attach of both into a running QEMU as uid 65534; 'info pci' shows
#      them; QEMU quits: nodes put back.
#   3. kill -9 vfiod while a lease lives: the next vfiod adopts it and the grant stays
#      while QEMU lives, and is revoked when QEMU exits; a grant whose holder died while
#      vfiod was down is revoked at start.
#   4. A holder's RLIMIT_MEMLOCK that a lease raised is lowered back by Release.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
vfiod=$(lab_bin daemon/vfiod)
EDU=0000:01:00.0
IGB=0000:02:00.0
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
OTHER=(setpriv --reuid=65533 --regid=65533 --clear-groups)
tmp=$(mktemp -d)
chmod 755 "$tmp"
install -d -o 65534 -g 65534 "$tmp/vm"

# Where the kernel has iommufd the daemon would choose it: ask for type1.
backend=()
[[ -e /dev/iommu ]] && backend=(--backend type1)
# Debian's kernels build vfio as modules; nothing in the lab loads them at boot.
for m in vfio-pci vfio_iommu_type1; do
	modprobe "$m" 2>/dev/null || true
done

cat >"$tmp/policy.json" <<'EOF'
{"rules": [{"users": ["nobody"], "operations": ["list", "acquire"],
            "devices": ["1234:11e8"], "memlock": "unlimited"},
           {"users": ["nobody"], "operations": ["acquire"],
            "devices": ["0000:02:00.0/vf0-1"], "memlock": "unlimited", "on_release": "pool"}]}
EOF
start_daemon() {
	"$vfiod" --socket "$tmp/io.vfiod" --admin-socket "$tmp/io.vfiod.admin" \
		--runtime-dir "$tmp/run" --state-dir /run/vfiod-lab-type1 --policy "$tmp/policy.json" \
		-v >>"$tmp/vfiod.log" 2>&1 &
	daemon=$!
	for _ in $(seq 100); do
		[[ -S $tmp/io.vfiod ]] && break
		sleep 0.1
	done
}
stop_daemon() {
	kill "${1:--TERM}" "$daemon" 2>/dev/null || true
	wait "$daemon" 2>/dev/null || true
	rm -f "$tmp/io.vfiod" "$tmp/io.vfiod.admin"
}
start_daemon
export VFIOD_SOCKET=$tmp/io.vfiod VFIOD_ADMIN_SOCKET=$tmp/io.vfiod.admin

group_of() { basename "$(readlink -f "/sys/bus/pci/devices/$1/iommu_group")"; }
# node_state GROUP: owner, group, mode and access ACL of /dev/vfio/GROUP, or "absent".
node_state() {
	[[ -e /dev/vfio/$1 ]] || {
		echo absent
		return
	}
	printf '%s %s' "$(stat -c '%u:%g:%a' "/dev/vfio/$1")" "$(getfacl -n -p "/dev/vfio/$1" 2>&1 | grep -v '^#' | tr '\n' ' ')"
}
# opens_as UID-ARGS... -- NODE: what open(2) of the node says for that user.
open_error() {
	local node=$1
	shift
	"$@" python3 -S -c '
import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDWR))
    print("opened")
except OSError as e:
    print(os.strerror(e.errno))' "$node" 2>&1
}
leases_gone_and() {
	local want_edu=$1 start=$2
	while [[ $(lab_driver_of $EDU) != "$want_edu" || -n $(lab_leases_recorded "$tmp/run/leases") ]]; do
		(($(date +%s%N) - start > 3000000000)) && break
		sleep 0.01
	done
	echo $((($(date +%s%N) - start) / 1000000))
}

wait_socket() {
	for _ in $(seq 300); do
		[[ -S $1 ]] && return 0
		sleep 0.1
	done
	return 1
}

base=$(lab_driver_of $EDU)
check_eq "edu starts without a driver" - "$base"
out=$("$vfioctl" sriov "$IGB" --numvfs 2 2>&1) || true
VF=$(basename "$(readlink -f /sys/bus/pci/devices/$IGB/virtfn0 2>/dev/null)" 2>/dev/null || true)
check_eq "two igb VFs carved onto vfio-pci through the daemon ($out)" vfio-pci "$(lab_driver_of "$VF")"
vf_id=$(printf '%s:%s' "$(cut -c3- "/sys/bus/pci/devices/$VF/vendor")" "$(cut -c3- "/sys/bus/pci/devices/$VF/device")")
vf_qemu_id=vfiod-${VF//[:.]/-}
VF_GROUP=$(group_of "$VF")
vf_before=$(node_state "$VF_GROUP")
[[ $vf_before == 0:0:600* ]] && pass "the VF's group node /dev/vfio/$VF_GROUP is root's 0600: $vf_before" ||
	fail "the VF's group node before any lease" "$vf_before"
out=$(open_error "/dev/vfio/$VF_GROUP" "${NOBODY[@]}")
check_eq "uid 65534 cannot open it before the lease" "Permission denied" "$out"

# 1. exec
"${NOBODY[@]}" "$vfioctl" --json exec "${backend[@]}" --device $EDU --device "$VF" -- \
	qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S -display none -nodefaults \
	-qmp "unix:$tmp/vm/qmp1,server=on,wait=off" </dev/null >"$tmp/exec.out" 2>"$tmp/exec.err" &
vmm=$!
if wait_socket "$tmp/vm/qmp1"; then
	pci=$(lab_qmp "$tmp/vm/qmp1" "info pci" 2>&1 | tr -d '\r' || true)
else
	pci="(no QMP socket) $(cat "$tmp/exec.err")"
fi
edu_line=$(sed -n '/PCI device 1234:11e8/,/ id "/p' <<<"$pci" | tr -s ' \n' ' ' || true)
vf_line=$(sed -n "/PCI device $vf_id/,/ id \"/p" <<<"$pci" | tr -s ' \n' ' ' || true)
[[ $edu_line == *'id "vfiod-0000-01-00-0"'* ]] &&
	pass "QEMU as uid 65534 under vfioctl exec (type1) realizes the edu: 'info pci':$edu_line" ||
	fail "exec: the edu is not in QEMU's 'info pci'" "$pci"$'\n'"$(cat "$tmp/exec.err")"$'\n'"$(tail -n 20 "$tmp/vfiod.log")"
[[ $vf_line == *"id \"$vf_qemu_id\""* ]] && pass "... and the igb VF ($vf_id):$vf_line" ||
	fail "exec: the VF $VF is not in QEMU's 'info pci'" "$pci"
lab_verdicts "exec's JSON line" python3 -S - "$(head -n1 "$tmp/exec.out")" "$VF" "${#backend[@]}" <<'EOF'
import json, sys
try:
    d = json.loads(sys.argv[1])
except Exception as e:
    print(f"FAIL exec --json: the first line of output is not JSON ({e}): {sys.argv[1]!r}")
    sys.exit(0)
vf, forced = sys.argv[2], sys.argv[3] != "0"
cmd = d.get("command", [])
reason = d.get("backend_reason", "")
want_reason = "chosen with --backend" if forced else "no iommufd (no /dev/iommu)"
ok = (d.get("backend") == "type1" and want_reason in reason and d.get("iommufd") is None
      and d.get("container") is None and all(x.get("fd") is None for x in d.get("devices", []))
      and "vfio-pci,host=0000:01:00.0,id=vfiod-0000-01-00-0" in cmd
      and f"vfio-pci,host={vf},id=vfiod-{vf.replace(':', '-').replace('.', '-')}" in cmd
      and not any("iommufd" in a for a in cmd))
print(("PASS" if ok else "FAIL") + f" exec --json: backend type1 ({reason}), no handles, QEMU given host= for both")
if not ok:
    print(sys.argv[1])
EOF
EDU_GROUP=$(group_of $EDU)
for g in "$EDU_GROUP" "$VF_GROUP"; do
	acl=$(getfacl -n -p "/dev/vfio/$g" 2>&1 || true)
	[[ $acl == *"user:65534:rw-"* ]] && pass "while the lease lives /dev/vfio/$g has user:65534:rw-" ||
		fail "no ACL entry for uid 65534 on /dev/vfio/$g" "$acl"
	out=$(open_error "/dev/vfio/$g" "${OTHER[@]}")
	check_eq "uid 65533 gets EACCES opening /dev/vfio/$g while the lease lives" "Permission denied" "$out"
done
kill -9 "$vmm"
wait "$vmm" 2>/dev/null || true
ms=$(leases_gone_and "$base" "$(date +%s%N)")
((ms <= 1000)) && pass "QEMU killed with SIGKILL: edu restored, VF pooled, lease gone ${ms} ms after it died" ||
	fail "QEMU killed: devices not returned within 1 s (${ms} ms, edu on $(lab_driver_of $EDU))" "$(tail -n 20 "$tmp/vfiod.log")"
check_eq "the pooled VF stays on vfio-pci" vfio-pci "$(lab_driver_of "$VF")"
check_eq "the VF's group node is exactly as before (owner, mode, ACL)" "$vf_before" "$(node_state "$VF_GROUP")"
check_eq "the edu's group node went with its return to no driver" absent "$(node_state "$EDU_GROUP")"

# 2. qemu-attach (i440fx: bus 0 takes hot-plugged devices and numbers them at once, so
# 'info pci' shows them although QEMU never ran the guest's firmware)
"${NOBODY[@]}" qemu-system-x86_64 -machine pc -accel tcg -m 64 -S -display none -nodefaults \
	-qmp "unix:$tmp/vm/qmp2,server=on,wait=off" >"$tmp/qemu2.log" 2>&1 &
qemu_pid=$!
wait_socket "$tmp/vm/qmp2" || fail "QEMU for qemu-attach did not start" "$(cat "$tmp/qemu2.log")"
out=$(timeout 120 "${NOBODY[@]}" "$vfioctl" qemu-attach --qmp "$tmp/vm/qmp2" "${backend[@]}" $EDU 2>&1) &&
	rc=0 || rc=$?
[[ $rc == 0 && $out == *"attached to QEMU pid $qemu_pid"* && $out == *"backend type1"* ]] &&
	pass "qemu-attach hot-plugs the edu into QEMU pid $qemu_pid with type1: ${out//$'\n'/ | }" ||
	fail "qemu-attach of the edu (exit $rc)" "$out"$'\n'"$(tail -n 10 "$tmp/vfiod.log")"
out=$(timeout 120 "${NOBODY[@]}" "$vfioctl" --json qemu-attach --qmp "$tmp/vm/qmp2" "${backend[@]}" "$VF" 2>&1) &&
	rc=0 || rc=$?
[[ $rc == 0 && $out == *'"backend":"type1"'* || $rc == 0 && $out == *'"backend": "type1"'* ]] &&
	pass "qemu-attach --json of the VF says backend type1" || fail "qemu-attach of the VF (exit $rc)" "$out"
pci=$(lab_qmp "$tmp/vm/qmp2" "info pci" 2>&1 | tr -d '\r' || true)
edu_line=$(sed -n '/PCI device 1234:11e8/,/ id "/p' <<<"$pci" | tr -s ' \n' ' ' || true)
vf_line=$(sed -n "/PCI device $vf_id/,/ id \"/p" <<<"$pci" | tr -s ' \n' ' ' || true)
[[ $edu_line == *'id "vfiod-0000-01-00-0"'* && $vf_line == *"id \"$vf_qemu_id\""* ]] &&
	pass "QEMU's 'info pci' shows both hot-plugged devices:$edu_line |$vf_line" ||
	fail "the hot-plugged devices are not in 'info pci'" "$pci"
limit=$(prlimit --pid "$qemu_pid" --memlock --output SOFT --noheadings 2>&1 || true)
check_eq "the daemon raised QEMU's RLIMIT_MEMLOCK" unlimited "${limit// /}"
EDU_GROUP=$(group_of $EDU)
out=$(open_error "/dev/vfio/$EDU_GROUP" "${OTHER[@]}")
check_eq "uid 65533 gets EACCES on the edu's node while QEMU holds it" "Permission denied" "$out"
lab_qmp "$tmp/vm/qmp2" quit >/dev/null 2>&1 || true
wait "$qemu_pid" 2>/dev/null || true
ms=$(leases_gone_and "$base" "$(date +%s%N)")
((ms <= 1000)) && pass "QEMU quit: both leases ended within ${ms} ms, edu back to no driver" ||
	fail "after QEMU quit (${ms} ms, edu on $(lab_driver_of $EDU))" "$(tail -n 20 "$tmp/vfiod.log")"
check_eq "the VF's group node is exactly as before again" "$vf_before" "$(node_state "$VF_GROUP")"

# 3. The daemon killed and started again while a type1 lease lives.
start_qemu_vf() {
	"${NOBODY[@]}" "$vfioctl" exec "${backend[@]}" --device "$VF" -- \
		qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S -display none -nodefaults \
		-qmp "unix:$tmp/vm/$1,server=on,wait=off" </dev/null >"$tmp/$1.log" 2>&1 &
	vmm=$!
	wait_socket "$tmp/vm/$1" || fail "QEMU under exec did not start" "$(cat "$tmp/$1.log")"
}
start_qemu_vf qmp3
stop_daemon -9
start_daemon
acl=$(getfacl -n -p "/dev/vfio/$VF_GROUP" 2>&1 || true)
grep -q "adopted, held by pid $vmm" "$tmp/vfiod.log" && [[ $acl == *"user:65534:rw-"* ]] &&
	kill -0 "$vmm" 2>/dev/null &&
	pass "vfiod killed with -9 and started again adopts the lease of pid $vmm; the grant stays" ||
	fail "adoption of the type1 lease" "$acl"$'\n'"$(tail -n 10 "$tmp/vfiod.log")"
kill -9 "$vmm"
wait "$vmm" 2>/dev/null || true
start=$(date +%s%N)
while [[ $(node_state "$VF_GROUP") != "$vf_before" ]] && (($(date +%s%N) - start < 3000000000)); do
	sleep 0.01
done
ms=$((($(date +%s%N) - start) / 1000000))
# (A daemon just started may still be busy with its first scan of the bus: 2 s here.)
((ms <= 2000)) && pass "the adopted lease's grant is revoked ${ms} ms after QEMU died" ||
	fail "the adopted grant was not revoked within 2 s (${ms} ms)" "$(node_state "$VF_GROUP")"

start_qemu_vf qmp4
stop_daemon -9
kill -9 "$vmm"
wait "$vmm" 2>/dev/null || true
acl=$(getfacl -n -p "/dev/vfio/$VF_GROUP" 2>&1 || true)
[[ $acl == *"user:65534:rw-"* ]] || fail "the grant should still be there while vfiod is down" "$acl"
start_daemon
for _ in $(seq 100); do
	[[ $(node_state "$VF_GROUP") == "$vf_before" ]] && break
	sleep 0.05
done
check_eq "a grant whose holder died while vfiod was down is revoked at start" "$vf_before" "$(node_state "$VF_GROUP")"
check_eq "... and its lease is gone" "" "$(lab_leases_recorded "$tmp/run/leases")"

# 4. RLIMIT_MEMLOCK back after Release: the holder is a shell that closes its handles and
# releases its own lease.
before=$(prlimit --pid $$ --memlock --output SOFT,HARD --noheadings | tr -s ' ')
out=$("${NOBODY[@]}" "$vfioctl" exec --backend type1 --device "$VF" -- bash -c '
limit() { prlimit --pid $$ --memlock --output SOFT,HARD --noheadings | tr -s " "; }
echo "during:$(limit)"
eval "exec ${VFIOD_CONTAINER}>&-"
for p in ${VFIOD_DEVICES//,/ }; do eval "exec ${p#*=}>&-"; done
"$0" release "$VFIOD_LEASE" >&2
echo "after:$(limit)"' "$vfioctl" 2>"$tmp/release.err") || true
during=$(sed -n 's/^during://p' <<<"$out")
after=$(sed -n 's/^after://p' <<<"$out")
[[ $during == *unlimited* && "$after" == "$before" ]] &&
	pass "Release lowers the holder's RLIMIT_MEMLOCK back: before '$before', during '$during', after '$after'" ||
	fail "RLIMIT_MEMLOCK around a Release (before '$before')" "$out"$'\n'"$(cat "$tmp/release.err")"

out=$("$vfioctl" sriov "$IGB" --numvfs 0 2>&1) || true
[[ ! -e /sys/bus/pci/devices/$VF ]] && pass "the VFs are removed again" || fail "sriov --numvfs 0" "$out"
stop_daemon
rm -rf "$tmp"
lab_done
