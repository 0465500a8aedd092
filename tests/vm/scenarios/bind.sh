#!/bin/bash
# topology: basic debian-6.1 debian-6.12
# boot: own
#
# The binding engine on the real kernel: round trips, whole-group binds, host-use
# refusals, a crash sweep and bad input. Every outcome is read back from sysfs (the
# driver link and driver_override) or from the kernel's VFIO_GROUP_GET_STATUS, never
# from vfioctl's own report.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
crashy=$(lab_bin cli/vfioctl-testhooks)
lab_vfio_modules
truth=$VFIOD_LAB_CHECKOUT/tests/vm/helpers/kernel_truth.py
# The host's root is read-only here; the journal lives on the guest's tmpfs.
export VFIOD_STATE_DIR=/run/vfiod-lab-state
journal=$VFIOD_STATE_DIR/journal
tmp=$(mktemp -d)

EDU=0000:01:00.0       # no host driver
IGB=0000:02:00.0       # igb
NVME=0000:03:00.0      # nvme
BR_E1000=0000:08:01.0  # e1000, behind the PCIe-to-PCI bridge 00:06.0
BR_EDU=0000:08:02.0    # edu, same group
ROOTPORT=0000:00:02.0  # pcieport

override_of() { cat "/sys/bus/pci/devices/$1/driver_override"; }
netdev_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n1; }
journal_count() { find "$journal" -name '*.json' 2>/dev/null | wc -l; }

# expect_state TEXT ADDRESS DRIVER OVERRIDE
expect_state() {
	check_eq "$1: $2 driver" "$3" "$(lab_driver_of "$2")"
	check_eq "$1: $2 driver_override" "$4" "$(override_of "$2")"
}

