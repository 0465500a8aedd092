#!/bin/bash
# topology: basic debian-6.1 debian-6.12
# boot: own
#
# SR-IOV on the real kernel: VFs carved straight onto vfio-pci (no host VF driver
# ever probes them, by the kernel's own log, and the same log does show igbvf when the
# VFs are carved for the host), VF settings read back by iproute2 and put back on
# release, clear refusals that leave the PF as it was (a count above the total, a VF in
# use or assigned, a partial enable), a crash at every step of a carve undone by
# `restore --all`, and VFs that share their PF's group reported as not isolated, with a
# warning (text, JSON) and an audit finding naming the PF that blocks the group.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
hooks=$(lab_bin cli/vfioctl-testhooks)
lab_vfio_modules
export VFIOD_STATE_DIR=/run/vfiod-lab-sriov
tmp=$(mktemp -d)

IGB=0000:02:00.0    # 82576 on a root port, 7 VFs
NVME=0000:03:00.0   # NVMe on a root port, 4 VFs
IGB_SW=0000:06:00.0 # 82576 behind the switch's downstream port without ACS

numvfs() { cat "/sys/bus/pci/devices/$1/sriov_numvfs"; }
autoprobe() { cat "/sys/bus/pci/devices/$1/sriov_drivers_autoprobe"; }
vfs_of() {
	local l
	for l in /sys/bus/pci/devices/$1/virtfn*; do
		[[ -e $l ]] && basename "$(readlink -f "$l")"
	done | sort
}
group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }
group_size() { ls "/sys/bus/pci/devices/$1/iommu_group/devices" | wc -l; }
ifname_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n1; }
journal_count() { find "$VFIOD_STATE_DIR/journal" -name '*.json' 2>/dev/null | wc -l; }
# The kernel log from line $1 on.
kmsg_since() { dmesg | tail -n +"$(($1 + 1))"; }
kmsg_lines() { dmesg | wc -l; }

# pf_as_before PF WHAT DRIVER: the PF has no VFs, autoprobe on, its driver, no journal.
pf_as_before() {
	check_eq "$2: numvfs 0" 0 "$(numvfs "$1")"
	check_eq "$2: autoprobe back on" 1 "$(autoprobe "$1")"
	check_eq "$2: PF still on $3" "$3" "$(lab_driver_of "$1")"
	check_eq "$2: journal empty" 0 "$(journal_count)"
}

# carve_and_check PF N PATTERN: carve N VFs onto vfio-pci; check every VF, and that no
# kernel log line matching PATTERN (the host VF driver's probe) appeared.
carve_and_check() {
	local pf=$1 n=$2 pattern=$3 vf mark out rc=0
	mark=$(kmsg_lines)
	out=$("$vfioctl" sriov "$pf" --numvfs "$n" 2>&1) || rc=$?
	check_eq "$pf: vfioctl sriov --numvfs $n exits 0" 0 "$rc"
	((rc == 0)) || printf '%s\n' "$out" | sed 's/^/    | /'
	check_eq "$pf: sriov_numvfs is $n" "$n" "$(numvfs "$pf")"
	check_eq "$pf: autoprobe off while VFs are carved for vfio" 0 "$(autoprobe "$pf")"
	local count=0 bad=0 shared=0 netdevs=0
	for vf in $(vfs_of "$pf"); do
		count=$((count + 1))
		[[ $(lab_driver_of "$vf") == vfio-pci ]] || {
			bad=$((bad + 1))
			fail "$vf is on $(lab_driver_of "$vf"), not vfio-pci"
		}
		[[ -d /sys/bus/pci/devices/$vf/net || -d /sys/bus/pci/devices/$vf/nvme ]] &&
			netdevs=$((netdevs + 1))
		(($(group_size "$vf") == 1)) || shared=$((shared + 1))
	done
	check_eq "$pf: $n VFs present" "$n" "$count"
	check_eq "$pf: every VF on vfio-pci" 0 "$bad"
	check_eq "$pf: no VF has a host interface or controller" 0 "$netdevs"
	check_eq "$pf: every VF alone in its IOMMU group" 0 "$shared"
	if kmsg_since "$mark" | grep -qE "$pattern"; then
		fail "$pf: the kernel log shows a host driver probing a VF" \
			"$(kmsg_since "$mark" | grep -E "$pattern")"
	else
		pass "$pf: the kernel log has no host VF driver probe (/$pattern/)"
	fi
}

