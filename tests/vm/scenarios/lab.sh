#!/bin/bash
# topology: basic noiommu nointremap passthrough none debian-6.1 debian-6.12
#
# Sanity of the lab itself, before any project code is judged: the guest is
# the lab guest (not the host), and the kernel offers what the other
# scenarios rely on.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

check "running in the lab guest (kernel command line has the lab console)" \
	grep -q 'console=ttyS0' /proc/cmdline
check "the host root is read-only in the guest" \
	bash -c '! touch /usr/.vfiod-lab-write-test 2>/dev/null'
check "/tmp is writable" touch /tmp/.vfiod-lab-write-test
check "the build directory is visible ($VFIOD_BUILD_DIR)" test -d "$VFIOD_BUILD_DIR"
if [[ -e /proc/modules && -d /lib/modules/$(uname -r)/kernel ]]; then
	# A stock kernel: vfio is a module, found in the kernel's own module
	# tree, and no vfio module may be loaded before a scenario asks.
	kver=$(uname -r)
	check "the module tree of $kver is at /lib/modules/$kver (modinfo vfio-pci)" \
		modinfo -k "$kver" vfio-pci
	at_start=$(awk '$1 ~ /^vfio/ { print $1 }' "$VFIOD_LAB_RESULTS/modules-at-start" | paste -sd' ')
	check_eq "no vfio module was loaded when the scenarios started" "" "$at_start"
else
	check "vfio is built in (/dev/vfio/vfio)" test -c /dev/vfio/vfio
fi
if lab_has_iommufd "iommufd is there (/dev/iommu)"; then
	pass "iommufd is there (/dev/iommu)"
fi
check "python3 from the host runs" python3 -c 'import json, fcntl'
# The host root and the results share at least; a third when the checkout
# lives below /tmp.
shares=$(lab_share_devices | paste -sd' ')
check "the lab's 9p devices are found at 00:10.0 and up ($shares)" \
	test "${shares:0:25}" = "0000:00:10.0 0000:00:11.0"

lab_done
