/* Metrics accumulator: top-1 / top-k, per-class accuracy, confusion matrix, ECE, NLL.
 *
 * Everything is accumulated as integer counts or double sums in batch order, so the same
 * batches in the same order give bit-identical results. Per image the work is O(C): the
 * softmax is done in double with the max subtracted (log-sum-exp), the top-k test counts
 * how many classes beat the label, so no sort is needed. */
#include "longtail/eval.h"

#include <math.h>
#include <string.h>

struct lt_metrics {
    int64_t C, k;
    int64_t n;                 /* images added */
    int64_t n_scored;          /* images added with logits */
    int64_t topk_hits;
    int64_t *confusion;        /* [C*C], row = true, column = predicted */
    double nll_sum;
    int64_t ece_count[LT_ECE_BINS];
    int64_t ece_correct[LT_ECE_BINS];
    double ece_conf[LT_ECE_BINS];
};

lt_status lt_metrics_new(int64_t num_classes, int topk, lt_metrics **out) {
    *out = NULL;
    if (num_classes < 1)
        return lt_error(LT_ERR_ARG, "metrics: num_classes = %lld, expected >= 1",
                        (long long)num_classes);
    /* C*C int64 must fit in memory sizes; 2^31 classes is far beyond any dataset. */
    if (num_classes > ((int64_t)1 << 24))
        return lt_error(LT_ERR_ARG, "metrics: num_classes = %lld, expected <= %lld",
                        (long long)num_classes, (long long)1 << 24);
    lt_metrics *m = lt_calloc(1, sizeof *m);
    if (!m) return lt_error(LT_ERR_NOMEM, "metrics: out of memory");
    m->C = num_classes;
    m->k = topk <= 0 ? 5 : topk;
    if (m->k > num_classes) m->k = num_classes;
    m->confusion = lt_calloc((size_t)(num_classes * num_classes), sizeof(int64_t));
    if (!m->confusion) {
        lt_free(m);
        return lt_error(LT_ERR_NOMEM, "metrics: out of memory for a %lld x %lld confusion matrix",
                        (long long)num_classes, (long long)num_classes);
    }
    *out = m;
    return LT_OK;
}

void lt_metrics_free(lt_metrics *m) {
    if (!m) return;
    lt_free(m->confusion);
    lt_free(m);
}

void lt_metrics_reset(lt_metrics *m) {
    if (!m) return;
    int64_t *conf = m->confusion;
    int64_t C = m->C, k = m->k;
    memset(conf, 0, (size_t)(C * C) * sizeof *conf);
    memset(m, 0, sizeof *m);
    m->confusion = conf;
    m->C = C;
    m->k = k;
}

int64_t lt_metrics_count(const lt_metrics *m) { return m ? m->n : 0; }

/* Bin of a confidence p in (0, 1]: bin b holds (b/15, (b+1)/15], as in Guo et al. 2017
 * and the usual PyTorch code (conf > lower & conf <= upper). */
static int ece_bin(double p) {
    int b = (int)ceil(p * LT_ECE_BINS) - 1;
    if (b < 0) b = 0;
    if (b > LT_ECE_BINS - 1) b = LT_ECE_BINS - 1;
    return b;
}

