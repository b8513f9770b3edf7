/* SGD, Adam and AdamW with torch.optim's update rules (PyTorch 1.13, single-tensor path),
 * over the contiguous parameter buffer of an lt_params. Formulas: optim.h. */
#include "longtail/optim.h"

#include <math.h>
#include <string.h>

lt_optim_config lt_optim_config_sgd(float momentum, float weight_decay, int nesterov) {
    lt_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = LT_OPTIM_SGD;
    c.momentum = momentum;
    c.weight_decay = weight_decay;
    c.nesterov = nesterov;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    return c;
}

lt_optim_config lt_optim_config_adam(float weight_decay) {
    lt_optim_config c = lt_optim_config_sgd(0.0f, weight_decay, 0);
    c.kind = LT_OPTIM_ADAM;
    return c;
}

lt_optim_config lt_optim_config_adamw(float weight_decay) {
    lt_optim_config c = lt_optim_config_adam(weight_decay);
    c.kind = LT_OPTIM_ADAMW;
    return c;
}

static int finite_nonneg(float x) { return isfinite(x) && x >= 0.0f; }

lt_status lt_optim_init(lt_optim *o, lt_params *params, const lt_optim_config *cfg) {
    memset(o, 0, sizeof *o);
    if (!params || !cfg) return lt_error(LT_ERR_ARG, "optim: NULL params or config");
    if (!params->finalized) return lt_error(LT_ERR_STATE, "optim: params are not finalized");
    const lt_optim_config *c = cfg;
    if (!finite_nonneg(c->weight_decay))
        return lt_error(LT_ERR_ARG, "optim: weight_decay %g (expected >= 0)", (double)c->weight_decay);
    switch (c->kind) {
    case LT_OPTIM_SGD:
        if (!finite_nonneg(c->momentum))
            return lt_error(LT_ERR_ARG, "optim: SGD momentum %g (expected >= 0)", (double)c->momentum);
        if (!(isfinite(c->dampening)))
            return lt_error(LT_ERR_ARG, "optim: SGD dampening %g (expected finite)", (double)c->dampening);
        if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
            return lt_error(LT_ERR_ARG, "optim: Nesterov momentum requires a momentum and zero dampening (got %g, %g)",
                            (double)c->momentum, (double)c->dampening);
        o->n_slots = c->momentum != 0.0f ? 1 : 0;
        break;
    case LT_OPTIM_ADAM:
    case LT_OPTIM_ADAMW:
        if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
            return lt_error(LT_ERR_ARG, "optim: Adam betas (%g, %g) (expected in [0, 1))",
                            (double)c->beta1, (double)c->beta2);
        if (!finite_nonneg(c->eps)) return lt_error(LT_ERR_ARG, "optim: Adam eps %g (expected >= 0)", (double)c->eps);
        o->n_slots = 2;
        break;
    default:
        return lt_error(LT_ERR_ARG, "optim: unknown optimizer kind %d", (int)c->kind);
    }
    o->cfg = *c;
    o->params = params;
    for (int g = 0; g < LT_MAX_PARAM_GROUPS; g++) {
        o->group_weight_decay[g] = c->weight_decay;
        o->group_lr_scale[g] = 1.0f;
    }
    o->n_state = (int64_t)o->n_slots * params->n_data;
    size_t bytes = (size_t)(o->n_state > 0 ? o->n_state : 1) * sizeof(float);
    o->state = lt_malloc_aligned(bytes);
    o->steps = lt_calloc((size_t)(params->count > 0 ? params->count : 1), sizeof(int64_t));
    if (!o->state || !o->steps) {
        lt_optim_free(o);
        return lt_error(LT_ERR_NOMEM, "optim: out of memory for %lld state values", (long long)o->n_state);
    }
    memset(o->state, 0, bytes);
    return LT_OK;
}

void lt_optim_free(lt_optim *o) {
    if (!o) return;
    lt_free_aligned(o->state);
    lt_free(o->steps);
    memset(o, 0, sizeof *o);
}

