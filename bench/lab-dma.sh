#!/bin/bash
# topology: basic
# boot: own
#
# Benchmark (run in the lab: tests/vm/run bench/lab-dma.sh): DMA map+unmap throughput
# for 4 KiB and 2 MiB chunks through vfiod's API against a loop of the bare ioctls, on
# each backend, in the same boot and the same process (bench/dma-bench.c interleaves the
# two operation by operation, swaps their IOVA regions every other round, and takes the
# median of the per-round ratios). vfiod checks every request against its sorted table
# and the IOVA ranges before the kernel sees it; the target is at most 5% more time per
# map+unmap. The same harness timing the bare ioctls against themselves is printed for
# reference (it should be near 0). Prints the figures.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
bench=$(lab_bin bench/dma-bench)
export VFIOD_STATE_DIR=/run/vfiod-bench-state
EDU=0000:01:00.0
rounds=${VFIOD_BENCH_ROUNDS:-80}
limit=${VFIOD_BENCH_MAX_OVERHEAD:-5}

check "bind $EDU" "$vfioctl" bind $EDU
# field LINE KEY: the value of KEY=VALUE in one line of dma-bench's output.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
for b in type1 iommufd; do
	# CHUNK N: chunks per round, so that a round of 2 MiB pins stays short.
	for spec in "4096 128" "2097152 16"; do
		read -r chunk n <<<"$spec"
		out=$("$bench" $EDU $b "$chunk" "$n" "$rounds" 2>&1) && rc=0 || rc=$?
		# The bare ioctls against themselves: the harness's own bias, for reference.
		aa=$(DMA_BENCH_AA=1 "$bench" $EDU $b "$chunk" "$n" "$rounds" 2>&1) || rc=$?
		if ((rc != 0)); then
			fail "$b: dma-bench $chunk x $n (exit $rc)" "$out $aa"
			continue
		fi
		while read -r line; do
			echo "vfiod-bench: $line"
			pattern=$(field "$line" pattern)
			o=$(field "$line" overhead_pct)
			cal=$(field "$(grep "pattern=$pattern " <<<"$aa")" overhead_pct)
			text="$b $pattern $((chunk / 1024)) KiB: API $(field "$line" api_ns) ns vs ioctl $(field "$line" direct_ns) ns per map+unmap ($(field "$line" api_ops) vs $(field "$line" direct_ops) /s), overhead $o% (ioctl against itself: $cal%)"
			if awk -v o="$o" -v l="$limit" 'BEGIN { exit !(o <= l) }'; then
				pass "$text"
			else
				fail "$text, over the ${limit}% target"
			fi
		done <<<"$out"
	done
done
check "unbind $EDU" "$vfioctl" unbind $EDU
lab_done
