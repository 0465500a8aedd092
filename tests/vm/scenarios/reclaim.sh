#!/bin/bash
# topology: basic debian-6.1
# boot: own
#
# vfioctl reclaim: the host takes a leased device back through its VFIO request, on
# iommufd (the custom kernel) and type1 (Debian's 6.1, where QEMU opens the group node
# itself). The edu at 01:00.0 has no host driver: restored means no driver again.
#   1. QEMU as uid 65534 (q35, -S, no guest) gets the edu hot-plugged by vfioctl
#      qemu-attach into an empty root port, whose slot power stays off without a guest
#      to turn it on, so QEMU unplugs at once when asked. (That needs the port's native
#      PCIe hotplug: q35's default since QEMU 6.1, ACPI hotplug, waits for the guest's
#      _EJ0, which a guest that never ran never sends.) vfioctl reclaim: QEMU hears
#      the request and unplugs (its device tree no longer has it), the lease ends and
#      the edu is back to no driver within the timeout; QEMU runs on.
#   2. A holder that ignores the request (vfioctl exec of a sleep, which holds the fds
#      and listens for nothing): reclaim --timeout 3 fails after 3 s naming the holder,
#      and nothing changes (lease active, edu on vfio-pci, holder alive, its node
#      rights kept); reclaim --force ends the lease, the holder keeps its files, and
#      once the holder is killed the edu is restored and the lease is gone.
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

cat >"$tmp/policy.json" <<'EOF'
{"rules": [{"users": ["nobody"], "operations": ["list", "acquire"],
            "devices": ["1234:11e8"], "memlock": "unlimited"}]}
EOF
"$vfiod" --socket "$tmp/io.vfiod" --admin-socket "$tmp/io.vfiod.admin" \
	--runtime-dir "$tmp/run" --state-dir /run/vfiod-lab-reclaim --policy "$tmp/policy.json" \
	-v >"$tmp/vfiod.log" 2>&1 &
daemon=$!
lab_wait_socket "$tmp/io.vfiod" "$tmp/io.vfiod.admin" || fail "vfiod did not start" "$(cat "$tmp/vfiod.log")"
export VFIOD_SOCKET=$tmp/io.vfiod VFIOD_ADMIN_SOCKET=$tmp/io.vfiod.admin

edu_back() { [[ $(lab_driver_of $EDU) == - && -z $(lab_leases_recorded "$tmp/run/leases") ]]; }
backend=type1
[[ -c /dev/iommu ]] && backend=iommufd
check_eq "edu starts without a driver" - "$(lab_driver_of $EDU)"

# 1. A QEMU that answers.
"${NOBODY[@]}" qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S -display none -nodefaults \
	-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off \
	-device pcie-root-port,id=rp1,chassis=1,slot=1 \
	-qmp "unix:$tmp/vm/qmp,server=on,wait=off" >"$tmp/qemu.log" 2>&1 &
qemu_pid=$!
lab_wait_socket "$tmp/vm/qmp" || fail "QEMU did not start" "$(cat "$tmp/qemu.log")"
out=$(timeout 120 "${NOBODY[@]}" "$vfioctl" qemu-attach --qmp "$tmp/vm/qmp" --bus rp1 $EDU 2>&1) &&
	rc=0 || rc=$?
tree=$(lab_qmp "$tmp/vm/qmp" "info qtree" 2>&1 || true)
[[ $rc == 0 && $tree == *'dev: vfio-pci, id "vfiod-0000-01-00-0"'* ]] &&
	pass "qemu-attach hot-plugs the edu into QEMU pid $qemu_pid ($backend): $out" ||
	fail "qemu-attach into rp1 (exit $rc)" "$out"$'\n'"$tree"
lease=$("$vfioctl" --json leases | python3 -S -c 'import json,sys; print(*[l["id"] for l in json.load(sys.stdin)["leases"]])' || true)
start=$(date +%s%N)
out=$("$vfioctl" reclaim $EDU --timeout 30 2>&1) && rc=0 || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[[ $rc == 0 && $out == *"lease $lease of pid $qemu_pid gave $EDU back"* ]] &&
	pass "vfioctl reclaim took the edu back from QEMU in ${ms} ms: $out" ||
	fail "vfioctl reclaim of the edu QEMU holds (exit $rc, ${ms} ms)" "$out"$'\n'"$(tail -n 20 "$tmp/vfiod.log")"
tree=$(lab_qmp "$tmp/vm/qmp" "info qtree" 2>&1 || true)
[[ -n $tree && $tree != *'vfiod-0000-01-00-0'* ]] &&
	pass "QEMU unplugged the device on the request: its device tree no longer has it" ||
	fail "QEMU's device tree after the reclaim" "$tree"
kill -0 "$qemu_pid" 2>/dev/null && pass "QEMU runs on after giving the device back" ||
	fail "QEMU exited" "$(cat "$tmp/qemu.log")"
check_eq "the edu is back to no driver when reclaim returns" - "$(lab_driver_of $EDU)"
[[ -z $(lab_leases_recorded "$tmp/run/leases") ]] && pass "the lease is gone, record included" ||
	fail "a lease is still recorded" "$(lab_leases_recorded "$tmp/run/leases")"
