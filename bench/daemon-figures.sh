# shellcheck shell=bash
# The figures of one bench/daemon-bench run, for bench/lab-daemon.sh and
# bench/host-daemon.sh (sourced): one definition of the protocol's share and its target.
#
# daemon_bench_figures OUT CLIENTS LIMIT KERNEL_NOTE
#   Sets figures_text to a line naming the figures of OUT (daemon-bench's output for
#   CLIENTS clients) and returns 0 when the protocol's share, Acquire+Release p50 minus
#   the kernel's part, is at most LIMIT times the raw p50. The kernel's part is what the
#   raw server's round trip gains when it makes the daemon's opens itself (raw-kernel
#   minus raw): paid where the daemon pays it. KERNEL_NOTE, if not empty, goes before
#   the opens timed on their own ("stand-in nodes", say).

# figures_field LINE KEY: the value of KEY=VALUE in one line of daemon-bench's output.
figures_field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

daemon_bench_figures() {
	local out=$1 clients=$2 limit=$3 note=${4:+$4; } d r rk k a kernel share ratio
	d=$(grep '^mode=daemon ' <<<"$out") r=$(grep '^mode=raw ' <<<"$out")
	rk=$(grep '^mode=raw-kernel ' <<<"$out") k=$(grep '^mode=kernel ' <<<"$out")
	a=$(grep '^mode=daemon-acquire ' <<<"$out")
	# (A here-string, not process substitution: the lab's guest has no /dev/fd.)
	read -r kernel share ratio <<<"$(awk -v d="$(figures_field "$d" p50_us)" \
		-v r="$(figures_field "$r" p50_us)" -v rk="$(figures_field "$rk" p50_us)" \
		'BEGIN { k = rk - r; printf "%.1f %.1f %.2f\n", k, d - k, (d - k) / r }')"
	# shellcheck disable=SC2034 # read by the scripts that source this
	figures_text="$clients client(s): Acquire+Release p50 $(figures_field "$d" p50_us) us p99 $(figures_field "$d" p99_us) us (Acquire p50 $(figures_field "$a" p50_us) us); raw ping-pong p50 $(figures_field "$r" p50_us) us p99 $(figures_field "$r" p99_us) us, with the kernel's opens $(figures_field "$rk" p50_us) us: kernel ${kernel} us (${note}opened directly $(figures_field "$k" p50_us) us); protocol share $share us = ${ratio}x raw"
	[[ $ratio =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v x="$ratio" -v l="$limit" 'BEGIN { exit !(x <= l) }'
}
