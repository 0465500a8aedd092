# shellcheck shell=bash
# Helpers for lab scenarios (tests/vm/scenarios/*.sh). Source it with
#   source "$VFIOD_LAB_LIB"
# Scenarios run as root inside the guest, chrooted into the host's root, with
# these variables set by guest-run:
#   VFIOD_BUILD_DIR          the build directory holding the binaries under test
#   VFIOD_LAB_TOPOLOGY       name of the booted topology (basic, noiommu, ...)
#   VFIOD_LAB_TOPOLOGY_FILE  its description, including the expected truth
#   VFIOD_LAB_CHECKOUT       the source checkout
#   VFIOD_LAB_SCENARIO       this scenario's name
#   VFIOD_LAB_CHECKS         file collecting every check line of this boot
#
# Every check produces exactly one framed line, on stdout and in
# $VFIOD_LAB_CHECKS:
#   [vfiod-lab] PASS <scenario>/<topology>: <text>
#   [vfiod-lab] FAIL <scenario>/<topology>: <text>
#   [vfiod-lab] SKIP <scenario>/<topology>: <text>
# The host-side runner counts these lines; a scenario that exits nonzero is a
# failure of its own even when all its checks passed.

set -euo pipefail

: "${VFIOD_LAB_SCENARIO:=$(basename "$0" .sh)}"
: "${VFIOD_LAB_TOPOLOGY:=unknown}"
: "${VFIOD_LAB_CHECKS:=/dev/null}"
: "${VFIOD_BUILD_DIR:=}"

LAB_FAILURES=0

# _lab_line VERDICT TEXT...: print and record one framed line.
_lab_line() {
	local verdict=$1 text
	shift
	# One check, one line: fold any newline in the text.
	text=$(printf '%s' "$*" | tr '\n\r\t' '   ')
	local line="[vfiod-lab] $verdict $VFIOD_LAB_SCENARIO/$VFIOD_LAB_TOPOLOGY: $text"
	printf '%s\n' "$line"
	printf '%s\n' "$line" >>"$VFIOD_LAB_CHECKS"
}

pass() { _lab_line PASS "$@"; }
skip() { _lab_line SKIP "$@"; }

# fail TEXT [DETAIL]: record a failure. DETAIL (possibly multi-line) is printed
# indented under the framed line, for the logs only.
fail() {
	LAB_FAILURES=$((LAB_FAILURES + 1))
	_lab_line FAIL "$1"
	if (($# > 1)) && [[ -n $2 ]]; then
		printf '%s\n' "$2" | sed 's/^/    | /'
	fi
}

# check TEXT CMD [ARGS...]: pass when CMD exits 0, fail with its output if not.
check() {
	local text=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	if ((rc == 0)); then
		pass "$text"
	else
		fail "$text (exit $rc: $*)" "$(printf '%s\n' "$out" | tail -n 20)"
	fi
}

# check_eq TEXT EXPECTED ACTUAL
check_eq() {
	if [[ $2 == "$3" ]]; then
		pass "$1"
	else
		fail "$1: expected '$2', got '$3'"
	fi
}

# lab_verdicts WHAT CMD [ARGS...]: run a helper program that judges many
# things at once and turn its verdict lines into checks. The helper prints
# "PASS text", "FAIL text" or "SKIP text" lines; any other line is a detail
# of the preceding verdict and is only echoed, indented. A helper that exits
# nonzero without printing a FAIL line is itself a failure (WHAT names it).
lab_verdicts() {
	local what=$1 out rc=0 line verdict rest seen_fail=0
	shift
	out=$("$@" 2>&1) || rc=$?
	while IFS= read -r line; do
		verdict=${line%% *} rest=${line#* }
		case $verdict in
		PASS) pass "$rest" ;;
		SKIP) skip "$rest" ;;
		FAIL)
			fail "$rest"
			seen_fail=1
			;;
		*) printf '    | %s\n' "$line" ;;
		esac
	done <<<"$out"
	if ((rc != 0 && seen_fail == 0)); then
		fail "$what: helper exited with status $rc"
	fi
}

# lab_bin RELATIVE_PATH: absolute path of a built program, or fail the
# scenario with a clear message when the build directory lacks it. Meant for
# `prog=$(lab_bin cli/vfioctl)`: the failure goes to stderr (stdout is the
# captured path) and the failed assignment ends the scenario under set -e.
lab_bin() {
	local path=$VFIOD_BUILD_DIR/$1
	if [[ -z $VFIOD_BUILD_DIR || ! -x $path ]]; then
		fail "built program $1 is missing (looked for '$path'; build first or pass --build-dir)" >&2
		exit 1
	fi
	printf '%s\n' "$path"
}

# lab_leases_recorded DIR: the leases vfiod's log in DIR (the runtime directory's
# leases/) still holds, one record a line: the "+" lines whose id no "-" line ended.
lab_leases_recorded() {
	[[ -f $1/log ]] || return 0
	awk '/^\+/ { if (match($0, /"id":[0-9]+/)) live[substr($0, RSTART + 5, RLENGTH - 5)] = substr($0, 2) }
		/^-[0-9]+$/ { delete live[substr($0, 2)] }
		END { for (id in live) print live[id] }' "$1/log"
}
export -f lab_leases_recorded # for polls in a child bash -c

