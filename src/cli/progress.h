/* Training progress on the terminal: an in-place bar on a TTY (stage, epoch / total,
 * loss, accuracy, images/s, ETA), one line per epoch when the output is a file or a pipe.
 * Used as the lt_train_progress_fn of `longtail train`. */
#ifndef LT_CLI_PROGRESS_H
#define LT_CLI_PROGRESS_H

#include "longtail/train.h"

#include <stdio.h>

typedef struct lt_progress {
    FILE *out;
    int tty;            /* redraw one line in place */
    int quiet;          /* nothing but stage results */
    int line_open;      /* an in-place line is on screen without its newline */
    double last_draw;   /* monotonic seconds of the last redraw */
} lt_progress;

void lt_progress_init(lt_progress *p, FILE *out, int quiet);
/* The lt_train_progress_fn: user is an lt_progress. */
void lt_progress_event(const lt_train_event *ev, void *user);
/* Ends an open in-place line (before printing anything else). */
void lt_progress_finish(lt_progress *p);
/* "1:02:03", "4:05", or "--:--" for NaN. */
const char *lt_progress_duration(double seconds, char *buf, size_t n);

#endif
