#!/bin/bash
# topology: basic
# boot: own
#
# Benchmark (run in the lab: tests/vm/run bench/lab-sriov.sh): carve the 7 VFs of the
# igb on a root port onto vfio-pci, with `vfioctl sriov PF --numvfs 7` against the common
# path in the same boot: autoprobe left on, so igbvf probes every VF as it appears, then
# each VF rebound to vfio-pci (driver_override, unbind, drivers_probe). Alternating,
# several rounds; only the carve is timed, the tear-down between rounds is not. vfioctl
# also scans the topology, checks the VFs are free, journals every step with fsync and
# reads every result back; it wins by never letting a host driver probe a VF. Target:
# vfioctl faster (ratio below 1). Prints the medians and the ratio.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
export VFIOD_STATE_DIR=/run/vfiod-bench-sriov
rounds=${VFIOD_BENCH_ROUNDS:-5}
PF=0000:02:00.0
N=7
dev=/sys/bus/pci/devices/$PF

now_ns() { date +%s%N; }
driver_of() {
	local l=/sys/bus/pci/devices/$1/driver
	if [[ -e $l ]]; then basename "$(readlink -f "$l")"; else echo -; fi
}
vfs() {
	local l
	for l in "$dev"/virtfn*; do basename "$(readlink -f "$l")"; done
}

# The common path: VFs appear with autoprobe on (igbvf takes them), then each is moved
# (driver_override, unbind, drivers_probe, driver read back: lib.sh's lab_bind).
shell_carve() {
	local vf
	echo "$N" >"$dev/sriov_numvfs"
	for vf in $(vfs); do
		lab_bind "$vf" vfio-pci || return 1
	done
}
shell_teardown() {
	local vf
	for vf in $(vfs); do
		echo "$vf" >"/sys/bus/pci/devices/$vf/driver/unbind"
		echo >"/sys/bus/pci/devices/$vf/driver_override"
	done
	echo 0 >"$dev/sriov_numvfs"
}
vfiod_carve() { "$vfioctl" sriov "$PF" --numvfs "$N" >/dev/null; }
vfiod_teardown() { "$vfioctl" sriov "$PF" --numvfs 0 >/dev/null; }

all_on() {
	local vf n=0
	for vf in $(vfs); do
		[[ $(driver_of "$vf") == vfio-pci ]] || return 1
		n=$((n + 1))
	done
	((n == N))
}
as_before() {
	[[ $(cat "$dev/sriov_numvfs") == 0 && $(cat "$dev/sriov_drivers_autoprobe") == 1 &&
		$(driver_of "$PF") == igb ]]
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

as_before || fail "the igb PF is not in its boot state (no VFs, autoprobe on, igb)"
shell_t=() vfiod_t=()
for ((i = 0; i < rounds; i++)); do
	for who in shell vfiod; do
		t0=$(now_ns)
		"${who}_carve"
		t1=$(now_ns)
		all_on || fail "$who: round $i: not every VF reached vfio-pci"
		"${who}_teardown"
		as_before || fail "$who: round $i: the PF did not go back to its boot state"
		if [[ $who == shell ]]; then shell_t+=($((t1 - t0))); else vfiod_t+=($((t1 - t0))); fi
	done
done
s=$(printf '%s\n' "${shell_t[@]}" | median)
v=$(printf '%s\n' "${vfiod_t[@]}" | median)
ratio=$(awk -v v="$v" -v s="$s" 'BEGIN { printf "%.3f", v / s }')
echo "vfiod-lab: bench carve of $N igb VFs onto vfio-pci, $rounds rounds: common path (autoprobe on, then rebind) median $((s / 1000000)) ms, vfioctl median $((v / 1000000)) ms, ratio $ratio"
echo "vfiod-lab: common path rounds (ms): $(printf '%s\n' "${shell_t[@]}" | awk '{ printf "%d ", $1 / 1000000 }')"
echo "vfiod-lab: vfioctl rounds (ms): $(printf '%s\n' "${vfiod_t[@]}" | awk '{ printf "%d ", $1 / 1000000 }')"
if awk -v r="$ratio" 'BEGIN { exit !(r < 1) }'; then
	pass "vfioctl carves $N VFs onto vfio-pci faster than the common path (ratio $ratio)"
else
	fail "vfioctl carves $N VFs onto vfio-pci faster than the common path (ratio $ratio)"
fi
lab_done
