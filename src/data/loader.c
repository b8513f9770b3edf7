/* The batch loader: one worker thread fills the next batch (gather the epoch's indices,
 * augment, normalize into float NHWC) while the caller trains on the current one.
 *
 * Two slots (double buffering): batch b of an epoch is built in slot b % 2. The worker
 * builds batch b only when its slot is free, i.e. after the caller has moved past batch
 * b - 2; the caller's lt_loader_next() frees the slot it was handed last time and waits
 * until batch b is ready. All buffers are allocated in lt_loader_init(); nothing is
 * allocated per batch or per epoch afterwards.
 *
 * Batch b of epoch e is augmented with a generator seeded by lt_rng_derive_seed(seed, e, b)
 * on LT_STREAM_AUGMENT, so what a batch contains depends on (seed, e, b) alone: not on
 * timing, not on where a run was resumed. Errors in the worker are carried to the caller
 * as an lt_status plus the message (messages are per thread). */
#include "data/data_internal.h"

#include <pthread.h>
#include <string.h>

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HANDED };

typedef struct loader_slot {
    float *x;
    int32_t *y;
    int64_t *idx;
    int64_t n, batch;
    enum slot_state state;
    lt_status status;
    char msg[1024];
} loader_slot;

struct lt_loader {
    const lt_dataset *ds;
    lt_sampler *sampler;
    lt_loader_config cfg;
    int64_t *order;        /* the epoch's dataset indices */
    int64_t order_len;     /* indices per epoch */
    int64_t n_batches;     /* batches per epoch */
    loader_slot slot[2];

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* guarded by mu */
    int stop, busy;
    int64_t epoch, produce, consume, end;   /* end: batches of the running epoch (0 = idle) */
    uint64_t generation;                    /* bumped by lt_loader_start: stale work is dropped */
};

/* Fills slot s with batch b of the current epoch (runs without the lock). */
static lt_status fill_batch(lt_loader *ld, loader_slot *s, int64_t epoch, int64_t b) {
    const lt_dataset *ds = ld->ds;
    const int64_t bs = ld->cfg.batch_size;
    int64_t i0 = b * bs, n = ld->order_len - i0 < bs ? ld->order_len - i0 : bs;
    int64_t per = ds->h * ds->w * ds->c;
    lt_rng rng;
    lt_rng_init(&rng, lt_rng_derive_seed(ld->cfg.seed, (uint64_t)epoch, (uint64_t)b), LT_STREAM_AUGMENT);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = ld->order[i0 + i];
        if (k < 0 || k >= ds->n)
            return lt_error(LT_ERR_STATE, "loader: epoch %lld batch %lld: index %lld outside the dataset (%lld images)",
                            (long long)epoch, (long long)b, (long long)k, (long long)ds->n);
        s->idx[i] = k;
        s->y[i] = ds->labels[k];
        lt_augment_image(ds->images + k * per, ds->h, ds->w, ds->c, &ld->cfg.augment, ld->sampler ? &rng : NULL,
                         s->x + i * per);
    }
    s->n = n;
    return LT_OK;
}

static void *worker(void *arg) {
    lt_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && !(ld->produce < ld->end && ld->slot[ld->produce % 2].state == SLOT_FREE))
            pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->stop) break;
        int64_t b = ld->produce++, epoch = ld->epoch;
        uint64_t gen = ld->generation;
        loader_slot *s = &ld->slot[b % 2];
        s->state = SLOT_FILLING;
        ld->busy = 1;
        pthread_mutex_unlock(&ld->mu);

        lt_status st = fill_batch(ld, s, epoch, b);

        pthread_mutex_lock(&ld->mu);
        ld->busy = 0;
        if (gen != ld->generation) {
            s->state = SLOT_FREE;   /* lt_loader_start() cancelled this epoch meanwhile */
        } else {
            s->batch = b;
            s->status = st;
            if (st != LT_OK) snprintf(s->msg, sizeof s->msg, "%s", lt_last_error());
            s->state = SLOT_READY;
        }
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

static void free_buffers(lt_loader *ld) {
    for (int k = 0; k < 2; k++) {
        lt_free_aligned(ld->slot[k].x);
        lt_free(ld->slot[k].y);
        lt_free(ld->slot[k].idx);
    }
    lt_free(ld->order);
}

