#!/usr/bin/python3 -S
"""The kernel's own view of IOMMU groups, read independently of vfiod.

Runs inside the lab guest. Sub-commands:

  truth
      Print the kernel truth as JSON (for logs and debugging).

  compare VFIOCTL_JSON [--expect TOPOLOGY_FILE] [--label TEXT]
          [--viable ADDRESS=viable|not-viable]...
      Compare `vfioctl groups --json` output with the kernel truth and,
      with --expect, the kernel truth with the topology's documented
      [expect] section; --viable also holds vfioctl's verdict on the group
      of ADDRESS to the given one (the kernel's, from vfio-viable). Prints one "PASS text" / "FAIL text" line per check
      (indented detail lines may follow a FAIL), for lib.sh's lab_verdicts.

  vfio-viable ADDRESS
      Open the VFIO group of ADDRESS (which must be bound to vfio-pci) and
      print "viable" or "not-viable" from VFIO_GROUP_GET_STATUS: the kernel's
      own verdict, not a rule re-implemented here.

Sources, chosen to differ from what vfioctl reads where the kernel offers a
second one: IOMMU units from /sys/class/iommu and their registers; groups,
types and members from /sys/kernel/iommu_groups; the default domain type and
the state of interrupt remapping from the kernel log (/dev/kmsg), cross-
checked with the group type files and /proc/interrupts.

Only the standard library is used; run it with `python3 -S` (no site
packages), which starts several times faster under TCG.
"""

import argparse
import collections
import errno
import fcntl
import json
import os
import re
import struct
import sys

SYS = "/sys"

# VFIO ioctls, from <linux/vfio.h>: VFIO_TYPE ';', VFIO_BASE 100.
VFIO_GROUP_GET_STATUS = (ord(";") << 8) | (100 + 3)
VFIO_GROUP_FLAGS_VIABLE = 1 << 0

VFIO_FRIENDLY_DRIVERS = {"vfio-pci", "pci-stub", "pcieport"}


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def kernel_log():
    """All records currently in the kernel ring buffer, as text lines."""
    lines = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return lines
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                if e.errno == errno.EPIPE:  # record overwritten, go on
                    continue
                raise
            if not rec:
                break
            text = rec.decode(errors="replace").split(";", 1)[-1]
            lines.append(text.split("\n", 1)[0])
    finally:
        os.close(fd)
    return lines


def pci_is_bridge(addr):
    """Header type 1 (PCI-to-PCI bridge), from config space byte 0x0e."""
    try:
        with open(f"{SYS}/bus/pci/devices/{addr}/config", "rb") as f:
            f.seek(0x0E)
            return (f.read(1)[0] & 0x7F) == 1
    except (OSError, IndexError):
        return None


def pci_driver(addr):
    link = f"{SYS}/bus/pci/devices/{addr}/driver"
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def is_lab_share(addr):
    """A virtio-9p device of the lab itself (host root, results, ...)."""
    base = f"{SYS}/bus/pci/devices/{addr}"
    try:
        children = [c for c in os.listdir(base) if c.startswith("virtio")]
    except OSError:
        return False
    return any(os.path.basename(os.path.realpath(f"{base}/{c}/driver")) == "9pnet_virtio"
               for c in children if os.path.islink(f"{base}/{c}/driver"))


def units():
    out = []
    base = f"{SYS}/class/iommu"
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        d = os.path.join(base, name)
        if os.path.isdir(os.path.join(d, "intel-iommu")):
            cap = int(read(os.path.join(d, "intel-iommu/cap")), 16)
            ecap = int(read(os.path.join(d, "intel-iommu/ecap")), 16)
            out.append({
                "name": name,
                "kind": "intel-vtd",
                "cap": cap,
                "ecap": ecap,
                # VT-d spec, Capability / Extended Capability registers.
                "interrupt_remapping": bool(ecap >> 3 & 1),
                "posted_interrupts": bool(cap >> 59 & 1),
                "pass_through": bool(ecap >> 6 & 1),
                "scalable_mode": bool(ecap >> 43 & 1),
            })
        elif os.path.isdir(os.path.join(d, "amd-iommu")):
            out.append({"name": name, "kind": "amd-vi"})
        else:
            out.append({"name": name, "kind": "other"})
    return out


