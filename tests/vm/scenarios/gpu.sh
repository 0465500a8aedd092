#!/bin/bash
# topology: gpu debian-6.12-gpu
#
# A GPU-like card (QEMU's standard VGA at function 0, the boot VGA with its SeaBIOS
# option ROM; an HD-audio controller at function 1) and a second VGA that is not the
# boot VGA:
#   1. show names both functions of the card, from either function;
#   2. the ROM check reads the real option ROM of the second VGA through its ROM BAR
#      (0x55aa, a PCI data structure with the device's ids, the image size) and warns
#      that the boot VGA's is the firmware's shadow copy at 0xc0000; a user who cannot
#      read the ROM gets a warning, not a failure;
#   3. binding the card is refused for the boot VGA; function 0 alone with --force is
#      refused for function 1, which shares its group, driver or not; --group --force
#      binds the card, unbind gives both functions back as they were;
#   4. the second VGA binds without --force and comes back;
#   5. the audit's card.split and display.framebuffer checks on the card.
# shellcheck source=tests/vm/lib.sh
source "$VFIOD_LAB_LIB"

vfioctl=$(lab_bin cli/vfioctl)
lab_vfio_modules
export VFIOD_STATE_DIR=/run/vfiod-lab-gpu
tmp=$(mktemp -d)
VGA=0000:01:00.0
HDA=0000:01:00.1
VGA2=0000:02:00.0
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

vga_driver=$(lab_driver_of $VGA) hda_driver=$(lab_driver_of $HDA) vga2_driver=$(lab_driver_of $VGA2)
check_eq "the kernel made $VGA the boot VGA" 1 "$(cat /sys/bus/pci/devices/$VGA/boot_vga)"
check_eq "and not $VGA2" 0 "$(cat /sys/bus/pci/devices/$VGA2/boot_vga)"
check_eq "the card's functions share an IOMMU group (no ACS)" \
	"$(basename "$(readlink /sys/bus/pci/devices/$VGA/iommu_group)")" \
	"$(basename "$(readlink /sys/bus/pci/devices/$HDA/iommu_group)")"

# --- 1 and 2. show: the card and the ROMs ---------------------------------------------
for dev in $VGA $HDA $VGA2; do
	"$vfioctl" show $dev --json >"$tmp/$dev.json" 2>"$tmp/$dev.err" ||
		fail "show $dev" "$(cat "$tmp/$dev.err")"
done
lab_verdicts "show" python3 -S - "$tmp" $VGA $HDA $VGA2 <<'PY'
import json, sys
tmp, vga, hda, vga2 = sys.argv[1:5]
d = {a: json.load(open(f"{tmp}/{a}.json")) for a in (vga, hda, vga2)}
def v(ok, text, got=None):
    print(("PASS " if ok else "FAIL ") + text)
    if not ok:
        print(f"  got: {got}")
for a in (vga, hda):
    card = [f["address"] for f in d[a].get("card") or []]
    v(card == [vga, hda], f"show {a}: the card is {vga} and {hda}", card)
v(d[vga2].get("card") is None, f"show {vga2}: a card of one function has no card list",
  d[vga2].get("card"))
r = d[vga2].get("rom") or {}
v(r.get("read") is True and r.get("shadow") is False and r.get("signature") is True,
  f"{vga2}: the ROM BAR at {r.get('window')} read, {r.get('bytes')} bytes, 0x55aa", r)
v(r.get("pcir") is True and r.get("vendor_id") == "0x1234" and r.get("device_id") == "0x1111"
  and r.get("ids_match") is True,
  f"{vga2}: its PCI data structure names the device, 1234:1111", r)
v((r.get("image_size") or 0) >= 512 and r.get("code_type") == "x86 BIOS"
  and r.get("warning") is None,
  f"{vga2}: an x86 BIOS image of {r.get('image_size')} bytes, no warning", r)
r = d[vga].get("rom") or {}
v(r.get("shadow") is True and r.get("window") == "0xc0000" and r.get("signature") is True,
  f"{vga}: the boot VGA's ROM is the shadow copy at 0xc0000, read with its signature", r)
v("shadow copy" in (r.get("warning") or "") and "romfile" in (r.get("warning") or ""),
  f"{vga}: warned: {r.get('warning')}", r)
v(d[hda].get("rom") is None, f"{hda}: the audio function has no ROM", d[hda].get("rom"))
# SeaBIOS leaves VGA text mode: no firmware framebuffer in /proc/iomem over either VGA.
for a in (vga, vga2):
    v(d[a].get("framebuffers") == [], f"{a}: no framebuffer over its BARs", d[a].get("framebuffers"))
v(d[hda].get("framebuffers") is None, f"{hda}: not a display device, not looked at",
  d[hda].get("framebuffers"))
PY
out=$("$vfioctl" show $VGA 2>&1 | grep -A2 '^  card ' || true)
[[ $out == *"2 functions in the slot"*"$VGA"*"(this device)"*"$HDA"* ]] &&
	pass "show's text lists the card's functions" || fail "show's text lists the card" "$out"

