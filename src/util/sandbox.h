/* Seccomp sandbox: once a thread's setup is done, it may make only the
 * system calls its class needs (an allowlist through libseccomp). A guest
 * that finds a bug in a device model then holds a thread that cannot open
 * files, start programs or make sockets. A forbidden call stops nestvm with
 * one line naming the thread class and the call's number; it is a nestvm
 * bug, never the guest's doing. */
#ifndef NESTVM_UTIL_SANDBOX_H
#define NESTVM_UTIL_SANDBOX_H

enum sandbox_class {
	SANDBOX_VCPU,   /* KVM_RUN and the exits it dispatches (device registers) */
	SANDBOX_WORKER, /* a device's worker: its queues, image or tap */
	SANDBOX_MAIN,   /* console, control API, snapshots, a reboot's rebuild */
	SANDBOX_SWITCH, /* nestvm switch: its sockets, nothing else */
	SANDBOX_SWITCH_NAT, /* and with --nat: libslirp's IPv4 sockets and resolv.conf */
};

/* Confines the calling thread (and threads it starts later) for good. A
 * filter that cannot be installed (sandbox_check() passed, so this is not
 * expected) stops nestvm with a one-line error: never run unconfined
 * silently. */
void sandbox_enter(enum sandbox_class cls);

/* Checks once, before the VM starts, that this kernel can confine
 * threads; -1 with a one-line error if not. */
int sandbox_check(void);

/* Whether sandbox_enter() confines threads (NESTVM_SECCOMP=off turns it off
 * for debugging; the README says so). */
int sandbox_enabled(void);

#endif