def groups():
    out = []
    base = f"{SYS}/kernel/iommu_groups"
    ids = sorted(int(g) for g in os.listdir(base)) if os.path.isdir(base) else []
    for gid in ids:
        d = f"{base}/{gid}"
        members = sorted(os.listdir(f"{d}/devices"))
        devices = [{"address": a, "driver": pci_driver(a), "bridge": pci_is_bridge(a)}
                   for a in members]
        out.append({
            "id": gid,
            "type": read(f"{d}/type"),
            # The rule vfio applies when a group is opened: every member is
            # unbound or bound to a driver that lets vfio own the DMA.
            "viable": all(dev["driver"] in (None, *VFIO_FRIENDLY_DRIVERS) for dev in devices),
            "devices": devices,
        })
    return out


def module_bool(path):
    v = read(path)
    return None if v is None else v in ("Y", "y", "1")


def truth():
    log = kernel_log()
    us = units()
    gs = groups()

    # The kernel announces its default domain type once at boot:
    # "iommu: Default domain type: Translated" / "Passthrough".
    logged_default = None
    for line in log:
        m = re.search(r"Default domain type: (\w+)", line)
        if m:
            logged_default = m.group(1)
    ir_logged = any("Enabled IRQ remapping" in line for line in log)
    interrupts = read("/proc/interrupts", "")
    ir_chips = re.search(r"\bIR-", interrupts) is not None

    types = collections.Counter(g["type"] for g in gs if g["type"] is not None)
    noiommu = module_bool(f"{SYS}/module/vfio/parameters/enable_unsafe_noiommu_mode")
    if us:
        mode = "passthrough" if logged_default == "Passthrough" else "translated"
    elif noiommu:
        mode = "noiommu"
    else:
        mode = "none"
    return {
        "iommu": {
            "present": bool(us),
            "mode": mode,
            "default_domain_type": types.most_common(1)[0][0] if types else None,
            "logged_default_domain": logged_default,
            "units": us,
        },
        "interrupt_remapping": {
            "supported": bool(us) and all(u.get("interrupt_remapping") for u in us),
            "enabled": ir_logged,
            "enabled_by_proc_interrupts": ir_chips,
            "posted_interrupts": bool(us) and all(u.get("posted_interrupts") for u in us),
        },
        "vfio": {
            "noiommu_mode": noiommu,
            "allow_unsafe_interrupts": module_bool(
                f"{SYS}/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"),
        },
        "cmdline": read("/proc/cmdline"),
        "groups": gs,
    }


class Verdicts:
    """Prints one verdict line per check, for lib.sh's lab_verdicts."""

    def __init__(self, label):
        self.label = f"{label}: " if label else ""
        self.failed = 0

    def check(self, ok, text, detail=None):
        print(f"{'PASS' if ok else 'FAIL'} {self.label}{text}")
        if not ok:
            self.failed += 1
            for line in str(detail or "").splitlines():
                print(f"  {line}")

    def fields(self, text, pairs):
        """One check over many (name, expected, actual) triples."""
        bad = [f"{name}: expected {want!r}, got {got!r}" for name, want, got in pairs if want != got]
        self.check(not bad, f"{text} ({len(pairs)} field(s))", "\n".join(bad))


MISSING = "<missing>"


def dig(tree, dotted):
    """tree["a"]["b"] for "a.b"; MISSING when a level does not exist."""
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return MISSING
        tree = tree[part]
    return tree


def parse_hex(v):
    try:
        return int(v, 16)
    except (TypeError, ValueError):
        return v


def group_view(group, fields=("address", "driver", "bridge")):
    return {"type": group.get("type"), "viable": group.get("viable"),
            "devices": [{k: d.get(k, MISSING) for k in fields} for d in group.get("devices", [])]}


