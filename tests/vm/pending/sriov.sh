#!/bin/bash
# topology: basic
# boot: own
#
# SR-IOV on the real kernel: VFs carved straight onto vfio-pci (no host VF driver
# ever probes them, by the kernel's own log), VF settings read back by iproute2, clear
# refusals that leave the PF as it was, and VFs that share their PF's group reported
# as not isolated.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
hooks=$(lab_bin cli/vfioctl-testhooks)
export VFIOD_STATE_DIR=/run/vfiod-lab-sriov
tmp=$(mktemp -d)

IGB=0000:02:00.0      # 82576 on a root port, 7 VFs
NVME=0000:03:00.0     # NVMe on a root port, 4 VFs
IGB_SW=0000:06:00.0   # 82576 behind the switch's downstream port without ACS

driver_of() {
	local l=/sys/bus/pci/devices/$1/driver
	if [[ -e $l ]]; then basename "$(readlink -f "$l")"; else echo -; fi
}
numvfs() { cat "/sys/bus/pci/devices/$1/sriov_numvfs"; }
autoprobe() { cat "/sys/bus/pci/devices/$1/sriov_drivers_autoprobe"; }
vfs_of() {
	local l
	for l in /sys/bus/pci/devices/$1/virtfn*; do
		[[ -e $l ]] && basename "$(readlink -f "$l")"
	done | sort
}
group_size() { ls "/sys/bus/pci/devices/$1/iommu_group/devices" | wc -l; }
ifname_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n1; }

# carve_and_check PF N VF_DRIVER_NAME: carve N VFs onto vfio-pci and check every VF.
carve_and_check() {
	local pf=$1 n=$2 host_vf_driver=$3 vf dmesg_before out rc=0
	dmesg_before=$(dmesg | wc -l)
	out=$("$vfioctl" sriov "$pf" --numvfs "$n" 2>&1) || rc=$?
	check_eq "$pf: vfioctl sriov --numvfs $n exits 0" 0 "$rc"
	((rc == 0)) || printf '%s\n' "$out" | sed 's/^/    | /'
	check_eq "$pf: sriov_numvfs is $n" "$n" "$(numvfs "$pf")"
	check_eq "$pf: autoprobe off while VFs are carved for vfio" 0 "$(autoprobe "$pf")"
	local count=0 bad=0 shared=0
	for vf in $(vfs_of "$pf"); do
		count=$((count + 1))
		[[ $(driver_of "$vf") == vfio-pci ]] || { bad=$((bad + 1)); fail "$vf is on $(driver_of "$vf"), not vfio-pci"; }
		[[ -d /sys/bus/pci/devices/$vf/net ]] && fail "$vf has a network interface: a host driver probed it"
		(($(group_size "$vf") == 1)) || shared=$((shared + 1))
	done
	check_eq "$pf: $n VFs present" "$n" "$count"
	check_eq "$pf: every VF on vfio-pci" 0 "$bad"
	check_eq "$pf: every VF alone in its IOMMU group" 0 "$shared"
	# The kernel's own record: the VF driver never logged a probe.
	if dmesg | tail -n +"$((dmesg_before + 1))" | grep -qE "$host_vf_driver"; then
		fail "$pf: the kernel log shows $host_vf_driver probing a VF" \
			"$(dmesg | tail -n +"$((dmesg_before + 1))" | grep -E "$host_vf_driver")"
	else
		pass "$pf: no $host_vf_driver probe in the kernel log"
	fi
}

# --- 1. igb and nvme carved onto vfio-pci, and torn down -------------------------------
igb_if=$(ifname_of $IGB)
carve_and_check $IGB 7 igbvf
check "igb: vfioctl sriov shows the PF" "$vfioctl" sriov $IGB
"$vfioctl" sriov $IGB --json >"$tmp/igb.json" && python3 -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["num_vfs"] == 7 and d["total_vfs"] == 7, d
assert all(v["driver"] == "vfio-pci" for v in d["vfs"]), d["vfs"]
' "$tmp/igb.json" && pass "igb: --json reports 7 VFs on vfio-pci" || fail "igb: --json report"

# --- 2. VF settings, read back by iproute2 -----------------------------------------------
vf0_line() { ip link show dev "$igb_if" | grep -E '^ +vf 0 '; }
before=$(vf0_line)
check "igb: set VF 0 mac, vlan, trust, spoofchk" "$vfioctl" sriov $IGB --vf 0 \
	--mac 02:11:22:33:44:55 --vlan 100 --trust on --spoofchk off
after=$(vf0_line)
[[ $after == *"link/ether 02:11:22:33:44:55"* ]] && pass "ip link: vf 0 MAC 02:11:22:33:44:55" || fail "ip link: vf 0 MAC" "$after"
[[ $after == *"vlan 100"* ]] && pass "ip link: vf 0 vlan 100" || fail "ip link: vf 0 vlan" "$after"
[[ $after == *"spoof checking off"* ]] && pass "ip link: vf 0 spoof checking off" || fail "ip link: vf 0 spoofchk" "$after"
[[ $after == *"trust on"* ]] && pass "ip link: vf 0 trust on" || fail "ip link: vf 0 trust" "$after"
out=$("$vfioctl" sriov $IGB --vf 0 --link-state enable 2>&1) && rc=0 || rc=$?
if ((rc == 0)); then
	[[ $(vf0_line) == *"link-state enable"* ]] && pass "ip link: vf 0 link-state enable" || fail "ip link: link-state" "$(vf0_line)"
