#!/bin/bash
# topology: basic debian-6.1 debian-6.12
# boot: own
#
# Boot-time assignment on the real kernel: `bind --persist` records the device, the
# installed udev rule decides at the device's "add" event, and the installed unit's
# ExecStart binds what is recorded.
#
# What the lab cannot show: a real reboot. The guest has no udevd and no systemd, and its
# drivers are built in. A boot is emulated on a live kernel instead: the device is
# removed and found again by a rescan, which the kernel announces exactly as at boot
# ("add" uevent, then driver probing); the rule file is read and applied the way udevd
# applies it (match keys, PROGRAM with %k, then the ATTR{} assignment); the unit's
# ExecStart line is run as written. Two cases:
#   B. the host driver is built in and binds during the rescan, before any rule can
#      run: the unit must take the device over;
#   A. the host driver comes after the "add" event (a module loaded by modalias): the
#      rule's driver_override must keep it off (staged as explained below, since the
#      lab's drivers are built in).
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
lab_vfio_modules
export VFIOD_STATE_DIR=/run/vfiod-lab-persist
journal=$VFIOD_STATE_DIR/journal
rules=$VFIOD_BUILD_DIR/dist/90-vfiod-assign.rules
unit=$VFIOD_BUILD_DIR/dist/vfiod-assign.service
NVME=0000:03:00.0 # nvme, built in
IGB=0000:02:00.0  # igb, never recorded
sysdev=/sys/bus/pci/devices

driver_of() {
	local l=$sysdev/$1/driver
	if [[ -e $l ]]; then basename "$(readlink -f "$l")"; else echo -; fi
}
override_of() { cat "$sysdev/$1/driver_override"; }
journal_count() { find "$journal" -name '*.json' 2>/dev/null | wc -l; }
rc_of() { "$@" >/dev/null 2>&1 && echo 0 || echo $?; }

# The installed files name the installed vfioctl; here the one under test stands in.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
installed=${exec_start%% *}
[[ $installed == */vfioctl ]] && pass "the unit's ExecStart runs vfioctl ($exec_start)" ||
	fail "the unit's ExecStart runs vfioctl" "$exec_start"
