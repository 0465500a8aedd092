#!/bin/bash
# topology: basic debian-6.1 debian-6.12
# boot: own
#
# Both VFIO backends on the real kernel, with QEMU's edu device (01:00.0, alone in
# its group) as the DMA engine:
#   1. vfioctl probe on type1 and on iommufd: DMA RAM->device->RAM returns the data,
#      one MSI per DMA, a DMA to an unmapped IOVA writes nothing and the kernel logs a
#      DMAR fault naming the device (read here from dmesg, not from vfioctl);
#      overlapping, misaligned, out-of-range and never-mapped requests are refused with
#      the right errno and leave nothing mapped (the same range maps again); on the igb
#      PF, MSI-X vectors are enabled, resized and disabled;
#   2. a process running as uid 65534 given only the fds uses the device (vfioctl probe
#      itself, then an unprivileged QEMU realizing it through iommufd), with and
#      without the memlock limit raised;
#   3. live migration: show tells it from the driver a bind gives (vfio-pci: no), probe
#      asks the kernel on the opened edu, igb PF, igb VF and nvme (vfio-pci answers
#      ENOTTY; no DMA logging; no IOMMU dirty tracking through iommufd).
# On a kernel without iommufd (/dev/iommu), the iommufd half is skipped, saying so.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
lab_vfio_modules
# The host's root is read-only here; the journal lives on the guest's tmpfs.
export VFIOD_STATE_DIR=/run/vfiod-lab-vfio
tmp=$(mktemp -d)
EDU=0000:01:00.0
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
# The kernel prints at most a few IOMMU faults per 5 s: give each run a clean window.
FAULT_WINDOW=5.5

# judge FILE BACKEND [--unprivileged]: the probe's JSON report, item by item.
judge() {
	python3 -S - "$@" <<'EOF'
import json, sys
path, backend = sys.argv[1], sys.argv[2]
unpriv = "--unprivileged" in sys.argv
try:
    d = json.load(open(path))
except Exception as e:
    print(f"FAIL {backend}: the probe printed no JSON document ({e})")
    sys.exit(0)
def verdict(ok, text, extra=None):
    print(("PASS " if ok else "FAIL ") + f"{backend}{' (uid 65534)' if unpriv else ''}: " + text)
    if not ok and extra is not None:
        print(f"  got: {extra}")
checks = {c["id"]: c for c in d.get("checks", [])}
def ok(i):
    return checks.get(i, {}).get("ok") is True
verdict(d.get("backend") == backend, f"opened through {backend}", d.get("backend"))
verdict(d.get("passed") is True and d.get("checks_failed") == 0,
        f"every self-test check passed ({d.get('checks_run')} run)",
        [c for c in d.get("checks", []) if not c["ok"]])
if unpriv:
    o = d.get("info", {}).get("opened", {})
    verdict(o.get("fds_inherited") is True, "the device was opened from inherited fds 3 and 4", o)
verdict(ok("edu.id") and ok("edu.liveness"), "edu identifies itself and passes liveness")
verdict(ok("dma.round_trip") and ok("dma.memfd_backing"),
        "DMA RAM->EDU->RAM returns the 4 KiB (user memory and memfd mappings)",
        [checks.get(i) for i in ("dma.round_trip", "dma.memfd_backing")])
dma = d.get("dma", {})
verdict(dma.get("msi_per_dma") == [1, 1, 1],
        "the MSI eventfd fired exactly once per DMA raising an interrupt", dma.get("msi_per_dma"))
verdict(dma.get("fault_untouched") is True and ok("dma.fault.untouched"),
        "a DMA to the unmapped IOVA 0x300000 wrote nothing")
verdict(ok("irq.msi") and ok("irq.intx"), "MSI and INTx raised by the device reach their eventfds")
want = {
    "input.overlap": "EEXIST", "input.unaligned_iova": "EINVAL",
    "input.unaligned_size": "EINVAL", "input.outside_ranges": "ERANGE",
    "input.unmap_never_mapped": "ENOENT", "input.unmap_split": "EINVAL",
}
got = {c["case"]: c for c in d.get("bad_input", [])}
for case, err in want.items():
    c = got.get(case, {})
    verdict(c.get("errno") == err and bool(c.get("message")),
            f"bad input {case.split('.', 1)[1]}: -{err} with a message ({c.get('message')})", c)
verdict(got.get("input.no_leak", {}).get("errno") == "0" and ok("input.table_empty"),
        "after the refusals the same range maps again: nothing leaked")
EOF
}

