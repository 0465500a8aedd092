#!/bin/bash
# topology: basic noiommu nointremap passthrough none debian-6.1 debian-6.12
#
# `vfioctl audit` on the real kernel of each topology:
#   - the whole-host audit gives exactly the expected findings, each as
#     "SEVERITY CHECK-ID SUBJECT [DETAIL]", and exits 1; with --fail-on
#     critical it exits 1 only where a finding is critical;
#   - audits of assignment plans (--devices, --config) give exactly theirs;
#   - a snapshot taken here, extracted and audited offline (from /tmp: the
#     guest's root is read-only) gives the same findings, checks and warnings
#     as the live audit;
#   - a truncated snapshot, or one with a file removed, exits 2 with a message;
#   - the JUnit and SARIF outputs pass the same validation as in the unit
#     tests (junitparser, jsonschema);
#   - --probe on the edu 01:00.0 (basic, noiommu, none): the IOMMU's fault in the
#     kernel log and the device restored, or, without an IOMMU, a critical finding
#     and nothing sent or bound; a probe it cannot run is refused (exit 2).
# The lab's own 9p shares (00:10.0 and up) are plumbing, not topology: their
# findings are left out. Group numbers are read from sysfs ("group-of:ADDR").
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
lab_vfio_modules
formats=$VFIOD_LAB_CHECKOUT/tests/unit/test-audit-formats.py
tmp=$(mktemp -d)
results=${VFIOD_LAB_RESULTS:-$tmp}
topo=$VFIOD_LAB_TOPOLOGY

# Expected findings of the whole-host audit. Every topology has q35's ICH9
# functions: LPC (a bridge, not audited), SATA and SMBus, conventional PCI in
# one group without resets.
ich9="medium group.shared group-of:0000:00:1f.0
medium acs.multifunction 0000:00:1f.2
medium acs.multifunction 0000:00:1f.3
medium reset.capability 0000:00:1f.2
medium reset.capability 0000:00:1f.3"
declare -A expect
# basic adds the switch's downstream ports without ACS (one finding per port
# and bit) and conventional PCI behind the PCIe-to-PCI bridge.
expect[basic]="info irq.posted host
$ich9
high acs.path 0000:05:00.0 RR
medium acs.path 0000:05:00.0 SV
medium acs.path 0000:05:00.0 CR
medium acs.path 0000:05:00.0 UF
high acs.path 0000:05:01.0 RR
medium acs.path 0000:05:01.0 SV
medium acs.path 0000:05:01.0 CR
medium acs.path 0000:05:01.0 UF
high pci.behind-bridge 0000:08:01.0
high pci.behind-bridge 0000:08:02.0
medium group.shared group-of:0000:08:01.0
medium reset.capability 0000:08:02.0
low reset.capability 0000:08:01.0"
# Debian's stock kernels under the same devices: the same findings.
expect[debian-6.1]=${expect[basic]}
expect[debian-6.12]=${expect[basic]}
expect[nointremap]="high irq.remapping host
info irq.posted host
$ich9"
expect[passthrough]="medium iommu.translating host
medium cmdline.hazard iommu.passthrough=1
info irq.posted host
$ich9"
# Without an IOMMU the isolation checks do not apply; resets still matter.
noiommu_resets="medium reset.capability 0000:00:1f.2
medium reset.capability 0000:00:1f.3"
expect[noiommu]="critical iommu.present host
critical vfio.noiommu host
critical cmdline.hazard vfio.enable_unsafe_noiommu_mode=1
$noiommu_resets"
expect[none]="critical iommu.present host
$noiommu_resets"

# Plans: the devices a configuration would assign, and what their audit says.
# An edu alone behind an ACS root port: only the host-wide facts remain.
host_only=$(printf '%s\n' "${expect[$topo]}" | grep -E ' host$| (iommu|cmdline)\.| vfio\.' || true)
declare -A plan_devices plan_expect
plan_devices[edu]=0000:01:00.0
plan_expect[edu]=$host_only
if [[ $topo == basic || $topo == debian-* ]]; then
	# The edu behind the PCIe-to-PCI bridge: it shares the bridge's requester
	# ID and its group with the e1000, which the host's e1000 driver holds.
	plan_devices[bridged]=0000:08:02.0
	plan_expect[bridged]="$host_only
