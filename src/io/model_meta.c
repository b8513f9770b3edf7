/* A model's architecture as JSON in a checkpoint's metadata, and a model rebuilt from a
 * checkpoint alone.
 *
 * The `architecture` metadata value is one JSON object: the numbers the registry builds
 * the model from (lt_model_config: arch, depth, width, input size, classes, heads, stem,
 * hidden widths, BN settings) and, under "modules", the module tree those numbers give
 * (kind, parameter prefix, channel counts, kernel, stride, padding, shortcut, children)
 * and the heads. A reader that walks "modules" (an exporter, an inference runtime) needs
 * nothing else; lt_model_load builds the model from the numbers and checks that the tree
 * it built is the tree stored, so a checkpoint never loads into a different network. */
#include "longtail/checkpoint.h"
#include "longtail/io.h"

#include <stdio.h>
#include <string.h>

static const char *const stem_names[] = {"imagenet", "cifar"};
static const char *const bias_names[] = {"torch", "zero"};
static const char *const shortcut_names[] = {"identity", "option_a", "projection"};

static void write_module(lt_jw *w, const lt_module *m) {
    lt_jw_begin_object(w);
    lt_jw_key(w, "kind");
    lt_jw_string(w, lt_module_kind_name(m->kind));
    lt_jw_key(w, "name");
    lt_jw_string(w, m->name);
    switch (m->kind) {
    case LT_MOD_CONV:
        lt_jw_key(w, "in"); lt_jw_int(w, m->in_c);
        lt_jw_key(w, "out"); lt_jw_int(w, m->out_c);
        lt_jw_key(w, "kernel"); lt_jw_int(w, m->k);
        lt_jw_key(w, "stride"); lt_jw_int(w, m->stride);
        lt_jw_key(w, "pad"); lt_jw_int(w, m->pad);
        lt_jw_key(w, "bias"); lt_jw_bool(w, m->has_bias);
        break;
    case LT_MOD_LINEAR:
        lt_jw_key(w, "in"); lt_jw_int(w, m->in_c);
        lt_jw_key(w, "out"); lt_jw_int(w, m->out_c);
        break;
    case LT_MOD_BATCHNORM:
    case LT_MOD_PRELU:
        lt_jw_key(w, "channels"); lt_jw_int(w, m->out_c);
        break;
    case LT_MOD_MAXPOOL:
        lt_jw_key(w, "kernel"); lt_jw_int(w, m->k);
        lt_jw_key(w, "stride"); lt_jw_int(w, m->stride);
        lt_jw_key(w, "pad"); lt_jw_int(w, m->pad);
        break;
    case LT_MOD_RESIDUAL:
        lt_jw_key(w, "stride"); lt_jw_int(w, m->stride);
        lt_jw_key(w, "out"); lt_jw_int(w, m->out_c);
        lt_jw_key(w, "shortcut");
        lt_jw_string(w, (unsigned)m->shortcut < 3 ? shortcut_names[m->shortcut] : "?");
        break;
    default: break;
    }
    if (m->n_children > 0) {
        lt_jw_key(w, "children");
        lt_jw_begin_array(w);
        for (int i = 0; i < m->n_children; i++) write_module(w, m->children[i]);
        lt_jw_end_array(w);
    }
    lt_jw_end_object(w);
}

