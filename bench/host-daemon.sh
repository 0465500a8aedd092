#!/bin/bash
# Benchmark: the daemon's Acquire+Release against the raw SCM_RIGHTS ping-pong, on this
# machine's own CPU (no emulator), with the same bench/daemon-bench and the same target
# as bench/lab-daemon.sh: the protocol's share (Acquire+Release p50 minus the kernel's
# part) at most twice the raw p50, with 1 and with 32 clients. The kernel's part is what
# the raw server's round trip gains when it makes the daemon's opens itself (mode
# raw-kernel of daemon-bench), so that it is paid where the daemon pays it: in a server
# process, and queued behind the other clients' work.
#
# No IOMMU is needed: vfiod and the bench run with --root on a tree made by
# tests/fixtures/mkfixture from bench/host-daemon.txt (five functions on vfio-pci), to
# which this script adds the device nodes they would have: /dev/iommu and one
# /dev/vfio/devices/vfioN per function, made with mknod as memory devices (null, zero,
# full, random, urandom: opening one is about the cheapest open there is), with the
# sys/dev/char links and vfio-dev directories that name them. The "kernel" part is
# therefore not VFIO's here (the lab measures that); the rest of the path is vfiod's
# own: policy, lease log, holder watch, the cdev identity check and the count of the
# node's open files. proc/ below the root is the host's /proc, bind-mounted, since the
# daemon checks the caller's process there.
#
# Needs root (mknod, mount). usage: bench/host-daemon.sh [--build DIR] [--rounds N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=$src/build
rounds=4000
limit=${VFIOD_BENCH_MAX_RATIO:-2}
while (($#)); do
	case $1 in
	--build) build=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	*)
		echo "usage: $0 [--build DIR] [--rounds N]" >&2
		exit 2
		;;
	esac
done
((EUID == 0)) || {
	echo "host-daemon.sh: needs root (mknod, mount --bind)" >&2
	exit 2
}

tmp=$(mktemp -d)
root=$tmp/root daemon=
cleanup() {
	[[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	mountpoint -q "$root/proc" && umount "$root/proc"
	rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

"$src/tests/fixtures/mkfixture" "$here/host-daemon.txt" "$root"
devices=(0000:01:00.0 0000:02:00.0 0000:03:00.0 0000:04:00.0 0000:05:00.0)
minors=(3 5 7 8 9)
mkdir -p "$root/dev/vfio/devices"
mknod "$root/dev/iommu" c 1 3
for i in "${!devices[@]}"; do
	dir=$(readlink -f "$root/sys/bus/pci/devices/${devices[i]}")
	mkdir -p "$dir/vfio-dev/vfio$i"
	echo "1:${minors[i]}" >"$dir/vfio-dev/vfio$i/dev"
	mknod "$root/dev/vfio/devices/vfio$i" c 1 "${minors[i]}"
	ln -s "../../${dir#"$root/sys/"}/vfio-dev/vfio$i" "$root/sys/dev/char/1:${minors[i]}"
done
rm -rf "$root/proc"
mkdir "$root/proc"
mount --bind /proc "$root/proc"

quoted=$(printf '"%s",' "${devices[@]}")
cat >"$tmp/policy.json" <<EOF
{"rules": [{"users": ["root"], "operations": ["acquire"], "devices": [${quoted%,}],
            "on_release": "pool"}]}
EOF
# One CPU for the daemon and the bench, as in the lab: every mode pays the same for a
# context switch.
taskset -c 0 "$build/daemon/vfiod" --root "$root" --socket "$tmp/io.vfiod" \
	--admin-socket "$tmp/io.vfiod.admin" --runtime-dir "$tmp/rt" --state-dir "$tmp/state" \
	--policy "$tmp/policy.json" --request-rate 0 2>"$tmp/vfiod.log" &
daemon=$!
for ((i = 0; i < 100; i++)); do
	[[ -S $tmp/io.vfiod ]] && break
	sleep 0.1
done

# shellcheck source=bench/daemon-figures.sh
source "$here/daemon-figures.sh"
status=0
for clients in 1 32; do
	n=$(((rounds + clients - 1) / clients))
	out=$(taskset -c 0 "$build/bench/daemon-bench" --root "$root" "$tmp/io.vfiod" "$clients" \
		"$n" "${devices[@]}")
	if daemon_bench_figures "$out" "$clients" "$limit" "stand-in nodes"; then
		echo "PASS $figures_text"
	else
		echo "FAIL $figures_text, over the ${limit}x target"
		status=1
	fi
done
exit $status
