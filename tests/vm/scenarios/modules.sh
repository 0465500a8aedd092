#!/bin/bash
# topology: debian-6.1 basic
# boot: own
#
# The kernel modules vfio needs, loaded on demand. On Debian's stock kernel vfio-pci
# and vfio_iommu_type1 are modules that nothing has loaded at boot (hence a boot of its
# own): bind loads vfio-pci and probe --backend type1 loads vfio_iommu_type1, each
# saying so; a module whose file is missing from the module tree fails with one line
# naming it and changes nothing, not even a dependency inserted; a module the kernel
# does not have at all (iommufd on 6.1) is one line too. On the lab's own kernel
# everything is built in: nothing is loaded or even looked up. Every outcome is read
# back from sysfs and the journal, never from vfioctl's report alone.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
# The host's root is read-only here; the journal lives on the guest's tmpfs.
export VFIOD_STATE_DIR=/run/vfiod-lab-state
journal=$VFIOD_STATE_DIR/journal
tmp=$(mktemp -d)
kver=$(uname -r)

EDU=0000:01:00.0 # no host driver

# What a failed verb must leave alone: the edu's driver and override, and the journal.
state() {
	printf '%s %s journal:' "$(lab_driver_of $EDU)" "$(cat /sys/bus/pci/devices/$EDU/driver_override)"
	# No journal directory yet is a state too.
	{ find "$journal" -type f 2>/dev/null || true; } | sort | xargs -r md5sum | tr '\n' ' '
}
lines() { printf '%s' "$1" | grep -c '' || true; }

# expect_fail TEXT STDERR_PATTERN CMD...: exits 1 with one line matching the pattern,
# and state() is unchanged.
expect_fail() {
	local text=$1 pattern=$2 before after out rc
	shift 2
	before=$(state)
	out=$("$@" 2>&1 >/dev/null) && rc=0 || rc=$?
	after=$(state)
	check_eq "$text: exit 1" 1 "$rc"
	check_eq "$text: one line on stderr" 1 "$(lines "$out")"
	# shellcheck disable=SC2053 # the pattern is a glob on purpose
	[[ $out == $pattern ]] && pass "$text: says '$out'" || fail "$text: message" "$out"
	check_eq "$text: driver, driver_override and journal unchanged" "$before" "$after"
}

if [[ -d /sys/bus/pci/drivers/vfio-pci ]]; then
	# --- The lab's own kernel: vfio-pci, type1 and iommufd built in ----------------
	echo "lab: kernel $kver, /proc/modules $([[ -e /proc/modules ]] && echo present || echo absent)"
	out=$("$vfioctl" bind $EDU 2>&1) && rc=0 || rc=$?
	check_eq "bind $EDU with vfio-pci built in" 0 "$rc"
	[[ $out != *"loaded kernel module"* ]] && pass "bind loaded no module" ||
		fail "bind loaded a module although vfio-pci is built in" "$out"
	check_eq "$EDU is on vfio-pci" vfio-pci "$(lab_driver_of $EDU)"
	for backend in type1 iommufd; do
		out=$("$vfioctl" probe --backend $backend $EDU 2>&1) && rc=0 || rc=$?
		check_eq "probe --backend $backend passes" 0 "$rc"
		[[ $out != *"loaded kernel module"* ]] && pass "probe --backend $backend loaded no module" ||
			fail "probe --backend $backend loaded a module" "$out"
	done
	json=$("$vfioctl" --json bind $EDU 2>/dev/null) || true
	check_eq "bind --json: modules_loaded is empty" "[]" \
		"$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["modules_loaded"]))')"
	check "unbind $EDU" "$vfioctl" unbind $EDU
	check_eq "$EDU is back without a driver" - "$(lab_driver_of $EDU)"
	rm -rf "$tmp"
	lab_done
	exit 0
fi

# --- A stock kernel: nothing of vfio loaded at boot -----------------------------------
if [[ -e /sys/module/vfio || -e /sys/module/vfio_pci ]]; then
	fail "vfio is loaded at boot on kernel $kver: this scenario needs a boot where it is not" \
		"$(ls -d /sys/module/vfio* 2>&1)"
	lab_done
	exit 1
fi
pass "kernel $kver booted with vfio, vfio-pci and vfio_iommu_type1 unloaded"
ko=$(modinfo -n vfio-pci 2>&1) || { fail "modinfo -n vfio-pci" "$ko"; lab_done; exit 1; }

