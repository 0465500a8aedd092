#!/usr/bin/python3
"""vfioctl audit's machine-readable outputs, read by real consumers.

JUnit XML is read with junitparser, SARIF is validated with jsonschema against
test-audit-sarif.schema.json (the structure SARIF 2.1.0 requires of the objects the
audit writes), and --json against test-audit-json.schema.json (vfiod.audit/1). The
three reports of one audit must agree with each other: the same findings, the same
failures for --fail-on, rule indexes that point at their rules.

Usage:
  test-audit-formats.py MKFIXTURE FIXTURE_DIR VFIOCTL
      every fixture (real machines, no-IOMMU, pass-through, broken), whole host and
      with --fail-on low; prints one PASS/FAIL line per check and exits 1 on failure
  test-audit-formats.py --validate FILE.xml|FILE.sarif|FILE.json ...
      validates files made elsewhere (the lab), same output
"""
import json
import os
import subprocess
import sys
import tempfile

import jsonschema
import junitparser

HERE = os.path.dirname(os.path.abspath(__file__))
failures = 0


def verdict(ok, text, detail=None):
    global failures
    print(("PASS " if ok else "FAIL ") + text)
    if not ok:
        failures += 1
        if detail:
            for line in str(detail).splitlines()[:20]:
                print("    " + line)


def load_schema(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


SARIF_SCHEMA = load_schema("test-audit-sarif.schema.json")
AUDIT_SCHEMA = load_schema("test-audit-json.schema.json")
FORMATS = jsonschema.FormatChecker()


def schema_errors(doc, schema):
    v = jsonschema.Draft7Validator(schema, format_checker=FORMATS)
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message)
            for e in v.iter_errors(doc)]


def check_sarif(doc, label):
    errors = schema_errors(doc, SARIF_SCHEMA)
    verdict(not errors, "%s: SARIF validates against the SARIF 2.1.0 schema" % label,
            "\n".join(errors))
    if errors:
        return None
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    bad = [r for r in run.get("results", [])
           if rules[r["ruleIndex"]]["id"] != r["ruleId"]]
    verdict(not bad, "%s: SARIF results point at their rules" % label, bad[:3])
    ids = [r["id"] for r in rules]
    verdict(len(ids) == len(set(ids)), "%s: SARIF rule ids are unique" % label)
    return run


def check_junit(path, label):
    try:
        xml = junitparser.JUnitXml.fromfile(path)
    except Exception as e:  # any parse error is the finding
        verdict(False, "%s: JUnit parses with junitparser" % label, e)
        return None
    suites = list(xml) if isinstance(xml, junitparser.JUnitXml) else [xml]
    cases = [c for s in suites for c in s]
    failed = [c for c in cases if any(isinstance(r, junitparser.Failure) for r in c.result)]
    skipped = [c for c in cases if any(isinstance(r, junitparser.Skipped) for r in c.result)]
    suite = suites[0]
    counts_ok = (suite.tests == len(cases) and suite.failures == len(failed)
                 and suite.skipped == len(skipped) and suite.errors == 0)
    verdict(counts_ok and all(c.name and c.classname for c in cases),
            "%s: JUnit parses with junitparser, %d cases, counts agree" % (label, len(cases)),
            "tests=%s failures=%s skipped=%s, counted %d/%d/%d" % (
                suite.tests, suite.failures, suite.skipped, len(cases), len(failed),
                len(skipped)))
    return {"cases": cases, "failed": failed, "skipped": skipped}


def check_json(doc, label):
    errors = schema_errors(doc, AUDIT_SCHEMA)
    verdict(not errors, "%s: --json validates against vfiod.audit/1" % label, "\n".join(errors))
    if errors:
        return
    s = doc["summary"]
    total = sum(s[k] for k in ("critical", "high", "medium", "low", "info"))
    verdict(total == s["total"] == len(doc["findings"]),
            "%s: the summary counts the findings" % label)
    verdict((doc["verdict"] == "fail") == (s["failing"] > 0),
            "%s: the verdict follows the failing count" % label)


def run(argv, want=(0, 1)):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode not in want:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), p.returncode, p.stderr))
    return p


def audit_fixture(vfioctl, root, label, extra, tmp):
    json_p = run([vfioctl, "audit", "--root", root, "--json"] + extra)
    doc = json.loads(json_p.stdout)
    check_json(doc, label)
    sarif_p = run([vfioctl, "audit", "--root", root, "--sarif"] + extra)
    sarif_run = check_sarif(json.loads(sarif_p.stdout), label)
    xml_path = os.path.join(tmp, "junit.xml")
    junit_p = run([vfioctl, "audit", "--root", root, "--junit"] + extra)
    with open(xml_path, "w") as f:
        f.write(junit_p.stdout)
    junit = check_junit(xml_path, label)
    verdict(json_p.returncode == sarif_p.returncode == junit_p.returncode
            == (1 if doc["summary"]["failing"] else 0),
            "%s: exit status %d with every format" % (label, json_p.returncode))
    if sarif_run is not None:
        verdict(len(sarif_run["results"]) == len(doc["findings"]),
                "%s: SARIF has one result per finding (%d)" % (label, len(doc["findings"])))
    if junit is not None:
        verdict(len(junit["failed"]) == doc["summary"]["failing"],
                "%s: JUnit fails exactly the findings at or above --fail-on (%d)"
                % (label, doc["summary"]["failing"]))
        skipped = sum(1 for c in doc["checks"] if c["status"] == "skip")
        verdict(len(junit["skipped"]) == skipped,
                "%s: JUnit skips exactly the checks that do not apply (%d)" % (label, skipped))


def fixtures(mkfixture, fixture_dir, vfioctl):
    descs = [os.path.join(fixture_dir, "machines", f)
             for f in sorted(os.listdir(os.path.join(fixture_dir, "machines")))
             if f.endswith(".txt")]
    descs += [os.path.join(fixture_dir, f) for f in ("noiommu.txt", "passthrough.txt", "broken.txt")]
    with tempfile.TemporaryDirectory() as tmp:
        for desc in descs:
            name = os.path.basename(desc)[:-4]
            root = os.path.join(tmp, name)
            run(["/usr/bin/python3", mkfixture, desc, root], want=(0,))
            audit_fixture(vfioctl, root, name, [], tmp)
            audit_fixture(vfioctl, root, name + " --fail-on low", ["--fail-on", "low"], tmp)
        # Markup in a finding must not break the XML: a device subject cannot hold any,
        # but a command-line word can.
        root = os.path.join(tmp, "server-c236-i350")
        with open(os.path.join(root, "proc", "cmdline"), "w") as f:
            f.write("ro pcie_acs_override=<downstream>&\"'\\x01 iommu=pt\n")
        audit_fixture(vfioctl, root, "markup on the command line", [], tmp)


def validate(paths):
    for path in paths:
        label = os.path.basename(path)
        if path.endswith(".xml"):
            check_junit(path, label)
            continue
        with open(path) as f:
            doc = json.load(f)
        if path.endswith(".sarif"):
            check_sarif(doc, label)
        else:
            check_json(doc, label)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--validate":
        validate(sys.argv[2:])
    elif len(sys.argv) == 4:
        fixtures(*sys.argv[1:4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
