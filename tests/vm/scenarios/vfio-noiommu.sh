#!/bin/bash
# topology: noiommu
# boot: own
#
# vfio's no-IOMMU mode: no IOMMU, vfio.enable_unsafe_noiommu_mode=1. Binding edu to
# vfio-pci gives it /dev/vfio/noiommu-N. vfioctl probe must refuse it unless told
# --noiommu, then open it through the legacy group path, report it unsafe, and never
# attempt a DMA mapping (the kernel would not isolate anything).
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
export VFIOD_STATE_DIR=/run/vfiod-lab-vfio
tmp=$(mktemp -d)
EDU=0000:01:00.0

check "bind $EDU" "$vfioctl" bind $EDU
group=$(basename "$(readlink /sys/bus/pci/devices/$EDU/iommu_group)")
[[ -c /dev/vfio/noiommu-$group ]] && pass "the kernel made /dev/vfio/noiommu-$group" ||
	fail "no /dev/vfio/noiommu-$group after the bind" "$(ls -l /dev/vfio)"

out=$("$vfioctl" probe $EDU 2>&1) && rc=0 || rc=$?
check_eq "probe without --noiommu exits 1" 1 "$rc"
[[ $out == *"no-IOMMU group"*"--noiommu"* ]] && pass "and explains why and what to pass" ||
	fail "the refusal does not explain no-IOMMU mode" "$out"
out=$("$vfioctl" probe $EDU --backend iommufd --noiommu 2>&1) && rc=0 || rc=$?
check_eq "probe --backend iommufd --noiommu exits 1 (iommufd has no no-IOMMU path here)" 1 "$rc"

rc=0
"$vfioctl" probe $EDU --noiommu --json >"$tmp/probe.json" 2>"$tmp/probe.err" || rc=$?
check_eq "probe --noiommu exits 0" 0 "$rc"
[[ $rc == 0 ]] || cat "$tmp/probe.err" "$tmp/probe.json"
grep -q "warning:.*no-IOMMU mode" "$tmp/probe.err" && pass "a loud warning on stderr: $(head -n1 "$tmp/probe.err")" ||
	fail "no warning on stderr" "$(cat "$tmp/probe.err")"
lab_verdicts "judge noiommu" python3 -S - "$tmp/probe.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
checks = {c["id"]: c for c in d["checks"]}
def v(ok, text, got=None):
    print(("PASS " if ok else "FAIL ") + text)
    if not ok and got is not None:
        print(f"  got: {got}")
v(d["backend"] == "noiommu", "opened through the legacy group path in no-IOMMU mode", d["backend"])
v(d["unsafe"] is True, "reported unsafe")
v(any("no-IOMMU" in w for w in d["warnings"]), "the JSON warnings say no-IOMMU", d["warnings"])
v("dma" not in d and "bad_input" not in d and "iova_ranges" not in d["info"],
  "no DMA mapping was attempted (no DMA section, no IOVA ranges)")
v(checks.get("dma.skipped", {}).get("ok") is True, "the DMA test was skipped, by design")
c = checks.get("dma.noiommu_refused", {})
v(c.get("ok") is True, f"a DMA map request is refused before the kernel: {c.get('detail')}", c)
v(checks.get("irq.msi", {}).get("ok") is True and checks.get("irq.intx", {}).get("ok") is True,
  "MSI and INTx still reach their eventfds")
v(d["passed"] is True, f"every check passed ({d['checks_run']})",
  [c for c in d["checks"] if not c["ok"]])
PY
line=$(dmesg | grep -m1 "taint for vfio-noiommu" || true)
[[ -n $line ]] && pass "the kernel tainted itself for the no-IOMMU group: ${line#*] }" ||
	fail "no no-IOMMU taint in dmesg" "$(dmesg | grep -i vfio)"

check "unbind $EDU" "$vfioctl" unbind $EDU
rm -rf "$tmp"
lab_done