lt_status lt_loader_init(lt_loader **out, const lt_dataset *ds, lt_sampler *sampler, const lt_loader_config *cfg) {
    *out = NULL;
    if (cfg->batch_size < 1) return lt_error(LT_ERR_ARG, "loader: batch size %lld, expected >= 1", (long long)cfg->batch_size);
    if (ds->n < 1) return lt_error(LT_ERR_ARG, "loader: the dataset is empty");
    if (ds->c < 1 || ds->c > LT_DATA_MAX_CHANNELS)
        return lt_error(LT_ERR_ARG, "loader: %lld channels, expected 1..%d", (long long)ds->c, LT_DATA_MAX_CHANNELS);
    for (int64_t ch = 0; ch < ds->c; ch++)
        if (!(cfg->augment.std[ch] > 0))
            return lt_error(LT_ERR_ARG, "loader: normalization std[%lld] = %g, expected > 0", (long long)ch,
                            (double)cfg->augment.std[ch]);
    if (cfg->augment.pad < 0 || cfg->augment.pad > 1024)
        return lt_error(LT_ERR_ARG, "loader: crop padding %d outside 0..1024", cfg->augment.pad);
    if (sampler && sampler->n != ds->n)
        return lt_error(LT_ERR_ARG, "loader: the sampler covers %lld images but the dataset has %lld",
                        (long long)sampler->n, (long long)ds->n);
    lt_loader *ld = lt_calloc(1, sizeof *ld);
    if (!ld) return lt_error(LT_ERR_NOMEM, "loader: out of memory");
    ld->ds = ds;
    ld->sampler = sampler;
    ld->cfg = *cfg;
    ld->order_len = sampler ? lt_sampler_epoch_length(sampler) : ds->n;
    ld->n_batches = cfg->drop_last ? ld->order_len / cfg->batch_size
                                   : (ld->order_len + cfg->batch_size - 1) / cfg->batch_size;
    int64_t per = ds->h * ds->w * ds->c;
    ld->order = lt_malloc((size_t)ld->order_len * sizeof(int64_t));
    int ok = ld->order != NULL;
    for (int k = 0; k < 2 && ok; k++) {
        ld->slot[k].x = lt_malloc_aligned((size_t)(cfg->batch_size * per) * sizeof(float));
        ld->slot[k].y = lt_malloc((size_t)cfg->batch_size * sizeof(int32_t));
        ld->slot[k].idx = lt_malloc((size_t)cfg->batch_size * sizeof(int64_t));
        ok = ld->slot[k].x && ld->slot[k].y && ld->slot[k].idx;
    }
    if (!ok) {
        free_buffers(ld);
        lt_free(ld);
        return lt_error(LT_ERR_NOMEM, "loader: out of memory for batches of %lld images of %lld values",
                        (long long)cfg->batch_size, (long long)per);
    }
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    if (pthread_create(&ld->thread, NULL, worker, ld) != 0) {
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->cv);
        free_buffers(ld);
        lt_free(ld);
        return lt_error(LT_ERR_NOMEM, "loader: cannot start the loader thread");
    }
    ld->thread_started = 1;
    *out = ld;
    return LT_OK;
}

int64_t lt_loader_num_batches(const lt_loader *ld) { return ld->n_batches; }

lt_status lt_loader_start(lt_loader *ld, int64_t epoch, int64_t first_batch) {
    if (epoch < 0 || first_batch < 0 || first_batch > ld->n_batches)
        return lt_error(LT_ERR_ARG, "loader: cannot start epoch %lld at batch %lld (%lld batches per epoch)",
                        (long long)epoch, (long long)first_batch, (long long)ld->n_batches);
    pthread_mutex_lock(&ld->mu);
    ld->generation++;
    ld->end = 0;                       /* the worker takes no new work ... */
    while (ld->busy) pthread_cond_wait(&ld->cv, &ld->mu);   /* ... and finishes what it has */
    ld->slot[0].state = ld->slot[1].state = SLOT_FREE;
    pthread_mutex_unlock(&ld->mu);

    /* The worker is idle now: the order buffer is ours. */
    lt_status st = LT_OK;
    if (ld->sampler) st = lt_sampler_epoch(ld->sampler, epoch, ld->order);
    else
        for (int64_t i = 0; i < ld->order_len; i++) ld->order[i] = i;
    if (st != LT_OK) return st;

    pthread_mutex_lock(&ld->mu);
    ld->epoch = epoch;
    ld->produce = ld->consume = first_batch;
    ld->end = ld->n_batches;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    return LT_OK;
}

lt_status lt_loader_next(lt_loader *ld, lt_batch *batch) {
    memset(batch, 0, sizeof *batch);
    pthread_mutex_lock(&ld->mu);
    for (int k = 0; k < 2; k++)
        if (ld->slot[k].state == SLOT_HANDED) {
            ld->slot[k].state = SLOT_FREE;
            pthread_cond_broadcast(&ld->cv);
        }
    batch->h = ld->ds->h;
    batch->w = ld->ds->w;
    batch->c = ld->ds->c;
    batch->epoch = ld->epoch;
    if (ld->consume >= ld->end) {   /* epoch over (or never started) */
        batch->index = ld->consume;
        pthread_mutex_unlock(&ld->mu);
        return LT_OK;
    }
    int64_t b = ld->consume;
    loader_slot *s = &ld->slot[b % 2];
    while (!(s->state == SLOT_READY && s->batch == b)) pthread_cond_wait(&ld->cv, &ld->mu);
    if (s->status != LT_OK) {
        lt_status st = s->status;
        s->state = SLOT_FREE;
        ld->end = 0;   /* the epoch cannot go on */
        pthread_mutex_unlock(&ld->mu);
        return lt_error(st, "%s", s->msg);
    }
    s->state = SLOT_HANDED;
    ld->consume++;
    pthread_mutex_unlock(&ld->mu);
    batch->x = s->x;
    batch->y = s->y;
    batch->idx = s->idx;
    batch->n = s->n;
    batch->index = b;
    return LT_OK;
}

void lt_loader_free(lt_loader *ld) {
    if (!ld) return;
    if (ld->thread_started) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
    }
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->cv);
    free_buffers(ld);
    lt_free(ld);
}