lt_status lt_model_arch_json(const lt_model *m, char **out) {
    *out = NULL;
    const lt_model_config *c = &m->cfg;
    char name[48];
    lt_jw w;
    lt_jw_init(&w, 0);
    lt_jw_begin_object(&w);
    lt_jw_key(&w, "arch"); lt_jw_string(&w, lt_arch_name(c, name, sizeof name));
    lt_jw_key(&w, "depth"); lt_jw_int(&w, c->depth);
    lt_jw_key(&w, "width"); lt_jw_float(&w, c->width);
    lt_jw_key(&w, "in_channels"); lt_jw_int(&w, c->in_channels);
    lt_jw_key(&w, "in_height"); lt_jw_int(&w, c->in_height);
    lt_jw_key(&w, "in_width"); lt_jw_int(&w, c->in_width);
    lt_jw_key(&w, "num_classes"); lt_jw_int(&w, c->num_classes);
    lt_jw_key(&w, "head"); lt_jw_string(&w, lt_head_kind_name(c->head));
    lt_jw_key(&w, "heads"); lt_jw_int(&w, m->n_heads);
    lt_jw_key(&w, "bias_init"); lt_jw_string(&w, bias_names[c->fc_bias_init == LT_BIAS_INIT_ZERO]);
    lt_jw_key(&w, "bn_momentum"); lt_jw_float(&w, c->bn_momentum);
    lt_jw_key(&w, "bn_eps"); lt_jw_float(&w, c->bn_eps);
    if (c->arch == LT_ARCH_RESNET) {
        lt_jw_key(&w, "stem");
        lt_jw_string(&w, stem_names[c->stem == LT_STEM_CIFAR]);
    }
    if (c->arch == LT_ARCH_MLP) {
        lt_jw_key(&w, "hidden");
        lt_jw_begin_array(&w);
        for (int k = 0; k < c->n_hidden; k++) lt_jw_int(&w, c->hidden[k]);
        lt_jw_end_array(&w);
    }
    lt_jw_key(&w, "feature_dim"); lt_jw_int(&w, m->feature_dim);
    lt_jw_key(&w, "modules");
    write_module(&w, m->root);
    lt_jw_key(&w, "classifier");
    lt_jw_begin_array(&w);
    for (int k = 0; k < m->n_heads; k++) {
        const lt_head *h = lt_model_head((lt_model *)m, k);
        lt_jw_begin_object(&w);
        lt_jw_key(&w, "kind"); lt_jw_string(&w, lt_head_kind_name(h->kind));
        lt_jw_key(&w, "name"); lt_jw_string(&w, h->prefix);
        lt_jw_key(&w, "in"); lt_jw_int(&w, h->in_dim);
        lt_jw_key(&w, "out"); lt_jw_int(&w, h->out_dim);
        lt_jw_end_object(&w);
    }
    lt_jw_end_array(&w);
    lt_jw_end_object(&w);
    const char *text;
    int64_t n;
    lt_status s = lt_jw_finish(&w, &text, &n);
    if (s) {
        lt_jw_free(&w);
        return lt_error(s, "architecture JSON: %s", w.why ? w.why : "error");
    }
    *out = lt_malloc((size_t)n + 1);
    if (*out) memcpy(*out, text, (size_t)n + 1);
    lt_jw_free(&w);
    return *out ? LT_OK : lt_error(LT_ERR_NOMEM, "architecture JSON: out of memory");
}

/* An integer field in [lo, hi]; a missing one is an error naming it. */
static lt_status get_int(const lt_json *o, const char *key, int64_t lo, int64_t hi, const char *where, int *out) {
    const lt_json *v = lt_json_get(o, key);
    if (!v || v->type != LT_JSON_NUMBER || !v->is_int || v->i < lo || v->i > hi)
        return lt_error(LT_ERR_FORMAT, "%s: metadata architecture.%s: expected an integer in [%lld, %lld]", where, key,
                        (long long)lo, (long long)hi);
    *out = (int)v->i;
    return LT_OK;
}

static lt_status get_float(const lt_json *o, const char *key, const char *where, float *out) {
    const lt_json *v = lt_json_get(o, key);
    if (!v || v->type != LT_JSON_NUMBER || !(v->num >= 0))
        return lt_error(LT_ERR_FORMAT, "%s: metadata architecture.%s: expected a number >= 0", where, key);
    *out = (float)v->num;
    return LT_OK;
}

/* One of names[0..n): its index, or an error naming the key. */
static lt_status get_name(const lt_json *o, const char *key, const char *const *names, int n, const char *where,
                          int *out) {
    const char *v = lt_json_string(lt_json_get(o, key), NULL);
    for (int k = 0; v && k < n; k++)
        if (!strcmp(v, names[k])) {
            *out = k;
            return LT_OK;
        }
    return lt_error(LT_ERR_FORMAT, "%s: metadata architecture.%s: unexpected value '%s'", where, key, v ? v : "(missing)");
}

lt_status lt_model_config_from_json(const char *json, const char *where, lt_model_config *c) {
    lt_json *j = NULL;
    lt_status s = lt_json_parse(json, (int64_t)strlen(json), where, &j);
    if (s) return s;
    lt_model_config m = lt_model_config_resnet(8, 1, 1, 1, 2);
    const char *arch = lt_json_string(lt_json_get(j, "arch"), NULL);
    if (j->type != LT_JSON_OBJECT || !arch) s = lt_error(LT_ERR_FORMAT, "%s: metadata architecture: no arch", where);
    else if (lt_arch_parse(arch, &m)) s = lt_error(LT_ERR_FORMAT, "%s: metadata architecture: %s", where, lt_last_error());
    static const char *const heads[] = {"linear", "cosine", "etf", "lws"};
    int head = 0, bias = 0, stem = 0;
    if (!s) s = get_int(j, "depth", 0, 100000, where, &m.depth);
    if (!s) s = get_float(j, "width", where, &m.width);
    if (!s) s = get_int(j, "in_channels", 1, 1 << 16, where, &m.in_channels);
    if (!s) s = get_int(j, "in_height", 1, 1 << 16, where, &m.in_height);
    if (!s) s = get_int(j, "in_width", 1, 1 << 16, where, &m.in_width);
    if (!s) s = get_int(j, "num_classes", 1, 1 << 24, where, &m.num_classes);
    if (!s) s = get_name(j, "head", heads, 4, where, &head);
    if (!s) s = get_int(j, "heads", 1, LT_MAX_HEADS, where, &m.heads);
    if (!s) s = get_name(j, "bias_init", bias_names, 2, where, &bias);
    if (!s) s = get_float(j, "bn_momentum", where, &m.bn_momentum);
    if (!s) s = get_float(j, "bn_eps", where, &m.bn_eps);
    if (!s && m.arch == LT_ARCH_RESNET) s = get_name(j, "stem", stem_names, 2, where, &stem);
    if (!s && m.arch == LT_ARCH_MLP) {
        const lt_json *h = lt_json_get(j, "hidden");
        if (!h || h->type != LT_JSON_ARRAY || h->n > LT_MAX_HIDDEN) {
            s = lt_error(LT_ERR_FORMAT, "%s: metadata architecture.hidden: expected a list of at most %d widths", where,
                         LT_MAX_HIDDEN);
        } else {
            m.n_hidden = (int)h->n;
            for (int64_t k = 0; k < h->n && !s; k++) {
                const lt_json *x = lt_json_at(h, k);
                if (x->type != LT_JSON_NUMBER || !x->is_int || x->i < 1 || x->i > (1 << 24))
                    s = lt_error(LT_ERR_FORMAT, "%s: metadata architecture.hidden[%lld]: expected a width >= 1", where,
                                 (long long)k);
                else m.hidden[k] = (int)x->i;
            }
        }
    }
    m.head = (lt_head_kind)head;
    m.fc_bias_init = bias ? LT_BIAS_INIT_ZERO : LT_BIAS_INIT_TORCH;
    m.stem = stem ? LT_STEM_CIFAR : LT_STEM_IMAGENET;
    lt_json_free(j);
    if (!s) *c = m;
    return s;
}

