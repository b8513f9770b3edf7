/* Internal to src/nn: the backbone interface the generic model code dispatches to. */
#ifndef LT_NN_INTERNAL_H
#define LT_NN_INTERNAL_H

#include "longtail/nn.h"

/* A batch norm layer's views into the model's lt_params. */
typedef struct lt_bn_layer {
    lt_tensor *weight, *bias, *running_mean, *running_var;
    int64_t *num_batches_tracked;
} lt_bn_layer;

/* Declares "<prefix>.weight/.bias/.running_mean/.running_var/.num_batches_tracked" of a
 * BN over c channels (before finalize), then binds the views (after). */
lt_status lt_bn_declare(lt_params *p, const char *prefix, int64_t c, int group);
lt_status lt_bn_bind(lt_params *p, const char *prefix, lt_bn_layer *bn);
/* weight 1, bias 0, running mean 0, var 1, counter 0 (PyTorch's reset_parameters). */
void lt_bn_reset(lt_bn_layer *bn);
/* Batch norm honouring the model's BN mode and the context's training flag (nn.h). */
lt_tensor *lt_bn_forward(lt_ctx *ctx, const lt_model *m, const lt_bn_layer *bn, lt_tensor *x);

/* Kaiming-normal fan-in (He et al. 2015; torch.nn.init.kaiming_normal_ with its defaults
 * a = 0, mode fan_in, leaky_relu gain sqrt(2)): N(0, 2 / fan_in). */
void lt_init_kaiming_normal(lt_tensor *w, int64_t fan_in, lt_rng *rng);
void lt_init_uniform(lt_tensor *w, float lo, float hi, lt_rng *rng);

/* CIFAR ResNet (src/nn/resnet_cifar.c). declare: validate cfg and add the backbone's
 * entries to m->params; bind: after finalize; init: draw the weights; forward: x -> pooled
 * features (B, D). m->feature_dim is set by declare. */
lt_status lt_resnet_cifar_declare(lt_model *m);
lt_status lt_resnet_cifar_bind(lt_model *m);
void lt_resnet_cifar_init(lt_model *m, lt_rng *rng);
lt_tensor *lt_resnet_cifar_forward(lt_ctx *ctx, lt_model *m, lt_tensor *x);
void lt_resnet_cifar_free(struct lt_backbone *b);

#endif
