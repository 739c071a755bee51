#include "cli/cli.h"
int cmd_labhost(int argc, char **argv) { (void)argc; (void)argv; return 1; }
