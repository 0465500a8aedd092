#!/bin/bash
# topology: basic
# boot: own
#
# Benchmark (run in the lab: tests/vm/run bench/lab-daemon.sh): Acquire+Release round
# trips through vfiod (iommufd backend, one device per lease) with 1 and 32 concurrent
# clients, against a raw SCM_RIGHTS ping-pong of the same two exchanges over the same
# kind of socket (its server a process of its own, as vfiod is), and against the kernel's
# work for a lease (opening /dev/iommu and the device cdev, and closing them), made by
# that raw server and, for comparison, directly. All in one bench/daemon-bench run per
# client count.
#
# Target: the protocol's share, Acquire+Release p50 minus the kernel's part, at most
# twice the raw p50. The kernel's part is what the raw server's round trip gains when it
# makes the daemon's opens itself (daemon-bench's raw-kernel mode): paid where the daemon
# pays it, in a server process after a switch and, with 32 clients, queued behind the
# other clients' work, which an open timed on its own (printed too) is not. Client i uses device i mod 6: with 32 clients up to 6 leases are in
# flight at once. One device per IOMMU group: the bridge group's e1000 (08:01.0) is
# bound with its group mate but not leased, since a group has one DMA owner and the
# daemon refuses a device whose group mate is leased. The daemon runs with --request-rate 0 (the per-uid limit of 1,000
# calls a second would otherwise throttle 32 clients) and a policy that returns devices
# to the pool on release, so that a lease does not rebind the device each time.
#
# The daemon and the bench run on the guest's first CPU (taskset): under TCG, wake-ups
# across vCPUs are slow and erratic (the guest even reports RCU stalls when the host is
# busy), which buried the figures in noise; on one CPU every mode pays the same for a
# context switch.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
vfiod=$(lab_bin daemon/vfiod)
bench=$(lab_bin bench/daemon-bench)
state=/run/vfiod-bench-state
run=/run/vfiod-bench
export VFIOD_STATE_DIR=$state
# Round trips per client: about 400 in all for each client count.
rounds=${VFIOD_BENCH_ROUNDS:-400}
limit=${VFIOD_BENCH_MAX_RATIO:-2}
devices=(0000:01:00.0 0000:02:00.0 0000:03:00.0 0000:06:00.0 0000:07:00.0
	0000:08:02.0)

check "bind the bench devices to vfio-pci" "$vfioctl" bind --group "${devices[@]}"
mkdir -p "$run"
quoted=$(printf '"%s",' "${devices[@]}")
cat >"$run/policy.json" <<EOF
{"rules": [{"users": ["root"], "operations": ["acquire"], "devices": [${quoted%,}],
            "on_release": "pool"}]}
EOF
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
"${pin[@]}" "$vfiod" --socket "$run/io.vfiod" --admin-socket "$run/io.vfiod.admin" \
	--runtime-dir "$run/rt" --state-dir "$state" --policy "$run/policy.json" \
	--request-rate 0 2>"$run/vfiod.log" &
daemon=$!
# A failed step must not leave the daemon behind: the guest waits for it.
trap 'kill "$daemon" 2>/dev/null || true' EXIT
for ((i = 0; i < 100; i++)); do
	[[ -S $run/io.vfiod ]] && break
	sleep 0.1
done

# shellcheck source=bench/daemon-figures.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon-figures.sh"
for clients in 1 32; do
	n=$(((rounds + clients - 1) / clients))
	((n >= 8)) || n=8
	out=$("${pin[@]}" "$bench" "$run/io.vfiod" "$clients" "$n" "${devices[@]}" 2>&1) && rc=0 || rc=$?
	if ((rc != 0)); then
		fail "$clients client(s): daemon-bench exited $rc" "$out
$(tail -n 20 "$run/vfiod.log")"
		continue
	fi
	printf 'vfiod-bench: %s\n' "$out"
	if daemon_bench_figures "$out" "$clients" "$limit" ""; then
		pass "$figures_text"
	else
		fail "$figures_text, over the ${limit}x target"
	fi
done

kill -TERM "$daemon"
wait "$daemon" && rc=0 || rc=$?
check_eq "vfiod exits 0 on SIGTERM" 0 "$rc"
left=$(lab_leases_recorded "$run/rt/leases" | wc -l)
check_eq "no lease left recorded" 0 "$left"
check "unbind the bench devices (and the e1000 bound with its group)" "$vfioctl" unbind "${devices[@]}" 0000:08:01.0
lab_done
