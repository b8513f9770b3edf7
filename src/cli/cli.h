/* The `longtail` command: one function per subcommand. Only this folder prints or exits. */
#ifndef LT_CLI_H
#define LT_CLI_H

#include "longtail/longtail.h"

/* Exit codes: 0 success, 1 runtime error, 2 usage error. */
#define LT_EXIT_RUNTIME 1
#define LT_EXIT_USAGE 2

/* Prints "longtail: error: <msg>" on stderr. */
void lt_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int lt_cmd_bench(int argc, char **argv);
int lt_cmd_data(int argc, char **argv);
int lt_cmd_eval(int argc, char **argv);
int lt_cmd_train(int argc, char **argv);

#endif