else
	# igb implements no link-state control: the driver's answer must come through.
	[[ $out == *"not supported"* || $out == *"does not implement"* ]] &&
		pass "igb refuses link-state, and vfioctl says so: $out" || fail "link-state refusal message" "$out"
fi
check "igb: release VF 0 settings" "$vfioctl" sriov $IGB --vf 0 --release
check_eq "ip link: vf 0 back as it was" "$before" "$(vf0_line)"
out=$("$vfioctl" sriov $IGB --vf 9 --mac 02:00:00:00:00:01 2>&1) && rc=0 || rc=$?
check_eq "a VF index past numvfs is refused (exit 1)" 1 "$rc"

check "igb: tear down to 0" "$vfioctl" sriov $IGB --numvfs 0
check_eq "igb: numvfs 0" 0 "$(numvfs $IGB)"
check_eq "igb: PF still on igb" igb "$(driver_of $IGB)"
check_eq "igb: interface still there" "$igb_if" "$(ifname_of $IGB)"
check_eq "igb: autoprobe restored" 1 "$(autoprobe $IGB)"

carve_and_check $NVME 4 "pci function 0000:03:00\.[1-9]"
check "nvme: tear down to 0" "$vfioctl" sriov $NVME --numvfs 0
check_eq "nvme: numvfs 0" 0 "$(numvfs $NVME)"
check_eq "nvme: PF still on nvme" nvme "$(driver_of $NVME)"

# --- 3. Refusals leave the PF as it was --------------------------------------------------
out=$("$vfioctl" sriov $IGB --numvfs 8 2>&1) && rc=0 || rc=$?
check_eq "numvfs above total refused (exit 1)" 1 "$rc"
[[ $out == *"supports 0 to 7"* ]] && pass "and the message gives the range" || fail "above-total message" "$out"
check_eq "numvfs unchanged after the refusal" 0 "$(numvfs $IGB)"

check "carve 2 VFs" "$vfioctl" sriov $IGB --numvfs 2
vf=$(vfs_of $IGB | head -n1)
g=$(basename "$(readlink /sys/bus/pci/devices/$vf/iommu_group)")
sleep 60 9<>"/dev/vfio/$g" &
holder=$!
sleep 0.5
out=$("$vfioctl" sriov $IGB --numvfs 3 2>&1) && rc=0 || rc=$?
check_eq "resizing while a VF's group is open is refused (exit 1)" 1 "$rc"
[[ $out == *"$vf is assigned: its VFIO group $g is open"* ]] && pass "and names the VF and its group" || fail "busy message" "$out"
check_eq "numvfs unchanged while busy" 2 "$(numvfs $IGB)"
kill $holder; wait $holder 2>/dev/null || true
check "tear down after the busy test" "$vfioctl" sriov $IGB --numvfs 0

# A partial carve: the second VF vanishes in the middle of being bound (the test build
# removes it through sysfs); everything is rolled back.
out=$(VFIOD_TEST_REMOVE_AFTER=6 "$hooks" sriov $IGB --numvfs 3 2>&1) && rc=0 || rc=$?
check_eq "a carve that loses a VF midway fails (exit 1)" 1 "$rc"
check_eq "numvfs rolled back to 0" 0 "$(numvfs $IGB)"
check_eq "autoprobe rolled back" 1 "$(autoprobe $IGB)"
check_eq "PF still on igb after the rollback" igb "$(driver_of $IGB)"
check_eq "journal empty after the rollback" 0 "$(find "$VFIOD_STATE_DIR/journal" -name '*.json' | wc -l)"
echo 1 >/sys/bus/pci/rescan

# Crash after carving: restore --all returns the PF to its original count.
check "carve 3 VFs" "$vfioctl" sriov $IGB --numvfs 3
check "restore --all" "$vfioctl" restore --all
check_eq "restore --all: numvfs back to 0" 0 "$(numvfs $IGB)"
check_eq "restore --all: autoprobe back" 1 "$(autoprobe $IGB)"

# --- 4. VFs behind a switch without ACS share their PF's group ---------------------------
check "carve 2 VFs on the igb behind the switch" "$vfioctl" sriov $IGB_SW --numvfs 2
vf=$(vfs_of $IGB_SW | head -n1)
pf_group=$(basename "$(readlink /sys/bus/pci/devices/$IGB_SW/iommu_group)")
vf_group=$(basename "$(readlink /sys/bus/pci/devices/$vf/iommu_group)")
check_eq "the kernel puts the VF in its PF's group" "$pf_group" "$vf_group"
"$vfioctl" show "$vf" --json >"$tmp/vf.json"
python3 -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
iso = d["isolation"]
assert iso["alone_in_group"] is False, iso
assert iso["acs_path"] is False, iso
assert d["group_viable"] is False, d["group_viable"]
' "$tmp/vf.json" && pass "vfioctl reports $vf as not isolated (shares group $vf_group, no ACS)" ||
	fail "vfioctl reports $vf as not isolated" "$(cat "$tmp/vf.json")"
check "tear down the switch PF" "$vfioctl" sriov $IGB_SW --numvfs 0

rm -rf "$tmp"
lab_done