igb_if=$(ifname_of $IGB)
# Every line igbvf logs names the VF; it logs at least its MAC address when it probes.
IGBVF_PROBE="igbvf 0000:02:1"
# nvme names the PCI function of each controller it probes.
NVME_VF_PROBE="pci function 0000:03:00\.[1-9]"

# --- 0. The detector works: VFs carved for the host are probed by igbvf ----------------
mark=$(kmsg_lines)
check "igb: carve 1 VF for the host driver" "$vfioctl" sriov $IGB --numvfs 1 --driver host
vf=$(vfs_of $IGB | head -n1)
check_eq "igb: the host VF is on igbvf" igbvf "$(lab_driver_of "$vf")"
if kmsg_since "$mark" | grep -qE "$IGBVF_PROBE"; then
	pass "the kernel log shows igbvf probing $vf when autoprobe is on"
else
	fail "no igbvf line in the kernel log for a VF carved for the host" "$(kmsg_since "$mark")"
fi
vf_if=$(ifname_of "$vf")
if [[ -n $vf_if ]]; then
	pass "igbvf gave $vf the interface $vf_if"
	# A VF in use by the host: the count must not change under it.
	ip addr add 192.0.2.10/24 dev "$vf_if"
	ip link set "$vf_if" up
	out=$("$vfioctl" sriov $IGB --numvfs 0 2>&1) && rc=0 || rc=$?
	check_eq "removing VFs while one is in use by the host is refused (exit 1)" 1 "$rc"
	[[ $out == *"VF $vf is in use by the host"*"$vf_if"* ]] &&
		pass "and names the VF and its interface: $out" || fail "in-use message" "$out"
	check_eq "numvfs unchanged while in use" 1 "$(numvfs $IGB)"
	ip link set "$vf_if" down
	ip addr flush dev "$vf_if"
else
	fail "igbvf bound $vf but made no interface"
fi
check "igb: tear down the host VF" "$vfioctl" sriov $IGB --numvfs 0
pf_as_before $IGB "igb after the host carve" igb

