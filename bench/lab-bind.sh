#!/bin/bash
# topology: basic
# boot: own
#
# Benchmark (run in the lab: tests/vm/run bench/lab-bind.sh): bind every assignable
# lab device to vfio-pci and restore it, with vfioctl against the same sysfs writes from
# a plain shell loop, in the same boot, alternating, several rounds. vfioctl does more
# (topology scan, group checks, journal with fsync, read-back verification); the
# target is at most 10% more time. Prints the medians and the ratio.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
export VFIOD_STATE_DIR=/run/vfiod-bench-state
rounds=${VFIOD_BENCH_ROUNDS:-7}

# Every endpoint of the basic topology that a host may give to a guest. The e1000 and
# edu behind the PCIe-to-PCI bridge share a group.
devices=(0000:01:00.0 0000:02:00.0 0000:03:00.0 0000:06:00.0 0000:07:00.0
	0000:08:01.0 0000:08:02.0)
declare -A orig
for d in "${devices[@]}"; do
	l=/sys/bus/pci/devices/$d/driver
	orig[$d]=$([[ -e $l ]] && basename "$(readlink -f "$l")" || echo -)
done

now_ns() { date +%s%N; }

shell_bind() {
	local d
	for d in "${devices[@]}"; do
		echo vfio-pci >"/sys/bus/pci/devices/$d/driver_override"
		if [[ -e /sys/bus/pci/devices/$d/driver ]]; then
			echo "$d" >"/sys/bus/pci/devices/$d/driver/unbind"
		fi
		echo "$d" >/sys/bus/pci/drivers_probe
	done
}
shell_restore() {
	local d
	for d in "${devices[@]}"; do
		echo >"/sys/bus/pci/devices/$d/driver_override"
		echo "$d" >"/sys/bus/pci/devices/$d/driver/unbind"
		if [[ ${orig[$d]} != - ]]; then
			echo "$d" >/sys/bus/pci/drivers_probe
		fi
	done
}
vfiod_bind() { "$vfioctl" bind --group "${devices[@]}" >/dev/null; }
vfiod_restore() { "$vfioctl" unbind "${devices[@]}" >/dev/null; }

all_on() {
	local d
	for d in "${devices[@]}"; do
		[[ $(basename "$(readlink -f "/sys/bus/pci/devices/$d/driver")") == vfio-pci ]] || return 1
	done
}
all_back() {
	local d l
	for d in "${devices[@]}"; do
		l=/sys/bus/pci/devices/$d/driver
		[[ $([[ -e $l ]] && basename "$(readlink -f "$l")" || echo -) == "${orig[$d]}" ]] || return 1
	done
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

shell_t=() vfiod_t=()
for ((i = 0; i < rounds; i++)); do
	for who in shell vfiod; do
		t0=$(now_ns)
		"${who}_bind"
		t1=$(now_ns)
		all_on || fail "$who: round $i: not every device reached vfio-pci"
		"${who}_restore"
		t2=$(now_ns)
		all_back || fail "$who: round $i: not every device went back to its driver"
		if [[ $who == shell ]]; then shell_t+=($((t2 - t0))); else vfiod_t+=($((t2 - t0))); fi
	done
done
s=$(printf '%s\n' "${shell_t[@]}" | median)
v=$(printf '%s\n' "${vfiod_t[@]}" | median)
ratio=$(awk -v v="$v" -v s="$s" 'BEGIN { printf "%.3f", v / s }')
echo "vfiod-lab: bench bind+restore of ${#devices[@]} devices, $rounds rounds: shell median $((s / 1000000)) ms, vfioctl median $((v / 1000000)) ms, ratio $ratio"
# The part of vfioctl's time that does not touch the kernel's bindings: scan and plan,
# as a dry run of the same bind, on its own (what a narrower scan saves shows here).
dry_t=()
for ((i = 0; i < 3 * rounds; i++)); do
	t0=$(now_ns)
	"$vfioctl" bind --dry-run --group "${devices[@]}" >/dev/null
	dry_t+=($(($(now_ns) - t0)))
done
d=$(printf '%s\n' "${dry_t[@]}" | median)
echo "vfiod-lab: bench bind --dry-run (scan and plan) of ${#devices[@]} devices, $((3 * rounds)) runs: median $((d / 1000)) us"
if awk -v r="$ratio" 'BEGIN { exit !(r <= 1.10) }'; then
	pass "vfioctl bind+restore within 10% of plain sysfs writes (ratio $ratio)"
else
	fail "vfioctl bind+restore within 10% of plain sysfs writes (ratio $ratio)"
fi
lab_done