# migration FILE LABEL BACKEND: the kernel's live-migration answer in a probe's JSON
# report. None of the lab's devices has a migration driver: vfio-pci answers
# VFIO_DEVICE_FEATURE_MIGRATION and DMA logging with ENOTTY, and the emulated VT-d
# offers iommufd no dirty tracking (type1 is not asked).
migration() {
	python3 -S - "$@" <<'EOF'
import json, sys
path, label, backend = sys.argv[1:4]
try:
    m = json.load(open(path))["info"]["live_migration"]
except Exception as e:
    print(f"FAIL {label}: the probe reported no live_migration ({e})")
    sys.exit(0)
def v(ok, text):
    print(("PASS " if ok else "FAIL ") + f"{label}: " + text)
    if not ok:
        print(f"  got: {m}")
v(m.get("capable") is False and m.get("source") == "kernel",
  f"live_migration.capable is false, from the kernel: {m.get('why')}")
v("VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY" in (m.get("why") or "") and m.get("states") == []
  and m.get("driver") == "vfio-pci", "the reason is vfio-pci's ENOTTY, with no migration states")
v(m.get("dma_logging") is False, "the device logs no DMA (VFIO_DEVICE_FEATURE_DMA_LOGGING_START)")
want = False if backend == "iommufd" else None
v(m.get("iommu_dirty_tracking") is want,
  f"IOMMU dirty tracking: {want} ({'IOMMU_GET_HW_INFO' if want is False else 'type1 is not asked'})")
EOF
}

# backend_of FILE: the backend a probe's JSON report says it used.
backend_of() {
	python3 -S -c 'import json,sys; print(json.load(open(sys.argv[1])).get("backend"))' "$1" 2>/dev/null || true
}

# dmesg_since N PATTERN: whether the kernel log past line N has a line with PATTERN.
dmesg_since() {
	dmesg | tail -n +"$(($1 + 1))" | grep -F -- "$2"
}

# --- 0. Binding is not probe's job ---------------------------------------------------
out=$("$vfioctl" probe $EDU 2>&1) && rc=0 || rc=$?
check_eq "probe of a device not on vfio-pci exits 1" 1 "$rc"
[[ $out == *"is not bound to vfio-pci"*"vfioctl bind $EDU"* ]] &&
	pass "and says to bind it first" || fail "unbound device message" "$out"
# Before any bind: the VFIO driver a bind would give it decides, and it is vfio-pci.
out=$("$vfioctl" show $EDU --json | python3 -S -c 'import json,sys; m = json.load(sys.stdin)["live_migration"]; print(m["capable"], m["source"], m["driver"], m["why"], sep="|")') || true
[[ $out == "False|driver|vfio-pci|a bind gives it vfio-pci, which implements no migration"* ]] &&
	pass "show of the unbound edu: live_migration false from the driver a bind gives it (${out##*|})" ||
	fail "show of the unbound edu: live_migration" "$out"
out=$("$vfioctl" show $EDU 2>&1 | grep '^  migration ' || true)
[[ $out == "  migration    no: a bind gives it vfio-pci"* ]] &&
	pass "show's text names it: ${out#  migration    }" || fail "show's text has no migration line" "$out"
check "bind $EDU" "$vfioctl" bind $EDU

out=$("$vfioctl" probe $EDU --json 2>/dev/null | python3 -S -c 'import json,sys; print(json.load(sys.stdin)["backend"])') || true
backends=(type1)
if [[ -c /dev/iommu ]]; then
	backends+=(iommufd)
	check_eq "without --backend, iommufd is chosen (/dev/iommu and the cdev exist)" iommufd "$out"
else
	check_eq "without --backend, type1 is chosen (no /dev/iommu)" type1 "$out"
	skip "the iommufd backend's probes, memlock and unprivileged QEMU checks: skipped, kernel $(uname -r) has no iommufd (no /dev/iommu)"
