/* Training progress rendering (see progress.h). */
#include "progress.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lt_progress_init(lt_progress *p, FILE *out, int quiet) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = isatty(fileno(out));
    p->quiet = quiet;
}

const char *lt_progress_duration(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "--:--");
        return buf;
    }
    long t = lround(s);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

void lt_progress_finish(lt_progress *p) {
    if (p->line_open) {
        fputc('\n', p->out);
        p->line_open = 0;
    }
    fflush(p->out);
}

static void seed_prefix(const lt_train_event *ev, char *buf, size_t n) {
    if (ev->n_seeds > 1) snprintf(buf, n, "[seed %llu, %d/%d] ", (unsigned long long)ev->seed, ev->seed_index + 1, ev->n_seeds);
    else buf[0] = '\0';
}

static void pct(char *buf, size_t n, double x) {
    if (isfinite(x)) snprintf(buf, n, "%.2f%%", 100.0 * x);
    else snprintf(buf, n, "-");
}

void lt_progress_event(const lt_train_event *ev, void *user) {
    lt_progress *p = user;
    FILE *f = p->out;
    char pre[64], eta[32], a[32], b[32], c[32], d[32];
    seed_prefix(ev, pre, sizeof pre);
    switch (ev->kind) {
    case LT_TRAIN_SEED_BEGIN:
        if (ev->stage > 1 || ev->epoch > 0) {
            lt_progress_finish(p);
            fprintf(f, "%sresuming %s at stage %d, after epoch %lld\n", pre, ev->run_dir, ev->stage, (long long)ev->epoch);
        }
        break;
    case LT_TRAIN_STAGE_BEGIN:
        if (p->quiet) break;
        lt_progress_finish(p);
        fprintf(f, "%s%s: %lld epoch%s of %lld batches\n", pre, ev->stage_name, (long long)ev->epochs,
                ev->epochs == 1 ? "" : "s", (long long)ev->batches);
        break;
    case LT_TRAIN_BATCH: {
        if (p->quiet || !p->tty) break;
        double t = now_s();
        if (t - p->last_draw < 0.1 && ev->batch < ev->batches) break;
        p->last_draw = t;
        const int width = 20;
        int filled = ev->batches > 0 ? (int)((double)width * (double)ev->batch / (double)ev->batches) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
        bar[width] = '\0';
        pct(a, sizeof a, ev->train_acc);
        fprintf(f, "\r\033[K%s%s epoch %lld/%lld [%s] loss %.4f acc %s %.0f img/s ETA %s", pre, ev->stage_name,
                (long long)ev->epoch, (long long)ev->epochs, bar, ev->loss, a, ev->images_per_s,
                lt_progress_duration(ev->eta_s, eta, sizeof eta));
        fflush(f);
        p->line_open = 1;
        break;
    }
    case LT_TRAIN_EPOCH_END:
        if (p->quiet) break;
        if (p->tty) fputs("\r\033[K", f);
        p->line_open = 0;
        pct(a, sizeof a, ev->train_acc);
        pct(b, sizeof b, ev->val_top1);
        fprintf(f, "%s%s epoch %lld/%lld  lr %.4g  loss %.4f  acc %s  val %s%s  %.0f img/s  ETA %s\n", pre,
                ev->stage_name, (long long)ev->epoch, (long long)ev->epochs, ev->lr, ev->loss, a, b,
                ev->is_best ? " *" : "", ev->images_per_s, lt_progress_duration(ev->eta_s, eta, sizeof eta));
        fflush(f);
        break;
    case LT_TRAIN_STAGE_END: {
        lt_progress_finish(p);
        const lt_eval_result *t = ev->test;
        pct(d, sizeof d, ev->val_top1);
        fprintf(f, "%s%s done: epoch %lld selected (val top-1 %s)", pre, ev->stage_name, (long long)ev->selected_epoch, d);
        if (t) {
            pct(a, sizeof a, t->top1);
            fprintf(f, "; test top-1 %s", a);
            pct(a, sizeof a, lt_eval_many(t));
            pct(b, sizeof b, lt_eval_medium(t));
            pct(c, sizeof c, lt_eval_few(t));
            fprintf(f, ", many %s, medium %s, few %s", a, b, c);
        }
        fputc('\n', f);
        fflush(f);
        break;
    }
    case LT_TRAIN_SEED_END:
        break;
    case LT_TRAIN_NOTE:
        lt_progress_finish(p);
        fprintf(f, "%s%s\n", pre, ev->note);
        break;
    }
}
