/* Host readiness for running and nesting VMs: the requirement checks users
 * know from ESXi's and Hyper-V's documentation, done for real on this host.
 * Presentation (text or JSON) is the CLI's. */
#ifndef NESTVM_NESTED_DOCTOR_H
#define NESTVM_NESTED_DOCTOR_H

#include <stdbool.h>

#include "nested/nested.h"

enum check_status { CHECK_PASS, CHECK_FAIL, CHECK_INFO };

struct check {
	const char *id;       /* stable key for JSON */
	const char *title;
	enum check_status status;
	char detail[256];
	char fix[320];        /* empty unless the check failed */
};

#define DOCTOR_MAX_CHECKS 24

struct doctor_report {
	struct check checks[DOCTOR_MAX_CHECKS];
	int nchecks;
	struct host_cpu cpu;
	char backend[32];
	char hypervisor[32];  /* the hypervisor this host runs under, or "" */
	bool can_run_vms;
	bool full_speed;      /* stock kernels at full speed */
	bool can_nest;        /* nesting can be exposed to guests */
	char why_not_full_speed[256];
	char why_not_nest[256];
};

void doctor_run(struct doctor_report *report);

#endif
