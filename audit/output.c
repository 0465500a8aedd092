/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit report as JSON (vfiod.audit/1), SARIF 2.1.0 and JUnit XML. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "macro.h"

static json_object *string_or_null(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

static json_object *strv_to_json(char *const *l)
{
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && l && l[i]; i++)
                json_object_array_add(a, json_object_new_string(l[i]));
        return a;
}

static json_object *text(const char *s)
{
        json_object *o = json_object_new_object();

        if (o)
                json_object_object_add(o, "text", json_object_new_string(s ? s : ""));
        return o;
}

static json_object *evidence_to_json(const struct audit_finding *f)
{
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && i < f->n_evidence; i++) {
                json_object *e = json_object_new_object();
                if (!e)
                        break;
                json_object_object_add(e, "path", string_or_null(f->evidence[i].path));
                json_object_object_add(e, "value", string_or_null(f->evidence[i].value));
                json_object_array_add(a, e);
        }
        return a;
}

json_object *audit_report_to_json(const struct audit_report *r, const struct audit_source *src,
                                  enum audit_severity fail_on)
{
        json_object *o = json_object_new_object(), *source, *scope, *summary, *checks, *findings;
        size_t per[_AUDIT_SEVERITY_MAX] = {0}, n_checks[_AUDIT_CHECK_MAX] = {0};

        if (!o)
                return NULL;
        for (size_t i = 0; i < r->n_findings; i++) {
                per[r->findings[i].severity]++;
                n_checks[r->findings[i].check]++;
        }
        json_object_object_add(o, "schema", json_object_new_string("vfiod.audit/1"));

        source = json_object_new_object();
        json_object_object_add(source, "root", string_or_null(src->root));
        json_object_object_add(source, "live", json_object_new_boolean(src->live));
        if (src->snapshot) {
                json_object *s = json_object_new_object();
                json_object_object_add(s, "path", string_or_null(src->snapshot));
                json_object_object_add(s, "created", string_or_null(src->snapshot_created));
                json_object_object_add(s, "kernel", string_or_null(src->snapshot_kernel));
                json_object_object_add(source, "snapshot", s);
        } else
                json_object_object_add(source, "snapshot", NULL);
        json_object_object_add(o, "source", source);

        scope = json_object_new_object();
        json_object_object_add(scope, "kind",
                               json_object_new_string(r->whole_host ? "host" : "devices"));
        json_object_object_add(scope, "devices", strv_to_json(r->devices));
        json_object_object_add(o, "scope", scope);

        json_object_object_add(o, "fail_on",
                               json_object_new_string(audit_severity_to_string(fail_on)));
        json_object_object_add(
                o, "verdict",
                json_object_new_string(audit_report_count(r, fail_on) ? "fail" : "pass"));
        summary = json_object_new_object();
        for (int s = _AUDIT_SEVERITY_MAX - 1; s >= 0; s--)
                json_object_object_add(summary, audit_severity_to_string(s),
                                       json_object_new_int64((int64_t)per[s]));
        json_object_object_add(summary, "total", json_object_new_int64((int64_t)r->n_findings));
        json_object_object_add(summary, "failing",
                               json_object_new_int64((int64_t)audit_report_count(r, fail_on)));
        json_object_object_add(o, "summary", summary);

        checks = json_object_new_array();
        for (int i = 0; i < _AUDIT_CHECK_MAX; i++) {
                const struct audit_check_info *ci = audit_check_info(i);
                json_object *c = json_object_new_object();
                if (!c)
                        break;
                json_object_object_add(c, "id", json_object_new_string(ci->id));
                json_object_object_add(c, "title", json_object_new_string(ci->title));
                json_object_object_add(
                        c, "severity",
                        json_object_new_string(audit_severity_to_string(ci->severity)));
                json_object_object_add(
                        c, "status", json_object_new_string(audit_status_to_string(r->status[i])));
                json_object_object_add(c, "findings", json_object_new_int64((int64_t)n_checks[i]));
                json_object_object_add(c, "reason", string_or_null(r->skip_reason[i]));
                json_object_array_add(checks, c);
        }
        json_object_object_add(o, "checks", checks);

        findings = json_object_new_array();
        for (size_t i = 0; i < r->n_findings; i++) {
                const struct audit_finding *f = &r->findings[i];
                json_object *j = json_object_new_object();
                if (!j)
                        break;
                json_object_object_add(j, "id",
                                       json_object_new_string(audit_check_info(f->check)->id));
                json_object_object_add(
                        j, "severity",
                        json_object_new_string(audit_severity_to_string(f->severity)));
                json_object_object_add(j, "subject", string_or_null(f->subject));
                json_object_object_add(j, "detail", string_or_null(f->detail));
                json_object_object_add(j, "message", string_or_null(f->message));
                json_object_object_add(j, "evidence", evidence_to_json(f));
                json_object_object_add(j, "fix", string_or_null(f->fix));
                json_object_object_add(j, "devices", strv_to_json(f->devices));
                json_object_array_add(findings, j);
        }
        json_object_object_add(o, "findings", findings);
        json_object_object_add(o, "warnings", strv_to_json(r->warnings));
        return o;
}