grep -q "lease $lease of pid $qemu_pid ends (lease-reclaimed)" "$tmp/vfiod.log" &&
	pass "the daemon logs the lease's end as lease-reclaimed" ||
	fail "no lease-reclaimed line in the daemon's log" "$(tail -n 20 "$tmp/vfiod.log")"
lab_qmp "$tmp/vm/qmp" quit >/dev/null 2>&1 || true
wait "$qemu_pid" 2>/dev/null || true

# 2. A holder that ignores the request: it holds the fds and nothing else.
"${NOBODY[@]}" "$vfioctl" exec --device $EDU -- sleep 600 >"$tmp/sleep.log" 2>&1 &
holder=$!
for _ in $(seq 100); do
	[[ -n $(lab_leases_recorded "$tmp/run/leases") ]] && break
	sleep 0.1
done
sleep 0.5 # exec's own process becomes the sleep
lease=$("$vfioctl" --json leases | python3 -S -c 'import json,sys; print(*[l["id"] for l in json.load(sys.stdin)["leases"]])' || true)
node_acl() { [[ $backend == type1 ]] && getfacl -p "/dev/vfio/$(basename "$(readlink /sys/bus/pci/devices/$EDU/iommu_group)")" 2>&1; }
acl_before=$(node_acl || true)
start=$(date +%s%N)
out=$("$vfioctl" reclaim $EDU --timeout 3 2>&1) && rc=0 || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[[ $rc == 1 && $out == *"lease $lease (pid $holder) kept its devices past the timeout; nothing was changed"* &&
	$out == *"$EDU: open in pid $holder"* && ($out == *"does not listen"* || $out == *"not the device"*) ]] &&
	((ms >= 3000 && ms < 8000)) &&
	pass "reclaim --timeout 3 of a holder that ignores the request fails after ${ms} ms, naming it: ${out//$'\n'/ | }" ||
	fail "reclaim of the ignoring holder (exit $rc, ${ms} ms)" "$out"
state=$("$vfioctl" --json leases | python3 -S -c 'import json,sys; print(*[[l["id"], l["state"]] for l in json.load(sys.stdin)["leases"]])' 2>&1 || true)
[[ $state == "[$lease, 'active']" && $(lab_driver_of $EDU) == vfio-pci ]] && kill -0 "$holder" 2>/dev/null &&
	[[ $(node_acl || true) == "$acl_before" ]] &&
	pass "nothing changed: lease $lease active, edu on vfio-pci, the holder alive${acl_before:+, the ACL of the group node as before}" ||
	fail "the timeout changed something (lease: $state, edu on $(lab_driver_of $EDU))" "$(node_acl || true)"
out=$("$vfioctl" --json reclaim $EDU --timeout 1 --force 2>&1) && rc=0 || rc=$?
lab_verdicts "reclaim --force --json" python3 -S - "$out" "$lease" "$holder" <<'EOF'
import json, sys
try:
    d = json.loads(sys.argv[1])
except Exception as e:
    print(f"FAIL reclaim --force --json is not JSON ({e}): {sys.argv[1]!r}")
    sys.exit(0)
ok = (d.get("schema") == "vfiod.reclaim/1" and d.get("reclaimed") is True and d.get("forced") is True
      and d.get("lease") == int(sys.argv[2]) and d.get("pid") == int(sys.argv[3]))
print(("PASS" if ok else "FAIL") + f" reclaim --force ends lease {sys.argv[2]} by force: {sys.argv[1]!r}")
EOF
state=$("$vfioctl" --json leases | python3 -S -c 'import json,sys; print(*[[l["state"], l.get("pending")] for l in json.load(sys.stdin)["leases"]])' 2>&1 || true)
[[ $state == *"'ending'"*"waiting for its files to close"* && $(lab_driver_of $EDU) == vfio-pci ]] && kill -0 "$holder" 2>/dev/null &&
	pass "after --force the lease is ending, the edu waits for the holder's files: $state" ||
	fail "the state after --force (edu on $(lab_driver_of $EDU))" "$state"
if [[ $backend == type1 ]]; then
	acl=$(node_acl || true)
	[[ $acl != *"user:65534:"* ]] && pass "the holder's ACL entry on the group node is gone" ||
		fail "the group node still lets uid 65534 in" "$acl"
fi
kill -9 "$holder"
wait "$holder" 2>/dev/null || true
ms=$(wait_until 5 edu_back) && pass "the holder gone, the edu is restored and the lease gone in ${ms} ms" ||
	fail "the edu is on $(lab_driver_of $EDU) 5 s after the holder died" "$(tail -n 20 "$tmp/vfiod.log")"

out=$("$vfioctl" reclaim $EDU 2>&1) && rc=0 || rc=$?
[[ $rc == 1 && $out == *"not leased"* ]] && pass "reclaim of a device no lease holds: $out" ||
	fail "reclaim of an unleased device (exit $rc)" "$out"

kill "$daemon"
wait "$daemon" 2>/dev/null || true
rm -rf "$tmp" /run/vfiod-lab-reclaim
lab_done