fi

# --- 1. DMA, interrupts and bad input, on each backend ----------------------------------
for b in "${backends[@]}"; do
	sleep "$FAULT_WINDOW"
	mark=$(dmesg | wc -l)
	rc=0
	"$vfioctl" probe $EDU --backend $b --json >"$tmp/$b.json" 2>"$tmp/$b.err" || rc=$?
	check_eq "$b: vfioctl probe exits 0" 0 "$rc"
	[[ $rc == 0 ]] || cat "$tmp/$b.err" "$tmp/$b.json"
	lab_verdicts "judge $b" judge "$tmp/$b.json" $b
	lab_verdicts "migration $b" migration "$tmp/$b.json" "edu $b" $b
	line=$(dmesg_since "$mark" "Request device [01:00.0] fault addr 0x300000" | head -n1 || true)
	[[ $line == *DMAR* ]] && pass "$b: dmesg logs the DMAR fault naming 01:00.0: ${line#*] }" ||
		fail "$b: no DMAR fault naming [01:00.0] at 0x300000 in dmesg" "$(dmesg | tail -n 20)"
done

# --- 1b. A device vfioctl knows nothing special about: the igb PF and its MSI-X ---------
IGB=0000:02:00.0
check "bind $IGB" "$vfioctl" bind $IGB
rc=0
"$vfioctl" probe $IGB --json >"$tmp/igb.json" 2>"$tmp/igb.err" || rc=$?
check_eq "igb: vfioctl probe exits 0" 0 "$rc"
[[ $rc == 0 ]] || cat "$tmp/igb.err" "$tmp/igb.json"
lab_verdicts "judge igb" python3 -S - "$tmp/igb.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
checks = {c["id"]: c for c in d["checks"]}
def v(ok, text, got=None):
    print(("PASS " if ok else "FAIL ") + "igb: " + text)
    if not ok and got is not None:
        print(f"  got: {got}")
irqs = {i["index"]: i for i in d["info"]["irq_info"]}
v(irqs.get("MSI-X", {}).get("count", 0) > 1, f"has MSI-X vectors ({irqs.get('MSI-X')})", irqs)
for i in ("irq.msix_enable", "irq.msix_resize", "irq.msix_disable"):
    c = checks.get(i, {})
    v(c.get("ok") is True, f"{i}: {c.get('detail')}", c)
v(all(c["ok"] for c in d["checks"]) and d["passed"], f"every check passed ({d['checks_run']})",
  [c for c in d["checks"] if not c["ok"]])
PY
lab_verdicts "migration igb" migration "$tmp/igb.json" "igb PF" "$(backend_of "$tmp/igb.json")"
check "unbind $IGB" "$vfioctl" unbind $IGB

# --- 1c. Live migration of an igb VF carved onto vfio-pci, and of the nvme ----------------
check "carve one igb VF onto vfio-pci" "$vfioctl" sriov $IGB --numvfs 1
VF=$(basename "$(readlink -f /sys/bus/pci/devices/$IGB/virtfn0)")
rc=0
"$vfioctl" probe "$VF" --json >"$tmp/vf.json" 2>"$tmp/vf.err" || rc=$?
check_eq "igb VF $VF: vfioctl probe exits 0" 0 "$rc"
[[ $rc == 0 ]] || cat "$tmp/vf.err"
lab_verdicts "migration vf" migration "$tmp/vf.json" "igb VF" "$(backend_of "$tmp/vf.json")"
check "remove the VF" "$vfioctl" sriov $IGB --numvfs 0
NVME=0000:03:00.0
check "bind $NVME" "$vfioctl" bind $NVME
rc=0
"$vfioctl" probe $NVME --json >"$tmp/nvme.json" 2>"$tmp/nvme.err" || rc=$?
check_eq "nvme: vfioctl probe exits 0" 0 "$rc"
[[ $rc == 0 ]] || cat "$tmp/nvme.err"
lab_verdicts "migration nvme" migration "$tmp/nvme.json" "nvme" "$(backend_of "$tmp/nvme.json")"
check "unbind $NVME" "$vfioctl" unbind $NVME