# --- 1. Round trips: edu (no driver), igb (its interface comes back), nvme -------------
igb_if=$(netdev_of $IGB)
[[ -n $igb_if ]] && pass "igb has interface $igb_if at boot" || fail "igb has no interface at boot"
for dev in $EDU $IGB $NVME; do
	orig=$(lab_driver_of $dev)
	if "$vfioctl" bind $dev >"$tmp/out" 2>&1; then
		pass "bind $dev ($orig)"
	else
		fail "bind $dev ($orig)" "$(cat "$tmp/out")"
	fi
	expect_state "bound" $dev vfio-pci vfio-pci
	# Idempotent: a second bind changes nothing and says so.
	before=$(cat "$journal"/*.json | md5sum)
	check "bind $dev again succeeds" "$vfioctl" bind $dev
	check_eq "bind $dev again leaves the journal alone" "$before" "$(cat "$journal"/*.json | md5sum)"
	if "$vfioctl" bind $dev | grep -q "already-bound"; then
		pass "bind $dev again reports already-bound"
	else
		fail "bind $dev again reports already-bound"
	fi
	check "unbind $dev" "$vfioctl" unbind $dev
	expect_state "restored" $dev "$orig" "(null)"
done
check_eq "igb interface back after restore" "$igb_if" "$(netdev_of $IGB)"
check_eq "journal empty after round trips" 0 "$(journal_count)"

# --- 2. The PCIe-to-PCI bridge group: one member alone is refused -----------------------
out=$("$vfioctl" bind $BR_EDU 2>&1) && rc=0 || rc=$?
check_eq "bind $BR_EDU without --group refused (exit 1)" 1 "$rc"
[[ $out == *"also holds $BR_E1000 (e1000"*"--group"* ]] &&
	pass "the refusal names $BR_E1000 and --group" || fail "the refusal names $BR_E1000" "$out"
expect_state "after refusal" $BR_E1000 e1000 "(null)"
check_eq "nothing journaled after the refusal" 0 "$(journal_count)"
check "bind $BR_EDU --group" "$vfioctl" bind $BR_EDU --group
expect_state "group bound" $BR_E1000 vfio-pci vfio-pci
expect_state "group bound" $BR_EDU vfio-pci vfio-pci
check_eq "bridge 00:06.0 left alone" - "$(lab_driver_of 0000:00:06.0)"
check_eq "VFIO_GROUP_GET_STATUS says the group of $BR_EDU is viable" viable \
	"$(python3 -S "$truth" vfio-viable "$BR_EDU" 2>&1)"
check "unbind both" "$vfioctl" unbind $BR_E1000 $BR_EDU
expect_state "group restored" $BR_E1000 e1000 "(null)"
expect_state "group restored" $BR_EDU - "(null)"

# --- 3. The host's use is respected ------------------------------------------------------
ip addr add 192.0.2.1/24 dev "$igb_if"
ip link set "$igb_if" up
out=$("$vfioctl" bind $IGB 2>&1) && rc=0 || rc=$?
check_eq "bind igb with 192.0.2.1/24 up refused (exit 1)" 1 "$rc"
[[ $out == *"interface $igb_if is up with 192.0.2.1/24"*"--force"* ]] &&
	pass "the refusal names $igb_if and 192.0.2.1/24" || fail "the refusal names the interface" "$out"
expect_state "after refusal" $IGB igb "(null)"
check "bind igb --force takes it anyway" "$vfioctl" bind $IGB --force
expect_state "forced" $IGB vfio-pci vfio-pci
check "unbind igb" "$vfioctl" unbind $IGB
expect_state "restored" $IGB igb "(null)"
igb_if=$(netdev_of $IGB)
[[ -n $igb_if ]] && ip link set "$igb_if" down

# --- 4. Crash sweep: abort after every step of a bind, then restore --all ----------------
# sweep LABEL ORIGINALS -- BIND ARGS: ORIGINALS is "address=driver ...".
steps_total=0 lost_total=0
sweep() {
	local label=$1 originals=$2 n=1 rc lost=0 pair addr want
	shift 3
	while ((n < 50)); do
		rc=0
		VFIOD_TEST_CRASH_AFTER=$n "$crashy" bind "$@" >"$tmp/sweep" 2>&1 || rc=$?
		if ((rc == 0)); then
			break # ran to the end before step n: every step has been swept
		fi
		if ((rc != 134)); then
			fail "$label: step $n: expected an abort, got exit $rc" "$(cat "$tmp/sweep")"
		fi
		if ! "$vfioctl" restore --all >"$tmp/restore" 2>&1; then
			fail "$label: restore --all after step $n" "$(cat "$tmp/restore")"
		fi
		for pair in $originals; do
			addr=${pair%%=*} want=${pair#*=}
			if [[ $(lab_driver_of "$addr") != "$want" || $(override_of "$addr") != "(null)" ]]; then
				lost=$((lost + 1))
				fail "$label: after a crash at step $n and restore --all, $addr is on $(lab_driver_of "$addr") (override $(override_of "$addr")), expected $want"
			fi
		done
		n=$((n + 1))
	done
	# The complete bind is undone by restore --all as well.
	"$vfioctl" restore --all >/dev/null 2>&1 || fail "$label: final restore --all"
	steps_total=$((steps_total + n - 1))
	lost_total=$((lost_total + lost))
	check_eq "$label: journal empty after the sweep" 0 "$(journal_count)"
	pass "$label: swept $((n - 1)) steps, $lost devices lost"
}
sweep "crash sweep igb" "$IGB=igb" -- $IGB
sweep "crash sweep bridge group" "$BR_E1000=e1000 $BR_EDU=-" -- $BR_EDU --group
sweep "crash sweep nvme" "$NVME=nvme" -- $NVME
check_eq "crash sweep: devices lost over $steps_total steps" 0 "$lost_total"
echo "vfiod-lab: crash sweep: $steps_total steps swept, $lost_total devices lost"

# --- 5. Bad input ------------------------------------------------------------------------
out=$("$vfioctl" bind 0000:7f:1f.7 2>&1) && rc=0 || rc=$?
check_eq "bind of an unknown device exits 2" 2 "$rc"
[[ $out == *"no such PCI device"* ]] && pass "and says so" || fail "unknown device message" "$out"
out=$("$vfioctl" bind $ROOTPORT 2>&1) && rc=0 || rc=$?
check_eq "bind of a bridge exits 1" 1 "$rc"
[[ $out == *"is a bridge (PCI bridge, class 0604"* ]] && pass "and says it is a bridge" || fail "bridge message" "$out"
check_eq "root port still on pcieport" pcieport "$(lab_driver_of $ROOTPORT)"
out=$("$vfioctl" bind '../../etc' 2>&1) && rc=0 || rc=$?
check_eq "bind ../../etc exits 2" 2 "$rc"

# A device that vanishes in the middle of a bind (removed through sysfs after the
# override is set), then comes back on a rescan.
out=$(VFIOD_TEST_REMOVE_AFTER=2 "$crashy" bind $IGB 2>&1) && rc=0 || rc=$?
check_eq "bind of a device removed mid-operation fails (exit 1)" 1 "$rc"
[[ $out == *"gone"* ]] && pass "and says the device is gone" || fail "vanished device message" "$out"
echo 1 >/sys/bus/pci/rescan
sleep 1
[[ -e /sys/bus/pci/devices/$IGB ]] && pass "igb back after rescan" || fail "igb back after rescan"
check "restore --all after the vanished device" "$vfioctl" restore --all
expect_state "after rescan" $IGB igb "(null)"
check_eq "journal empty after the vanished device" 0 "$(journal_count)"

# A driver_override write that the kernel refuses: a read-only file mounted over it.
ro=$tmp/ro-override
printf '(null)\n' >"$ro"
mount --bind "$ro" /sys/bus/pci/devices/$EDU/driver_override
mount -o remount,ro,bind /sys/bus/pci/devices/$EDU/driver_override
out=$("$vfioctl" bind $EDU 2>&1) && rc=0 || rc=$?
umount /sys/bus/pci/devices/$EDU/driver_override
check_eq "bind with a failing driver_override write exits 1" 1 "$rc"
[[ $out == *"driver_override"*"Read-only file system"* ]] && pass "and names the write and the error" ||
	fail "failing override message" "$out"
expect_state "after the failed write" $EDU - "(null)"
check_eq "journal empty after the failed write" 0 "$(journal_count)"

# --- 6. Reset ----------------------------------------------------------------------------
# The methods show reports are the kernel's reset_method file (null where the kernel
# offers none and hides the file).
for dev in $EDU $IGB $NVME $BR_E1000 $BR_EDU; do
	f=/sys/bus/pci/devices/$dev/reset_method
	want=$([[ -e $f ]] && cat "$f" || echo None)
	got=$("$vfioctl" --json show $dev | python3 -S -c 'import json, sys; print(json.load(sys.stdin)["reset_method"])')
	check_eq "show $dev: reset_method as sysfs has it ($want)" "$want" "$got"
done

# The evidence of a reset is in the device, not in config space (which the kernel saves
# and restores around every reset): QEMU's NVMe controller clears its Controller
# Configuration register (BAR0 + 0x14) on a function-level reset. The register is
# reached through sysfs resource0, with memory decoding on (and runtime suspend off,
# where the kernel has it) so that BAR0 answers.
nvme_cc() {
	setpci -s $NVME COMMAND=0x0002:0x0002
	python3 -S - "/sys/bus/pci/devices/$NVME/resource0" "$@" <<-'EOF'
		import mmap, os, struct, sys
		fd = os.open(sys.argv[1], os.O_RDWR | os.O_SYNC)
		m = mmap.mmap(fd, 4096)
		if len(sys.argv) > 2:
		    m[0x14:0x18] = struct.pack("<I", int(sys.argv[2], 16))
		print("%08x" % struct.unpack("<I", m[0x14:0x18])[0])
	EOF
}
check "bind $NVME for the reset checks" "$vfioctl" bind $NVME
pm=/sys/bus/pci/devices/$NVME/power/control # absent on a kernel without runtime PM
pm_was=$([[ -e $pm ]] && cat "$pm" || true)
[[ -e $pm ]] && echo on >"$pm"
check_eq "nvme CC holds a value written through BAR0" 00460000 "$(nvme_cc 00460000)"
check "bind $NVME again, without --reset" "$vfioctl" bind $NVME
check_eq "without --reset the controller keeps its CC" 00460000 "$(nvme_cc)"
out=$("$vfioctl" bind --reset $NVME 2>&1) && rc=0 || rc=$?
check_eq "bind --reset $NVME succeeds" 0 "$rc"
check_eq "bind --reset $NVME: the controller was reset (CC cleared)" 00000000 "$(nvme_cc)"
nvme_cc 00460000 >/dev/null
check "unbind --reset $NVME" "$vfioctl" unbind --reset $NVME
expect_state "unbind --reset" $NVME nvme "(null)"
[[ -e $pm ]] && echo "$pm_was" >"$pm"
check_eq "journal empty after the reset checks" 0 "$(journal_count)"

# A bus reset that would reach a device the host uses cannot be staged here: the kernel
# offers the bus method only to a function alone on its bus (the edu devices behind
# root ports), and the device it would reach is then the function itself. The refusal
# is proven on a fixture tree (tests/unit/test-bind-scope.c). A device without any
# reset method is refused before anything changes:
out=$("$vfioctl" bind --reset --group $BR_EDU 2>&1) && rc=0 || rc=$?
if [[ -e /sys/bus/pci/devices/$BR_EDU/reset_method ]]; then
	skip "$BR_EDU has reset methods here ($(cat /sys/bus/pci/devices/$BR_EDU/reset_method))"
else
	check_eq "bind --reset of $BR_EDU (no reset method) exits 1" 1 "$rc"
	[[ $out == *"$BR_EDU: the kernel offers no reset method for it"* ]] &&
		pass "and says the kernel offers no reset method" || fail "no-reset message" "$out"
	expect_state "after the refused reset" $BR_EDU - "(null)"
	expect_state "after the refused reset" $BR_E1000 e1000 "(null)"
fi

rm -rf "$tmp"
lab_done