lt_status lt_metrics_add_logits(lt_metrics *m, const float *logits, const int32_t *labels,
                                int64_t batch) {
    if (!m || (batch > 0 && (!logits || !labels)))
        return lt_error(LT_ERR_ARG, "metrics_add_logits: NULL argument");
    if (batch < 0)
        return lt_error(LT_ERR_ARG, "metrics_add_logits: batch = %lld, expected >= 0",
                        (long long)batch);
    const int64_t C = m->C;
    /* Validate the whole batch first so an error adds nothing. */
    for (int64_t i = 0; i < batch; i++) {
        if (labels[i] < 0 || labels[i] >= C)
            return lt_error(LT_ERR_ARG, "metrics_add_logits: labels[%lld] = %d, expected in [0, %lld)",
                            (long long)i, (int)labels[i], (long long)C);
        const float *z = logits + i * C;
        for (int64_t c = 0; c < C; c++)
            if (!isfinite(z[c]))
                return lt_error(LT_ERR_ARG, "metrics_add_logits: logits[%lld][%lld] = %g, expected finite",
                                (long long)i, (long long)c, (double)z[c]);
    }
    for (int64_t i = 0; i < batch; i++) {
        const float *z = logits + i * C;
        const int64_t y = labels[i];
        /* argmax, first index wins ties */
        int64_t pred = 0;
        for (int64_t c = 1; c < C; c++)
            if (z[c] > z[pred]) pred = c;
        /* classes that beat the label: larger logit, or equal logit at a lower index */
        const float zy = z[y];
        int64_t beaten_by = 0;
        for (int64_t c = 0; c < C; c++)
            if (z[c] > zy || (z[c] == zy && c < y)) beaten_by++;
        if (beaten_by < m->k) m->topk_hits++;
        /* softmax in double: s = Σ exp(z_c − z_max); p_max = 1/s; −log p_y = log s + z_max − z_y */
        const double zmax = z[pred];
        double s = 0.0;
        for (int64_t c = 0; c < C; c++) s += exp((double)z[c] - zmax);
        m->nll_sum += log(s) + zmax - (double)zy;
        const double conf = 1.0 / s;
        const int b = ece_bin(conf);
        m->ece_count[b]++;
        m->ece_conf[b] += conf;
        m->ece_correct[b] += pred == y;
        m->confusion[y * C + pred]++;
    }
    m->n += batch;
    m->n_scored += batch;
    return LT_OK;
}

lt_status lt_metrics_add_preds(lt_metrics *m, const int32_t *preds, const int32_t *labels,
                               int64_t batch) {
    if (!m || (batch > 0 && (!preds || !labels)))
        return lt_error(LT_ERR_ARG, "metrics_add_preds: NULL argument");
    if (batch < 0)
        return lt_error(LT_ERR_ARG, "metrics_add_preds: batch = %lld, expected >= 0",
                        (long long)batch);
    const int64_t C = m->C;
    for (int64_t i = 0; i < batch; i++) {
        if (labels[i] < 0 || labels[i] >= C)
            return lt_error(LT_ERR_ARG, "metrics_add_preds: labels[%lld] = %d, expected in [0, %lld)",
                            (long long)i, (int)labels[i], (long long)C);
        if (preds[i] < 0 || preds[i] >= C)
            return lt_error(LT_ERR_ARG, "metrics_add_preds: preds[%lld] = %d, expected in [0, %lld)",
                            (long long)i, (int)preds[i], (long long)C);
    }
    for (int64_t i = 0; i < batch; i++) m->confusion[(int64_t)labels[i] * C + preds[i]]++;
    m->n += batch;
    return LT_OK;
}

lt_status lt_metrics_merge(lt_metrics *dst, const lt_metrics *src) {
    if (!dst || !src) return lt_error(LT_ERR_ARG, "metrics_merge: NULL argument");
    if (dst->C != src->C || dst->k != src->k)
        return lt_error(LT_ERR_ARG, "metrics_merge: accumulators differ: C %lld vs %lld, k %lld vs %lld",
                        (long long)dst->C, (long long)src->C, (long long)dst->k, (long long)src->k);
    for (int64_t j = 0; j < dst->C * dst->C; j++) dst->confusion[j] += src->confusion[j];
    dst->n += src->n;
    dst->n_scored += src->n_scored;
    dst->topk_hits += src->topk_hits;
    dst->nll_sum += src->nll_sum;
    for (int b = 0; b < LT_ECE_BINS; b++) {
        dst->ece_count[b] += src->ece_count[b];
        dst->ece_correct[b] += src->ece_correct[b];
        dst->ece_conf[b] += src->ece_conf[b];
    }
    return LT_OK;
}

/* ---- the result ---- */

void lt_eval_result_init(lt_eval_result *r) {
    if (!r) return;
    memset(r, 0, sizeof *r);
    r->top1 = r->topk = r->balanced_acc = NAN;
    for (int g = 0; g < LT_EVAL_GROUPS; g++) r->group_acc[g] = NAN;
    r->groups = lt_group_spec_default();
    r->ece = r->nll = NAN;
    r->features.fdr = r->train_features.fdr = NAN;
    r->bn_scale_mean = r->bn_scale_std = NAN;
    r->posthoc = LT_POSTHOC_NONE;
    r->posthoc_tau = NAN;
}

