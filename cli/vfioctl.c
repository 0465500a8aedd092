/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl: the command-line front end. Read-only verbs scan sysfs directly and need
 * neither the daemon nor root (config space past 64 bytes does need root). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "modules.h"
#include "pci-addr.h"
#include "strv.h"

static const struct verb verbs[] = {
        {"list", "list", "List PCI devices with their IOMMU group, driver and assignability",
         "Prints one row per PCI function: address, class, vendor:device ids, driver, IOMMU\n"
         "group, whether that group is viable for vfio right now, SR-IOV VFs (enabled/total),\n"
         "and whether the host is using the device (an interface that is up with addresses, a\n"
         "mounted or held block device, the boot VGA device). The last column is the device\n"
         "name from the pci.ids database.\n",
         verb_list, 0, 0, 0},
        {"groups", "groups", "List IOMMU groups with their members and a verdict",
         "Prints each IOMMU group with its domain type (DMA, DMA-FQ, identity, blocked), its\n"
         "members and a verdict. A group is viable when every member is unbound or bound to a\n"
         "driver vfio accepts (vfio-pci and its variants, pci-stub, pcieport for bridges):\n"
         "that is the kernel's condition for opening it. A group that holds a device the host\n"
         "is using is flagged with the device and the reason.\n",
         verb_groups, 0, 0, 0},
        {"show", "show DEVICE", "Show everything known about one device",
         "DEVICE is a PCI address, DDDD:BB:DD.F or BB:DD.F (domain 0000). Prints the ids and\n"
         "names, driver and driver_override, IOMMU group and its other members, IOMMU unit,\n"
         "NUMA node, reset methods, PCIe port type, ACS, SR-IOV (PF and VFs), network\n"
         "interfaces and block devices below it, host use, and the upstream path to the root\n"
         "port with each port's ACS capability and control bits. \"vfio driver\" names the\n"
         "driver bind would give it, vfio-pci or a vendor variant of it, and why: the\n"
         "modules.alias entry that chose the variant, or why there is none.\n",
         verb_show, 1, 1, 0},
        {"bind",
         "bind DEVICE... [--group] [--dry-run] [--persist] [--force] [--reset] [--driver NAME]",
         "Give devices to vfio-pci or a variant of it",
         "Moves each DEVICE from its host driver to its VFIO driver: records the original\n"
         "driver and driver_override in the journal (fsynced) before anything changes, sets\n"
         "driver_override to the VFIO driver (kept while assigned, so no reprobe can steal\n"
         "the device back), unbinds the host driver, asks the kernel to probe, and verifies\n"
         "that the VFIO driver owns the device. A device already on a VFIO driver is left as\n"
         "it is. If any device fails, every device moved by this command is restored.\n"
         "\n"
         "The VFIO driver is vfio-pci, or the vendor variant of it (mlx5_vfio_pci,\n"
         "hisi_acc_vfio_pci, virtio_vfio_pci, ...: they make live migration possible) that\n"
         "the running kernel's modules.alias names for the device, the most specific\n"
         "\"vfio_pci:\" alias that matches its modalias; its module is loaded when needed.\n"
         "'vfioctl show DEVICE' tells which, and why.\n"
         "\n"
         "The whole IOMMU group is checked first: vfio can only use a group whose every\n"
         "endpoint is on vfio-pci, pci-stub or no driver. Bridges (host bridges too) are\n"
         "never rebound.\n"
         "\n"
         "  --group      also take every other endpoint of each device's IOMMU group\n"
         "  --force      take devices the host is using (mounted disks, interfaces up with\n"
         "               addresses, the boot VGA device)\n"
         "  --dry-run    print what would be done and change nothing\n"
         "  --persist    also record the devices in /etc/vfiod/assign.conf, which the udev\n"
         "               rule and vfiod-assign.service of dist/ apply at boot\n"
         "  --persisted  bind every device recorded with --persist (takes no DEVICE)\n"
         "  --reset      reset each device after binding (refused when only a bus reset is\n"
         "               available and it would hit a device the host is using)\n"
         "  --driver NAME  bind to NAME instead: vfio-pci or a vfio-pci variant driver (a\n"
         "               name with vfio_pci or vfio-pci in it); any other is refused and\n"
         "               nothing changes. Also moves a device from one VFIO driver to another\n"
         "  --state-dir DIR  the journal's directory (default /var/lib/vfiod; $VFIOD_STATE_DIR)\n"
         "  --no-daemon  work directly even when vfiod runs\n"
         "\n"
         "When the vfiod daemon runs, a bind without --dry-run, --persist, --persisted,\n"
         "--reset, --driver or --state-dir is done by the daemon (its admin socket for root,\n"
         "else its policy decides), so that its view of the devices stays true.\n",
         verb_bind, 0, SIZE_MAX,
         OPT_BIT(OPT_GROUP) | OPT_BIT(OPT_DRY_RUN) | OPT_BIT(OPT_PERSIST) | OPT_BIT(OPT_FORCE) |
                 OPT_BIT(OPT_RESET) | OPT_BIT(OPT_STATE_DIR) | OPT_BIT(OPT_PERSISTED) |
                 OPT_BIT(OPT_NO_DAEMON) | OPT_BIT(OPT_DRIVER)},
        {"unbind", "unbind DEVICE... [--persist] [--reset]",
         "Return devices to their original drivers",
         "Restores each DEVICE to what the journal recorded before vfiod bound it: clears (or\n"
         "restores) driver_override, unbinds vfio-pci, probes, and verifies that the original\n"
         "driver owns it again (or that it is unbound if it had none). A device vfiod did not\n"
         "bind but that sits on vfio-pci is released to the kernel's driver match.\n"
         "\n"
         "  --persist    also forget the devices' boot-time assignment\n"
         "  --reset      reset each device before giving it back\n"
         "  --state-dir DIR  the journal's directory\n"
         "  --no-daemon  work directly even when vfiod runs (otherwise, as for bind, the\n"
         "               daemon does it when it runs)\n",
         verb_unbind, 1, SIZE_MAX,
         OPT_BIT(OPT_PERSIST) | OPT_BIT(OPT_RESET) | OPT_BIT(OPT_STATE_DIR) |
                 OPT_BIT(OPT_NO_DAEMON)},
        {"restore", "restore --all", "Restore every device the journal records",
         "Returns every device in the journal to its original driver: those assigned, and\n"
         "those whose bind or restore was interrupted by a crash. A corrupt or half-written\n"
         "entry is reported and its device released to the kernel's driver match. Group\n"
         "nodes that live type1 leases of the vfiod daemon opened to their holders are put\n"
         "back as they were (the daemon's lease log: /run/vfiod/leases/log, or\n"
         "$VFIOD_RUNTIME_DIR/leases/log). Exits 1 if anything could not be restored.\n"
         "\n"
         "  --state-dir DIR  the journal's directory\n",
         verb_restore, 0, 0, OPT_BIT(OPT_ALL) | OPT_BIT(OPT_STATE_DIR)},
        {"sriov",
         "sriov PF [--numvfs N [--driver vfio-pci|host]] [--vf I SETTINGS... | --vf I --release]",
         "Carve SR-IOV virtual functions and configure NIC VFs",
         "Without options, shows the PF's SR-IOV state: total and enabled VFs, VF offset,\n"
         "stride and device id, autoprobe, and each VF with its driver, IOMMU group and (for\n"
         "a NIC) its settings.\n"
         "\n"
         "  --numvfs N       enable N VFs. With --driver vfio-pci (the default) the PF's\n"
         "                   sriov_drivers_autoprobe is turned off first, so no host driver\n"
         "                   ever probes a VF, and each VF is bound to vfio-pci through the\n"
         "                   journal. A change between two non-zero counts goes through 0.\n"
         "                   Refused while a VF that would go away is used by the host or\n"
         "                   open through VFIO. A partial enable is rolled back. N = 0\n"
         "                   releases: VF settings restored, VFs removed, autoprobe restored.\n"
         "                   Only the VFs are bound (no --group): when the kernel puts them\n"
         "                   in a group with their PF or another device on a host driver,\n"
         "                   they are carved all the same and a warning says what blocks\n"
         "                   the group; carve from the PF on vfio-pci to use them.\n"
         "  --driver vfio-pci|host  where new VFs go (host: autoprobe on, the PF's VF driver)\n"
         "  --vf I           the VF (index from 0) the settings below apply to, through the\n"
         "                   PF's network interface (rtnetlink); its original settings are\n"
         "                   saved in the journal first\n"
         "  --mac M          MAC address, 02:11:22:33:44:55\n"
         "  --vlan V[,QOS]   VLAN id (0 removes) and 802.1p priority\n"
         "  --trust on|off   let the VF change its MAC and enter promiscuous modes\n"
         "  --spoofchk on|off  drop frames whose source MAC is not the VF's\n"
         "  --link-state auto|enable|disable\n"
         "  --max-rate MBPS, --min-rate MBPS  transmit rate limits (0: none)\n"
         "  --release        put VF I's saved original settings back\n"
         "  --state-dir DIR  the journal's directory\n"
         "  --no-daemon      work directly even when vfiod runs (otherwise the daemon\n"
         "                   carves when it runs)\n",
         verb_sriov, 1, 1,
         OPT_BIT(OPT_NUMVFS) | OPT_BIT(OPT_DRIVER) | OPT_BIT(OPT_VF) | OPT_BIT(OPT_MAC) |
                 OPT_BIT(OPT_VLAN) | OPT_BIT(OPT_TRUST) | OPT_BIT(OPT_SPOOFCHK) |
                 OPT_BIT(OPT_LINK_STATE) | OPT_BIT(OPT_MAX_RATE) | OPT_BIT(OPT_MIN_RATE) |
                 OPT_BIT(OPT_RELEASE) | OPT_BIT(OPT_STATE_DIR) | OPT_BIT(OPT_NO_DAEMON) |
                 OPT_BIT(OPT_GROUP)},
        {"persisted", "persisted [DEVICE]", "List boot-time assignments, or test one",
         "Without DEVICE, prints the devices recorded with bind --persist. With DEVICE, prints\n"
         "the VFIO driver a bind would give it (vfio-pci or a variant of it) and exits 0 if it\n"
         "is recorded, and exits 1 if not (for udev's PROGRAM match and driver_override).\n",
         verb_persisted, 0, 1, OPT_BIT(OPT_STATE_DIR)},
        {"audit",
         "audit [--devices ADDR,...] [--config FILE] [--json|--junit|--sarif] "
         "[--fail-on SEVERITY] [--probe [DEVICE...]]",
         "Audit DMA isolation, on this host or a snapshot, for CI",
         "Runs the DMA-isolation checks (IOMMU, interrupt remapping, vfio's unsafe modes, the\n"
         "kernel command line, IOMMU groups, ACS along each device's path, PCI bridges,\n"
         "external ports, ATS, reset) and prints each finding with its check id, severity\n"
         "(info, low, medium, high, critical), the evidence read and a fix. Without\n"
         "--devices or --config the whole host is audited: every function except bridges.\n"
         "--root may name a directory tree, or a snapshot archive or directory made by\n"
         "'vfioctl snapshot', which is checked against its manifest first. Reference:\n"
         "docs/audit.md.\n"
         "\n"
         "  --devices ADDR,...   audit the devices to be assigned\n"
         "  --config FILE        the same from a file: one address per line, '#' comments\n"
         "                       (the /etc/vfiod/assign.conf format)\n"
         "  --json               JSON (schema vfiod.audit/1)\n"
         "  --junit              JUnit XML: a test case per finding and per clean check\n"
         "  --sarif              SARIF 2.1.0\n"
         "  --fail-on SEVERITY   exit 1 when a finding is at or above it (default medium)\n"
         "  --probe [DEVICE...]  also run the DMA fault probe (live host, as root) on the\n"
         "                       named audited devices, or on every audited edu (1234:11e8);\n"
         "                       a device without a driver is bound for it and restored\n"
         "  --state-dir DIR      the journal for those binds\n"
         "\n"
         "Exit status: 0 when no finding is at or above --fail-on, 1 when one is, 2 when the\n"
         "audit could not run (bad usage, an unknown device, a damaged or incomplete\n"
         "snapshot).\n",
         verb_audit, 0, SIZE_MAX,
         OPT_BIT(OPT_DEVICES) | OPT_BIT(OPT_CONFIG) | OPT_BIT(OPT_JUNIT) | OPT_BIT(OPT_SARIF) |
                 OPT_BIT(OPT_FAIL_ON) | OPT_BIT(OPT_PROBE) | OPT_BIT(OPT_STATE_DIR),
         true},
        {"snapshot", "snapshot OUT.tar", "Capture what the audit reads into a tar archive",
         "Writes the sysfs and procfs files the topology scan and the audit read (PCI devices\n"
         "with their attributes and config space, IOMMU groups and units, interfaces and\n"
         "disks, vfio's module parameters, the command line, interrupts, mounts, swaps) into\n"
         "OUT.tar, keeping symbolic links, with a manifest as the first member. OUT ending in\n"
         ".gz, .xz or .zst is compressed; '-' writes to standard output. Audit it anywhere\n"
         "with 'vfioctl audit --root OUT.tar'. Run as root: other users see only 64 bytes of\n"
         "config space.\n",
         verb_snapshot, 1, 1, 0},
        {"probe",
         "probe DEVICE [--backend type1|iommufd] [--allow-unsafe-interrupts] [--noiommu] "
         "[--memlock SIZE] [--fds IOMMU,DEVICE] [-- COMMAND...]",
         "Open a vfio-pci device and test DMA remapping and interrupts on it",
         "Opens DEVICE, which must already be bound to vfio-pci (see bind), through a VFIO\n"
         "backend: iommufd (/dev/iommu and the device cdev) where the kernel offers it, else\n"
         "the legacy container and group (type1). Reports its regions, interrupts, resets and\n"
         "the usable IOVA ranges, resets it, and checks that bad DMA requests (overlapping,\n"
         "misaligned, outside the ranges, unmapping what is not mapped) are refused and leave\n"
         "nothing mapped. On QEMU's edu device (1234:11e8) it also runs DMA through the IOMMU\n"
         "both ways and compares the data, counts one MSI per DMA, checks that a DMA to an\n"
         "unmapped IOVA writes nothing and that the kernel logs the IOMMU fault, and tests\n"
         "INTx. Exits 1 if any check fails.\n"
         "\n"
         "A device whose interrupts no IOMMU remaps is refused, and one in vfio's no-IOMMU mode\n"
         "(/dev/vfio/noiommu-N) is opened only with --noiommu, reported unsafe, and never\n"
         "given a DMA mapping.\n"
         "\n"
         "With a COMMAND after --, opens the IOMMU handle as fd 3 and the device handle as fd\n"
         "4, unconfigured (for iommufd: /dev/iommu with per-process memlock accounting when\n"
         "allowed, and the unbound cdev, as QEMU's -object iommufd,fd=3 -device\n"
         "vfio-pci,fd=4 take them), and executes COMMAND with them.\n"
         "\n"
         "  --backend B    type1 or iommufd instead of the automatic choice\n"
         "  --allow-unsafe-interrupts  open a device whose interrupts are not isolated\n"
         "  --noiommu      accept vfio's no-IOMMU mode (no isolation at all)\n"
         "  --memlock SIZE set RLIMIT_MEMLOCK (256M, 4G, unlimited) first: pinned DMA memory\n"
         "                 counts against it, for this process and for COMMAND\n"
         "  --fds I,D      use inherited handles: I from /dev/iommu or /dev/vfio/vfio, D the\n"
         "                 device cdev or group, as passed by a probe with a COMMAND\n",
         verb_probe, 1, SIZE_MAX,
         OPT_BIT(OPT_BACKEND) | OPT_BIT(OPT_ALLOW_UNSAFE_INTERRUPTS) | OPT_BIT(OPT_NOIOMMU) |
                 OPT_BIT(OPT_MEMLOCK) | OPT_BIT(OPT_FDS)},
        {"exec",
         "exec --device DEVICE... [--backend iommufd|type1] [--open-nodes] -- VMM [ARGS...]",
         "Acquire devices from vfiod and run a VMM with their file descriptors",
         "Asks the vfiod daemon for the devices as one lease held by this process, then\n"
         "executes VMM in its place, so the lease lasts exactly as long as the VMM (it ends\n"
         "when the VMM exits). The received handles stay open across the exec. --device may\n"
         "be repeated or take a comma-separated list.\n"
         "\n"
         "When VMM's name starts with qemu-system, vfioctl appends what the lease's backend\n"
         "needs. With iommufd (the daemon's choice where the kernel has /dev/iommu and vfio\n"
         "device cdevs):\n"
         "  -object iommufd,id=vfiod-iommufd0,fd=N\n"
         "  -device vfio-pci,iommufd=vfiod-iommufd0,fd=M,id=vfiod-DDDD-BB-DD-F  (per device)\n"
         "With type1 (kernels without iommufd, such as Debian's), QEMU takes no handed-over\n"
         "handles: the lease opens each group node /dev/vfio/N to this uid (an ACL entry,\n"
         "removed when the lease ends) and vfioctl appends, per device named,\n"
         "  -device vfio-pci,host=DDDD:BB:DD.F,id=vfiod-DDDD-BB-DD-F\n"
         "The backend and why it was chosen are printed. Any VMM finds the lease in the\n"
         "environment:\n"
         "  VFIOD_LEASE=ID  VFIOD_BACKEND=iommufd|type1\n"
         "  VFIOD_IOMMUFD=N (iommufd) or VFIOD_CONTAINER=N (type1, /dev/vfio/vfio)\n"
         "  VFIOD_DEVICES=ADDR=FD,...  (the device cdev, or with type1 the group, shared\n"
         "                              by devices of one group; for QEMU with type1,\n"
         "                              ADDR=/dev/vfio/N, the node to open)\n"
         "\n"
         "What was acquired goes to standard error; with --json, one line of JSON is the\n"
         "first line of standard output instead, before anything the VMM writes.\n"
         "\n"
         "  --device DEVICE  a PCI address to acquire (at least one)\n"
         "  --backend B      iommufd or type1 instead of the daemon's choice\n"
         "  --open-nodes     type1 without handles, for a program that opens the group\n"
         "                   nodes itself (DPDK, or any user of /dev/vfio/N): the lease\n"
         "                   opens them to this uid as for QEMU (implies --backend type1)\n"
         "\n"
         "The daemon's socket is /run/vfiod/io.vfiod, or $VFIOD_SOCKET. Exit status: 1 when\n"
         "the daemon cannot be reached or refuses, 2 for bad usage or an unknown device,\n"
         "126 or 127 when VMM cannot be executed; otherwise VMM's own.\n",
         verb_exec, 1, SIZE_MAX,
         OPT_BIT(OPT_DEVICE) | OPT_BIT(OPT_BACKEND) | OPT_BIT(OPT_OPEN_NODES)},
        {"qemu-attach",
         "qemu-attach --qmp SOCKET [--id ID] [--bus BUS] [--backend iommufd|type1] DEVICE",
         "Hot-plug a device from vfiod into a running QEMU",
         "Connects to QEMU's QMP socket (-qmp unix:SOCKET,server=on,wait=off), learns QEMU's\n"
         "process from the socket's peer credentials, and acquires DEVICE from the vfiod\n"
         "daemon as a lease held by that QEMU process: the lease ends when QEMU exits, not\n"
         "when vfioctl does. With the iommufd backend (the daemon's choice where the kernel\n"
         "has /dev/iommu and vfio device cdevs) it hands both handles to QEMU (QMP getfd,\n"
         "names vfiod-iommufd-LEASE and vfiod-dev-DDDD-BB-DD-F), adds an iommufd object\n"
         "vfiod-iommufd-LEASE and a vfio-pci device using them. With type1 (kernels without\n"
         "iommufd) the lease opens the group node /dev/vfio/N to QEMU's uid and the device\n"
         "is added with host=DDDD:BB:DD.F, QEMU opening the node itself. If any step fails,\n"
         "what was added to QEMU is removed and the lease is released. The backend and why\n"
         "it was chosen are printed.\n"
         "\n"
         "  --qmp SOCKET  QEMU's QMP UNIX socket\n"
         "  --id ID       the new device's id (default vfiod-DDDD-BB-DD-F)\n"
         "  --bus BUS     the bus to plug it into, a hot-plug capable slot such as a free\n"
         "                pcie-root-port on q35 (default: QEMU's choice)\n"
         "  --backend B   iommufd or type1 instead of the daemon's choice\n"
         "\n"
         "The daemon's socket is /run/vfiod/io.vfiod, or $VFIOD_SOCKET; vfioctl and QEMU must\n"
         "run as the same user. Exit status: 0 when the device was added, 1 when it was not,\n"
         "2 for bad usage or an unknown device.\n",
         verb_qemu_attach, 1, 1,
         OPT_BIT(OPT_QMP) | OPT_BIT(OPT_ID) | OPT_BIT(OPT_BUS) | OPT_BIT(OPT_BACKEND)},
        {"cdi", "cdi [--config FILE] [--output DIR]",
         "Print or write the CDI spec of the exported pools",
         "Makes the Container Device Interface spec of the devices that the pools of the\n"
         "configuration export (default /etc/vfiod/pools.json; see vfiod(8)): one CDI device\n"
         "per device, named by its PCI address, of kind vfiod.io/pci (or the file's\n"
         "cdi_kind), so that podman, CRI-O or containerd give a container the device with\n"
         "'--device vfiod.io/pci=0000:01:10.0'. A device is in the spec when a pool selects\n"
         "it, it is on vfio-pci and it has an IOMMU group (never in vfio's no-IOMMU mode,\n"
         "never a bridge). With iommufd (/dev/iommu and the device's vfio cdev exist) it\n"
         "carries /dev/iommu and /dev/vfio/devices/vfioN; otherwise /dev/vfio/vfio and its\n"
         "group's /dev/vfio/N (a pool's \"backend\" can ask for either). Its environment,\n"
         "VFIOD_PCI_<ADDR>_ADDRESS, _POOL, _NODE, _PF (a VF's PF) and _NUMA_NODE, with ADDR\n"
         "the address with '_' for ':' and '.', names it in the container. Works offline\n"
         "with --root.\n"
         "\n"
         "  --config FILE  the pool configuration\n"
         "  --output DIR   write the spec into DIR (/var/run/cdi for runtimes) atomically\n"
         "                 as VENDOR-CLASS.json (vfiod.io-pci.json), instead of\n"
         "                 printing it; with no device exported, remove it from DIR. DIR is\n"
         "                 created if missing; a DIR that is a symbolic link is refused.\n",
         verb_cdi, 0, 0, OPT_BIT(OPT_CONFIG) | OPT_BIT(OPT_OUTPUT)},
        {"leases", "leases", "List the daemon's leases",
         "Asks the vfiod daemon for its leases: each with its id, the holder's pid and uid, the\n"
         "backend, what happens to its devices when it ends (pool or restore), whether it was\n"
         "adopted after a daemon restart, and its devices. Root asks the admin socket and sees\n"
         "every lease ($VFIOD_ADMIN_SOCKET, else /run/vfiod/io.vfiod.admin); other users see\n"
         "their own ($VFIOD_SOCKET, else /run/vfiod/io.vfiod).\n",
         verb_leases, 0, 0, 0},
        {"release", "release LEASE", "End a lease",
         "Asks the vfiod daemon to end lease LEASE (a number from vfioctl leases): its devices\n"
         "return to the pool or to their original drivers, as the policy says. Refused while a\n"
         "device is still open in some process: close it (quit the VMM) first. A lease also\n"
         "ends by itself when its holder exits.\n",
         verb_release, 1, 1, 0},
        {"reclaim", "reclaim DEVICE [--timeout S] [--force]",
         "Take a leased device back from its VMM",
         "Asks the vfiod daemon to take back the lease that holds DEVICE, without killing its\n"
         "holder: the holder is sent the device request of each device of the lease (the\n"
         "interrupt vfio-pci keeps for this; QEMU answers it by unplugging the device from its\n"
         "guest and closing its files), and once none is open any more the lease ends and its\n"
         "devices go back to the pool or to their original drivers, as the policy says. A\n"
         "holder that keeps them past the timeout keeps its lease: the processes that still\n"
         "have a device open are named, and nothing is changed. Root asks the admin socket;\n"
         "other users need the policy's bind right on DEVICE.\n"
         "\n"
         "  --timeout S  seconds to wait for the holder (default 30, at most 3600)\n"
         "  --force      past the timeout, end the lease anyway: the holder loses the lease's\n"
         "               rights at once, and each device it still has open is restored once\n"
         "               its last file closes\n"
         "\n"
         "Exit status: 0 when the lease ended, 1 when the holder kept the devices past the\n"
         "timeout or the daemon refused, 2 for bad usage or no such device.\n",
         verb_reclaim, 1, 1, OPT_BIT(OPT_TIMEOUT) | OPT_BIT(OPT_FORCE)},
};