/* A checkpoint written before the architecture record: CIFAR ResNets only, described by
 * the keys arch, width, num_classes, in_height, in_width, in_channels, bias_init; the head
 * kind follows from the tensors (fc.scales: LWS; no fc.bias: cosine; else linear; an ETF
 * head cannot be told from a linear one without the record). */
static lt_status legacy_config(const lt_safetensors *st, const char *path, lt_model_config *c) {
    const char *keys[] = {"arch", "width", "num_classes", "in_height", "in_width", "in_channels"};
    const char *v[6];
    for (int k = 0; k < 6; k++)
        if (!(v[k] = lt_safetensors_metadata(st, keys[k])))
            return lt_error(LT_ERR_FORMAT, "%s: no architecture in the metadata (neither `architecture` nor `%s`)", path,
                            keys[k]);
    lt_model_config m = lt_model_config_resnet(8, 1, 1, 1, 2);
    if (lt_arch_parse(v[0], &m)) return lt_error(LT_ERR_FORMAT, "%s: metadata arch: %s", path, lt_last_error());
    double x[5];
    for (int k = 1; k < 6; k++)
        if (!lt_parse_double(v[k], &x[k - 1]) || !(x[k - 1] > 0))
            return lt_error(LT_ERR_FORMAT, "%s: metadata %s: expected a number > 0, got '%s'", path, keys[k], v[k]);
    m.width = (float)x[0];
    m.num_classes = (int)x[1];
    m.in_height = (int)x[2];
    m.in_width = (int)x[3];
    m.in_channels = (int)x[4];
    const char *bi = lt_safetensors_metadata(st, "bias_init");
    m.fc_bias_init = bi && !strcmp(bi, "zero") ? LT_BIAS_INIT_ZERO : LT_BIAS_INIT_TORCH;
    if (lt_safetensors_find(st, "fc.scales")) m.head = LT_HEAD_LWS;
    else if (!lt_safetensors_find(st, "fc.bias")) m.head = LT_HEAD_COSINE;
    *c = m;
    return LT_OK;
}

lt_status lt_model_load_from(lt_model *m, const lt_safetensors *st, const char *path) {
    memset(m, 0, sizeof *m);
    lt_model_config c;
    const char *json = lt_safetensors_metadata(st, "architecture");
    lt_status s = json ? lt_model_config_from_json(json, path, &c) : legacy_config(st, path, &c);
    if (!s && lt_model_init(m, &c, 0)) s = lt_error(LT_ERR_FORMAT, "%s: architecture: %s", path, lt_last_error());
    if (!s && json) {
        char *again = NULL;
        s = lt_model_arch_json(m, &again);
        char name[48];
        if (!s && strcmp(again, json) != 0)
            s = lt_error(LT_ERR_FORMAT, "%s: the stored module tree is not the one this longtail builds for %s "
                         "(written by another version?)", path, lt_arch_name(&c, name, sizeof name));
        lt_free(again);
    }
    if (!s) s = lt_ckpt_read_params(st, &m->params, "", LT_CKPT_ALL, 1, NULL, NULL, NULL);
    if (s) lt_model_free(m);
    return s;
}

lt_status lt_model_load(lt_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    lt_safetensors *st = NULL;
    lt_status s = lt_safetensors_load(path, &st);
    if (!s) s = lt_model_load_from(m, st, path);
    lt_safetensors_free(st);
    return s;
}
