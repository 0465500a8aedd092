#!/bin/bash
# topology: nointremap
# boot: own
#
# VT-d without interrupt remapping (intremap=off): a device's MSIs are not isolated.
# Opening it for DMA must be refused with the reason, by vfioctl and by the kernel,
# and work only when the unsafety is accepted explicitly, on each backend.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
export VFIOD_STATE_DIR=/run/vfiod-lab-vfio
EDU=0000:01:00.0

check "bind $EDU" "$vfioctl" bind $EDU
for b in type1 iommufd; do
	if [[ $b == type1 ]]; then
		knob=/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts
	else
		knob=/sys/module/iommufd/parameters/allow_unsafe_interrupts
	fi
	check_eq "$b: $knob is off at boot" N "$(cat $knob)"

	out=$("$vfioctl" probe $EDU --backend $b 2>&1) && rc=0 || rc=$?
	check_eq "$b: probe exits 1" 1 "$rc"
	[[ $out == *"interrupts are not isolated"*"--allow-unsafe-interrupts"* ]] &&
		pass "$b: vfioctl refuses and says why: ${out#vfioctl: probe: }" ||
		fail "$b: the refusal does not explain interrupt remapping" "$out"

	# Allowed by vfioctl but not by the kernel: the kernel's refusal, explained.
	out=$("$vfioctl" probe $EDU --backend $b --allow-unsafe-interrupts 2>&1) && rc=0 || rc=$?
	check_eq "$b: probe --allow-unsafe-interrupts exits 1 while the kernel forbids it" 1 "$rc"
	[[ $out == *"Operation not permitted"*"allow_unsafe_interrupts=1"* ]] &&
		pass "$b: the kernel's refusal is explained: $(grep -m1 'Operation not permitted' <<<"$out")" ||
		fail "$b: the kernel's refusal is not explained" "$out"

	echo Y >"$knob"
	out=$("$vfioctl" probe $EDU --backend $b --allow-unsafe-interrupts 2>&1) && rc=0 || rc=$?
	echo N >"$knob"
	check_eq "$b: with the kernel switch on too, the probe passes" 0 "$rc"
	[[ $rc == 0 ]] || printf '%s\n' "$out"
	[[ $out == *"warning:"*"not isolated"* ]] && pass "$b: with a warning: $(grep -m1 "warning:" <<<"$out")" ||
		fail "$b: no warning about unsafe interrupts" "$out"
done
check "unbind $EDU" "$vfioctl" unbind $EDU
lab_done