void lt_eval_result_free(lt_eval_result *r) {
    if (!r) return;
    lt_free(r->class_counts);
    lt_free(r->class_group);
    lt_free(r->class_samples);
    lt_free(r->per_class_acc);
    lt_free(r->confusion);
    lt_free(r->weight_norms);
    lt_feature_stats_free(&r->features);
    lt_feature_stats_free(&r->train_features);
    lt_eval_result_init(r);
}

lt_status lt_metrics_finalize(const lt_metrics *m, const int64_t *class_counts,
                              const lt_group_spec *spec, lt_eval_result *res) {
    if (!m || !class_counts || !res)
        return lt_error(LT_ERR_ARG, "metrics_finalize: NULL argument");
    if (m->n == 0)
        return lt_error(LT_ERR_STATE, "metrics_finalize: no images were added");
    const int64_t C = m->C;
    lt_eval_result_free(res);
    res->num_classes = C;
    res->num_samples = m->n;
    res->groups = spec ? *spec : lt_group_spec_default();
    res->class_counts = lt_malloc((size_t)C * sizeof *res->class_counts);
    res->class_group = lt_malloc((size_t)C * sizeof *res->class_group);
    res->class_samples = lt_calloc((size_t)C, sizeof *res->class_samples);
    res->per_class_acc = lt_malloc((size_t)C * sizeof *res->per_class_acc);
    res->confusion = lt_malloc((size_t)(C * C) * sizeof *res->confusion);
    if (!res->class_counts || !res->class_group || !res->class_samples ||
        !res->per_class_acc || !res->confusion) {
        lt_eval_result_free(res);
        return lt_error(LT_ERR_NOMEM, "metrics_finalize: out of memory (C = %lld)", (long long)C);
    }
    lt_status st = lt_eval_groups_assign(class_counts, C, &res->groups, res->class_group,
                                         &res->groups.mode);
    if (st != LT_OK) {
        lt_eval_result_free(res);
        return st;
    }
    memcpy(res->class_counts, class_counts, (size_t)C * sizeof *class_counts);
    memcpy(res->confusion, m->confusion, (size_t)(C * C) * sizeof *m->confusion);

    int64_t correct = 0;
    double bal_sum = 0.0, g_sum[LT_EVAL_GROUPS] = {0};
    int64_t bal_n = 0, g_n[LT_EVAL_GROUPS] = {0};
    for (int64_t c = 0; c < C; c++) {
        int64_t row = 0;
        for (int64_t j = 0; j < C; j++) row += m->confusion[c * C + j];
        int64_t hit = m->confusion[c * C + c];
        correct += hit;
        res->class_samples[c] = row;
        res->group_size[res->class_group[c]]++;
        if (row == 0) {
            res->per_class_acc[c] = NAN;   /* no test image: undefined, left out of means */
            continue;
        }
        double acc = (double)hit / (double)row;
        res->per_class_acc[c] = acc;
        bal_sum += acc;
        bal_n++;
        g_sum[res->class_group[c]] += acc;
        g_n[res->class_group[c]]++;
    }
    res->top1 = (double)correct / (double)m->n;
    res->balanced_acc = bal_n ? bal_sum / (double)bal_n : NAN;
    for (int g = 0; g < LT_EVAL_GROUPS; g++)
        res->group_acc[g] = g_n[g] ? g_sum[g] / (double)g_n[g] : NAN;

    res->topk_k = m->k;
    /* top-k, NLL and ECE need scores for every image; with any prediction-only batch
     * they would describe a subset, so they stay NaN. */
    res->has_probs = m->n_scored == m->n;
    if (res->has_probs) {
        res->topk = (double)m->topk_hits / (double)m->n;
        res->nll = m->nll_sum / (double)m->n;
        /* ECE = Σ_b (n_b / N) |acc_b − conf_b| = Σ_b |correct_b − Σconf_b| / N */
        double ece = 0.0;
        for (int b = 0; b < LT_ECE_BINS; b++)
            if (m->ece_count[b]) ece += fabs((double)m->ece_correct[b] - m->ece_conf[b]);
        res->ece = ece / (double)m->n;
    }
    return LT_OK;
}
