/* Checkpoints: a model's parameters (and optionally its optimizer state) as safetensors
 * files that PyTorch reads and writes.
 *
 * What it is for. A longtail checkpoint is a PyTorch state_dict saved with safetensors:
 * the names are lt_params' names (`conv1.weight`, `layer1.0.bn1.running_mean`, `fc.bias`),
 * float tensors are F32, `num_batches_tracked` counters are I64 scalars (shape []), and
 * convolution weights are in PyTorch's OIHW layout in the file (longtail keeps them OHWI
 * in memory; the conversion happens here, on save and on load). So
 * `model.load_state_dict(safetensors.torch.load_file("stage1.safetensors"))` works in
 * PyTorch, and a state_dict written with `safetensors.torch.save_file(model.state_dict(),
 * path)` loads into the longtail model of the same architecture.
 *
 * Non-model state. Names that contain a '/' are longtail's own namespaces, never model
 * parameters (PyTorch state_dict names are dotted identifiers): the resume file
 * (`last.safetensors`, see docs/recipes.md) keeps the optimizer state under
 * `optimizer/<slot>/<name>` (`momentum_buffer`, `exp_avg`, `exp_avg_sq`, in the parameter's
 * PyTorch layout), the step counts under `optimizer/step/<name>` (I64 scalars) and the
 * best-validation copy of the model under `best/<name>`. Loading model parameters ignores
 * every name with a '/', so a resume file is also a loadable model checkpoint. In PyTorch:
 * `{k: v for k, v in load_file(p).items() if "/" not in k}`.
 *
 * Ownership. An lt_ckpt_writer copies (and converts) what it is given, so the caller's
 * buffers may change right after each add call; lt_ckpt_writer_commit writes the file
 * atomically (path.tmp, fsync, rename: a kill leaves the old file or the new one) and
 * frees the writer, on success or failure. lt_snapshot owns its three buffers.
 *
 * Errors name the file, the tensor and expected vs got, e.g. "ckpt.safetensors: tensor
 * 'fc.weight': shape (3, 64) in the file, the model needs (10, 64)". */
#ifndef LONGTAIL_CHECKPOINT_H
#define LONGTAIL_CHECKPOINT_H

#include "io.h"
#include "optim.h"

/* Which kinds of lt_params entries a call covers (bit mask). */
#define LT_CKPT_WEIGHTS 1u
#define LT_CKPT_BUFFERS 2u
#define LT_CKPT_COUNTERS 4u
#define LT_CKPT_ALL (LT_CKPT_WEIGHTS | LT_CKPT_BUFFERS | LT_CKPT_COUNTERS)

/* ---- snapshots: a copy of every value of an lt_params (weights, buffers, counters) ----
 * Used for the best-validation model kept in memory during a stage. */
typedef struct lt_snapshot {
    float *data;        /* params->n_data */
    float *buffers;     /* params->n_buffers */
    int64_t *counters;  /* params->n_counters */
    int64_t n_data, n_buffers, n_counters;
} lt_snapshot;

lt_status lt_snapshot_init(lt_snapshot *s, const lt_params *p);   /* allocated, zeroed */
void lt_snapshot_free(lt_snapshot *s);                             /* NULL is a no-op */
void lt_snapshot_take(lt_snapshot *s, const lt_params *p);         /* s := p's values */
void lt_snapshot_restore(const lt_snapshot *s, lt_params *p);      /* p's values := s */

/* ---- writing ---- */
typedef struct lt_ckpt_writer lt_ckpt_writer;

lt_status lt_ckpt_writer_new(lt_ckpt_writer **out);
void lt_ckpt_writer_free(lt_ckpt_writer *w);   /* discards; NULL is a no-op */
/* Adds the entries of p selected by `what` as prefix + name, in PyTorch layout. Values
 * come from p itself, or from caller storage laid out like p's buffers when data /
 * buffers / counters is not NULL (a snapshot, an optimizer state slot). */
lt_status lt_ckpt_writer_add_params(lt_ckpt_writer *w, const lt_params *p, const char *prefix,
                                    unsigned what, const float *data, const float *buffers,
                                    const int64_t *counters);
