#!/bin/bash
# topology: debian-6.12
# boot: own
#
# Benchmark (run in the lab: tests/vm/run bench/lab-peers.sh): give one device at a time
# to vfio-pci and back with the tools operators use, in one boot, on Debian's own
# kernel (vfio-pci a module, as on a Debian host): a plain sysfs loop (the floor),
# vfioctl bind/unbind, driverctl --nosave set-override/unset-override and
# dpdk-devbind.py -b (only for device classes it knows: not the NVMe). Devices: an igb
# PF, an igb VF (carved for igbvf) and the NVMe controller. Rounds interleave the tools;
# every tool's result is read back from sysfs after each bind and each return.
# Targets, per device: vfioctl faster than every peer, and at most 1.1x the sysfs loop.
# "exec" is that loop plus one process start per call (the floor for any command).
# libvirt's `virsh nodedev-detach` is not among the peers: libvirtd needs a writable
# /var/lib/libvirt and udev, which the lab guest (the host's root, read-only, no udevd,
# no systemd) does not have.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
export VFIOD_STATE_DIR=/run/vfiod-bench-peers
rounds=${VFIOD_BENCH_ROUNDS:-9}
lab_vfio_modules
modprobe igbvf

IGB=0000:02:00.0  # igb on a root port; its VF is carved after the PF's own rounds
NVME=0000:03:00.0

driver_of() {
	local l=/sys/bus/pci/devices/$1/driver
	if [[ -e $l ]]; then basename "$(readlink -f "$l")"; else echo -; fi
}
now_ns() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# The tools: TOOL_bind DEV and TOOL_return DEV ORIGINAL-DRIVER.
raw_bind() {
	echo vfio-pci >"/sys/bus/pci/devices/$1/driver_override"
	if [[ -e /sys/bus/pci/devices/$1/driver ]]; then
		echo "$1" >"/sys/bus/pci/devices/$1/driver/unbind"
	fi
	echo "$1" >/sys/bus/pci/drivers_probe
}
raw_return() {
	echo >"/sys/bus/pci/devices/$1/driver_override"
	echo "$1" >"/sys/bus/pci/devices/$1/driver/unbind"
	[[ $2 == - ]] || echo "$1" >/sys/bus/pci/drivers_probe
}
# The same writes with one process start per call, as any command pays (a fork and exec
# of /bin/true, linked to libc alone): not a peer, the floor for every tool run as a
# command, so that what vfioctl itself costs above the sysfs writes shows apart from
# what starting a process costs in the lab.
exec_bind() { /bin/true && raw_bind "$1"; }
exec_return() { /bin/true && raw_return "$1" "$2"; }
vfioctl_bind() { "$vfioctl" bind "$1" >/dev/null; }
vfioctl_return() { "$vfioctl" unbind "$1" >/dev/null; }
driverctl_bind() { driverctl --nosave set-override "$1" vfio-pci >/dev/null; }
driverctl_return() { driverctl --nosave unset-override "$1" >/dev/null; }
devbind_bind() { dpdk-devbind.py -b vfio-pci "$1" >/dev/null; }
devbind_return() { dpdk-devbind.py -b "$2" "$1" >/dev/null; }

# back DEV ORIGINAL-DRIVER: waits (up to 10 s) until the device is usable by the host
# again. nvme probes asynchronously: drivers_probe returns while the controller is
# still being reset and set up, work that the next tool's unbind would otherwise wait
# for and be charged with. Each tool's return is timed until the controller is "live".
back() {
	local i state
	[[ $2 == nvme ]] || return 0
	for ((i = 0; i < 1000; i++)); do
		for state in /sys/bus/pci/devices/"$1"/nvme/nvme*/state; do
			[[ -e $state && $(<"$state") == live ]] && return 0
		done
		sleep 0.01
	done
	fail "$1: its controller was not live again within 10 s"
}

# bench DEV TOOL...: interleaved rounds; prints one line per tool and judges.
bench() {
	local dev=$1 orig tool i t0 t1 t2 med raw ratio
	shift
	local tools=("$@")
	declare -A times=()
	orig=$(driver_of "$dev")
	for ((i = 0; i < rounds; i++)); do
		for tool in "${tools[@]}"; do
			t0=$(now_ns)
			"${tool}_bind" "$dev" || fail "$dev: $tool: round $i: bind exited non-zero"
			t1=$(now_ns)
			[[ $(driver_of "$dev") == vfio-pci ]] ||
				fail "$dev: $tool: round $i: on $(driver_of "$dev") after bind, not vfio-pci"
			"${tool}_return" "$dev" "$orig" || fail "$dev: $tool: round $i: return exited non-zero"
			back "$dev" "$orig"
			t2=$(now_ns)
			[[ $(driver_of "$dev") == "$orig" ]] ||
				fail "$dev: $tool: round $i: on $(driver_of "$dev") after return, not $orig"
			[[ $(cat "/sys/bus/pci/devices/$dev/driver_override") == "(null)" ]] ||
				fail "$dev: $tool: round $i: driver_override left as $(cat "/sys/bus/pci/devices/$dev/driver_override")"
			times[$tool]+="$((t2 - t0)) "
		done
	done
	raw=$(printf '%s\n' ${times[raw]} | median)
	for tool in "${tools[@]}"; do
		med=$(printf '%s\n' ${times[$tool]} | median)
		ratio=$(awk -v m="$med" -v r="$raw" 'BEGIN { printf "%.2f", m / r }')
		printf 'vfiod-lab: bench peers %s (%s): %-9s median %6d ms  %sx raw\n' \
			"$dev" "$orig" "$tool" $((med / 1000000)) "$ratio"
		eval "med_$tool=$med"
	done
	ratio=$(awk -v m="$med_vfioctl" -v r="$raw" 'BEGIN { printf "%.3f", m / r }')
	if awk -v r="$ratio" 'BEGIN { exit !(r <= 1.10) }'; then
		pass "$dev: vfioctl within 1.1x of the sysfs loop ($ratio)"
	else
		fail "$dev: vfioctl within 1.1x of the sysfs loop ($ratio: $((med_vfioctl / 1000000)) ms against $((raw / 1000000)) ms)"
	fi
	ratio=$(awk -v m="$med_vfioctl" -v r="$med_exec" 'BEGIN { printf "%.2f", m / r }')
	printf 'vfiod-lab: bench peers %s: vfioctl %sx the sysfs loop with a process start per call\n' \
		"$dev" "$ratio"
	for tool in "${tools[@]}"; do
		[[ $tool == raw || $tool == exec || $tool == vfioctl ]] && continue
		local m="med_$tool"
		((med_vfioctl < ${!m})) &&
			pass "$dev: vfioctl faster than $tool ($((med_vfioctl / 1000000)) ms against $((${!m} / 1000000)) ms)" ||
			fail "$dev: vfioctl faster than $tool ($((med_vfioctl / 1000000)) ms against $((${!m} / 1000000)) ms)"
	done
}

bench $IGB raw exec vfioctl driverctl devbind
bench $NVME raw exec vfioctl driverctl

# An igb VF, carved for the host's igbvf (alone in its group below the root port). The
# PF stays on igb: a PF leaving its driver takes its VFs with it.
check "carve one VF for igbvf" "$vfioctl" sriov $IGB --numvfs 1 --driver host
vf=$(basename "$(readlink -f /sys/bus/pci/devices/$IGB/virtfn0)")
check_eq "the VF $vf is on igbvf" igbvf "$(driver_of "$vf")"
bench "$vf" raw exec vfioctl driverctl devbind
check "remove the VF" "$vfioctl" sriov $IGB --numvfs 0
lab_done