def compare_vfioctl(v, kt, doc):
    """vfioctl's JSON against the kernel truth."""
    kio, kir, kvf = kt["iommu"], kt["interrupt_remapping"], kt["vfio"]
    host = doc.get("host", {})
    v.fields("vfioctl host.iommu matches the kernel", [
        ("present", kio["present"], dig(host, "iommu.present")),
        ("mode", kio["mode"], dig(host, "iommu.mode")),
        ("default_domain_type", kio["default_domain_type"], dig(host, "iommu.default_domain_type")),
        ("units", [u["name"] for u in kio["units"]],
         [u.get("name") for u in dig(host, "iommu.units") or []]),
    ])

    got_units = {u.get("name"): u for u in dig(host, "iommu.units") or []}
    for ku in kio["units"]:
        gu = got_units.get(ku["name"], {})
        pairs = [("kind", ku["kind"], gu.get("kind", MISSING))]
        if ku["kind"] == "intel-vtd":
            pairs += [("cap", ku["cap"], parse_hex(gu.get("cap", MISSING))),
                      ("ecap", ku["ecap"], parse_hex(gu.get("ecap", MISSING)))]
            pairs += [(k, ku[k], gu.get(k, MISSING)) for k in
                      ("interrupt_remapping", "posted_interrupts", "pass_through", "scalable_mode")]
        v.fields(f"vfioctl unit {ku['name']} matches its registers", pairs)

    pairs = [("interrupt_remapping.supported", kir["supported"], dig(host, "interrupt_remapping.supported")),
             ("interrupt_remapping.enabled", kir["enabled"], dig(host, "interrupt_remapping.enabled"))]
    # An optional field of the contract: compared when vfioctl reports it.
    if dig(host, "interrupt_remapping.posted_interrupts") is not MISSING:
        pairs.append(("interrupt_remapping.posted_interrupts", kir["posted_interrupts"],
                      dig(host, "interrupt_remapping.posted_interrupts")))
    pairs += [("vfio.noiommu_mode", kvf["noiommu_mode"], dig(host, "vfio.noiommu_mode")),
              ("vfio.allow_unsafe_interrupts", kvf["allow_unsafe_interrupts"],
               dig(host, "vfio.allow_unsafe_interrupts")),
              ("cmdline", kt["cmdline"], dig(host, "cmdline"))]
    v.fields("vfioctl interrupt remapping, vfio and cmdline match the kernel", pairs)

    got_groups = doc.get("groups", [])
    ids_want = [g["id"] for g in kt["groups"]]
    ids_got = [g.get("id") for g in got_groups]
    by_id = {g.get("id"): g for g in got_groups}
    bad = [] if ids_want == ids_got else [f"group ids: expected {ids_want}, got {ids_got}"]
    for kg in kt["groups"]:
        if kg["id"] in by_id and group_view(kg) != group_view(by_id[kg["id"]]):
            bad.append(f"group {kg['id']}:\n  expected {group_view(kg)}\n       got {group_view(by_id[kg['id']])}")
    v.check(not bad, f"vfioctl groups match the kernel: ids, type, viable, members with driver "
            f"and bridge ({len(kt['groups'])} group(s))", "\n".join(bad))


def parse_expect(path):
    """The [expect] section of a topology file: (facts, groups, drivers)."""
    facts, groups_, drivers = {}, [], {}
    section = None
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if section != "expect":
                continue
            words = line.split()
            if words[0] == "group":
                groups_.append((None if words[1] == "-" else words[1], tuple(sorted(words[2:]))))
            elif words[0] == "driver":
                drivers[words[1]] = None if words[2] == "-" else words[2]
            elif words[0] in ("bind", "sriov"):
                continue  # actions, performed by the scenario
            else:
                val = " ".join(words[1:])
                facts[words[0]] = {"true": True, "false": False, "null": None}.get(val, val)
    return facts, groups_, drivers