# A user who may not read the ROM: a warning, the rest of show as usual.
rc=0
"${NOBODY[@]}" "$vfioctl" show $VGA2 --json >"$tmp/nobody.json" 2>"$tmp/nobody.err" || rc=$?
check_eq "show $VGA2 as uid 65534 exits 0" 0 "$rc"
out=$(python3 -S -c 'import json,sys; r = json.load(open(sys.argv[1]))["rom"]; print(r["read"], r["error"], r["warning"], sep="|")' "$tmp/nobody.json" 2>&1 || true)
[[ $out == "False|Permission denied|the ROM could not be read (Permission denied)"* ]] &&
	pass "and its ROM is a warning: ${out##*|}" || fail "uid 65534's ROM warning" "$out"
check_eq "$VGA2's ROM left disabled after the reads" 0 \
	"$((0x$(setpci -s $VGA2 ROM_ADDRESS) & 1))"

# --- 3. The card: boot VGA, then its other function -----------------------------------------
# With --group the whole card is asked for, and the boot VGA in it is refused; with
# --force alone the audio function is what is missing (on the custom kernel it has no
# driver, which the kernel would allow; on Debian's it is on snd_hda_intel).
out=$("$vfioctl" bind $VGA --group 2>&1) && rc=0 || rc=$?
check_eq "bind $VGA --group refused (exit 1)" 1 "$rc"
[[ $out == *"$VGA: in use by the host: boot VGA device"*"--force"* ]] &&
	pass "as the boot VGA: ${out#vfioctl: }" || fail "the refusal names the boot VGA" "$out"
out=$("$vfioctl" bind $VGA --force 2>&1) && rc=0 || rc=$?
check_eq "bind $VGA --force alone refused (exit 1)" 1 "$rc"
[[ $out == *"$HDA ("*"--group"* ]] && pass "for $HDA, its card's other function: ${out#vfioctl: }" ||
	fail "the refusal names $HDA" "$out"
check_eq "after the refusals $VGA keeps its driver" "$vga_driver" "$(lab_driver_of $VGA)"
check_eq "and $HDA its own" "$hda_driver" "$(lab_driver_of $HDA)"
check "bind $VGA --group --force takes the card" "$vfioctl" bind $VGA --group --force
check_eq "$VGA on vfio-pci" vfio-pci "$(lab_driver_of $VGA)"
check_eq "$HDA on vfio-pci" vfio-pci "$(lab_driver_of $HDA)"
check "unbind the card" "$vfioctl" unbind $VGA $HDA
check_eq "$VGA back on its driver ($vga_driver)" "$vga_driver" "$(lab_driver_of $VGA)"
check_eq "$HDA back on its driver ($hda_driver)" "$hda_driver" "$(lab_driver_of $HDA)"

# --- 4. The VGA that is not the boot VGA --------------------------------------------------
check "bind $VGA2 without --force" "$vfioctl" bind $VGA2
check_eq "$VGA2 on vfio-pci" vfio-pci "$(lab_driver_of $VGA2)"
check "unbind $VGA2" "$vfioctl" unbind $VGA2
check_eq "$VGA2 back on its driver ($vga2_driver)" "$vga2_driver" "$(lab_driver_of $VGA2)"

# --- 5. The audit's card checks ---------------------------------------------------------
# card.split names the audio function left out of an assignment of the VGA alone when
# nothing else would (no driver, on the custom kernel); on Debian's snd_hda_intel has it
# and group.viable, its group's check, names it instead. No framebuffer in /proc/iomem
# over either VGA (SeaBIOS sets up none): display.framebuffer passes.
for devs in "$VGA" "$VGA,$HDA" "$VGA2"; do
	"$vfioctl" --json audit --devices "$devs" >"$tmp/audit-$devs.json" 2>"$tmp/audit.err" || true
done
lab_verdicts "audit" python3 -S - "$tmp" $VGA $HDA $VGA2 "$hda_driver" <<'PY'
import json, sys
tmp, vga, hda, vga2, hda_driver = sys.argv[1:6]
def load(devs):
    try:
        return json.load(open(f"{tmp}/audit-{devs}.json"))
    except Exception as e:
        return {"findings": [], "checks": [], "error": str(e)}
def v(ok, text, got=None):
    print(("PASS " if ok else "FAIL ") + text)
    if not ok:
        print(f"  got: {got}")
def of(doc, check):
    return [(f["severity"], f["subject"]) for f in doc["findings"] if f["id"] == check]
def status(doc, check):
    return [c["status"] for c in doc["checks"] if c["id"] == check]
alone, card, other = load(vga), load(f"{vga},{hda}"), load(vga2)
split = of(alone, "card.split")
if hda_driver == "-":
    v(split == [("low", hda)], f"audit of {vga} alone: low card.split for {hda}, which has no driver", split)
else:
    v(split == [] and any(s == "medium" or s == "high" for s, _ in of(alone, "group.viable")),
      f"audit of {vga} alone: {hda} on {hda_driver} is group.viable's, not card.split's",
      (split, of(alone, "group.viable")))
v(of(card, "card.split") == [] and status(card, "card.split") == ["pass"],
  f"audit of the whole card: card.split passes", (of(card, "card.split"), status(card, "card.split")))
v(status(other, "card.split") == ["pass"], f"audit of {vga2}: a card of one function passes",
  status(other, "card.split"))
for doc, name in ((card, "the card"), (other, vga2)):
    v(status(doc, "display.framebuffer") == ["pass"],
      f"audit of {name}: display.framebuffer passes (/proc/iomem read, no framebuffer)",
      (status(doc, "display.framebuffer"), [c for c in doc["checks"] if c["id"] == "display.framebuffer"]))
PY

rm -rf "$tmp"
lab_done