high pci.behind-bridge 0000:08:02.0
medium group.shared group-of:0000:08:01.0
medium group.viable group-of:0000:08:01.0
medium reset.capability 0000:08:02.0"
fi

# findings FILE: one sorted line per finding of an audit's JSON, group
# subjects written as group-of:FIRST-MEMBER (bridges with a secondary bus
# left out), the lab's shares left out.
findings() {
	python3 -S - "$1" <<'EOF'
import json, os, re, sys
doc = json.load(open(sys.argv[1]))
def lab_share(a):
    return re.match(r"0000:00:1[0-7]\.", a) is not None
out = []
for f in doc["findings"]:
    subject = f["subject"]
    if subject.startswith("group "):
        members = sorted(os.listdir("/sys/kernel/iommu_groups/%s/devices" % subject.split()[1]))
        members = [m for m in members if not os.path.exists("/sys/bus/pci/devices/%s/subordinate_bus_number" % m)] or members
        subject = "group-of:" + members[0]
    if lab_share(subject) or (f["devices"] and all(lab_share(d) for d in f["devices"])):
        continue
    out.append(" ".join(x for x in (f["severity"], f["id"], subject, f["detail"]) if x))
print("\n".join(sorted(out)))
EOF
}

# audit_case LABEL WANT-EXIT EXPECTED-FINDINGS ARGS...: run one audit as JSON.
audit_case() {
	local label=$1 want_rc=$2 want=$3 out rc=0 got
	shift 3
	out=$tmp/$label.json
	"$vfioctl" audit --json "$@" >"$out" 2>"$tmp/$label.err" || rc=$?
	check_eq "$label: exit status" "$want_rc" "$rc"
	got=$(findings "$out")
	want=$(printf '%s\n' "$want" | grep -v '^$' | sort)
	if [[ $got == "$want" ]]; then
		pass "$label: exactly the expected findings ($(printf '%s\n' "$want" | grep -c .))"
	else
		# No process substitution: the guest has no /dev/fd.
		printf '%s\n' "$want" >"$tmp/want"
		printf '%s\n' "$got" >"$tmp/got"
		fail "$label: findings differ from the expected ones" \
			"$(diff "$tmp/want" "$tmp/got" | grep '^[<>]' |
				sed 's/^</missing:   /; s/^>/unexpected:/')"
	fi
}

audit_case "whole host" 1 "${expect[$topo]}"
cp "$tmp/whole host.json" "$results/audit-live.json" 2>/dev/null || true
rc=0
"$vfioctl" audit --fail-on critical >/dev/null 2>&1 || rc=$?
want=0
grep -q '^critical' <<<"${expect[$topo]}" && want=1
check_eq "whole host, --fail-on critical: exit status" "$want" "$rc"

for plan in "${!plan_devices[@]}"; do
	want_rc=0
	grep -qE '^(medium|high|critical)' <<<"${plan_expect[$plan]}" && want_rc=1
	audit_case "plan $plan (--devices)" "$want_rc" "${plan_expect[$plan]}" --devices "${plan_devices[$plan]}"
	printf '# plan %s\n%s  # the device\n' "$plan" "${plan_devices[$plan]}" >"$tmp/assign.conf"
	audit_case "plan $plan (--config)" "$want_rc" "${plan_expect[$plan]}" --config "$tmp/assign.conf"
done
rc=0
"$vfioctl" audit --devices 0000:0f:1f.7 >/dev/null 2>"$tmp/err" || rc=$?
check_eq "a plan naming a device that does not exist: exit status" 2 "$rc"

# --- Snapshot here, audit offline ------------------------------------------
snap=$tmp/snapshot.tar
if "$vfioctl" snapshot "$snap" >"$tmp/snap.out" 2>&1; then
	pass "snapshot written ($(cat "$tmp/snap.out"))"
else
	fail "vfioctl snapshot" "$(cat "$tmp/snap.out")"