static const struct {
        const char *name;
        enum opt_id id;
        bool takes_value;
        bool repeatable; /* every value is kept in c->lists[id] */
} options[] = {
        {"--group", OPT_GROUP, false},
        {"--dry-run", OPT_DRY_RUN, false},
        {"--persist", OPT_PERSIST, false},
        {"--force", OPT_FORCE, false},
        {"--all", OPT_ALL, false},
        {"--reset", OPT_RESET, false},
        {"--state-dir", OPT_STATE_DIR, true},
        {"--persisted", OPT_PERSISTED, false},
        {"--numvfs", OPT_NUMVFS, true},
        {"--driver", OPT_DRIVER, true},
        {"--vf", OPT_VF, true},
        {"--mac", OPT_MAC, true},
        {"--vlan", OPT_VLAN, true},
        {"--trust", OPT_TRUST, true},
        {"--spoofchk", OPT_SPOOFCHK, true},
        {"--link-state", OPT_LINK_STATE, true},
        {"--max-rate", OPT_MAX_RATE, true},
        {"--min-rate", OPT_MIN_RATE, true},
        {"--release", OPT_RELEASE, false},
        {"--devices", OPT_DEVICES, true},
        {"--config", OPT_CONFIG, true},
        {"--junit", OPT_JUNIT, false},
        {"--sarif", OPT_SARIF, false},
        {"--fail-on", OPT_FAIL_ON, true},
        {"--probe", OPT_PROBE, false},
        {"--backend", OPT_BACKEND, true},
        {"--allow-unsafe-interrupts", OPT_ALLOW_UNSAFE_INTERRUPTS, false},
        {"--noiommu", OPT_NOIOMMU, false},
        {"--memlock", OPT_MEMLOCK, true},
        {"--fds", OPT_FDS, true},
        {"--device", OPT_DEVICE, true, true},
        {"--qmp", OPT_QMP, true},
        {"--id", OPT_ID, true},
        {"--bus", OPT_BUS, true},
        {"--no-daemon", OPT_NO_DAEMON, false},
        {"--output", OPT_OUTPUT, true},
        {"--open-nodes", OPT_OPEN_NODES, false},
        {"--timeout", OPT_TIMEOUT, true},
};

