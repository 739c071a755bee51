/* Subcommands: one file each, each taking the arguments after its name
 * (argv[0] is the subcommand) and returning nestvm's exit status. */
#ifndef NESTVM_CLI_CLI_H
#define NESTVM_CLI_CLI_H

struct machine_config;
struct console_socket;

/* Exit status for bad usage or configuration, before any VM runs. */
#define CLI_EXIT_USAGE 2

int cmd_run(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
int cmd_console(int argc, char **argv);
/* Relays this terminal and the console socket at path until Ctrl-A x, the
 * end of stdin, or the VM's end; messages name `what`. nestvm's exit
 * status: 0, or 1 when it could not attach. */
int cli_console_attach(const char *path, const char *what);

/* --console stdio|file:PATH|append:PATH|none and --console-socket PATH (or
 * NULL): sets config's console_fd, console_in_fd (stdin with stdio) and
 * console_socket (cs, opened here). cli_close_console() undoes it. */
int cli_open_console(const char *spec, const char *socket_path, struct machine_config *config,
		     struct console_socket *cs);
void cli_close_console(struct machine_config *config);
int cmd_labhost(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_switch(int argc, char **argv);
int cmd_disk(int argc, char **argv);
int cmd_lab(int argc, char **argv);
int cmd_template(int argc, char **argv);
/* nestvm template build busybox ARGS (cli/template_busybox.c) */
int template_build_busybox(int argc, char **argv);
/* A template build's argument that is not an option it knows: the
 * directory (once), or an error naming help; -1 after the message. */
int template_dir_arg(const char *arg, const char **dir, const char *help);

#endif
