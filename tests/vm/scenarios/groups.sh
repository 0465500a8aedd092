#!/bin/bash
# topology: basic noiommu nointremap passthrough none debian-6.1 debian-6.12
#
# `vfioctl groups --json` against the kernel's own truth.
#
# helpers/kernel_truth.py reads the kernel independently of vfiod (sysfs
# groups and IOMMU registers, the kernel log, VFIO ioctls) and compares:
#   - vfioctl's JSON with that truth, field by field;
#   - that truth with the [expect] section of the booted topology, so the
#     topology's documentation cannot silently drift from what QEMU and the
#     kernel actually build.
# Then it walks the topology's actions, comparing again after each:
#   bind ADDRESS DRIVER viable|not-viable|refused
#       bind with sysfs writes; for vfio-pci ask the kernel's
#       VFIO_GROUP_GET_STATUS whether the group is viable and hold vfioctl's
#       verdict to it; "refused": the bind must not take.
#   sriov ADDRESS NUMVFS isolated|with-pf
#       enable VFs (no driver autoprobe) and check each sits alone in its
#       group, or in the PF's group.
# Every action is undone, and the final state must match [expect] again.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
# The topology's bind actions need vfio-pci.
lab_vfio_modules
truth=$VFIOD_LAB_CHECKOUT/tests/vm/helpers/kernel_truth.py
topo=$VFIOD_LAB_TOPOLOGY_FILE
tmp=$(mktemp -d)
step=0

# compare LABEL [--expect]: snapshot vfioctl and judge it against the kernel.
compare() {
	local label=$1 out
	shift
	step=$((step + 1))
	out=$tmp/groups-$step.json
	if ! "$vfioctl" groups --json >"$out" 2>"$tmp/stderr"; then
		fail "$label: vfioctl groups --json exited nonzero" "$(cat "$tmp/stderr")"
		return
	fi
	lab_verdicts "$label: comparison" python3 -S "$truth" compare "$out" --label "$label" "$@"
}

# The kernel's truth at boot, kept with the results for whoever debugs a
# failure (the host keeps the work directory then).
python3 -S "$truth" truth >"${VFIOD_LAB_RESULTS:-$tmp}/groups-truth.json" || true

compare "at boot" --expect "$topo"

# Actions from the topology's [expect] section.
actions=$(awk '/^\[/ { s = $0; next } s == "[expect]" && ($1 == "bind" || $1 == "sriov")' "$topo")
while read -r action addr arg verdict; do
	[[ -n $action ]] || continue
	dev=/sys/bus/pci/devices/$addr
	if [[ ! -e $dev ]]; then
		fail "$action $addr: no such device"
		continue
	fi
	case $action in
	bind)
		bound=0
		lab_bind "$addr" "$arg" 2>"$tmp/stderr" && bound=1
		if [[ $verdict == refused ]]; then
			check_eq "binding $addr to $arg is refused" 0 "$bound"
			compare "after a refused bind of $addr"
		elif ((!bound)); then
			fail "binding $addr to $arg" "$(cat "$tmp/stderr")"
		else
			pass "binding $addr to $arg"
			if [[ $arg == vfio-pci ]]; then
				kernel_says=$(python3 -S "$truth" vfio-viable "$addr" 2>&1) || true
				check_eq "kernel (VFIO_GROUP_GET_STATUS): group of $addr is $verdict" "$verdict" "$kernel_says"
				compare "with $addr on $arg" --viable "$addr=$kernel_says"
			else
				compare "with $addr on $arg"
			fi
		fi
		lab_unbind "$addr"
		;;
	sriov)
		if [[ $verdict != isolated && $verdict != with-pf ]]; then
			fail "sriov $addr: unknown expectation '$verdict' (isolated or with-pf)"
			continue
		fi
		# No VF driver: QEMU's NVMe VFs stay offline until given resources,
		# and probing them would only wait for timeouts.
		echo 0 >"$dev/sriov_drivers_autoprobe"
		if echo "$arg" >"$dev/sriov_numvfs" 2>"$tmp/stderr"; then
			pass "enabling $arg VFs on $addr"
			good=0 total=0
			pf_group=$(readlink -f "$dev/iommu_group")
			for vf in "$dev"/virtfn*; do
				total=$((total + 1))
				if [[ $verdict == isolated ]]; then
					members=("$vf"/iommu_group/devices/*)
					((${#members[@]} == 1)) && good=$((good + 1))
				else
					[[ $(readlink -f "$vf/iommu_group") == "$pf_group" ]] && good=$((good + 1))
				fi
			done
			what="alone in its group"
			[[ $verdict == with-pf ]] && what="in the PF's group"
			check_eq "VFs of $addr: each $what" "$arg of $arg" "$good of $total"
			compare "with $arg VFs on $addr"
			echo 0 >"$dev/sriov_numvfs"
		else
			fail "enabling $arg VFs on $addr" "$(cat "$tmp/stderr")"
		fi
		echo 1 >"$dev/sriov_drivers_autoprobe"
		;;
	esac
done <<<"$actions"

[[ -n $actions ]] && compare "after undoing the actions" --expect "$topo"

rm -rf "$tmp"
lab_done