fi
rc=0
"$vfioctl" audit --json --root "$snap" >"$tmp/offline.json" 2>"$tmp/offline.err" || rc=$?
check_eq "offline audit of the snapshot: exit status" 1 "$rc"
cp "$tmp/offline.json" "$results/audit-offline.json" 2>/dev/null || true
same=$(python3 -S - "$tmp/whole host.json" "$tmp/offline.json" <<'EOF'
import json, sys
live, offline = (json.load(open(p)) for p in sys.argv[1:3])
for key in ("findings", "checks", "summary", "scope", "warnings", "verdict"):
    if live[key] != offline[key]:
        print("differs in %s" % key)
        break
else:
    print("same" if offline["source"]["snapshot"] and live["source"]["live"] else "sources wrong")
EOF
)
check_eq "offline audit of the snapshot = live audit" same "$same"
mkdir -p "$tmp/extracted"
tar -xf "$snap" -C "$tmp/extracted"
rc=0
"$vfioctl" audit --json --root "$tmp/extracted" >"$tmp/extracted.json" 2>&1 || rc=$?
check_eq "audit of the extracted snapshot directory = live audit" \
	"$(findings "$tmp/whole host.json")" "$(findings "$tmp/extracted.json")"

# A snapshot cut short (at a block boundary, where tar sees a clean end, and
# in the middle of a member), and one that lost a file: refused with exit 2.
size=$(stat -c %s "$snap")
half=$((size / 2))
for cut in $((half - half % 512)) $((half + 700)); do
	head -c "$cut" "$snap" >"$tmp/cut.tar"
	rc=0
	"$vfioctl" audit --root "$tmp/cut.tar" >/dev/null 2>"$tmp/err" || rc=$?
	check_eq "snapshot cut at byte $cut of $size: exit status" 2 "$rc"
	if grep -q "truncated" "$tmp/err"; then
		pass "snapshot cut at byte $cut: the message says so ($(head -n 1 "$tmp/err"))"
	else
		fail "snapshot cut at byte $cut: the message says so" "$(cat "$tmp/err")"
	fi
done
victim=$(find "$tmp/extracted/sys/devices" -name config | head -n 1)
rm -f "$victim"
rc=0
"$vfioctl" audit --root "$tmp/extracted" >/dev/null 2>"$tmp/err" || rc=$?
check_eq "snapshot missing a file: exit status" 2 "$rc"
if grep -q "${victim#"$tmp"/extracted/}: missing" "$tmp/err"; then
	pass "snapshot missing a file: the message names it"
else
	fail "snapshot missing a file: the message names it" "$(cat "$tmp/err")"
fi

# --- JUnit and SARIF from the real kernel ---------------------------------------
"$vfioctl" audit --junit >"$tmp/audit.xml" 2>/dev/null || true
"$vfioctl" audit --sarif >"$tmp/audit.sarif" 2>/dev/null || true
lab_verdicts "format validation" python3 "$formats" --validate "$tmp/audit.xml" "$tmp/audit.sarif"