void lt_optim_reset(lt_optim *o) {
    if (o->state) memset(o->state, 0, (size_t)o->n_state * sizeof(float));
    if (o->steps) memset(o->steps, 0, (size_t)o->params->count * sizeof(int64_t));
}

lt_status lt_optim_set_group(lt_optim *o, int group, float weight_decay, float lr_scale) {
    if (group < 0 || group >= LT_MAX_PARAM_GROUPS)
        return lt_error(LT_ERR_ARG, "optim: group %d (expected 0..%d)", group, LT_MAX_PARAM_GROUPS - 1);
    if (!finite_nonneg(weight_decay) || !finite_nonneg(lr_scale))
        return lt_error(LT_ERR_ARG, "optim: group %d weight decay %g / lr scale %g (expected >= 0)",
                        group, (double)weight_decay, (double)lr_scale);
    o->group_weight_decay[group] = weight_decay;
    o->group_lr_scale[group] = lr_scale;
    return LT_OK;
}

/* Elementwise kernels over one parameter's n values. The operation order follows
 * PyTorch's (each line is one of its tensor ops, rounded to float). */
static void sgd_update(float *restrict p, const float *restrict g, float *restrict buf, int64_t n,
                       float lr, float wd, float mu, float damp, int nesterov, int first) {
    const float one_m_damp = 1.0f - damp;
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * p[i];
        if (buf) {
            float b = first ? d : buf[i] * mu + one_m_damp * d;
            buf[i] = b;
            d = nesterov ? d + mu * b : b;
        }
        p[i] = p[i] + (-lr) * d;
    }
}

static void adam_update(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, int64_t n, float lr, float wd, int decoupled,
                        float beta1, float beta2, float eps, int64_t t) {
    const double bc1 = 1.0 - pow((double)beta1, (double)t);
    const double bc2 = 1.0 - pow((double)beta2, (double)t);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay = (float)(1.0 - (double)lr * (double)wd);
    const float one_m_b1 = (float)(1.0 - (double)beta1), one_m_b2 = (float)(1.0 - (double)beta2);
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float x = p[i], gi = g[i];
        if (decoupled) x = x * decay;
        else if (wd != 0.0f) gi = gi + wd * x;
        float mi = m[i] * beta1 + one_m_b1 * gi;
        float vi = v[i] * beta2 + one_m_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = x + (-step_size) * mi / denom;
    }
}

lt_status lt_optim_step(lt_optim *o, float lr) {
    if (!o->params || !o->steps) return lt_error(LT_ERR_STATE, "optim: not initialized");
    if (!finite_nonneg(lr)) return lt_error(LT_ERR_ARG, "optim: learning rate %g (expected finite, >= 0)", (double)lr);
    lt_params *ps = o->params;
    const lt_optim_config *c = &o->cfg;
    for (int64_t k = 0; k < ps->count; k++) {
        lt_param *e = &ps->items[k];
        if (e->kind != LT_PARAM_WEIGHT || !e->t.requires_grad) continue;
        int64_t off = e->offset, n = e->t.numel;
        float *p = ps->data + off;
        const float *g = ps->grad + off;
        float glr = lr * o->group_lr_scale[e->group];
        float wd = o->group_weight_decay[e->group];
        int64_t t = ++o->steps[k];
        switch (c->kind) {
        case LT_OPTIM_SGD:
            sgd_update(p, g, o->n_slots ? o->state + off : NULL, n, glr, wd, c->momentum,
                       c->dampening, c->nesterov, t == 1);
            break;
        case LT_OPTIM_ADAM:
        case LT_OPTIM_ADAMW:
            adam_update(p, g, o->state + off, o->state + ps->n_data + off, n, glr, wd,
                        c->kind == LT_OPTIM_ADAMW, c->beta1, c->beta2, c->eps, t);
            break;
        }
    }
    return LT_OK;
}
