#!/bin/bash
# tests/vm/run boots a guest again only when the guest kernel's own log says
# its timer interrupt was lost and nothing the guest ran had failed; any
# other hang or failure stays a failure. A stand-in for QEMU plays the
# guest: it writes what tests/vm/guest-run and the console would hold.
#
# Usage: test-vm-run-stall.sh CHECKOUT BUILD_DIR
set -euo pipefail

checkout=$1
build_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failures=0
pass() { echo "ok - $*"; }
fail() {
	echo "not ok - $*"
	failures=$((failures + 1))
}

mkdir -p "$tmp/bin"
: >"$tmp/bzImage"
: >"$tmp/initrd"
cat >"$tmp/scenario.sh" <<'EOF'
#!/bin/bash
# topology: basic
EOF

# The stand-in reads its script, one word per boot, from $tmp/plan:
#   pass   the scenario passes and the guest powers off
#   stall  one check passed, then the kernel reports a lost timer wakeup
#          and the guest hangs until the time limit
#   fail   as stall, but a check failed before the hang
#   hang   the guest hangs with nothing in its console
cat >"$tmp/bin/qemu-system-x86_64" <<'EOF'
#!/bin/bash
set -eu
state=${0%/bin/*}
share= console=
prev=
for arg in "$@"; do
	case $prev in
	-fsdev)
		if [[ $arg == local,id=fs-results,* ]]; then
			share=${arg#*,path=}
			share=${share%%,security_model=*}
			share=${share//,,/,}
		fi
		;;
	-serial) console=${arg#file:} ;;
	esac
	prev=$arg
done
boot=$(($(cat "$state/boots" 2>/dev/null || echo 0) + 1))
echo "$boot" >"$state/boots"
step=$(sed -n "${boot}p" "$state/plan")
echo basic >"$share/started"
: >"$console"
case $step in
pass)
	echo "[vfiod-lab] PASS scenario/basic: the step" >"$share/checks"
	echo "scenario 0" >"$share/scenarios"
	echo 0 >"$share/status"
	exit 0
	;;
stall | fail)
	echo "[vfiod-lab] PASS scenario/basic: the step" >"$share/checks"
	[[ $step == fail ]] && echo "[vfiod-lab] FAIL scenario/basic: another step" >>"$share/checks"
	cat >>"$console" <<'LOG'
[  104.291404] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[  104.314000] rcu: rcu_preempt kthread timer wakeup didn't happen for 5251 jiffies! g5089 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x402
[  104.315008] rcu: 	Possible timer handling issue on cpu=0 timer-softirq=1038
LOG
	;;
esac
exec sleep 60
EOF
chmod +x "$tmp/bin/qemu-system-x86_64"

# run_lab PLAN...: runs tests/vm/run against the stand-in; sets $out, $rc.
run_lab() {
	printf '%s\n' "$@" >"$tmp/plan"
	rm -f "$tmp/boots"
	rc=0
	out=$(PATH="$tmp/bin:$PATH" VFIOD_LAB_KERNEL="$tmp/bzImage" VFIOD_LAB_INITRD="$tmp/initrd" \
		TMPDIR="$tmp" VFIOD_LAB_KEEP=0 \
		"$checkout/tests/vm/run" --no-setup --build-dir "$build_dir" --topology basic \
		--timeout 2 "$tmp/scenario.sh" 2>&1) || rc=$?
	boots=$(cat "$tmp/boots" 2>/dev/null || echo 0)
}

run_lab stall pass
if ((rc == 0 && boots == 2)) && grep -q "stalled in the guest kernel's timers" <<<"$out" &&
	grep -q "booted again after the guest kernel's timer stalled" <<<"$out"; then
	pass "a lost timer wakeup with no failed check boots again, and says so"
else
	fail "a lost timer wakeup with no failed check boots again (rc $rc, $boots boots)"
	printf '%s\n' "$out" | sed 's/^/    | /'
fi

run_lab stall stall
if ((rc == 1 && boots == 2)); then
	pass "a second stall fails the run"
else
	fail "a second stall fails the run (rc $rc, $boots boots)"
	printf '%s\n' "$out" | sed 's/^/    | /'
fi

run_lab fail pass
if ((rc == 1 && boots == 1)) && grep -q "1 check(s) failed" <<<"$out"; then
	pass "a stall after a failed check is not retried"
else
	fail "a stall after a failed check is not retried (rc $rc, $boots boots)"
	printf '%s\n' "$out" | sed 's/^/    | /'
fi

run_lab hang pass
if ((rc == 1 && boots == 1)) && grep -q "timed out after 2s" <<<"$out"; then
	pass "a hang the guest kernel does not explain is not retried"
else
	fail "a hang the guest kernel does not explain is not retried (rc $rc, $boots boots)"
	printf '%s\n' "$out" | sed 's/^/    | /'
fi

((failures == 0))
