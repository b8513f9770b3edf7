/* Internal to src/nn: the module tree (module.c) and the architecture builders (arch.c)
 * that the generic model code (model.c) drives. */
#ifndef LT_NN_INTERNAL_H
#define LT_NN_INTERNAL_H

#include "longtail/nn.h"

/* Kaiming-normal (He et al. 2015; torch.nn.init.kaiming_normal_ with a = 0, leaky_relu
 * gain sqrt(2)): N(0, 2 / fan). */
void lt_init_kaiming_normal(lt_tensor *w, int64_t fan, lt_rng *rng);
void lt_init_uniform(lt_tensor *w, float lo, float hi, lt_rng *rng);

/* A module named prefix.name ("" prefix: just name), no children; options zero, bn_mode -1. */
lt_status lt_module_new(lt_module **out, lt_module_kind kind, const char *prefix, const char *name);
/* Appends a child named parent.name; *out (may be NULL) gets it to set its options. */
lt_status lt_module_add(lt_module *parent, lt_module_kind kind, const char *name, lt_module **out);
void lt_module_free(lt_module *m);   /* the tree; NULL is a no-op */
/* Walks in state_dict order: declare every parameter (before lt_params_finalize), bind
 * the views (after), draw the initial values, forward. */
lt_status lt_module_declare(lt_module *m, lt_params *p);
lt_status lt_module_bind(lt_module *m, lt_params *p);
lt_status lt_module_init(lt_module *m, lt_rng *rng);
lt_tensor *lt_module_forward(lt_ctx *ctx, const lt_model *md, lt_module *m, lt_tensor *x);
/* Sets bn_mode of the batch norms under m selected by prefix (NULL: all); returns how many. */
int lt_module_set_bn_mode(lt_module *m, const char *prefix, int mode);

/* Builds the backbone of m->cfg (validated by the builder) into *root, and sets
 * m->feature_dim; the head weight init the architecture's reference code uses goes to
 * *head_init. On error *root is NULL. */
lt_status lt_arch_build(lt_model *m, lt_module **root, lt_weight_init *head_init);

#endif