static const struct verb *verb_find(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

static void print_main_help(FILE *f)
{
        fprintf(f, "Usage: vfioctl [OPTIONS] VERB [ARGS...]\n"
                   "\n"
                   "Inspect PCI devices and IOMMU groups, and move devices to vfio-pci and back.\n"
                   "\n"
                   "Verbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  %-18s %s\n", verbs[i].name, verbs[i].summary);
        fprintf(f, "  %-18s %s\n", "help [VERB]", "Show this help, or a verb's");
        fprintf(f, "\n"
                   "Options (accepted before or after the verb):\n"
                   "  --json         Print JSON (one document; schema in docs/json.md)\n"
                   "  --root DIR     Read and write sys/, proc/, dev/ and the state directory\n"
                   "                 below DIR instead of /; also $VFIOD_ROOT. For tests and\n"
                   "                 offline snapshots.\n"
                   "  -h, --help     Show help (with a verb: that verb's help)\n"
                   "  --version      Show the version\n"
                   "\n"
                   "Exit status: 0 on success, 1 when the request could not be carried out, 2 for\n"
                   "bad usage, a malformed device address, or a device that does not exist.\n"
                   "\n"
                   "list, groups and show only read; reading config space past its first 64 bytes\n"
                   "(capabilities, ACS) needs root. bind, unbind and restore need root.\n");
}

static void print_verb_help(const struct verb *v)
{
        printf("Usage: vfioctl [--json] [--root DIR] %s\n\n%s.\n\n%s", v->synopsis, v->summary,
               v->help);
}

int usage_error(const char *fmt, ...)
{
        va_list ap;

        fputs("vfioctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (see 'vfioctl --help')\n", stderr);
        return EXIT_USAGE;
}

/* want: a scoped scan (topology_scan_scoped()) of those devices; NULL: the whole host. */
static int scan(struct cli *c, unsigned flags, const struct pci_addr *want, size_t n_want,
                struct topology **ret)
{
        int r;

        if (!c->topology) {
                r = want ? topology_scan_scoped(c->root, flags, want, n_want, &c->topology)
                         : topology_scan(c->root, flags, &c->topology);
                if (r < 0) {
                        fprintf(stderr, "vfioctl: cannot scan PCI devices below %s: %s%s\n",
                                c->root->path, strerror(-r),
                                r == -ENOENT ? " (no sys/bus/pci there: is this a sysfs tree?)"
                                             : "");
                        return EXIT_FAILED;
                }
                STRV_FOREACH (w, c->topology->warnings)
                        fprintf(stderr, "vfioctl: warning: %s\n", *w);
        }
        *ret = c->topology;
        return 0;
}

int cli_topology(struct cli *c, struct topology **ret)
{
        return scan(c, 0, NULL, 0, ret);
}

int cli_modules_need(struct cli *c, unsigned want, char **ret_detail)
{
        _cleanup_(strv_freep) char **loaded = NULL;
        int r = vfio_modules_need(c->root, want, &loaded, ret_detail);

        return r < 0 ? r : cli_modules_loaded(c, loaded);
}

int cli_modules_loaded(struct cli *c, char **loaded)
{
        STRV_FOREACH (m, loaded) {
                fprintf(stderr, "vfioctl: loaded kernel module %s\n", *m);
                if (!c->modules_loaded && !(c->modules_loaded = json_object_new_array()))
                        return -ENOMEM;
                json_object_array_add(c->modules_loaded, json_object_new_string(*m));
        }
        return 0;
}

void cli_json_add_modules(struct cli *c, json_object *doc)
{
        json_object_object_add(doc, "modules_loaded",
                               c->modules_loaded ? json_object_get(c->modules_loaded)
                                                 : json_object_new_array());
}

int cli_topology_unnamed(struct cli *c, struct topology **ret)
{
        return scan(c, TOPOLOGY_SCAN_NO_NAMES, NULL, 0, ret);
}

int cli_topology_scoped(struct cli *c, const struct pci_addr *want, size_t n_want,
                        struct topology **ret)
{
        return scan(c, TOPOLOGY_SCAN_NO_NAMES, want, n_want, ret);
}

const char *cli_quote(const char *s, char buf[static 300])
{
        size_t n = 0;

        for (size_t i = 0; s[i] && n + 5 < 300; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (i == 64) {
                        memcpy(buf + n, "...", 3);
                        n += 3;
                        break;
                }
                if (ch < 0x20 || ch >= 0x7f || ch == '\\')
                        n += (size_t)snprintf(buf + n, 300 - n, "\\x%02x", ch);
                else
                        buf[n++] = (char)ch;
        }
        buf[n] = '\0';
        return buf;
}

int cli_parse_addresses(struct cli *c, const char *verb, struct pci_addr **ret, size_t *ret_n)
{
        struct pci_addr *l = calloc(c->n_args ? c->n_args : 1, sizeof(*l));

        if (!l) {
                fputs("vfioctl: out of memory\n", stderr);
                return EXIT_FAILED;
        }
        for (size_t i = 0; i < c->n_args; i++)
                if (pci_addr_parse(c->args[i], &l[i]) < 0) {
                        fprintf(stderr,
                                "vfioctl: %s: '%s' is not a PCI address (expected "
                                "DDDD:BB:DD.F or BB:DD.F in hexadecimal)\n",
                                verb, c->args[i]);
                        free(l);
                        return EXIT_USAGE;
                }
        *ret = l;
        *ret_n = c->n_args;
        return 0;
}

/* Options may stand anywhere; "--" ends them. Returns the verb name, or NULL after
 * printing the reason (exit status in *ret_exit). */
static const char *parse_args(int argc, char **argv, struct cli *c, int *ret_exit)
{
        const char *verb = NULL;
        bool dashdash = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                bool known = false;

                if (dashdash || a[0] != '-' || a[1] == '\0') {
                        if (!verb)
                                verb = a;
                        else if (strv_push(&c->args, &c->n_args, a) < 0) {
                                fputs("vfioctl: out of memory\n", stderr);
                                *ret_exit = EXIT_FAILED;
                                return NULL;
                        }
                        continue;
                }
                for (size_t k = 0; !known && k < ELEMENTSOF(options); k++) {
                        size_t len = strlen(options[k].name);

                        if (strncmp(a, options[k].name, len) != 0 ||
                            (a[len] != '\0' && !(a[len] == '=' && options[k].takes_value)))
                                continue;
                        known = true;
                        c->opts |= OPT_BIT(options[k].id);
                        if (!options[k].takes_value)
                                continue;
                        if (a[len] == '=')
                                c->values[options[k].id] = a + len + 1;
                        else if (++i < argc)
                                c->values[options[k].id] = argv[i];
                        else {
                                *ret_exit = usage_error("%s needs a value", options[k].name);
                                return NULL;
                        }
                        if (options[k].repeatable &&
                            strv_push(&c->lists[options[k].id], &c->n_lists[options[k].id],
                                      c->values[options[k].id]) < 0) {
                                fputs("vfioctl: out of memory\n", stderr);
                                *ret_exit = EXIT_FAILED;
                                return NULL;
                        }
                }
                if (known)
                        continue;
                if (strcmp(a, "--") == 0)
                        dashdash = true;
                else if (strcmp(a, "--json") == 0)
                        c->json = true;
                else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
                        c->help = true;
                else if (strcmp(a, "--version") == 0) {
                        printf("vfioctl %s\n", VFIOD_VERSION);
                        *ret_exit = 0;
                        return NULL;
                } else if (strcmp(a, "--root") == 0) {
                        if (++i >= argc) {
                                *ret_exit = usage_error("--root needs a directory");
                                return NULL;
                        }
                        c->root_path = argv[i];
                } else if (strncmp(a, "--root=", 7) == 0)
                        c->root_path = a + 7;
                else {
                        char q[300];
                        *ret_exit = usage_error("unknown option '%s'", cli_quote(a, q));
                        return NULL;
                }
        }
        c->state_dir = c->values[OPT_STATE_DIR];
        if (!verb) {
                print_main_help(c->help ? stdout : stderr);
                *ret_exit = c->help ? 0 : EXIT_USAGE;
                return NULL;
        }
        return verb;
}