# 1. vfio-pci's file missing: the module tree of this kernel, with vfio-pci.ko taken
# away in a mount namespace of its own (an overlay, so the real tree is untouched).
# Its index still names it: the failure comes from the file check before any insert.
mkdir -p "$tmp/up" "$tmp/work"
hide_vfio_pci() {
	unshare -m bash -c '
		set -e
		mount -t overlay -o "lowerdir=/lib/modules/$1,upperdir=$2/up,workdir=$2/work" \
			overlay "/lib/modules/$1"
		rm "$3"
		shift 3
		exec "$@"' hide "$kver" "$tmp" "$ko" "$@"
}
expect_fail "bind $EDU with vfio-pci.ko missing" \
	"vfioctl: $EDU: cannot load kernel module vfio-pci: $ko: No such file or directory" \
	hide_vfio_pci "$vfioctl" bind $EDU
[[ ! -e /sys/module/vfio && ! -e /sys/module/vfio_pci_core ]] &&
	pass "and no dependency of vfio-pci was inserted (no vfio, no vfio_pci_core)" ||
	fail "a dependency was inserted although vfio-pci could not be" "$(ls -d /sys/module/vfio* 2>&1)"
[[ -e $ko ]] && pass "the real module tree still has $ko" || fail "$ko is gone from the real tree"

# 2. bind loads vfio-pci and binds.
out=$("$vfioctl" bind $EDU 2>&1) && rc=0 || rc=$?
check_eq "bind $EDU loads vfio-pci and binds" 0 "$rc"
[[ $out == *"vfioctl: loaded kernel module vfio-pci"* ]] && pass "bind says: loaded kernel module vfio-pci" ||
	fail "bind does not name the module it loaded" "$out"
check_eq "$EDU driver (sysfs)" vfio-pci "$(lab_driver_of $EDU)"
check_eq "$EDU driver_override" vfio-pci "$(cat /sys/bus/pci/devices/$EDU/driver_override)"
[[ -d /sys/bus/pci/drivers/vfio-pci ]] && pass "vfio-pci is registered" || fail "no sys/bus/pci/drivers/vfio-pci"
json=$("$vfioctl" --json bind $EDU 2>/dev/null) || true
check_eq "bind again --json: already there, modules_loaded empty" "[]" \
	"$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["modules_loaded"]))')"

# 3. probe through type1 loads vfio_iommu_type1. vfio asks for it when it loads; taken
# out again (nothing uses it yet), it is the probe's to load.
if [[ -e /sys/module/vfio_iommu_type1 ]]; then
	check "vfio_iommu_type1 came with vfio: removed again (rmmod)" rmmod vfio_iommu_type1
fi
out=$("$vfioctl" probe --backend type1 $EDU 2>&1) && rc=0 || rc=$?
check_eq "probe --backend type1 $EDU passes" 0 "$rc"
[[ $out == *"vfioctl: loaded kernel module vfio_iommu_type1"* ]] &&
	pass "probe says: loaded kernel module vfio_iommu_type1" ||
	fail "probe does not name vfio_iommu_type1" "$out"
[[ -d /sys/module/vfio_iommu_type1 ]] && pass "vfio_iommu_type1 is loaded" || fail "no sys/module/vfio_iommu_type1"

# 4. A module this kernel does not have at all.
if [[ -e /dev/iommu ]] || modinfo iommufd >/dev/null 2>&1; then
	skip "kernel $kver has iommufd: the absent-module case needs one without"
else
	expect_fail "probe --backend iommufd (no iommufd in $kver)" \
		"vfioctl: probe: $EDU: cannot load kernel module iommufd: it is not in /lib/modules/$kver *" \
		"$vfioctl" probe --backend iommufd $EDU
fi

# 5. unbind restores.
check "unbind $EDU" "$vfioctl" unbind $EDU
check_eq "$EDU is back without a driver" - "$(lab_driver_of $EDU)"
check_eq "$EDU driver_override cleared" "(null)" "$(cat /sys/bus/pci/devices/$EDU/driver_override)"
check_eq "journal empty" 0 "$(find "$journal" -name '*.json' 2>/dev/null | wc -l)"

rm -rf "$tmp"
lab_done
