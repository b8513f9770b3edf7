/* MaxNorm by projected gradient descent (weight balancing, Alshammari et al. CVPR 2022,
 * stage 2; docs/recipes.md, `maxnorm`): after each optimizer step (paper) or each epoch
 * (authors' code) every classifier row whose norm exceeds r is projected back onto the
 * ball of radius r. The WB code (MaxNorm_via_PGD) takes r = min + t · (max − min) of the
 * per-class norms at the start of stage 2, t = 0.1; the bias is unconstrained. */
#include "longtail/optim.h"

#include <math.h>

static double row_norm(const float *w, int64_t D) {
    double s = 0;
    for (int64_t d = 0; d < D; d++) s += (double)w[d] * (double)w[d];
    return sqrt(s);
}

double lt_maxnorm_radius(const float *w, int64_t C, int64_t D, double t) {
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t c = 0; c < C; c++) {
        double n = row_norm(w + c * D, D);
        if (n < lo) lo = n;
        if (n > hi) hi = n;
    }
    return C > 0 ? lo + t * (hi - lo) : NAN;
}

int64_t lt_maxnorm_project(float *w, int64_t C, int64_t D, double r) {
    int64_t n_proj = 0;
    for (int64_t c = 0; c < C; c++) {
        float *row = w + c * D;
        double n = row_norm(row, D);
        if (n > r) {
            double f = r / n;
            for (int64_t d = 0; d < D; d++) row[d] = (float)((double)row[d] * f);
            n_proj++;
        }
    }
    return n_proj;
}