/* Adds the optimizer's state: `<prefix>optimizer/<slot>/<name>` per weight and
 * `<prefix>optimizer/step/<name>`, plus metadata `<prefix>optimizer` = "sgd" / "adam" /
 * "adamw". prefix "" for the student; "role.NAME/" for another trained role. */
lt_status lt_ckpt_writer_add_optim(lt_ckpt_writer *w, const lt_optim *o, const char *prefix);
/* Adds one tensor (copied as is, no layout change). */
lt_status lt_ckpt_writer_add_tensor(lt_ckpt_writer *w, const char *name, lt_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data);
/* Adds a metadata pair (a later value for the same key replaces the earlier one). */
lt_status lt_ckpt_writer_add_meta(lt_ckpt_writer *w, const char *key, const char *value);
/* Writes everything to `path` atomically and frees w (also on error). */
lt_status lt_ckpt_writer_commit(lt_ckpt_writer *w, const char *path);

/* The model alone, plus metadata pairs meta_kv = {key0, value0, ...}. */
lt_status lt_checkpoint_save(const char *path, const lt_params *p, const char *const *meta_kv,
                             int64_t n_meta);

/* ---- reading ---- */

/* Reads the entries of p selected by `what`, named prefix + name, converting OIHW to OHWI,
 * into p itself or into caller storage laid out like p (data / buffers / counters not
 * NULL). Every selected weight and buffer must be present with its exact shape and dtype
 * F32; a counter may be I64 or I32, and may be missing (then 0), as PyTorch's batch norm
 * tolerates for old state_dicts. strict: a name in the file that starts with prefix, has
 * no '/' after it and is not an entry of p is an error (PyTorch's "unexpected key").
 * Nothing is written into the destination unless every check passes. */
lt_status lt_ckpt_read_params(const lt_safetensors *st, lt_params *p, const char *prefix,
                              unsigned what, int strict, float *data, float *buffers,
                              int64_t *counters);
/* Importing weights written elsewhere (a torchvision state_dict saved with safetensors,
 * another run's checkpoint) into a model: strict, exactly lt_ckpt_read_params over every
 * entry (a missing, unexpected or differently shaped tensor is an error naming it, the
 * expected and the stored shape, and nothing is written). Not strict: every tensor whose
 * name and shape match is loaded, the rest is reported and left as it is — the model's
 * tensors the file lacks (missing) or holds with another shape or dtype (mismatched) keep
 * their values, the file's names the model lacks (unexpected) are ignored. The lists hold
 * the first names, comma separated, "..." when cut. */
typedef struct lt_ckpt_import_report {
    int64_t loaded;
    int64_t n_missing, n_mismatched, n_unexpected;
    char missing[512], mismatched[512], unexpected[512];
} lt_ckpt_import_report;
lt_status lt_ckpt_import(const lt_safetensors *st, lt_params *p, int strict, lt_ckpt_import_report *rep);

/* Reads what lt_ckpt_writer_add_optim wrote under prefix into o (same parameters, same kind). */
lt_status lt_ckpt_read_optim(const lt_safetensors *st, lt_optim *o, const char *prefix);

/* ---- architecture ---- */

/* The `architecture` metadata value every longtail checkpoint carries: the model's
 * config and its module tree as one compact JSON object (docs/checkpoints.md). *out is
 * allocated (lt_free). */
lt_status lt_model_arch_json(const lt_model *m, char **out);
/* Parses that JSON's config part; a malformed or unknown value is LT_ERR_FORMAT naming
 * `where` and the field. */
lt_status lt_model_config_from_json(const char *json, const char *where, lt_model_config *c);
/* Builds the model a checkpoint describes and loads its weights, from the checkpoint
 * alone: its `architecture` record (the rebuilt module tree must equal the stored one),
 * or for checkpoints written before the record, the CIFAR ResNet keys arch, width,
 * num_classes, in_* and bias_init. On error *m is freed. */
lt_status lt_model_load(lt_model *m, const char *path);
lt_status lt_model_load_from(lt_model *m, const lt_safetensors *st, const char *path);

/* Loads a model checkpoint file (strict, no prefix) into p. */
lt_status lt_checkpoint_load(const char *path, lt_params *p);

#endif