/* SARIF levels: what a code-scanning front end shows as error, warning or note. */
static const char *sarif_level(enum audit_severity s)
{
        return s >= AUDIT_SEVERITY_HIGH ? "error" : s == AUDIT_SEVERITY_MEDIUM ? "warning" : "note";
}

/* The numeric scale code-scanning services read from "security-severity". */
static const char *sarif_security_severity(enum audit_severity s)
{
        static const char *const v[_AUDIT_SEVERITY_MAX] = {"0.0", "3.0", "5.5", "8.0", "9.5"};
        return v[s];
}

/* A root-relative path as a relative URI reference: everything outside the unreserved
 * and path characters is percent-encoded. */
static char *uri_encode(const char *path)
{
        static const char ok[] = "-._~!$&'()*+,;=:@/";
        size_t len = 0;
        char *out = malloc(strlen(path) * 3 + 1);

        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || (*p && strchr(ok, *p)))
                        out[len++] = (char)*p;
                else
                        len += (size_t)sprintf(out + len, "%%%02X", *p);
        }
        out[len] = '\0';
        return out;
}

static json_object *sarif_rule(enum audit_check_id id)
{
        const struct audit_check_info *ci = audit_check_info(id);
        json_object *rule = json_object_new_object(), *conf, *props, *tags;

        if (!rule)
                return NULL;
        json_object_object_add(rule, "id", json_object_new_string(ci->id));
        json_object_object_add(rule, "shortDescription", text(ci->title));
        json_object_object_add(rule, "fullDescription", text(ci->description));
        json_object_object_add(rule, "help", text(ci->description));
        conf = json_object_new_object();
        json_object_object_add(conf, "level", json_object_new_string(sarif_level(ci->severity)));
        json_object_object_add(rule, "defaultConfiguration", conf);
        props = json_object_new_object();
        tags = json_object_new_array();
        json_object_array_add(tags, json_object_new_string("security"));
        json_object_array_add(tags, json_object_new_string("dma-isolation"));
        json_object_object_add(props, "tags", tags);
        json_object_object_add(props, "security-severity",
                               json_object_new_string(sarif_security_severity(ci->severity)));
        json_object_object_add(props, "severity",
                               json_object_new_string(audit_severity_to_string(ci->severity)));
        json_object_object_add(rule, "properties", props);
        return rule;
}

static json_object *sarif_result(const struct audit_finding *f, enum audit_severity fail_on)
{
        json_object *res = json_object_new_object(), *loc, *phys, *art, *logical, *ll, *props, *fp;
        _cleanup_free_ char *uri = NULL, *msg = NULL, *fingerprint = NULL;

        if (!res)
                return NULL;
        json_object_object_add(res, "ruleId",
                               json_object_new_string(audit_check_info(f->check)->id));
        json_object_object_add(res, "ruleIndex", json_object_new_int((int)f->check));
        json_object_object_add(res, "level", json_object_new_string(sarif_level(f->severity)));
        if (asprintf(&msg, "%s.%s%s", f->message, f->fix ? " Fix: " : "", f->fix ? f->fix : "") < 0)
                msg = NULL;
        json_object_object_add(res, "message", text(msg ? msg : f->message));

        loc = json_object_new_object();
        if (f->n_evidence > 0 && f->evidence[0].path && (uri = uri_encode(f->evidence[0].path))) {
                phys = json_object_new_object();
                art = json_object_new_object();
                json_object_object_add(art, "uri", json_object_new_string(uri));
                json_object_object_add(art, "uriBaseId", json_object_new_string("AUDITROOT"));
                json_object_object_add(phys, "artifactLocation", art);
                json_object_object_add(loc, "physicalLocation", phys);
        }
        logical = json_object_new_array();
        ll = json_object_new_object();
        json_object_object_add(ll, "name",
                               json_object_new_string(f->subject ? f->subject : "host"));
        json_object_object_add(ll, "kind", json_object_new_string("resource"));
        json_object_array_add(logical, ll);
        json_object_object_add(loc, "logicalLocations", logical);
        {
                json_object *locs = json_object_new_array();
                json_object_array_add(locs, loc);
                json_object_object_add(res, "locations", locs);
        }
        /* Stable across runs of the same host, so that a CI service can track a finding. */
        fp = json_object_new_object();
        if (asprintf(&fingerprint, "%s|%s|%s", audit_check_info(f->check)->id,
                     f->subject ? f->subject : "", f->detail ? f->detail : "") >= 0)
                json_object_object_add(fp, "vfiodFinding/v1", json_object_new_string(fingerprint));
        json_object_object_add(res, "partialFingerprints", fp);

        props = json_object_new_object();
        json_object_object_add(props, "severity",
                               json_object_new_string(audit_severity_to_string(f->severity)));
        json_object_object_add(props, "subject", string_or_null(f->subject));
        json_object_object_add(props, "detail", string_or_null(f->detail));
        json_object_object_add(props, "fix", string_or_null(f->fix));
        json_object_object_add(props, "evidence", evidence_to_json(f));
        json_object_object_add(props, "devices", strv_to_json(f->devices));
        json_object_object_add(props, "failing", json_object_new_boolean(f->severity >= fail_on));
        json_object_object_add(res, "properties", props);
        return res;
}