condition=$(sed -n 's/^ConditionPathExists=//p' "$unit")
# exec_start_rc OUT: the ExecStart line as written, output to OUT.
# shellcheck disable=SC2086 # systemd splits the line on spaces
exec_start_rc() { ${exec_start/#$installed/$vfioctl} >"$1" 2>&1; }

# udev_add DEVICE: one "add" event of DEVICE through the installed rule file, as udevd
# evaluates it. Any key this emulation does not know fails the check rather than being
# skipped.
udev_add() {
	local dev=$1 line rest key op val ok prog result=
	local -a assign
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		ok=1 assign=() rest=$line
		while [[ $rest =~ ^[[:space:],]*([A-Z_]+(\{[^\}]*\})?)(==|!=|=)\"([^\"]*)\"(.*)$ ]]; do
			key=${BASH_REMATCH[1]} op=${BASH_REMATCH[3]} val=${BASH_REMATCH[4]}
			rest=${BASH_REMATCH[5]}
			val=${val//%k/$dev}
			case "$key$op" in
			ACTION==) [[ $val == add ]] || ok=0 ;;
			SUBSYSTEM==) [[ $val == pci ]] || ok=0 ;;
			PROGRAM==)
				prog=${val/#$installed/$vfioctl}
				# shellcheck disable=SC2086 # udev splits PROGRAM on spaces
				# Its output is %c in the keys that follow.
				((ok)) && ! result=$($prog 2>/dev/null) && ok=0
				;;
			ATTR\{*\}=) assign+=("$key=$val") ;;
			*)
				fail "udev rule key $key$op is not emulated" "$line"
				ok=0
				;;
			esac
		done
		[[ -z ${rest//[[:space:]]/} ]] || fail "udev rule text not understood" "$rest"
		((ok)) || continue
		for a in "${assign[@]}"; do
			key=${a%%=*} key=${key#ATTR\{} key=${key%\}}
			val=${a#*=}
			echo "${val//%c/$result}" >"$sysdev/$dev/$key"
		done
	done <"$rules"
}

# kmsg_mark: a line in the kernel log, so that later checks read only what follows.
kmsg_mark() {
	mark="vfiod-lab persist mark $RANDOM$RANDOM"
	echo "$mark" >/dev/kmsg
}
since_mark() { dmesg | sed -n "/$mark/,\$p"; }
nvme_probed_since_mark() { since_mark | grep -c "nvme.*pci function $NVME" || true; }

# remove_rescan DEVICE: the device leaves and is found again.
remove_rescan() {
	echo 1 >"$sysdev/$1/remove"
	echo 1 >/sys/bus/pci/rescan
	for _ in $(seq 50); do [[ -e $sysdev/$1 ]] && return 0; sleep 0.1; done
	return 1
}

# /etc is the host's, read only: an overlay on the guest's tmpfs makes it writable for
# this boot, so vfioctl writes its real path, /etc/vfiod/assign.conf.
etc=/run/vfiod-lab-etc
mkdir -p $etc/upper $etc/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=$etc/upper,workdir=$etc/work /etc
cleanup() {
	umount /etc 2>/dev/null || true
	rm -rf $etc "$VFIOD_STATE_DIR"
}
trap cleanup EXIT

# --- 1. Recording ------------------------------------------------------------------------
check_eq "persisted with no assign.conf: exit 0" 0 "$(rc_of "$vfioctl" persisted)"
check_eq "persisted $NVME with no assign.conf: exit 1" 1 "$(rc_of "$vfioctl" persisted $NVME)"
check "bind --persist $NVME" "$vfioctl" bind --persist $NVME
check_eq "bound: $NVME driver" vfio-pci "$(driver_of $NVME)"
grep -qx "$NVME" /etc/vfiod/assign.conf && pass "/etc/vfiod/assign.conf lists $NVME" ||
	fail "/etc/vfiod/assign.conf lists $NVME" "$(cat /etc/vfiod/assign.conf 2>&1)"
[[ -e $condition ]] && pass "the unit's ConditionPathExists ($condition) now holds" ||
	fail "the unit's ConditionPathExists ($condition) now holds"
check_eq "persisted lists $NVME" "$NVME" "$("$vfioctl" persisted)"
check_eq "persisted $NVME: exit 0" 0 "$(rc_of "$vfioctl" persisted $NVME)"
check_eq "persisted $NVME prints its VFIO driver, for driver_override" vfio-pci \
	"$("$vfioctl" persisted $NVME)"
check_eq "persisted $IGB: exit 1" 1 "$(rc_of "$vfioctl" persisted $IGB)"
check_eq "persisted with a malformed address: exit 2" 2 "$(rc_of "$vfioctl" persisted ../x)"
check "unbind $NVME (the record stays)" "$vfioctl" unbind $NVME
check_eq "unbound: $NVME driver" nvme "$(driver_of $NVME)"
check_eq "persisted $NVME still: exit 0" 0 "$(rc_of "$vfioctl" persisted $NVME)"

# --- 2. Case B: the built-in host driver binds first; the unit takes the device over ------
kmsg_mark
remove_rescan $NVME && pass "B: $NVME found again by the rescan" || fail "B: $NVME found again"
check_eq "B: the built-in nvme bound it during the rescan" nvme "$(driver_of $NVME)"
check_eq "B: and the kernel log says so (the log check of case A can see a probe)" 1 \
	"$(nvme_probed_since_mark)"
udev_add $NVME
check_eq "B: the rule set driver_override all the same" vfio-pci "$(override_of $NVME)"
exec_start_rc "$VFIOD_STATE_DIR.out" && rc=0 || rc=$?
check_eq "B: the unit's ExecStart succeeds" 0 "$rc"
check_eq "B: $NVME is on vfio-pci" vfio-pci "$(driver_of $NVME)"
check_eq "B: the journal records it" 1 "$(journal_count)"
check "B: unbind --persist $NVME" "$vfioctl" unbind --persist $NVME
check_eq "B: $NVME back on nvme" nvme "$(driver_of $NVME)"
check_eq "B: driver_override cleared" "(null)" "$(override_of $NVME)"
check_eq "B: persisted $NVME after unbind --persist: exit 1" 1 "$(rc_of "$vfioctl" persisted $NVME)"
exec_start_rc "$VFIOD_STATE_DIR.out" && rc=0 || rc=$?
check_eq "B: ExecStart with nothing recorded succeeds" 0 "$rc"
check_eq "B: and leaves $NVME on nvme" nvme "$(driver_of $NVME)"
# --- 3. Case A: a host driver that comes after the rule never gets the device ----------
# PCI probes a new device whatever drivers_autoprobe says, so a driver that is built in
# cannot be held back until the rule has run. Staged instead: the device is on nvme, the
# "add" event goes through the rule, and the device is let go by nvme: from then on it
# is a device with the rule's override and no driver, as at boot before the module of
# its driver is loaded.
check "A: bind --persist $NVME again" "$vfioctl" bind --persist $NVME
check "A: unbind $NVME (the record stays)" "$vfioctl" unbind $NVME
udev_add $NVME
udev_add $IGB
check_eq "A: the rule set $NVME's driver_override" vfio-pci "$(override_of $NVME)"
check_eq "A: the rule left $IGB (not recorded) alone" "(null)" "$(override_of $IGB)"
echo $NVME >$sysdev/$NVME/driver/unbind
kmsg_mark
echo $NVME >/sys/bus/pci/drivers/nvme/bind 2>/dev/null && rc=0 || rc=1
check_eq "A: nvme cannot take $NVME even when told to bind it" 1 "$rc"
echo $NVME >/sys/bus/pci/drivers_probe # the driver's module "arrives": a probe
check_eq "A: $NVME came up on vfio-pci" vfio-pci "$(driver_of $NVME)"
check_eq "A: nvme never probed $NVME (kernel log)" 0 "$(nvme_probed_since_mark)"
exec_start_rc "$VFIOD_STATE_DIR.out" && rc=0 || rc=$?
check_eq "A: the unit's ExecStart succeeds" 0 "$rc"
grep -q "$NVME: already-bound" "$VFIOD_STATE_DIR.out" && pass "A: and finds $NVME already bound" ||
	fail "A: ExecStart finds $NVME already bound" "$(cat "$VFIOD_STATE_DIR.out")"
check "A: unbind --persist $NVME" "$vfioctl" unbind --persist $NVME
check_eq "A: $NVME back on nvme" nvme "$(driver_of $NVME)"
check_eq "A: $NVME driver_override cleared" "(null)" "$(override_of $NVME)"
check_eq "A: persisted $NVME after unbind --persist: exit 1" 1 "$(rc_of "$vfioctl" persisted $NVME)"
udev_add $NVME
check_eq "A: with nothing recorded the rule leaves $NVME alone" "(null)" "$(override_of $NVME)"

check_eq "journal empty at the end" 0 "$(journal_count)"
rm -f "$VFIOD_STATE_DIR.out"

lab_done
