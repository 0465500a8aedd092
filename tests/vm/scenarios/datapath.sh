#!/bin/bash
# topology: datapath
# boot: own
#
# Real traffic through a carved VF: `vfioctl sriov` carves igb VFs onto vfio-pci, and
# Debian's dpdk-testpmd (its igb VF poll-mode driver, over the legacy VFIO container,
# with the IOMMU translating: no hugepages, IOVA as VA) transmits from one VF until the
# e1000e on the other end of the wire has received at least $PACKETS frames addressed
# to it. The count is the receiver's own driver's, not DPDK's. No DMAR fault may
# appear in the kernel log, and the carve is undone afterwards. Run once as root on a
# VF carved by vfioctl, once as uid 65534 holding a type1 lease from vfiod.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
lab_vfio_modules
export VFIOD_STATE_DIR=/run/vfiod-lab-datapath
tmp=$(mktemp -d)

PF=0000:01:00.0 # 82576 on a root port, its port on the wire
RX=0000:02:00.0 # e1000e on the same wire
VF_MAC=02:76:66:69:6f:01
PACKETS=10000
TIMEOUT=150 # seconds of transmitting at most (TCG moves a few thousand frames a second)

ifname_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n1; }
rx_packets() { cat "/sys/class/net/$rx_if/statistics/rx_packets"; }
dmar_faults_since() { dmesg | tail -n +"$(($1 + 1))" | grep -E 'DMAR: \[DMA|DMAR:.*fault' || true; }

testpmd=$(command -v dpdk-testpmd) || {
	fail "dpdk-testpmd is not on the host (Debian package dpdk-dev; tests/vm/setup installs it)"
	lab_done
}
pf_if=$(ifname_of $PF)
rx_if=$(ifname_of $RX)
[[ -n $pf_if && -n $rx_if ]] || {
	fail "the igb and the e1000e have interfaces" "igb: '$pf_if', e1000e: '$rx_if'"
	lab_done
}
rx_mac=$(cat "/sys/class/net/$rx_if/address")
# The igb PF answers its VFs' mailbox only while its interface is up.
ip link set "$pf_if" up
ip link set "$rx_if" up

# run_testpmd LABEL [PREFIX...]: transmit from $vf with testpmd (run under PREFIX, e.g.
# setpriv) until the receiver counted $PACKETS more frames or $TIMEOUT s passed, then
# stop it with SIGINT. Sets tp_rc, tp_rx (frames received) and tp_secs.
run_testpmd() {
	local label=$1 rx0 start pid k
	shift
	rx0=$(rx_packets)
	start=$(date +%s)
	"$@" "$testpmd" -l 0-1 -n 1 --no-huge -m 128 --iova-mode=va --no-telemetry \
		--file-prefix="vfiod-lab-$label" -a "$vf" -- \
		--forward-mode=txonly --eth-peer="0,$rx_mac" --stats-period=5 --nb-cores=1 \
		--rxq=1 --txq=1 --rxd=256 --txd=256 --total-num-mbufs=2048 \
		</dev/null >"$tmp/testpmd-$label.log" 2>&1 &
	pid=$!
	for ((k = 0; k < TIMEOUT; k++)); do
		sleep 1
		kill -0 $pid 2>/dev/null || break
		(($(rx_packets) - rx0 >= PACKETS)) && break
	done
	kill -INT $pid 2>/dev/null || true
	for ((k = 0; k < 30; k++)); do
		kill -0 $pid 2>/dev/null || break
		sleep 1
	done
	kill -KILL $pid 2>/dev/null || true
	tp_rc=0
	wait $pid || tp_rc=$?
	tp_rx=$(($(rx_packets) - rx0))
	tp_secs=$(($(date +%s) - start))
}

# judge_run LABEL MARK: the checks after one run of testpmd.
judge_run() {
	local label=$1 mark=$2 tx faults
	# Stopped by SIGINT: testpmd ends with "Bye..." and exit 0, or re-raises the signal.
	if [[ $tp_rc == 0 || $tp_rc == 130 ]] && grep -q 'Bye' "$tmp/testpmd-$label.log"; then
		pass "$label: testpmd ran on $vf and stopped cleanly after ${tp_secs}s"
	else
		fail "$label: testpmd on $vf (exit $tp_rc)" "$(tail -n 40 "$tmp/testpmd-$label.log")"
	fi
	tx=$(grep -oE 'TX-packets: *[0-9]+' "$tmp/testpmd-$label.log" | tail -n1 | grep -oE '[0-9]+$' || echo "?")
	if ((tp_rx >= PACKETS)); then
		pass "$label: the e1000e's driver received $tp_rx frames from the VF (testpmd counted $tx sent)"
	else
		fail "$label: the e1000e received $tp_rx frames, fewer than $PACKETS (testpmd counted $tx sent)" \
			"$(tail -n 40 "$tmp/testpmd-$label.log")"
	fi
	faults=$(dmar_faults_since "$mark")
	[[ -z $faults ]] && pass "$label: no DMAR fault in the kernel log" ||
		fail "$label: DMAR faults in the kernel log" "$faults"
	check_eq "$label: the VF is still on vfio-pci" vfio-pci "$(lab_driver_of "$vf")"
	# DPDK's own word on how it reached the device: the type1 container, IOVA as VA.
	grep -qi 'IOMMU type 1' "$tmp/testpmd-$label.log" && grep -q "IOVA mode 'VA'" "$tmp/testpmd-$label.log" &&
		pass "$label: DPDK used the VFIO type1 IOMMU with IOVA as VA" ||
		fail "$label: DPDK's VFIO and IOVA lines" "$(grep -E 'EAL' "$tmp/testpmd-$label.log" | head -n 20)"
}

