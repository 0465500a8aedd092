#!/bin/bash
# topology: basic
#
# The main job, end to end, on the emulated VT-d host (scripts/main runs this): look
# at the host, start vfiod, carve SR-IOV VFs straight onto vfio-pci, hand the edu
# device and a VF to an unprivileged QEMU, and watch the lease end with it.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
vfiod=$(lab_bin daemon/vfiod)
tmp=$(mktemp -d)
chmod 755 "$tmp"
EDU=0000:01:00.0
IGB=0000:02:00.0
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
export VFIOD_SOCKET=$tmp/io.vfiod VFIOD_ADMIN_SOCKET=$tmp/io.vfiod.admin

say() { printf '\n== %s\n' "$*"; }
show() {
	printf '$ %s\n' "$*"
	"$@" 2>&1 | sed 's/^/  /'
	return "${PIPESTATUS[0]}"
}
driver_of() {
	local l=/sys/bus/pci/devices/$1/driver
	if [[ -L $l ]]; then basename "$(readlink -f "$l")"; else echo "no driver"; fi
}

say "The host: a real Linux $(uname -r) under QEMU with an emulated Intel VT-d"
show "$vfioctl" list
show "$vfioctl" audit --fail-on critical | tail -n 12

say "vfiod starts with a policy: uid 65534 may acquire the edu (restored after) and the igb's VFs 0-1 (kept in the pool)"
cat >"$tmp/policy.json" <<'JSON'
{"rules": [
  {"users": ["*"], "operations": ["list", "monitor"]},
  {"users": [65534], "operations": ["acquire"], "devices": ["1234:11e8"],
   "memlock": "unlimited", "on_release": "restore"},
  {"users": [65534], "operations": ["acquire"], "devices": ["0000:02:00.0/vf0-1"],
   "memlock": "unlimited", "on_release": "pool"}
]}
JSON
sed 's/^/  /' "$tmp/policy.json"
"$vfiod" --socket "$VFIOD_SOCKET" --admin-socket "$VFIOD_ADMIN_SOCKET" --runtime-dir "$tmp/run" \
	--state-dir /run/vfiod-demo --policy "$tmp/policy.json" >"$tmp/vfiod.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [[ -S $VFIOD_ADMIN_SOCKET ]] && break; sleep 0.1; done
check "vfiod is up" test -S "$VFIOD_SOCKET"

say "Carve 2 VFs of the igb at $IGB straight onto vfio-pci (vfioctl asks vfiod)"
show "$vfioctl" sriov "$IGB" --numvfs 2
VF=$(basename "$(readlink -f /sys/bus/pci/devices/$IGB/virtfn0)")
check_eq "VF $VF is on vfio-pci, no host driver ever probed it" vfio-pci "$(driver_of "$VF")"

say "An unprivileged QEMU (uid 65534, no access to /dev/vfio) gets the edu and VF $VF"
printf '$ %s\n' "vfioctl exec --device $EDU --device $VF -- qemu-system-x86_64 ... (as uid 65534)"
out=$(printf 'info pci\nquit\n' | timeout 120 "${NOBODY[@]}" "$vfioctl" exec \
	--device "$EDU" --device "$VF" -- qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S \
	-display none -nodefaults -monitor stdio 2>&1) || true
tr -d '\r' <<<"$out" | grep -v '^(qemu)\|QEMU [0-9].* monitor' | sed 's/^/  /'
[[ $out == *'id "vfiod-0000-01-00-0"'* && $out == *"id \"vfiod-${VF//[:.]/-}\""* ]] &&
	pass "QEMU realized both devices from the fds vfiod handed over" ||
	fail "QEMU did not realize both devices"

say "QEMU has exited: vfiod ended the lease"
for _ in $(seq 50); do [[ -z $(lab_leases_recorded "$tmp/run/leases") ]] && break; sleep 0.1; done
grep -E "lease [0-9]+" "$tmp/vfiod.log" | sed 's/^<[0-9]>/  /'
printf '  %s: %s, %s: %s\n' "$EDU" "$(driver_of $EDU)" "$VF" "$(driver_of "$VF")"
check_eq "the edu went back to no driver, the VF stayed in the pool" "no driver vfio-pci" \
	"$(driver_of $EDU) $(driver_of "$VF")"

say "Give the VFs back: the igb keeps its driver"
show "$vfioctl" sriov "$IGB" --numvfs 0 | head -n 3
check_eq "the igb PF is on igb with 0 VFs" "igb 0" "$(driver_of $IGB) $(cat /sys/bus/pci/devices/$IGB/sriov_numvfs)"
kill "$daemon"
wait "$daemon" 2>/dev/null || true
lab_done
