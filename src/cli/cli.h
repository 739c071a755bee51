/* Subcommands: one file each, each taking the arguments after its name
 * (argv[0] is the subcommand) and returning nestvm's exit status. */
#ifndef NESTVM_CLI_CLI_H
#define NESTVM_CLI_CLI_H

/* Exit status for bad usage or configuration, before any VM runs. */
#define CLI_EXIT_USAGE 2

int cmd_run(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_ctl(int argc, char **argv);

/* --console stdio|file:PATH|none: the fd COM1 writes to (-1: none). */
int cli_open_console(const char *spec, int *fd);
int cmd_labhost(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_switch(int argc, char **argv);
int cmd_disk(int argc, char **argv);
int cmd_lab(int argc, char **argv);

#endif