# --- The DMA fault probe (--probe) -------------------------------------------------
# The edu behind its own root port has no driver: the audit binds it for the probe
# through the journal and restores it. The outcome is read from the kernel: its log
# must hold the IOMMU's fault for the edu at 0x300000, and the edu must be back as it
# was. Without an IOMMU nothing is sent and nothing bound: a critical finding.
export VFIOD_STATE_DIR=/run/vfiod-lab-audit
EDU=0000:01:00.0
probe_scenario() {
	local taint_before dmesg_before probe_edu want_rc fault evidence rc
	taint_before=$(cat /proc/sys/kernel/tainted)
	dmesg_before=$(dmesg | wc -l)
	if [[ $topo == basic || $topo == debian-* ]]; then
		probe_edu="info dma.fault-probe $EDU"
	else
		probe_edu="critical dma.fault-probe $EDU"
	fi
	want_rc=0
	grep -qE '^(medium|high|critical)' <<<"$host_only
$probe_edu" && want_rc=1
	audit_case "probe $EDU" "$want_rc" "$host_only
$probe_edu" --probe --devices "$EDU"
	check_eq "probe $EDU: the edu is back on no driver" - "$(lab_driver_of $EDU)"
	check_eq "probe $EDU: its driver_override is back" "(null)" \
		"$(cat /sys/bus/pci/devices/$EDU/driver_override)"
	check_eq "probe $EDU: the journal is empty" 0 \
		"$(find "$VFIOD_STATE_DIR" -name '*.json' 2>/dev/null | wc -l)"
	fault=$(dmesg | tail -n +"$((dmesg_before + 1))" | grep -F "DMAR" |
		grep -F "[01:00.0] fault addr 0x300000" | head -n 1 || true)
	evidence=$(python3 -S -c '
import json, sys
doc = json.load(open(sys.argv[1]))
for f in doc["findings"]:
    if f["id"] == "dma.fault-probe":
        print("\n".join(e["path"] + "=" + e["value"] for e in f["evidence"]))
' "$tmp/probe $EDU.json")
	if [[ $topo == basic || $topo == debian-* ]]; then
		if [[ -n $fault ]]; then
			pass "probe $EDU: the kernel logged the IOMMU fault ($fault)"
		else
			fail "probe $EDU: the kernel logged the IOMMU fault" "$(dmesg | tail -n 20)"
		fi
		if grep -q "^dev/kmsg=.*fault addr 0x300000" <<<"$evidence"; then
			pass "probe $EDU: the finding's evidence is the kernel's fault line"
		else
			fail "probe $EDU: the finding's evidence is the kernel's fault line" "$evidence"
		fi
		if grep -qE "^dev/(iommu|vfio/vfio)=.*: 0 bytes changed" <<<"$evidence"; then
			pass "probe $EDU: the evidence says no byte changed"
		else
			fail "probe $EDU: the evidence says no byte changed" "$evidence"
		fi
		# The whole host: the edu behind the switch (grouped with its downstream
		# port, which vfio accepts) is probed too; the bridged edu shares its group
		# with the e1000, which the probe does not take from its driver.
		audit_case "whole host --probe" 1 "${expect[$topo]}
$probe_edu
info dma.fault-probe 0000:07:00.0
medium dma.fault-probe 0000:08:02.0" --probe
		check_eq "whole host --probe: the switched edu is back on no driver" - "$(lab_driver_of 0000:07:00.0)"
		check_eq "whole host --probe: the e1000 keeps its driver" e1000 "$(lab_driver_of 0000:08:01.0)"
		check_eq "whole host --probe: the bridged edu is left alone" - "$(lab_driver_of 0000:08:02.0)"
		"$vfioctl" audit --junit --probe --devices "$EDU" >"$tmp/probe.xml" 2>/dev/null || true
		"$vfioctl" audit --sarif --probe --devices "$EDU" >"$tmp/probe.sarif" 2>/dev/null || true
		lab_verdicts "format validation with --probe" \
			python3 "$formats" --validate "$tmp/probe.xml" "$tmp/probe.sarif"
	else
		if [[ -z $fault ]]; then
			pass "probe $EDU: no DMA was sent (no fault in the kernel log)"
		else
			fail "probe $EDU: no DMA was sent" "$fault"
		fi
		check_eq "probe $EDU: the kernel's taint is unchanged" "$taint_before" \
			"$(cat /proc/sys/kernel/tainted)"
		if [[ ! -e /sys/bus/pci/devices/$EDU/iommu_group ]]; then
			pass "probe $EDU: never bound (no no-IOMMU group)"
		else
			fail "probe $EDU: never bound (no no-IOMMU group)"
		fi
	fi
}
case $topo in
basic | debian-* | noiommu | none) probe_scenario ;;
esac
rc=0
"$vfioctl" audit --probe 0000:00:1f.2 >/dev/null 2>"$tmp/err" || rc=$?
check_eq "--probe of a device it cannot drive (the ICH9 SATA): exit status" 2 "$rc"
rc=0
"$vfioctl" audit --probe --root "$snap" >/dev/null 2>"$tmp/err" || rc=$?
check_eq "--probe on a snapshot: exit status" 2 "$rc"

rm -rf "$tmp"
lab_done