static const char *option_name(enum opt_id id)
{
        for (size_t k = 0; k < ELEMENTSOF(options); k++)
                if (options[k].id == id)
                        return options[k].name;
        return "?";
}

int main(int argc, char **argv)
{
        struct cli c = {0};
        char q[300];
        const struct verb *v;
        const char *name;
        int r, exit_code = 0;

        name = parse_args(argc, argv, &c, &exit_code);
        if (!name)
                goto out;
        if (strcmp(name, "help") == 0) {
                if (c.n_args > 0 && (v = verb_find(c.args[0])))
                        print_verb_help(v);
                else if (c.n_args > 0)
                        exit_code = usage_error("unknown verb '%s'", cli_quote(c.args[0], q));
                else
                        print_main_help(stdout);
                goto out;
        }
        v = verb_find(name);
        if (!v) {
                exit_code = usage_error("unknown verb '%s'", cli_quote(name, q));
                goto out;
        }
        if (c.help) {
                print_verb_help(v);
                goto out;
        }
        for (int id = 0; id < _OPT_MAX; id++)
                if (cli_has(&c, (enum opt_id)id) && !(v->opts & OPT_BIT(id))) {
                        exit_code = usage_error("%s: option %s does not apply", v->name,
                                                option_name((enum opt_id)id));
                        goto out;
                }
        if (c.n_args < v->min_args || c.n_args > v->max_args) {
                exit_code = usage_error("%s: expected %s", v->name, v->synopsis);
                goto out;
        }

        if (!c.root_path)
                c.root_path = getenv("VFIOD_ROOT");
        if (!c.state_dir)
                c.state_dir = getenv("VFIOD_STATE_DIR");
        r = v->opens_root ? 0 : root_open(c.root_path, &c.root);
        if (r < 0) {
                fprintf(stderr, "vfioctl: cannot open root directory %s: %s\n",
                        c.root_path ? c.root_path : "/", strerror(-r));
                exit_code = EXIT_USAGE;
                goto out;
        }
        exit_code = v->run(&c);
        if (fflush(stdout) != 0 && exit_code == 0) {
                fprintf(stderr, "vfioctl: cannot write output: %s\n", strerror(errno));
                exit_code = EXIT_FAILED;
        }
out:
        topology_free(c.topology);
        root_free(c.root);
        json_object_put(c.modules_loaded);
        strv_free(c.args);
        for (int id = 0; id < _OPT_MAX; id++)
                strv_free(c.lists[id]);
        return exit_code;
}