def compare_expect(v, kt, path):
    """The kernel truth against the topology's documented expectation."""
    facts, want_groups, drivers = parse_expect(path)
    # The two kernel sources for interrupt remapping must agree, or the
    # truth itself is in doubt.
    ir = kt["interrupt_remapping"]
    pairs = [("interrupt remapping per kernel log vs per /proc/interrupts",
              ir["enabled"], ir["enabled_by_proc_interrupts"])]
    empty_table = facts.pop("groups", None) == "none"
    for key, want in facts.items():
        if key == "iommu.units":
            pairs.append((key + " (count)", int(want), len(kt["iommu"]["units"])))
        else:
            pairs.append((key, want, dig(kt, key)))
    v.fields("kernel facts match the topology", pairs)

    if want_groups or empty_table:
        # The lab's own 9p devices (00:10.0 and up; how many depends on where
        # the checkout lives) are left out of the documented table.
        got = sorted((g["type"], tuple(d["address"] for d in g["devices"])) for g in kt["groups"]
                     if not all(is_lab_share(d["address"]) for d in g["devices"]))
        want = sorted(want_groups)
        detail = [f"expected, absent: {t} {' '.join(m)}" for t, m in want if (t, m) not in got]
        detail += [f"present, not expected: {t} {' '.join(m)}" for t, m in got if (t, m) not in want]
        v.check(not detail, f"kernel group table matches the topology ({len(want)} group(s))",
                "\n".join(detail))
    if drivers:
        pairs = []
        for addr, want in drivers.items():
            got = pci_driver(addr) if os.path.exists(f"{SYS}/bus/pci/devices/{addr}") else MISSING
            pairs.append((addr, want, got))
        v.fields("kernel driver table matches the topology", pairs)


def cmd_compare(args):
    kt = truth()
    with open(args.vfioctl_json) as f:
        text = f.read()
    v = Verdicts(args.label)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        v.check(False, "vfioctl output is one JSON document", f"{e}\n{text[:2000]}")
        return 1
    compare_vfioctl(v, kt, doc)
    for spec in args.viable or []:
        addr, _, verdict = spec.partition("=")
        got = [g.get("viable") for g in doc.get("groups", [])
               if addr in (d.get("address") for d in g.get("devices", []))]
        v.check(got == [verdict == "viable"], f"vfioctl calls the group of {addr} {verdict}",
                f"vfioctl viable: {got}")
    if args.expect:
        compare_expect(v, kt, args.expect)
    return 1 if v.failed else 0


def cmd_vfio_viable(args):
    dev = f"{SYS}/bus/pci/devices/{args.address}"
    gid = os.path.basename(os.readlink(f"{dev}/iommu_group"))
    for node in (f"/dev/vfio/{gid}", f"/dev/vfio/noiommu-{gid}"):
        if os.path.exists(node):
            break
    else:
        print(f"no VFIO group node for group {gid}", file=sys.stderr)
        return 2
    fd = os.open(node, os.O_RDWR)
    try:
        buf = bytearray(struct.pack("II", 8, 0))
        fcntl.ioctl(fd, VFIO_GROUP_GET_STATUS, buf)
        flags = struct.unpack("II", buf)[1]
    finally:
        os.close(fd)
    print("viable" if flags & VFIO_GROUP_FLAGS_VIABLE else "not-viable")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("truth")
    c = sub.add_parser("compare")
    c.add_argument("vfioctl_json")
    c.add_argument("--expect")
    c.add_argument("--label", default="")
    c.add_argument("--viable", action="append", metavar="ADDRESS=viable|not-viable",
                   help="also check vfioctl's verdict on the group of ADDRESS")
    s = sub.add_parser("vfio-viable")
    s.add_argument("address")
    args = p.parse_args()
    if args.cmd == "truth":
        kt = truth()
        for u in kt["iommu"]["units"]:
            for k in ("cap", "ecap"):
                if k in u:
                    u[k] = f"{u[k]:#x}"
        json.dump(kt, sys.stdout, indent=1)
        print()
        return 0
    if args.cmd == "compare":
        return cmd_compare(args)
    return cmd_vfio_viable(args)


if __name__ == "__main__":
    sys.exit(main())
