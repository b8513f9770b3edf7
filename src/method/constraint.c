/* A stage's MaxNorm radius (the constraint itself, lt_maxnorm_*, is in src/optim/maxnorm.c):
 * the recipe's absolute maxnorm_radius, or the weight-balancing code's relative one,
 * r = min + t · (max − min) of the per-class norms at the stage start (docs/recipes.md). */
#include "wb_stage.h"

#include <math.h>

double lt_mt_maxnorm_stage_radius(const lt_stage_config *sc, const lt_model *m) {
    if (!sc->maxnorm) return NAN;
    if (sc->maxnorm_radius > 0) return sc->maxnorm_radius;
    const lt_tensor *w = m->head.weight;
    return lt_maxnorm_radius(w->data, w->shape[0], w->shape[1], sc->maxnorm_t);
}