# --- 1. root: carve, set the VF's MAC, transmit -------------------------------------------
check "vfioctl sriov $PF --numvfs 2 carves onto vfio-pci" "$vfioctl" sriov $PF --numvfs 2
vf=$(basename "$(readlink -f /sys/bus/pci/devices/$PF/virtfn0)")
check_eq "VF 0 ($vf) is on vfio-pci" vfio-pci "$(lab_driver_of "$vf")"
check_eq "the VF's IOMMU group translates DMA" DMA "$(cat "/sys/bus/pci/devices/$vf/iommu_group/type")"
check "the VF's MAC set through the PF" "$vfioctl" sriov $PF --vf 0 --mac $VF_MAC
mark=$(dmesg | wc -l)
run_testpmd root
judge_run root "$mark"

# --- 2. DPDK as an unprivileged user holding a vfiod lease ------------------------------
# DPDK 22.11 opens the group node and /dev/vfio/vfio itself (no iommufd, no handed-over
# handles), so the lease is type1 with no handles (exec --open-nodes): vfiod opens the
# VF's group node to uid 65534 by an ACL for the lease's lifetime and raises its
# RLIMIT_MEMLOCK for the DMA mappings; the lease ends when testpmd does.
vfiod=$(lab_bin daemon/vfiod)
chmod 755 "$tmp"
cat >"$tmp/policy.json" <<EOF
{"rules": [{"users": ["nobody"], "operations": ["acquire"], "devices": ["$PF/vf0-1"],
            "memlock": "unlimited", "on_release": "pool"}]}
EOF
"$vfiod" --socket "$tmp/io.vfiod" --admin-socket "$tmp/io.vfiod.admin" --runtime-dir "$tmp/run" \
	--state-dir "$VFIOD_STATE_DIR" --policy "$tmp/policy.json" -v >"$tmp/vfiod.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
	[[ -S $tmp/io.vfiod ]] && break
	sleep 0.1
done
group=$(basename "$(readlink -f "/sys/bus/pci/devices/$vf/iommu_group")")
node_state() {
	printf '%s %s' "$(stat -c '%u:%g:%a' "/dev/vfio/$group")" \
		"$(getfacl -n -p "/dev/vfio/$group" 2>/dev/null | grep -q '^user:65534' && echo acl || echo no-acl)"
}
node_before=$(node_state)
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups env -u XDG_RUNTIME_DIR)
out=$("${nobody[@]}" python3 -S -c 'import sys; open(sys.argv[1], "rb")' "/dev/vfio/$group" 2>&1) || true
[[ $out == *"Permission denied"* ]] &&
	pass "without a lease uid 65534 cannot open /dev/vfio/$group (permission denied)" ||
	fail "uid 65534 without a lease opening /dev/vfio/$group" "$out"
mark=$(dmesg | wc -l)
VFIOD_SOCKET=$tmp/io.vfiod run_testpmd nobody "${nobody[@]}" "$vfioctl" exec --open-nodes --device "$vf" --
grep -q "no handles, the group nodes are open to this uid" "$tmp/testpmd-nobody.log" &&
	pass "nobody: testpmd held a type1 lease with the group node opened to its uid" ||
	fail "nobody: the lease vfioctl exec reported" "$(grep 'vfioctl' "$tmp/testpmd-nobody.log"; tail -n 20 "$tmp/vfiod.log")"
judge_run nobody "$mark"
for _ in $(seq 50); do
	[[ $(node_state) == "$node_before" ]] && break
	sleep 0.1
done
check_eq "the lease ended with testpmd: /dev/vfio/$group as before" "$node_before" "$(node_state)"
kill "$daemon" 2>/dev/null || true
wait "$daemon" 2>/dev/null || true

# --- 3. the carve undone ----------------------------------------------------------------
check "vfioctl sriov $PF --numvfs 0" "$vfioctl" sriov $PF --numvfs 0
check_eq "no VFs left" 0 "$(cat /sys/bus/pci/devices/$PF/sriov_numvfs)"
check_eq "autoprobe back on" 1 "$(cat /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe)"
check_eq "the PF is still on igb" igb "$(lab_driver_of $PF)"
check_eq "the journal is empty" 0 "$(find "$VFIOD_STATE_DIR/journal" -name '*.json' 2>/dev/null | wc -l)"
ip link set "$pf_if" down
ip link set "$rx_if" down
rm -rf "$tmp"
lab_done
