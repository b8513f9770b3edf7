/* Scoring a model on a dataset (lt_evaluate): evaluation mode, batches in file order with
 * normalization only, metrics against the training counts (metrics.c), the classifier's
 * per-class weight norms. */
#include "longtail/train.h"

#include <string.h>

lt_status lt_eval_loader(const lt_dataset *ds, const lt_augment_config *norm, int64_t batch_size,
                            lt_loader **out) {
    lt_loader_config lc;
    memset(&lc, 0, sizeof lc);
    lc.batch_size = batch_size;
    lc.augment = *norm;
    lc.augment.pad = 0;
    lc.augment.hflip = 0;
    *out = NULL;
    lt_status s = lt_loader_init(out, ds, NULL, &lc);
    if (!s) s = lt_loader_start(*out, 0, 0);
    return s;
}

lt_status lt_evaluate(lt_ctx *ctx, lt_model *m, const lt_dataset *ds, const lt_augment_config *norm,
                      int64_t batch_size, int topk, const int64_t *train_counts, const lt_group_spec *groups,
                      lt_eval_result *res) {
    if (ds->n < 1) return lt_error(LT_ERR_ARG, "evaluate: the dataset is empty");
    if (ds->n_classes != m->cfg.num_classes)
        return lt_error(LT_ERR_ARG, "evaluate: the dataset has %d classes, the model %d", ds->n_classes,
                        m->cfg.num_classes);
    lt_loader *ld = NULL;
    lt_metrics *mt = NULL;
    lt_status s = lt_eval_loader(ds, norm, batch_size, &ld);
    if (!s) s = lt_metrics_new(m->cfg.num_classes, topk, &mt);
    int was_training = lt_ctx_training(ctx), had_grad = lt_ctx_grad_enabled(ctx);
    lt_ctx_set_training(ctx, 0);
    lt_ctx_set_grad(ctx, 0);
    while (!s) {
        lt_batch b;
        s = lt_loader_next(ld, &b);
        if (s || b.n == 0) break;
        lt_ctx_reset(ctx);
        int64_t shape[4] = {b.n, b.h, b.w, b.c};
        lt_tensor *x = lt_tensor_wrap(ctx, b.x, 4, shape);
        lt_tensor *logits = lt_model_forward(ctx, m, x, NULL);
        if (lt_ctx_status(ctx)) {
            s = lt_error(lt_ctx_status(ctx), "evaluate: %s", lt_ctx_error(ctx));
            break;
        }
        s = lt_metrics_add_logits(mt, logits->data, b.y, b.n);
    }
    lt_ctx_reset(ctx);
    lt_ctx_set_training(ctx, was_training);
    lt_ctx_set_grad(ctx, had_grad);
    if (!s) s = lt_metrics_finalize(mt, train_counts, groups, res);
    if (!s && m->head.weight)
        s = lt_eval_result_set_weight_norms(res, m->head.weight->data, m->head.weight->shape[0], m->head.weight->shape[1]);
    lt_metrics_free(mt);
    lt_loader_free(ld);
    return s;
}