json_object *audit_report_to_sarif(const struct audit_report *r, const struct audit_source *src,
                                   enum audit_severity fail_on)
{
        json_object *o = json_object_new_object(), *runs, *run, *tool, *driver, *rules, *results;
        json_object *bases, *base, *inv, *notes, *props;
        _cleanup_free_ char *desc = NULL;

        if (!o)
                return NULL;
        json_object_object_add(
                o, "$schema",
                json_object_new_string("https://json.schemastore.org/sarif-2.1.0.json"));
        json_object_object_add(o, "version", json_object_new_string("2.1.0"));
        runs = json_object_new_array();
        run = json_object_new_object();

        tool = json_object_new_object();
        driver = json_object_new_object();
        json_object_object_add(driver, "name", json_object_new_string("vfioctl audit"));
        json_object_object_add(driver, "version", string_or_null(src->tool_version));
        rules = json_object_new_array();
        for (int i = 0; i < _AUDIT_CHECK_MAX; i++)
                json_object_array_add(rules, sarif_rule(i));
        json_object_object_add(driver, "rules", rules);
        json_object_object_add(tool, "driver", driver);
        json_object_object_add(run, "tool", tool);

        /* Evidence paths are relative to the audited root: "/" on a live host. */
        bases = json_object_new_object();
        base = json_object_new_object();
        if (src->live)
                json_object_object_add(base, "uri", json_object_new_string("file:///"));
        if (asprintf(&desc, "the audited root: %s%s%s", src->snapshot ? "snapshot " : "",
                     src->snapshot ? src->snapshot : src->root,
                     src->live ? " (live host)" : "") < 0)
                desc = NULL;
        json_object_object_add(base, "description", text(desc ? desc : "the audited root"));
        json_object_object_add(bases, "AUDITROOT", base);
        json_object_object_add(run, "originalUriBaseIds", bases);

        inv = json_object_new_object();
        json_object_object_add(inv, "executionSuccessful", json_object_new_boolean(true));
        notes = json_object_new_array();
        for (size_t i = 0; i < r->n_warnings; i++) {
                json_object *n = json_object_new_object();
                json_object_object_add(n, "level", json_object_new_string("warning"));
                json_object_object_add(n, "message", text(r->warnings[i]));
                json_object_array_add(notes, n);
        }
        json_object_object_add(inv, "toolExecutionNotifications", notes);
        {
                json_object *invs = json_object_new_array();
                json_object_array_add(invs, inv);
                json_object_object_add(run, "invocations", invs);
        }

        results = json_object_new_array();
        for (size_t i = 0; i < r->n_findings; i++)
                json_object_array_add(results, sarif_result(&r->findings[i], fail_on));
        json_object_object_add(run, "results", results);

        props = json_object_new_object();
        json_object_object_add(props, "scope",
                               json_object_new_string(r->whole_host ? "host" : "devices"));
        json_object_object_add(props, "devices", strv_to_json(r->devices));
        json_object_object_add(props, "failOn",
                               json_object_new_string(audit_severity_to_string(fail_on)));
        json_object_object_add(
                props, "verdict",
                json_object_new_string(audit_report_count(r, fail_on) ? "fail" : "pass"));
        json_object_object_add(run, "properties", props);

        json_object_array_add(runs, run);
        json_object_object_add(o, "runs", runs);
        return o;
}

/* XML 1.0 text or attribute content. Control characters other than tab and newline are
 * not allowed even as references: they are shown as \xNN. */
static void xml_escaped(FILE *f, const char *s)
{
        for (; s && *s; s++) {
                unsigned char ch = (unsigned char)*s;
                switch (ch) {
                case '&':
                        fputs("&amp;", f);
                        break;
                case '<':
                        fputs("&lt;", f);
                        break;
                case '>':
                        fputs("&gt;", f);
                        break;
                case '"':
                        fputs("&quot;", f);
                        break;
                case '\'':
                        fputs("&apos;", f);
                        break;
                default:
                        if (ch < 0x20 && ch != '\t' && ch != '\n')
                                fprintf(f, "\\x%02x", ch);
                        else
                                fputc(ch, f);
                }
        }
}

