/* `longtail bench`: training and inference throughput. */
#include "cli.h"

int lt_cmd_bench(int argc, char **argv) {
    (void)argc; (void)argv;
    lt_cli_error("bench: the model zoo is not built yet");
    return LT_EXIT_RUNTIME;
}
