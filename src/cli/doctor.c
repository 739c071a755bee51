/* nestvm doctor: the host's readiness for running and nesting VMs. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "nested/doctor.h"
#include "util/log.h"

static const char *status_name(enum check_status s)
{
	return s == CHECK_PASS ? "pass" : s == CHECK_FAIL ? "fail" : "info";
}

static void print_text(const struct doctor_report *r)
{
	printf("nestvm doctor: can this host run VMs, and nest them?\n\n");
	for (int i = 0; i < r->nchecks; i++) {
		const struct check *c = &r->checks[i];
		const char *tag = c->status == CHECK_PASS ? " ok " : c->status == CHECK_FAIL ? "FAIL" : "info";
		printf("  [%s] %-32s %s\n", tag, c->title, c->detail);
		if (c->fix[0])
			printf("         %-32s fix: %s\n", "", c->fix);
	}
	printf("\nverdicts:\n");
	printf("  can run VMs:                         %s\n", r->can_run_vms ? "yes" : "no");
	printf("  can run stock kernels at full speed: %s%s%s%s\n", r->full_speed ? "yes" : "no",
	       r->full_speed ? "" : " (", r->why_not_full_speed, r->full_speed ? "" : ")");
	printf("  can expose nesting to guests:        %s%s%s%s\n", r->can_nest ? "yes" : "no",
	       r->can_nest ? "" : " (", r->why_not_nest, r->can_nest ? "" : ")");
}

static int print_json(const struct doctor_report *r)
{
	json_object *root = json_object_new_object();
	json_object *host = json_object_new_object();
	json_object_object_add(host, "cpu_vendor", json_object_new_string(r->cpu.vendor));
	json_object_object_add(host, "cpu_model", json_object_new_string(r->cpu.model));
	json_object_object_add(host, "kvm_backend", json_object_new_string(r->backend));
	json_object_object_add(host, "hypervisor",
			       r->hypervisor[0] ? json_object_new_string(r->hypervisor) : NULL);
	json_object_object_add(root, "host", host);
	json_object *checks = json_object_new_array();
	for (int i = 0; i < r->nchecks; i++) {
		const struct check *c = &r->checks[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(c->id));
		json_object_object_add(o, "title", json_object_new_string(c->title));
		json_object_object_add(o, "status", json_object_new_string(status_name(c->status)));
		json_object_object_add(o, "detail", json_object_new_string(c->detail));
		if (c->fix[0])
			json_object_object_add(o, "fix", json_object_new_string(c->fix));
		json_object_array_add(checks, o);
	}
	json_object_object_add(root, "checks", checks);
	json_object *v = json_object_new_object();
	json_object_object_add(v, "can_run_vms", json_object_new_boolean(r->can_run_vms));
	json_object_object_add(v, "can_run_stock_kernels_full_speed",
			       json_object_new_boolean(r->full_speed));
	json_object_object_add(v, "can_expose_nesting", json_object_new_boolean(r->can_nest));
	json_object_object_add(root, "verdicts", v);
	int ok = puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE)) >= 0;
	json_object_put(root);
	return ok ? 0 : -1;
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int json = 0, c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'h':
			printf("usage: nestvm doctor [--json]\n"
			       "Checks this host for running VMs and exposing nesting to them.\n"
			       "Exit status 0 only if nesting can be exposed.\n");
			return 0;
		default:
			log_error("doctor: unknown option %s (see 'nestvm doctor --help')", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_error("doctor: unexpected argument '%s'", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	struct doctor_report r;
	doctor_run(&r);
	if (json ? print_json(&r) < 0 : (print_text(&r), 0))
		return 1;
	return r.can_nest ? 0 : 1;
}