# --- 1. igb and nvme carved onto vfio-pci, and torn down -------------------------------
carve_and_check $IGB 7 "$IGBVF_PROBE"
check "igb: vfioctl sriov shows the PF" "$vfioctl" sriov $IGB
"$vfioctl" sriov $IGB --json >"$tmp/igb.json" && python3 -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["num_vfs"] == 7 and d["total_vfs"] == 7, d
assert d["offset"] == 128 and d["stride"] == 2 and d["vf_device"] == 0x10ca, d
assert [v["address"] for v in d["vfs"]] == ["0000:02:%02x.%d" % (0x10 + i // 4, i % 4 * 2) for i in range(7)], d["vfs"]
assert all(v["driver"] == "vfio-pci" for v in d["vfs"]), d["vfs"]
assert all(v["settings"] is not None for v in d["vfs"]), d["vfs"]
' "$tmp/igb.json" && pass "igb: sriov --json reports 7 VFs on vfio-pci at offset 128, stride 2" ||
	fail "igb: sriov --json report" "$(cat "$tmp/igb.json")"
"$vfioctl" list --json >"$tmp/list.json" && python3 -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
devs = {x["address"]: x for x in d["devices"]}
pf = devs[sys.argv[2]]
assert pf["sriov"]["num_vfs"] == 7 and pf["sriov"]["total_vfs"] == 7, pf["sriov"]
vfs = [x for x in devs.values() if x["physfn"] == sys.argv[2]]
assert len(vfs) == 7 and all(v["driver"] == "vfio-pci" for v in vfs), vfs
' "$tmp/list.json" $IGB && pass "igb: list --json shows the PF with 7 of 7 VFs and its VFs" ||
	fail "igb: list --json" "$(head -c 2000 "$tmp/list.json")"

# --- 2. VF settings, read back by iproute2, restored on release ----------------------------
vf0_line() { ip link show dev "$igb_if" | grep -E '^ +vf 0 '; }
# igb sets a VF rate only while the PF has link; up without an address is not host use.
ip link set "$igb_if" up
before=$(vf0_line)
check "igb: set VF 0 mac, vlan, trust, spoofchk" "$vfioctl" sriov $IGB --vf 0 \
	--mac 02:11:22:33:44:55 --vlan 100,3 --trust on --spoofchk off
after=$(vf0_line)
[[ $after == *"link/ether 02:11:22:33:44:55"* ]] && pass "ip link: vf 0 MAC 02:11:22:33:44:55" || fail "ip link: vf 0 MAC" "$after"
[[ $after == *"vlan 100, qos 3"* ]] && pass "ip link: vf 0 vlan 100, qos 3" || fail "ip link: vf 0 vlan" "$after"
[[ $after == *"spoof checking off"* ]] && pass "ip link: vf 0 spoof checking off" || fail "ip link: vf 0 spoofchk" "$after"
[[ $after == *"trust on"* ]] && pass "ip link: vf 0 trust on" || fail "ip link: vf 0 trust" "$after"
"$vfioctl" sriov $IGB --json >"$tmp/vf0.json" && python3 -S -c '
import json, sys
s = json.load(open(sys.argv[1]))["vfs"][0]["settings"]
assert s["mac"] == "02:11:22:33:44:55" and s["vlan"] == 100 and s["qos"] == 3, s
assert s["trust"] is True and s["spoofchk"] is False, s
' "$tmp/vf0.json" && pass "vfioctl sriov --json reads the same settings back" ||
	fail "sriov --json settings" "$(cat "$tmp/vf0.json")"
# A second change to a field already saved keeps the first original.
check "igb: change VF 0's MAC again" "$vfioctl" sriov $IGB --vf 0 --mac 02:11:22:33:44:66
[[ $(vf0_line) == *"link/ether 02:11:22:33:44:66"* ]] && pass "ip link: vf 0 MAC 02:11:22:33:44:66" || fail "ip link: second MAC" "$(vf0_line)"
# Settings igb may not implement: what the driver answers must come through.
out=$("$vfioctl" sriov $IGB --vf 0 --link-state enable 2>&1) && rc=0 || rc=$?
if ((rc == 0)); then
	[[ $(vf0_line) == *"link-state enable"* ]] && pass "ip link: vf 0 link-state enable" || fail "ip link: link-state" "$(vf0_line)"
else
	[[ $out == *"not supported"* && $out == *"does not implement"* ]] &&
		pass "igb refuses link-state, and vfioctl says so: $out" || fail "link-state refusal message" "$out"
fi
out=$("$vfioctl" sriov $IGB --vf 0 --max-rate 100 2>&1) && rc=0 || rc=$?
if ((rc == 0)); then
	[[ $(vf0_line) == *"max_tx_rate 100Mbps"* ]] && pass "ip link: vf 0 max_tx_rate 100Mbps" || fail "ip link: max rate" "$(vf0_line)"
else
	[[ $out == *"refused the VF 0 settings"* ]] &&
		pass "igb refuses the rate here, and vfioctl says so: $out" || fail "rate refusal message" "$out"
fi
check "igb: release VF 0 settings" "$vfioctl" sriov $IGB --vf 0 --release
check_eq "ip link: vf 0 back as it was" "$before" "$(vf0_line)"
ip link set "$igb_if" down
out=$("$vfioctl" sriov $IGB --vf 9 --mac 02:00:00:00:00:01 2>&1) && rc=0 || rc=$?
check_eq "a VF index past numvfs is refused (exit 1)" 1 "$rc"
[[ $out == *"VF 9 does not exist (7 enabled)"* ]] && pass "and says how many exist" || fail "VF index message" "$out"

# Settings still changed at tear-down: the tear-down puts them back before the VFs go
# (the journal entry, with its saved settings, goes with them).
check "igb: set VF 1 mac and trust" "$vfioctl" sriov $IGB --vf 1 --mac 02:11:22:33:44:77 --trust on
vf1_line=$(ip link show dev "$igb_if" | grep -E '^ +vf 1 ')
[[ $vf1_line == *"02:11:22:33:44:77"*"trust on"* ]] && pass "ip link: vf 1 changed" || fail "ip link: vf 1" "$vf1_line"
check "igb: tear down to 0" "$vfioctl" sriov $IGB --numvfs 0
pf_as_before $IGB "igb after tear-down" igb
check_eq "igb: interface still there" "$igb_if" "$(ifname_of $IGB)"

carve_and_check $NVME 4 "$NVME_VF_PROBE"
nvme_ctrl=$(ls /sys/bus/pci/devices/$NVME/nvme)
check "nvme: tear down to 0" "$vfioctl" sriov $NVME --numvfs 0
pf_as_before $NVME "nvme after tear-down" nvme
check_eq "nvme: the PF's controller is still there" "$nvme_ctrl" "$(ls /sys/bus/pci/devices/$NVME/nvme)"

# --- 3. Refusals leave the PF as it was --------------------------------------------------
out=$("$vfioctl" sriov $IGB --numvfs 8 2>&1) && rc=0 || rc=$?
check_eq "numvfs above total refused (exit 1)" 1 "$rc"
[[ $out == *"8 VFs asked, the device supports 0 to 7"* ]] && pass "and the message gives the range: $out" || fail "above-total message" "$out"
pf_as_before $IGB "after the above-total refusal" igb

check "carve 2 VFs" "$vfioctl" sriov $IGB --numvfs 2
vf=$(vfs_of $IGB | head -n1)
g=$(group_of "$vf")
sleep 60 9<>"/dev/vfio/$g" &
holder=$!
sleep 0.5
for n in 3 0; do
	out=$("$vfioctl" sriov $IGB --numvfs $n 2>&1) && rc=0 || rc=$?
	check_eq "resizing to $n while a VF's group is open is refused (exit 1)" 1 "$rc"
	[[ $out == *"VF $vf is assigned: its VFIO group $g is open"* ]] &&
		pass "and names the VF and its group: $out" || fail "busy message" "$out"
	check_eq "numvfs unchanged while busy" 2 "$(numvfs $IGB)"
done
kill $holder
wait $holder 2>/dev/null || true
check "tear down after the busy test" "$vfioctl" sriov $IGB --numvfs 0
pf_as_before $IGB "after the busy test" igb

# A partial enable: the test build writes one VF fewer than asked, which is what the
# kernel does when the PF driver's sriov_configure enables fewer. vfioctl reads the
# count back, fails and rolls everything back.
mark=$(kmsg_lines)
out=$(VFIOD_TEST_SRIOV_SHORT=1 "$hooks" sriov $IGB --numvfs 3 2>&1) && rc=0 || rc=$?
check_eq "a partial enable fails (exit 1)" 1 "$rc"
[[ $out == *"asked for 3 VFs, the kernel enabled 2"* ]] && pass "and says so: ${out##*sriov: }" || fail "partial-enable message" "$out"
kmsg_since "$mark" | grep -q "igb $IGB: 2 VFs allocated" &&
	pass "the kernel did enable 2 VFs" || fail "kernel log of the partial enable" "$(kmsg_since "$mark")"
pf_as_before $IGB "after the partial enable" igb

# --- 3b. A crash at every step of a carve; restore --all undoes it -----------------------
# Carve steps (sriov): journal entry, autoprobe, count, VF 0 bound, VF 1 bound. Bind steps
# (vfio) inside the VF binds: journal, driver_override, probe, journal, for each VF.
sweep() { # VAR STEPS WHAT
	local var=$1 steps=$2 what=$3 k crashed=0 restored=0
	for ((k = 1; k <= steps; k++)); do
		env "$var=$k" "$hooks" sriov $IGB --numvfs 2 >/dev/null 2>&1 && rc=0 || rc=$?
		((rc == 134)) && crashed=$((crashed + 1))
		"$vfioctl" restore --all >/dev/null 2>&1 || true
		if [[ $(numvfs $IGB) == 0 && $(autoprobe $IGB) == 1 && $(lab_driver_of $IGB) == igb &&
			$(journal_count) == 0 ]]; then
			restored=$((restored + 1))
		else
			fail "$what: after a crash at step $k, restore --all left numvfs $(numvfs $IGB), autoprobe $(autoprobe $IGB), $(journal_count) journal entries"
		fi
	done
	check_eq "$what: the carve crashed at each of its $steps steps" "$steps" "$crashed"
	check_eq "$what: restore --all put the PF back after each crash" "$steps" "$restored"
}
sweep VFIOD_TEST_SRIOV_CRASH_AFTER 5 "carve steps"
sweep VFIOD_TEST_CRASH_AFTER 8 "VF bind steps"

# --- 4. VFs behind a switch without ACS share their PF's group ---------------------------
out=$("$vfioctl" sriov $IGB_SW --numvfs 2 2>"$tmp/sw.err") && rc=0 || rc=$?
check_eq "carve 2 VFs on the igb behind the switch (exit 0)" 0 "$rc"
sw_group=$(group_of $IGB_SW)
[[ $(cat "$tmp/sw.err") == *"warning: $IGB_SW: VFs "*" are on vfio-pci in IOMMU group $sw_group with their PF, which is bound to igb"* ]] &&
	pass "the carve warns that the VFs share group $sw_group with their PF on igb" ||
	fail "the carve warns about the PF's group" "$(cat "$tmp/sw.err")"
[[ $out == *"(group blocked by the PF $IGB_SW on igb)"* ]] &&
	pass "each VF line names the PF as what blocks its group" ||
	fail "VF lines name the blocking PF" "$out"
"$vfioctl" sriov $IGB_SW --json >"$tmp/sw.json" 2>/dev/null
python3 -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["vfs"]) == 2, d["vfs"]
for v in d["vfs"]:
    assert v["group_blocked_by"] == {"address": sys.argv[2], "driver": "igb", "is_pf": True}, v
assert len(d["warnings"]) == 1 and "with their PF" in d["warnings"][0], d["warnings"]
' "$tmp/sw.json" $IGB_SW && pass "JSON: group_blocked_by names the PF on each VF, one warning" ||
	fail "JSON group_blocked_by and warnings" "$(cat "$tmp/sw.json")"
"$vfioctl" audit --json >"$tmp/sw-audit.json" 2>/dev/null || true
python3 -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
f = [f for f in d["findings"] if f["id"] == "group.viable" and f["subject"] == "group " + sys.argv[3]]
assert len(f) == 1, f
assert "holds VFs of " + sys.argv[2] in f[0]["message"] and "with their PF, bound to igb" in f[0]["message"], f[0]
' "$tmp/sw-audit.json" $IGB_SW "$sw_group" && pass "audit: group.viable finding on group $sw_group names the VFs' PF" ||
	fail "audit finding for the VFs in their PF's group" "$(head -c 3000 "$tmp/sw-audit.json")"
out=$("$vfioctl" sriov $IGB_SW --numvfs 2 --group 2>&1) && rc=0 || rc=$?
check_eq "--numvfs with --group is refused as bad usage (exit 2)" 2 "$rc"
[[ $out == *"--group does not apply"* ]] && pass "and says why: ${out##*sriov: }" || fail "--group refusal" "$out"
for vf in $(vfs_of $IGB_SW); do
	check_eq "the kernel puts $vf in its PF's group" "$(group_of $IGB_SW)" "$(group_of "$vf")"
	"$vfioctl" show "$vf" --json >"$tmp/vf.json"
	python3 -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
iso = d["isolation"]
assert d["physfn"] == sys.argv[2], d["physfn"]
assert iso["alone_in_group"] is False, iso
assert iso["acs_path"] is False, iso
assert d["group_viable"] is False, d["group_viable"]
' "$tmp/vf.json" $IGB_SW && pass "vfioctl reports $vf as not isolated (shares group $(group_of "$vf") with its PF, no ACS)" ||
		fail "vfioctl reports $vf as not isolated" "$(cat "$tmp/vf.json")"
done
check "tear down the switch PF" "$vfioctl" sriov $IGB_SW --numvfs 0
pf_as_before $IGB_SW "switch igb after tear-down" igb

# --- 5. A PF on vfio-pci: its enable_sriov switch and the VF token -----------------------
param=/sys/module/vfio_pci/parameters/enable_sriov
param_before=$(cat $param)
check "bind the igb PF itself to vfio-pci" "$vfioctl" bind $IGB
echo N >$param
out=$("$vfioctl" sriov $IGB --numvfs 2 2>&1) && rc=0 || rc=$?
check_eq "carving on a vfio-pci PF with enable_sriov off is refused (exit 1)" 1 "$rc"
[[ $out == *"enable_sriov"* ]] && pass "and says which switch: ${out##*sriov: }" || fail "enable_sriov message" "$out"
check_eq "numvfs unchanged" 0 "$(numvfs $IGB)"
check_eq "only the PF's bind is journaled" 1 "$(journal_count)"
echo Y >$param
check "carve 2 VFs through vfio-pci's sriov_configure" "$vfioctl" sriov $IGB --numvfs 2
token=$("$vfioctl" sriov $IGB --json | python3 -S -c 'import json, sys; print(json.load(sys.stdin)["vf_token"])')
[[ $token =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] &&
	pass "vfioctl holds a VF token for the PF: $token" || fail "VF token" "$token"
vf=$(vfs_of $IGB | head -n1)
check_eq "the VF is on vfio-pci" vfio-pci "$(lab_driver_of "$vf")"
# The kernel's word: vfio-pci opens the VF only with the token vfiod set on the PF.
mark=$(kmsg_lines)
open_vf() { # GROUP DEVICE-STRING -> "ok" or the errno name
	python3 -S - "$@" <<'PY'
import errno, fcntl, os, struct, sys
group, name = sys.argv[1], sys.argv[2]
c = os.open("/dev/vfio/vfio", os.O_RDWR)
g = os.open("/dev/vfio/" + group, os.O_RDWR)
fcntl.ioctl(g, 0x3B68, struct.pack("i", c))  # VFIO_GROUP_SET_CONTAINER
fcntl.ioctl(c, 0x3B66, 3)                     # VFIO_SET_IOMMU, type1v2
try:
    fd = fcntl.ioctl(g, 0x3B6A, bytearray(name.encode() + b"\0"))  # VFIO_GROUP_GET_DEVICE_FD
    os.close(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}
g=$(group_of "$vf")
check_eq "opening $vf without a token: the kernel refuses" EACCES "$(open_vf "$g" "$vf")"
check_eq "opening $vf with another token: the kernel refuses" EACCES "$(open_vf "$g" "$vf vf_token=00000000-0000-4000-8000-000000000000")"
check_eq "opening $vf with vfiod's token: the kernel opens it" ok "$(open_vf "$g" "$vf vf_token=$token")"
kmsg_since "$mark" | grep -q "$vf: VF token required to access device" &&
	pass "the kernel log says the VF token was required" || fail "kernel log of the token refusal" "$(kmsg_since "$mark")"
check "tear down the vfio-pci PF's VFs" "$vfioctl" sriov $IGB --numvfs 0
check_eq "numvfs 0" 0 "$(numvfs $IGB)"
check "give the PF back to igb" "$vfioctl" unbind $IGB
echo "$param_before" >$param
pf_as_before $IGB "igb after the vfio-pci PF test" igb

rm -rf "$tmp"
lab_done