/* "acs.path" -> "vfiod.audit.acs": the check's family, for JUnit's class name. */
static void junit_classname(FILE *f, const char *id)
{
        fprintf(f, "vfiod.audit.%.*s", (int)strcspn(id, "."), id);
}

static void junit_finding_body(FILE *f, const struct audit_finding *x)
{
        fprintf(f, "severity: %s\n", audit_severity_to_string(x->severity));
        xml_escaped(f, x->message);
        fputc('\n', f);
        for (size_t i = 0; i < x->n_evidence; i++) {
                fputs("evidence: ", f);
                xml_escaped(f, x->evidence[i].path);
                fputs(": ", f);
                xml_escaped(f, x->evidence[i].value);
                fputc('\n', f);
        }
        if (x->devices) {
                fputs("devices:", f);
                for (char **d = x->devices; *d; d++) {
                        fputc(' ', f);
                        xml_escaped(f, *d);
                }
                fputc('\n', f);
        }
        if (x->fix) {
                fputs("fix: ", f);
                xml_escaped(f, x->fix);
                fputc('\n', f);
        }
}

int audit_report_to_junit(const struct audit_report *r, const struct audit_source *src,
                          enum audit_severity fail_on, char **ret)
{
        size_t tests = 0, failures = 0, skipped = 0, len = 0;
        char *s = NULL;
        FILE *f;

        for (int i = 0; i < _AUDIT_CHECK_MAX; i++) {
                if (r->status[i] == AUDIT_STATUS_SKIP)
                        skipped++, tests++;
                else if (r->status[i] == AUDIT_STATUS_PASS)
                        tests++;
        }
        tests += r->n_findings;
        failures = audit_report_count(r, fail_on);

        f = open_memstream(&s, &len);
        if (!f)
                return -ENOMEM;
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
        fprintf(f,
                "<testsuites name=\"vfioctl audit\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
                "skipped=\"%zu\" time=\"0\">\n",
                tests, failures, skipped);
        fprintf(f,
                "  <testsuite name=\"vfiod.audit\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
                "skipped=\"%zu\" time=\"0\">\n",
                tests, failures, skipped);
        fputs("    <properties>\n", f);
        fputs("      <property name=\"schema\" value=\"vfiod.audit/1\"/>\n", f);
        fputs("      <property name=\"root\" value=\"", f);
        xml_escaped(f, src->snapshot ? src->snapshot : src->root);
        fputs("\"/>\n", f);
        fprintf(f, "      <property name=\"scope\" value=\"%s\"/>\n",
                r->whole_host ? "host" : "devices");
        fprintf(f, "      <property name=\"fail_on\" value=\"%s\"/>\n",
                audit_severity_to_string(fail_on));
        fputs("    </properties>\n", f);

        /* Checks in their order: the findings of each, or one case for the whole check. */
        for (int i = 0; i < _AUDIT_CHECK_MAX; i++) {
                const char *id = audit_check_info(i)->id;

                if (r->status[i] != AUDIT_STATUS_FAIL) {
                        fputs("    <testcase classname=\"", f);
                        junit_classname(f, id);
                        fprintf(f, "\" name=\"%s\" time=\"0\"", id);
                        if (r->status[i] == AUDIT_STATUS_SKIP) {
                                fputs(">\n      <skipped message=\"", f);
                                xml_escaped(f, r->skip_reason[i]);
                                fputs("\"/>\n    </testcase>\n", f);
                        } else
                                fputs("/>\n", f);
                        continue;
                }
                for (size_t k = 0; k < r->n_findings; k++) {
                        const struct audit_finding *x = &r->findings[k];

                        if ((int)x->check != i)
                                continue;
                        fputs("    <testcase classname=\"", f);
                        junit_classname(f, id);
                        fprintf(f, "\" name=\"%s", id);
                        if (x->subject) {
                                fputc(' ', f);
                                xml_escaped(f, x->subject);
                        }
                        if (x->detail) {
                                fputc(' ', f);
                                xml_escaped(f, x->detail);
                        }
                        fputs("\" time=\"0\">\n", f);
                        if (x->severity >= fail_on) {
                                fprintf(f, "      <failure type=\"%s\" message=\"",
                                        audit_severity_to_string(x->severity));
                                xml_escaped(f, x->message);
                                fputs("\">", f);
                                junit_finding_body(f, x);
                                fputs("</failure>\n", f);
                        } else {
                                /* Below the threshold: recorded, not failed. */
                                fputs("      <system-out>", f);
                                junit_finding_body(f, x);
                                fputs("</system-out>\n", f);
                        }
                        fputs("    </testcase>\n", f);
                }
        }
        fputs("  </testsuite>\n</testsuites>\n", f);
        if (fclose(f) != 0 || !s) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}