# --- 2. An unprivileged process given only the fds ---------------------------------------
for b in "${backends[@]}"; do
	out=$("${NOBODY[@]}" "$vfioctl" probe $EDU --backend $b 2>&1) && rc=0 || rc=$?
	[[ $rc != 0 && $out == *"Permission denied"* ]] &&
		pass "$b: uid 65534 cannot open the device by itself" ||
		fail "$b: uid 65534 opened the device without being given it (exit $rc)" "$out"
	sleep "$FAULT_WINDOW"
	rc=0
	"$vfioctl" probe $EDU --backend $b -- "${NOBODY[@]}" \
		"$vfioctl" probe $EDU --backend $b --fds 3,4 --json >"$tmp/u-$b.json" 2>"$tmp/u-$b.err" ||
		rc=$?
	check_eq "$b: probe as uid 65534 with inherited fds exits 0" 0 "$rc"
	[[ $rc == 0 ]] || cat "$tmp/u-$b.err"
	lab_verdicts "judge $b unprivileged" judge "$tmp/u-$b.json" $b --unprivileged
done

# Pinned pages count against RLIMIT_MEMLOCK of an unprivileged user; vfiod names it.
if [[ -c /dev/iommu ]]; then
out=$("$vfioctl" probe $EDU --backend iommufd --memlock 4K -- "${NOBODY[@]}" \
	"$vfioctl" probe $EDU --backend iommufd --fds 3,4 2>&1) && rc=0 || rc=$?
check_eq "a 4 KiB memlock limit makes the unprivileged probe fail (exit 1)" 1 "$rc"
line=$(grep -m1 "exceed RLIMIT_MEMLOCK" <<<"$out" || true)
[[ $line == *"the limit is 4 KiB"*"needs at least 8 KiB"* ]] &&
	pass "and the error names the limit and the need: ${line#*: }" ||
	fail "the memlock error does not name the limit" "$out"

# An unprivileged QEMU realizes the device through iommufd with fds 3 and 4.
qemu=(qemu-system-x86_64 -machine q35 -accel tcg -m 64 -S -display none -nodefaults
	-monitor stdio -object iommufd,id=i0,fd=3 -device vfio-pci,iommufd=i0,fd=4,id=hostdev0)
out=$(printf 'info pci\nquit\n' | timeout 120 "$vfioctl" probe $EDU --backend iommufd -- \
	"${NOBODY[@]}" "${qemu[@]}" 2>&1) && rc=0 || rc=$?
[[ $rc != 0 && $out == *"Cannot allocate memory"* ]] &&
	pass "unprivileged QEMU without the memlock limit raised fails to pin its RAM (exit $rc)" ||
	fail "unprivileged QEMU with the default memlock limit (exit $rc)" "$out"
line=$(grep -m1 "note:.*RLIMIT_MEMLOCK" <<<"$out" || true)
[[ -n $line ]] && pass "and vfioctl's note names the limit: ${line#*note: }" ||
	fail "vfioctl named no memlock limit" "$out"
out=$(printf 'info pci\nquit\n' | timeout 120 "$vfioctl" probe $EDU --backend iommufd \
	--memlock 256M -- "${NOBODY[@]}" "${qemu[@]}" 2>&1) && rc=0 || rc=$?
# The device's block of 'info pci' runs from its class line to its id line.
line=$(tr -d '\r' <<<"$out" | sed -n '/PCI device 1234:11e8/,/ id "/p' | tr -s ' \n' ' ' || true)
[[ $rc == 0 && $line == *'id "hostdev0"'* ]] &&
	pass "unprivileged QEMU with --memlock 256M realizes the device: 'info pci' shows:$line" ||
	fail "unprivileged QEMU with --memlock 256M (exit $rc)" "$out"
[[ $out == *"per process: IOMMU_OPTION_RLIMIT_MODE is set"* ]] &&
	pass "the iommufd handed over charges pins per process (IOMMU_OPTION_RLIMIT_MODE)" ||
	fail "IOMMU_OPTION_RLIMIT_MODE was not set on the handed-over iommufd" "$out"
fi

check "unbind $EDU" "$vfioctl" unbind $EDU
rm -rf "$tmp"
lab_done