# lab_driver_of ADDRESS: the driver a PCI device is bound to, "-" for none.
lab_driver_of() {
	local l=/sys/bus/pci/devices/$1/driver
	if [[ -e $l ]]; then basename "$(readlink -f "$l")"; else echo -; fi
}

# lab_wait_socket PATH...: waits up to 10 s for each UNIX socket to appear.
lab_wait_socket() {
	local p
	for p; do
		for _ in $(seq 100); do
			[[ -S $p ]] && break
			sleep 0.1
		done
		[[ -S $p ]] || return 1
	done
}

# lab_bind ADDRESS DRIVER: bind a PCI device to DRIVER with plain sysfs writes
# (driver_override, unbind from the current driver, drivers_probe).
lab_bind() {
	local dev=/sys/bus/pci/devices/$1
	printf '%s' "$2" >"$dev/driver_override"
	if [[ -e $dev/driver ]]; then
		printf '%s' "$1" >"$dev/driver/unbind"
	fi
	printf '%s' "$1" >/sys/bus/pci/drivers_probe
	[[ $(basename "$(readlink -f "$dev/driver")") == "$2" ]]
}

# lab_unbind ADDRESS: give the device back to its default driver (if any).
lab_unbind() {
	local dev=/sys/bus/pci/devices/$1
	printf '\n' >"$dev/driver_override"
	if [[ -e $dev/driver ]]; then
		printf '%s' "$1" >"$dev/driver/unbind"
	fi
	printf '%s' "$1" >/sys/bus/pci/drivers_probe 2>/dev/null || true
}

# lab_vfio_modules: make sure vfio-pci and the type1 IOMMU backend are there
# for a scenario that binds or opens devices. The lab's own kernel builds
# them in; a stock kernel has them as modules, which nothing loads at boot.
lab_vfio_modules() {
	# A kernel without module support has whatever it has built in.
	[[ -e /proc/modules ]] || return 0
	[[ -d /sys/bus/pci/drivers/vfio-pci && -d /sys/module/vfio_iommu_type1 ]] && return 0
	local out
	if out=$(modprobe -a vfio-pci vfio_iommu_type1 2>&1); then
		echo "lab: loaded vfio-pci and vfio_iommu_type1 (modules of kernel $(uname -r))"
	else
		fail "modprobe -a vfio-pci vfio_iommu_type1 (kernel $(uname -r))" "$out"
		exit 1
	fi
}

# wait_until SECONDS CMD...: polls CMD every 20 ms until it succeeds; prints the
# milliseconds that took, or fails after SECONDS.
wait_until() {
	local limit_ms=$(($1 * 1000)) start now
	shift
	start=$(date +%s%N)
	while :; do
		now=$(date +%s%N)
		if "$@"; then
			echo $(((now - start) / 1000000))
			return 0
		fi
		(((now - start) / 1000000 > limit_ms)) && return 1
		sleep 0.02
	done
}

# lab_has_iommufd WHAT: whether the running kernel has iommufd (/dev/iommu).
# When it has not, prints a SKIP line saying WHAT is skipped and why.
lab_has_iommufd() {
	[[ -c /dev/iommu ]] && return 0
	skip "$1: skipped, kernel $(uname -r) has no iommufd (no /dev/iommu)"
	return 1
}

# lab_share_devices: the PCI addresses of the lab's own virtio-9p devices
# (00:10.0 and up: the host root, the results share, maybe the checkout),
# one per line. They are real devices in the guest's tables; scenarios that
# compare against a fixed expectation should leave them out.
lab_share_devices() {
	local dev child
	for dev in /sys/bus/pci/devices/*; do
		for child in "$dev"/virtio*; do
			[[ -L $child/driver && $(basename "$(readlink -f "$child/driver")") == 9pnet_virtio ]] &&
				basename "$dev"
		done
	done
	return 0
}

# lab_qmp SOCKET COMMAND-LINE: one HMP command over QEMU's QMP socket, printing its
# output; "quit" makes QEMU quit.
lab_qmp() {
	python3 -S - "$@" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
def call(cmd, args=None):
    f.write(json.dumps({"execute": cmd, **({"arguments": args} if args else {})}) + "\n")
    f.flush()
    while True:
        m = json.loads(f.readline())
        if "return" in m or "error" in m:
            return m
json.loads(f.readline())
call("qmp_capabilities")
if sys.argv[2] == "quit":
    call("quit")
else:
    print(call("human-monitor-command", {"command-line": sys.argv[2]}).get("return", ""))
EOF
}

# lab_done: end the scenario; the exit status reflects the failures seen.
lab_done() {
	if ((LAB_FAILURES > 0)); then
		echo "$VFIOD_LAB_SCENARIO: $LAB_FAILURES check(s) failed"
		exit 1
	fi
	exit 0
}
