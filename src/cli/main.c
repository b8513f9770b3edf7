/* longtail command-line entry point: dispatches to subcommands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void lt_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("longtail: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"bench", lt_cmd_bench, "measure training and inference throughput of a model"},
    {"data", lt_cmd_data, "long-tailed dataset counts: train / val / test per class, Many / Medium / Few"},
    {"eval", lt_cmd_eval, "re-evaluate a checkpoint: top-1, Many / Medium / Few, per-class accuracy"},
    {"train", lt_cmd_train, "train a recipe (default: configs/default.ini) into a run directory"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: longtail <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`longtail <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return LT_EXIT_USAGE; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("longtail %s\n", LT_VERSION); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    lt_cli_error("unknown command '%s' (see `longtail --help`)", argv[1]);
    return LT_EXIT_USAGE;
}
