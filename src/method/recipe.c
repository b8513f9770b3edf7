/* Recipes: the INI schema of [data], [model], [stageN], [eval] and [run], with defaults
 * and checks. docs/recipes.md lists every key; keep the two in step.
 *
 * Every key is read through the config getters (which mark it used), so an unknown key is
 * reported by lt_config_check_unused. Values that parse but make no sense (an unknown
 * optimizer name, a negative learning rate) are reported here with the file:line of the
 * key, found by scanning the recipe text (overrides are reported as --set). */
#include "longtail/train.h"
#include "methods.h"
#include "reader.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- locations */

/* The next item of a comma-separated list: *item, its trimmed length returned; *p moves past
 * the item's comma, or to NULL after the last item. */
static size_t list_next(const char **p, const char **item) {
    const char *comma = strchr(*p, ',');
    size_t n = comma ? (size_t)(comma - *p) : strlen(*p);
    *item = *p;
    *p = comma ? comma + 1 : NULL;
    return lt_mt_trim(item, n);
}

/* ---------------------------------------------------------------- sections */

static void read_data(lt_mt_reader *rd) {
    lt_recipe *r = rd->r;
    const char *S = "data";
    lt_config_has_section(r->cfg, S);
    lt_data_spec *d = &r->data;
    memset(d, 0, sizeof *d);
    lt_longtail_config_default(&d->longtail);
    static const char *const kinds[] = {"fmnist", "mnist", "cifar10", "cifar100", "folder", "list"};
    static const int kind_v[] = {LT_DATASET_FMNIST, LT_DATASET_MNIST, LT_DATASET_CIFAR10, LT_DATASET_CIFAR100,
                                 LT_DATASET_FOLDER, LT_DATASET_LIST};
    d->kind = (lt_dataset_kind)lt_mt_get_enum(rd, S, "dataset", "fmnist", kinds, kind_v, 6);
    const char *root = lt_mt_get_str(rd, S, "root", "");
    d->root = *root ? root : NULL;
    const char *tl = lt_mt_get_str(rd, S, "train_list", ""), *vl = lt_mt_get_str(rd, S, "test_list", "");
    d->train_list = *tl ? tl : NULL;
    d->test_list = *vl ? vl : NULL;
    int64_t size = lt_mt_get_int(rd, S, "image_size", 32, 1, 4096);
    int64_t ch = lt_mt_get_int(rd, S, "channels", 3, 1, 3);
    if (!rd->st && ch == 2) rd->st = lt_mt_bad(r, S, "channels", "expected 1 (gray) or 3 (RGB), got 2");
    d->image = (lt_image_options){size, size, ch};
    int folder_like = d->kind == LT_DATASET_FOLDER || d->kind == LT_DATASET_LIST;
    static const char *const profiles[] = {"exp", "step", "none"};
    static const int profile_v[] = {LT_PROFILE_EXP, LT_PROFILE_STEP, LT_PROFILE_NONE};
    d->longtail.profile = (lt_profile)lt_mt_get_enum(rd, S, "profile", folder_like ? "none" : "exp", profiles, profile_v, 3);
    d->longtail.imbalance_factor = lt_mt_get_num(rd, S, "imbalance", 100.0, 1.0, INFINITY, 0);
    d->longtail.n_max = lt_mt_get_int(rd, S, "n_max", 0, 0, INT64_MAX);
    d->longtail.val_per_class = lt_mt_get_int(rd, S, "val_per_class", 20, 0, INT64_MAX);
    static const char *const sels[] = {"shuffle", "first"};
    static const int sel_v[] = {LT_SELECT_SHUFFLE, LT_SELECT_FIRST};
    d->longtail.selection = (lt_selection)lt_mt_get_enum(rd, S, "selection", "shuffle", sels, sel_v, 2);
    static const char *const orders[] = {"label", "counts"};
    static const int order_v[] = {LT_ORDER_LABEL, LT_ORDER_COUNTS};
    d->longtail.class_order = (lt_class_order)lt_mt_get_enum(rd, S, "class_order", "label", orders, order_v, 2);
    d->longtail.seed = (uint64_t)lt_mt_get_int(rd, S, "data_seed", 0, 0, INT64_MAX);

    r->crop_pad = (int32_t)lt_mt_get_int(rd, S, "crop_pad", 0, 0, 64);
    r->hflip = lt_mt_get_bool(rd, S, "hflip", 0);
    static const char *const norms[] = {"dataset", "none", "cifar", "custom"};
    static const int norm_v[] = {LT_NORM_DATASET, LT_NORM_NONE, LT_NORM_CIFAR, LT_NORM_CUSTOM};
    r->normalize = (lt_normalize)lt_mt_get_enum(rd, S, "normalize", "dataset", norms, norm_v, 4);
    double mean[LT_DATA_MAX_CHANNELS], std[LT_DATA_MAX_CHANNELS];
    int64_t nm = 0, ns = 0;
    if (!rd->st) rd->st = lt_config_get_float_list(r->cfg, S, "mean", mean, LT_DATA_MAX_CHANNELS, &nm);
    if (!rd->st) rd->st = lt_config_get_float_list(r->cfg, S, "std", std, LT_DATA_MAX_CHANNELS, &ns);
    if (rd->st) return;
    if (r->normalize == LT_NORM_CUSTOM) {
        if (nm == 0 || nm != ns) {
            rd->st = lt_mt_bad(r, S, nm == 0 ? "mean" : "std",
                         "normalize = custom needs mean and std lists of the same length (one per channel)");
            return;
        }
        for (int64_t k = 0; k < ns; k++)
            if (!(std[k] > 0)) {
                rd->st = lt_mt_bad(r, S, "std", "item %lld: expected a number > 0, got %g", (long long)k + 1, std[k]);
                return;
            }
        for (int64_t k = 0; k < nm; k++) {
            r->mean[k] = (float)mean[k];
            r->std[k] = (float)std[k];
        }
        r->n_mean = (int)nm;
    } else if (nm || ns) {
        rd->st = lt_mt_bad(r, S, nm ? "mean" : "std", "only used with normalize = custom (normalize is '%s')", norms[r->normalize]);
    }
    if (!rd->st && d->kind == LT_DATASET_LIST && !d->train_list)
        rd->st = lt_mt_bad(r, S, "train_list", "dataset = list needs a train_list file");
}

/* The section a [model] key is read from: S when S gives it, else F (a role's section
 * falls back to [model]); F NULL: S. */
static const char *key_sec(const lt_mt_reader *rd, const char *S, const char *F, const char *key) {
    return F && !lt_config_has(rd->r->cfg, S, key) ? F : S;
}

/* The architecture keys of section S (a registry name, lt_arch_parse, and the keys that
 * apply to it: width (a channel multiplier for the ResNets; for mlp the hidden width in
 * units of 512), stem (torchvision ResNets), hidden or depth (mlp); head, heads,
 * bias_init) into *mc; a key S does not give is read from F (NULL: its default). *depth
 * gets the depth as named (a ResNet's, or mlp's depth key before hidden replaces it). */
static void read_arch(lt_mt_reader *rd, const char *S, const char *F, lt_model_config *mc, int *depth) {
    lt_recipe *r = rd->r;
#define KS(key) key_sec(rd, S, F, key)
    const char *arch = lt_mt_get_str(rd, KS("arch"), "arch", "resnet32");
    if (rd->st) return;
    *mc = lt_model_config_resnet(32, 3, 32, 32, 2);
    if (lt_arch_parse(arch, mc)) {
        rd->st = lt_mt_bad(r, KS("arch"), "arch", "%s", lt_last_error());
        return;
    }
    int cifar = mc->arch == LT_ARCH_RESNET_CIFAR || mc->arch == LT_ARCH_RESNET_CIFAR_NOBN;
    if (cifar && (mc->depth < 8 || (mc->depth - 2) % 6 != 0)) {
        rd->st = lt_mt_bad(r, KS("arch"), "arch", "a CIFAR ResNet has depth 6n+2 (resnet8, resnet20, resnet32, resnet44, "
                           "resnet56), got '%s'", arch);
        return;
    }
    if (mc->arch != LT_ARCH_RESNET && lt_config_has(r->cfg, KS("stem"), "stem")) {
        rd->st = lt_mt_bad(r, KS("stem"), "stem", "only used with the torchvision ResNets (arch = resnet18, resnet34, resnet50)");
        return;
    }
    static const char *const mlp_keys[] = {"hidden", "depth"};
    for (int k = 0; k < 2; k++)
        if (mc->arch != LT_ARCH_MLP && lt_config_has(r->cfg, KS(mlp_keys[k]), mlp_keys[k])) {
            rd->st = lt_mt_bad(r, KS(mlp_keys[k]), mlp_keys[k],
                               "only used with arch = mlp (a ResNet's depth is in its name, e.g. resnet32)");
            return;
        }
    *depth = mc->depth;
    mc->width = (float)lt_mt_get_num(rd, KS("width"), "width", 1.0, 1.0 / 16.0, 64.0, 0);
    if (mc->arch == LT_ARCH_RESNET) {
        static const char *const stems[] = {"imagenet", "cifar"};
        static const int stem_v[] = {LT_STEM_IMAGENET, LT_STEM_CIFAR};
        mc->stem = (lt_stem)lt_mt_get_enum(rd, KS("stem"), "stem", "imagenet", stems, stem_v, 2);
    }
    if (mc->arch == LT_ARCH_MLP) {
        int64_t nh = 0;
        double hv[LT_MAX_HIDDEN + 1];
        if (!rd->st) rd->st = lt_config_get_float_list(r->cfg, KS("hidden"), "hidden", hv, LT_MAX_HIDDEN + 1, &nh);
        if (rd->st) return;
        int64_t depth_k = lt_mt_get_int(rd, KS("depth"), "depth", 2, 0, LT_MAX_HIDDEN);
        if (rd->st) return;
        if (nh > LT_MAX_HIDDEN) {
            rd->st = lt_mt_bad(r, KS("hidden"), "hidden", "more than %d hidden layers", LT_MAX_HIDDEN);
            return;
        }
        if (nh > 0) {
            if (lt_config_has(r->cfg, KS("depth"), "depth") || lt_config_has(r->cfg, KS("width"), "width")) {
                rd->st = lt_mt_bad(r, KS("hidden"), "hidden", "give either hidden = W1,W2,... or depth and width, not both");
                return;
            }
            for (int64_t k = 0; k < nh; k++) {
                if (!(hv[k] >= 1 && hv[k] <= 65536 && hv[k] == floor(hv[k]))) {
                    rd->st = lt_mt_bad(r, KS("hidden"), "hidden", "item %lld: expected an integer in [1, 65536], got %g",
                                       (long long)k + 1, hv[k]);
                    return;
                }
                mc->hidden[k] = (int)hv[k];
            }
            mc->n_hidden = (int)nh;
        } else {
            /* depth hidden layers of lround(512 * width) units (2 x 512 by default) */
            mc->n_hidden = (int)depth_k;
            for (int k = 0; k < mc->n_hidden; k++) mc->hidden[k] = (int)fmax(1.0, (double)lround(512.0 * mc->width));
        }
        mc->depth = mc->n_hidden;
    }
    static const char *const bi[] = {"torch", "zero"};
    static const int bi_v[] = {LT_BIAS_INIT_TORCH, LT_BIAS_INIT_ZERO};
    mc->fc_bias_init = (lt_bias_init)lt_mt_get_enum(rd, KS("bias_init"), "bias_init", "torch", bi, bi_v, 2);
    static const char *const heads[] = {"linear", "cosine", "etf", "lws"};
    static const int head_v[] = {LT_HEAD_LINEAR, LT_HEAD_COSINE, LT_HEAD_ETF, LT_HEAD_LWS};
    mc->head = (lt_head_kind)lt_mt_get_enum(rd, KS("head"), "head", "linear", heads, head_v, 4);
    mc->heads = (int)lt_mt_get_int(rd, KS("heads"), "heads", 1, 1, LT_MAX_HEADS);
#undef KS
}

/* init (a checkpoint to start from) and init_strict of section S. */
static void read_init(lt_mt_reader *rd, const char *S, const char **init, int *strict) {
    *init = lt_mt_get_str(rd, S, "init", NULL);
    if (!rd->st && *init && !(*init)[0]) rd->st = lt_mt_bad(rd->r, S, "init", "expected a checkpoint path, got an empty value");
    *strict = lt_mt_get_bool(rd, S, "init_strict", 1);
    if (!rd->st && !*init && lt_config_has(rd->r->cfg, S, "init_strict"))
        rd->st = lt_mt_bad(rd->r, S, "init_strict", "only used with %s.init", S);
}

/* [model]: the student's architecture (read_arch), init and init_strict (weights to start
 * from), teacher (a frozen model that the KD loss consults). */
static void read_model(lt_mt_reader *rd) {
    lt_recipe *r = rd->r;
    const char *S = "model";
    lt_config_has_section(r->cfg, S);
    read_arch(rd, S, NULL, &r->model, &r->depth);
    if (rd->st) return;
    r->width = r->model.width;
    r->bias_init = r->model.fc_bias_init;
    r->head = r->model.head;
    read_init(rd, S, &r->init, &r->init_strict);
    r->teacher = lt_mt_get_str(rd, S, "teacher", NULL);
    if (!rd->st && r->teacher && !r->teacher[0])
        rd->st = lt_mt_bad(r, S, "teacher", "expected a checkpoint path, got an empty value");
    r->teacher_sec = S;
    r->teacher_key = "teacher";
}

/* [model.NAME] sections: more model roles. With `checkpoint = PATH` the role is frozen and
 * rebuilt from that file alone; [model.teacher] is the one a method consults today (the
 * KD term), the same as [model] teacher = PATH. Without it the role is trained beside the
 * student: [model]'s architecture with the keys the section gives replaced (arch, width,
 * stem, hidden, depth, bias_init), its own init / init_strict, its own initialization
 * draw, optimizer, best-epoch selection and stageK.NAME.safetensors; every stage trains it
 * on the same batches with the same settings and method rows as the student. */
static void read_roles(lt_mt_reader *rd) {
    lt_recipe *r = rd->r;
    for (int64_t i = 0; i < lt_config_section_count(r->cfg) && !rd->st; i++) {
        const char *sec = lt_config_section_name(r->cfg, i);
        if (strncmp(sec, "model.", 6) != 0) continue;
        const char *name = sec + 6;
        char w[300];
        if (!strcmp(name, "student")) {
            rd->st = lt_error(LT_ERR_CONFIG, "%s: [%s]: the student is [model] itself",
                              lt_recipe_where(r, sec, NULL, w, sizeof w), sec);
            return;
        }
        if (strlen(name) >= sizeof r->roles[0].name) {
            rd->st = lt_error(LT_ERR_CONFIG, "%s: [%s]: a role name has at most %zu characters",
                              lt_recipe_where(r, sec, NULL, w, sizeof w), sec, sizeof r->roles[0].name - 1);
            return;
        }
        const char *ck = lt_mt_get_str(rd, sec, "checkpoint", NULL);
        if (rd->st) return;
        if (ck) {
            if (!ck[0]) {
                rd->st = lt_mt_bad(r, sec, "checkpoint", "expected a checkpoint path, got an empty value");
                return;
            }
            if (strcmp(name, "teacher") != 0) {
                rd->st = lt_mt_bad(r, sec, "checkpoint", "no method consults a frozen role '%s' (the KD term consults "
                                   "[model.teacher])", name);
                return;
            }
            if (r->teacher) {
                rd->st = lt_mt_bad(r, sec, "checkpoint", "the teacher is given twice (also as model.teacher)");
                return;
            }
            r->teacher = ck;
            r->teacher_sec = sec;
            r->teacher_key = "checkpoint";
            continue;
        }
        if (!strcmp(name, "teacher")) {
            rd->st = lt_error(LT_ERR_CONFIG, "%s: [%s]: the teacher role is frozen: give checkpoint = PATH",
                              lt_recipe_where(r, sec, NULL, w, sizeof w), sec);
            return;
        }
        if (r->n_roles == LT_MAX_ROLES) {
            rd->st = lt_error(LT_ERR_CONFIG, "%s: [%s]: at most %d trained roles besides the student",
                              lt_recipe_where(r, sec, NULL, w, sizeof w), sec, LT_MAX_ROLES);
            return;
        }
        lt_role_spec *ro = &r->roles[r->n_roles];
        memset(ro, 0, sizeof *ro);
        snprintf(ro->name, sizeof ro->name, "%s", name);
        int depth = 0;
        read_arch(rd, sec, "model", &ro->model, &depth);
        read_init(rd, sec, &ro->init, &ro->init_strict);
        if (rd->st) return;
        /* The stages' losses and classifier steps were checked against [model]'s head. */
        static const char *const head_keys[] = {"head", "heads"};
        for (int k = 0; k < 2; k++)
            if (lt_config_has(r->cfg, sec, head_keys[k]) &&
                (ro->model.head != r->model.head || ro->model.heads != r->model.heads)) {
                rd->st = lt_mt_bad(r, sec, head_keys[k], "a trained role has [model]'s classifier (the stages' losses "
                                   "are chosen for it)");
                return;
            }
        r->n_roles++;
    }
}

/* A copy of p[0..n) that the recipe owns (freed with it); NULL (rd->st set) when out of memory. */
static const char *own_str(lt_mt_reader *rd, const char *p, size_t n) {
    lt_recipe *r = rd->r;
    char *s = lt_malloc(n + 1);
    char **grown = lt_realloc(r->owned, (size_t)(r->n_owned + 1) * sizeof *grown);
    if (grown) r->owned = grown;
    if (!s || !grown) {
        lt_free(s);
        rd->st = lt_error(LT_ERR_NOMEM, "recipe: out of memory");
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = '\0';
    r->owned[r->n_owned++] = s;
    return s;
}

/* A parameter selector of train or weight_decay_groups: the word classifier stands for the
 * model's head, fc; anything else is copied (own_str). */
static const char *selector(lt_mt_reader *rd, const char *p, size_t n) {
    return n == 10 && !memcmp(p, "classifier", 10) ? "fc" : own_str(rd, p, n);
}

/* "all" | "classifier" | comma list of name prefixes (the word classifier allowed in it). */
static void read_train(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    lt_recipe *r = rd->r;
    const char *v = lt_mt_get_str(rd, S, "train", "all");
    if (rd->st) return;
    st->train_all = 0;
    st->n_train_prefixes = 0;
    if (lt_mt_trim_eq(v, strlen(v), "all")) {
        st->train_all = 1;
        return;
    }
    for (const char *p = v; p;) {
        const char *item;
        size_t n = list_next(&p, &item);
        if (n == 0) {
            rd->st = lt_mt_bad(r, S, "train", "expected all, classifier or a comma-separated list of parameter name prefixes, got '%s'", v);
            return;
        }
        if (st->n_train_prefixes == LT_MAX_TRAIN_PREFIXES) {
            rd->st = lt_mt_bad(r, S, "train", "more than %d prefixes", LT_MAX_TRAIN_PREFIXES);
            return;
        }
        if (n == 3 && !memcmp(item, "all", 3)) {
            rd->st = lt_mt_bad(r, S, "train", "'all' cannot be combined with prefixes");
            return;
        }
        const char *sel = selector(rd, item, n);
        if (!sel) return;
        st->train_prefixes[st->n_train_prefixes++] = sel;
    }
}

/* weight_decay_groups = SELECTOR:VALUE, ...: SELECTOR is a parameter name prefix as in
 * train (the word classifier = fc) or a glob with '*' (*.bias, *bn*); VALUE >= 0. */
static void read_wd_groups(lt_mt_reader *rd, const char *S, lt_stage_config *st) {
    lt_recipe *r = rd->r;
    const char *v = lt_mt_get_str(rd, S, "weight_decay_groups", "");
    st->n_wd_groups = 0;
    if (rd->st || !*v) return;
    for (const char *p = v; p;) {
        const char *item;
        size_t n = list_next(&p, &item);
        const char *colon = memchr(item, ':', n);
        const char *a = item;   /* the SELECTOR, trimmed */
        size_t na = colon ? lt_mt_trim(&a, (size_t)(colon - item)) : 0;
        char num[64];   /* the VALUE, as a string of its own */
        double x = NAN;
        size_t nv = colon ? (size_t)(item + n - (colon + 1)) : 0;
        int ok = colon && nv < sizeof num;
        if (ok) {
            memcpy(num, colon + 1, nv);
            num[nv] = '\0';
            ok = lt_parse_double(num, &x) && x >= 0.0;
        }
        if (!ok || na == 0) {
            rd->st = lt_mt_bad(r, S, "weight_decay_groups",
                         "expected a comma-separated list of SELECTOR:VALUE (a parameter name prefix or a glob, "
                         "and a weight decay >= 0, e.g. fc:0.1, *.bias:0), got '%s'", v);
            return;
        }
        if (st->n_wd_groups == LT_MAX_WD_GROUPS) {
            rd->st = lt_mt_bad(r, S, "weight_decay_groups", "more than %d items", LT_MAX_WD_GROUPS);
            return;
        }
        const char *sel = selector(rd, a, na);
        if (!sel) return;
        st->wd_group_sel[st->n_wd_groups] = sel;
        st->wd_group_value[st->n_wd_groups++] = x;
    }
}

/* MaxNorm and the post-hoc transform of a stage (weight balancing; docs/recipes.md). */
static void read_stage(lt_mt_reader *rd, int k, lt_stage_config *st) {
    lt_recipe *r = rd->r;
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "stage%d", k + 1);
    const char *S = st->name;
    if (!rd->st && !lt_config_has(r->cfg, S, "epochs")) {
        char w[300];
        rd->st = lt_error(LT_ERR_CONFIG, "%s: [%s] needs an epochs = N key", lt_recipe_where(r, S, NULL, w, sizeof w), S);
        return;
    }
    /* 0 epochs: the stage trains nothing; it evaluates (and post-hoc transforms) the
     * model it starts from, e.g. one loaded with [model] init. */
    st->epochs = lt_mt_get_int(rd, S, "epochs", 1, 0, 1000000);
    st->batch_size = lt_mt_get_int(rd, S, "batch_size", 128, 1, 1 << 20);
    st->drop_last = lt_mt_get_bool(rd, S, "drop_last", 0);

    static const char *const opts[] = {"sgd", "adam", "adamw"};
    static const int opt_v[] = {LT_OPTIM_SGD, LT_OPTIM_ADAM, LT_OPTIM_ADAMW};
    lt_optim_kind ok = (lt_optim_kind)lt_mt_get_enum(rd, S, "optimizer", "sgd", opts, opt_v, 3);
    double lr = lt_mt_get_num(rd, S, "lr", 0.1, 0.0, INFINITY, 0);
    double wd = lt_mt_get_num(rd, S, "weight_decay", ok == LT_OPTIM_ADAMW ? 0.01 : 5e-4, 0.0, INFINITY, 0);
    if (ok == LT_OPTIM_SGD) {
        double mom = lt_mt_get_num(rd, S, "momentum", 0.9, 0.0, 1.0, 1);
        int nesterov = lt_mt_get_bool(rd, S, "nesterov", 0);
        if (!rd->st && nesterov && mom == 0.0) rd->st = lt_mt_bad(r, S, "nesterov", "Nesterov momentum needs momentum > 0");
        st->optim = lt_optim_config_sgd((float)mom, (float)wd, nesterov);
    } else {
        st->optim = ok == LT_OPTIM_ADAM ? lt_optim_config_adam((float)wd) : lt_optim_config_adamw((float)wd);
        st->optim.beta1 = (float)lt_mt_get_num(rd, S, "beta1", 0.9, 0.0, 1.0, 1);
        st->optim.beta2 = (float)lt_mt_get_num(rd, S, "beta2", 0.999, 0.0, 1.0, 1);
        st->optim.eps = (float)lt_mt_get_num(rd, S, "eps", 1e-8, 0.0, INFINITY, 0);
    }

    lt_schedule *sc = &st->schedule;
    static const char *const scheds[] = {"cosine", "step", "constant"};
    static const int sched_v[] = {LT_SCHED_COSINE, LT_SCHED_STEP, LT_SCHED_CONSTANT};
    sc->kind = (lt_sched_kind)lt_mt_get_enum(rd, S, "schedule", "cosine", scheds, sched_v, 3);
    sc->base_lr = (float)lr;
    sc->total_epochs = (int)st->epochs;
    sc->warmup_epochs = (int)lt_mt_get_int(rd, S, "warmup_epochs", 0, 0, st->epochs ? st->epochs : 1000000);
    static const char *const anneal[] = {"epoch", "iter"};
    static const int anneal_v[] = {0, 1};
    sc->per_iter = lt_mt_get_enum(rd, S, "anneal", "epoch", anneal, anneal_v, 2);
    int64_t ms[LT_SCHED_MAX_MILESTONES], nms = 0;
    double fs[LT_SCHED_MAX_MILESTONES];
    int64_t nfs = 0;
    if (!rd->st) rd->st = lt_config_get_int_list(r->cfg, S, "milestones", ms, LT_SCHED_MAX_MILESTONES, &nms);
    if (!rd->st) rd->st = lt_config_get_float_list(r->cfg, S, "factors", fs, LT_SCHED_MAX_MILESTONES, &nfs);
    if (rd->st) return;
    if (sc->kind == LT_SCHED_STEP) {
        if (nms == 0) { rd->st = lt_mt_bad(r, S, "milestones", "schedule = step needs milestones (epochs, e.g. 160, 180)"); return; }
        if (nfs != nms) {
            rd->st = lt_mt_bad(r, S, "factors", "expected %lld factors (one per milestone, cumulative: 0.01, 0.0001), got %lld",
                         (long long)nms, (long long)nfs);
            return;
        }
        for (int64_t j = 0; j < nms; j++) {
            if (ms[j] < 1 || (st->epochs && ms[j] >= st->epochs) || (j && ms[j] <= ms[j - 1])) {
                rd->st = lt_mt_bad(r, S, "milestones", "expected strictly increasing epochs in [1, %lld), got item %lld = %lld",
                             (long long)st->epochs, (long long)j + 1, (long long)ms[j]);
                return;
            }
            if (!(fs[j] >= 0)) {
                rd->st = lt_mt_bad(r, S, "factors", "item %lld: expected a number >= 0, got %g", (long long)j + 1, fs[j]);
                return;
            }
            sc->milestones[j] = (int)ms[j];
            sc->factors[j] = (float)fs[j];
        }
        sc->n_milestones = (int)nms;
    } else if (nms || nfs) {
        rd->st = lt_mt_bad(r, S, nms ? "milestones" : "factors", "only used with schedule = step (schedule is '%s')",
                     scheds[sc->kind == LT_SCHED_COSINE ? 0 : 2]);
        return;
    }
    if (st->epochs > 0 && lt_schedule_check(sc) != LT_OK) {
        rd->st = lt_mt_bad(r, S, "schedule", "%s", lt_last_error());
        return;
    }

    read_train(rd, S, st);
    read_wd_groups(rd, S, st);
    static const char *const bns[] = {"train", "frozen", "stats_only"};
    static const int bn_v[] = {LT_BN_TRAIN, LT_BN_FROZEN, LT_BN_STATS_ONLY};
    st->bn = (lt_bn_mode)lt_mt_get_enum(rd, S, "bn", "train", bns, bn_v, 3);

    lt_sampler_config_default(&st->sampler);
    static const char *const samplers[] = {"instance", "class_aware", "class_balanced", "sqrt", "qpower", "reversed",
                                           "progressive"};
    static const int sampler_v[] = {0, 1, 2, 3, 4, 5, 6};
    int sk = lt_mt_get_enum(rd, S, "sampler", "instance", samplers, sampler_v, 7);
    double q = lt_mt_get_num(rd, S, "q", 0.5, -16.0, 16.0, 0);
    int64_t kpc = lt_mt_get_int(rd, S, "images_per_class", 4, 1, 1 << 20);
    if (rd->st) return;
    if (lt_config_has(r->cfg, S, "q") && sk != 4) {
        rd->st = lt_mt_bad(r, S, "q", "only used with sampler = qpower (sampler is '%s')", samplers[sk]);
        return;
    }
    if (lt_config_has(r->cfg, S, "images_per_class") && sk != 1) {
        rd->st = lt_mt_bad(r, S, "images_per_class", "only used with sampler = class_aware (sampler is '%s')", samplers[sk]);
        return;
    }
    switch (sk) {
    case 0: st->sampler.kind = LT_SAMPLER_INSTANCE; break;
    case 1: st->sampler.kind = LT_SAMPLER_CLASS_AWARE; st->sampler.k = kpc; break;
    case 2: st->sampler.kind = LT_SAMPLER_QPOWER; st->sampler.q = 0.0; break;
    case 3: st->sampler.kind = LT_SAMPLER_QPOWER; st->sampler.q = 0.5; break;
    case 4: st->sampler.kind = LT_SAMPLER_QPOWER; st->sampler.q = q; break;
    case 5: st->sampler.kind = LT_SAMPLER_REVERSED; break;
    case 6: st->sampler.kind = LT_SAMPLER_PROGRESSIVE; break;
    }
    st->sampler.total_epochs = st->epochs;

    static const char *const sels[] = {"best_val", "last"};
    static const int sel_v[] = {LT_EPOCH_BEST_VAL, LT_EPOCH_LAST};
    st->select = (lt_epoch_select)lt_mt_get_enum(rd, S, "select", "best_val", sels, sel_v, 2);
    /* every method's own keys (reinit_classifier, the loss's, maxnorm*, kd*, posthoc*):
     * the read hook of its row in the method table (methods.c) */
    lt_mt_methods_read(rd, S, st);
}

static void read_eval(lt_mt_reader *rd) {
    lt_recipe *r = rd->r;
    const char *S = "eval";
    lt_config_has_section(r->cfg, S);
    static const char *const gs[] = {"auto", "count", "threshold", "rank"};
    static const int g_v[] = {LT_GROUP_BY_AUTO, LT_GROUP_BY_THRESHOLD, LT_GROUP_BY_THRESHOLD, LT_GROUP_BY_RANK};
    r->groups = lt_group_spec_default();
    r->groups.mode = (lt_group_mode)lt_mt_get_enum(rd, S, "groups", "auto", gs, g_v, 4);
    r->groups.many_above = lt_mt_get_int(rd, S, "many_threshold", 100, 0, INT64_MAX);
    r->groups.few_below = lt_mt_get_int(rd, S, "few_threshold", 20, 0, INT64_MAX);
    if (!rd->st && r->groups.few_below > r->groups.many_above + 1)
        rd->st = lt_mt_bad(r, S, "few_threshold", "few (< %lld) and many (> %lld) overlap", (long long)r->groups.few_below,
                     (long long)r->groups.many_above);
    r->eval_batch_size = lt_mt_get_int(rd, S, "batch_size", 256, 1, 1 << 20);
    r->topk = (int)lt_mt_get_int(rd, S, "topk", 5, 1, 1000);
}

static void read_run(lt_mt_reader *rd) {
    lt_recipe *r = rd->r;
    const char *S = "run";
    lt_config_has_section(r->cfg, S);
    r->seed = (uint64_t)lt_mt_get_int(rd, S, "seed", 0, 0, INT64_MAX / 2);
    r->seeds = (int)lt_mt_get_int(rd, S, "seeds", 1, 1, 1000);
    r->threads = (int)lt_mt_get_int(rd, S, "threads", 0, 0, 4096);
    const char *nm = lt_mt_get_str(rd, S, "name", r->name);
    if (rd->st) return;
    int ok = *nm && strlen(nm) < sizeof r->name;
    for (const char *c = nm; *c && ok; c++) ok = isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.';
    if (!ok) {
        rd->st = lt_mt_bad(r, S, "name", "expected a name of letters, digits, '-', '_' and '.' (it names run folders), got '%s'", nm);
        return;
    }
    if (nm != r->name) snprintf(r->name, sizeof r->name, "%s", nm);
}

/* ---------------------------------------------------------------- entry points */

void lt_recipe_free(lt_recipe *r) {
    if (!r) return;
    lt_config_free(r->cfg);
    lt_free(r->text);
    for (int i = 0; i < r->n_set_keys; i++) lt_free(r->set_keys[i]);
    lt_free(r->set_keys);
    for (int i = 0; i < r->n_owned; i++) lt_free(r->owned[i]);
    lt_free(r->owned);
    memset(r, 0, sizeof *r);
}

static void recipe_name(lt_recipe *r, const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    snprintf(r->name, sizeof r->name, "%s", base);
    size_t n = strlen(r->name);
    if (n > 4 && !strcmp(r->name + n - 4, ".ini")) r->name[n - 4] = '\0';
    for (char *c = r->name; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.')) *c = '_';
    if (!r->name[0]) snprintf(r->name, sizeof r->name, "recipe");
}

lt_status lt_recipe_parse(lt_recipe *r, const char *text, const char *name, const char *const *sets, int n_sets) {
    memset(r, 0, sizeof *r);
    if (!name) name = "recipe";
    recipe_name(r, name);
    r->text = lt_strdup(text);
    if (!r->text) return lt_error(LT_ERR_NOMEM, "%s: out of memory", name);
    lt_status s = lt_config_parse_string(text, name, &r->cfg);
    if (s) {
        lt_recipe_free(r);
        return s;
    }
    /* Overrides: remembered by key so messages can say --set. */
    for (int i = 0; i < n_sets; i++) {
        s = lt_config_set_arg(r->cfg, sets[i]);
        if (s) {
            lt_recipe_free(r);
            return s;
        }
        const char *eq = strchr(sets[i], '=');
        size_t kn = eq ? (size_t)(eq - sets[i]) : strlen(sets[i]);
        while (kn && isspace((unsigned char)sets[i][kn - 1])) kn--;
        char **grown = lt_realloc(r->set_keys, (size_t)(r->n_set_keys + 1) * sizeof *grown);
        char *k = lt_malloc(kn + 1);
        if (!grown || !k) {
            if (grown) r->set_keys = grown;
            lt_free(k);
            lt_recipe_free(r);
            return lt_error(LT_ERR_NOMEM, "%s: out of memory", name);
        }
        memcpy(k, sets[i], kn);
        k[kn] = '\0';
        r->set_keys = grown;
        r->set_keys[r->n_set_keys++] = k;
    }

    lt_mt_reader rd = {r, LT_OK};
    read_data(&rd);
    read_model(&rd);
    read_roles(&rd);
    /* Stages: [stage1], [stage2], ... without gaps. */
    int n_stages = 0;
    while (!rd.st && n_stages < LT_MAX_STAGES) {
        char sec[24];
        snprintf(sec, sizeof sec, "stage%d", n_stages + 1);
        if (!lt_config_has_section(r->cfg, sec)) break;
        read_stage(&rd, n_stages, &r->stages[n_stages]);
        n_stages++;
    }
    r->n_stages = n_stages;
    /* the teacher's use */
    int uses_kd = 0;
    for (int k = 0; k < n_stages; k++) uses_kd |= r->stages[k].lc.kd > 0;
    if (!rd.st && r->teacher && !uses_kd)
        rd.st = lt_mt_bad(r, r->teacher_sec, r->teacher_key, "no stage distills from it (set kd > 0 in a stage)");
    read_eval(&rd);
    read_run(&rd);
    s = rd.st;
    if (!s) {
        for (int64_t i = 0; i < lt_config_section_count(r->cfg); i++) {
            const char *sec = lt_config_section_name(r->cfg, i);
            int num = 0;
            char tail = 0;
            if (sscanf(sec, "stage%d%c", &num, &tail) == 1 && num > n_stages) {
                char w[300];
                if (num > LT_MAX_STAGES)
                    s = lt_error(LT_ERR_CONFIG, "%s: [%s]: at most %d stages", lt_recipe_where(r, sec, NULL, w, sizeof w),
                                 sec, LT_MAX_STAGES);
                else
                    s = lt_error(LT_ERR_CONFIG, "%s: [%s] without [stage%d] (stages are numbered 1, 2, ... without gaps)",
                                 lt_recipe_where(r, sec, NULL, w, sizeof w), sec, n_stages + 1);
                break;
            }
        }
    }
    if (!s && n_stages == 0)
        s = lt_error(LT_ERR_CONFIG, "%s: no [stage1] section (a recipe needs at least one stage)", lt_config_name(r->cfg));
    if (!s) s = lt_config_check_unused(r->cfg);
    if (!s && !lt_config_has(r->cfg, "run", "name")) {
        /* The name is recorded so a resumed run (read from config.ini) keeps it. */
        const char *v;
        s = lt_config_set(r->cfg, "run.name", r->name);
        if (!s) s = lt_config_get_str(r->cfg, "run", "name", "", &v);
    }
    if (!s && r->threads == 0) {
        /* Same seed + same thread count => same bytes: record the count actually used. */
        lt_set_threads(0);
        r->threads = lt_get_threads();
        char v[32];
        snprintf(v, sizeof v, "%d", r->threads);
        s = lt_config_set(r->cfg, "run.threads", v);
        if (!s) {
            int64_t t;
            s = lt_config_get_int(r->cfg, "run", "threads", 0, &t);   /* mark the new key read */
        }
    }
    if (s) {
        lt_recipe_free(r);
        return s;
    }
    return LT_OK;
}

lt_status lt_recipe_load(lt_recipe *r, const char *path, const char *const *sets, int n_sets) {
    memset(r, 0, sizeof *r);
    char *text;
    int64_t n;
    lt_status s = lt_file_read(path, (int64_t)1 << 20, &text, &n);
    if (s) return s == LT_ERR_FORMAT ? lt_error(LT_ERR_CONFIG, "%s", lt_last_error()) : s;
    if ((int64_t)strlen(text) != n) {
        lt_free(text);
        return lt_error(LT_ERR_CONFIG, "%s: not a text file (NUL byte)", path);
    }
    s = lt_recipe_parse(r, text, path, sets, n_sets);
    lt_free(text);
    return s;
}

lt_status lt_recipe_to_string(const lt_recipe *r, char **text) { return lt_config_to_string(r->cfg, text); }

/* The same resolved recipe: the INI texts of both resolved configs are equal (a key
 * written out with its default value counts as a difference; that errs on the safe side:
 * every setting, including ones added by later code, is compared). On a difference,
 * *line_a / *line_b (may be NULL) get the first differing lines (static storage). */
int lt_recipe_same(const lt_recipe *a, const lt_recipe *b, const char **line_a, const char **line_b) {
    static char la[256], lb[256];
    char *ta = NULL, *tb = NULL;
    int same = 0;
    if (lt_config_to_string(a->cfg, &ta) == LT_OK && lt_config_to_string(b->cfg, &tb) == LT_OK) {
        same = !strcmp(ta, tb);
        if (!same) {
            const char *pa = ta, *pb = tb;
            for (;;) {
                const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
                size_t na = ea ? (size_t)(ea - pa) : strlen(pa), nb = eb ? (size_t)(eb - pb) : strlen(pb);
                if (na != nb || memcmp(pa, pb, na) || !ea || !eb) {
                    snprintf(la, sizeof la, "%.*s", (int)na, *pa ? pa : "(no more lines)");
                    snprintf(lb, sizeof lb, "%.*s", (int)nb, *pb ? pb : "(no more lines)");
                    if (!*pa) snprintf(la, sizeof la, "(no more lines)");
                    if (!*pb) snprintf(lb, sizeof lb, "(no more lines)");
                    break;
                }
                pa = ea + 1;
                pb = eb + 1;
            }
            if (line_a) *line_a = la;
            if (line_b) *line_b = lb;
        }
    }
    lt_free(ta);
    lt_free(tb);
    return same;
}

lt_status lt_recipe_load_data(const lt_recipe *r, lt_data *d) { return lt_data_load(d, &r->data); }

lt_model_config lt_recipe_model_config(const lt_recipe *r, int64_t h, int64_t w, int64_t c, int32_t num_classes) {
    lt_model_config m = r->model;
    m.in_channels = (int)c;
    m.in_height = (int)h;
    m.in_width = (int)w;
    m.num_classes = num_classes;
    return m;
}

lt_status lt_recipe_role_model_config(const lt_recipe *r, const char *role, int64_t h, int64_t w, int64_t c,
                                      int32_t num_classes, lt_model_config *out) {
    *out = lt_recipe_model_config(r, h, w, c, num_classes);
    if (!role) return LT_OK;
    for (int i = 0; i < r->n_roles; i++)
        if (!strcmp(r->roles[i].name, role)) {
            lt_model_config m = r->roles[i].model;
            m.in_channels = out->in_channels;
            m.in_height = out->in_height;
            m.in_width = out->in_width;
            m.num_classes = out->num_classes;
            *out = m;
            return LT_OK;
        }
    return lt_error(LT_ERR_CONFIG, "%s: no trained role '%s' (a [model.%s] section without checkpoint)",
                    lt_config_name(r->cfg), role, role);
}

lt_status lt_recipe_augment(const lt_recipe *r, const lt_dataset *train, lt_augment_config *aug) {
    lt_augment_config_default(aug);
    aug->pad = r->crop_pad;
    aug->hflip = r->hflip;
    int64_t c = train->c;
    switch (r->normalize) {
    case LT_NORM_NONE: break;
    case LT_NORM_CIFAR: {
        lt_augment_config cifar;
        lt_augment_config_cifar(&cifar);
        if (c != 3) return lt_error(LT_ERR_CONFIG, "%s: normalize = cifar needs 3 channels, the images have %lld",
                                    lt_config_name(r->cfg), (long long)c);
        memcpy(aug->mean, cifar.mean, sizeof aug->mean);
        memcpy(aug->std, cifar.std, sizeof aug->std);
        break;
    }
    case LT_NORM_CUSTOM:
        if (r->n_mean != c) {
            char w[300];
            return lt_error(LT_ERR_CONFIG, "%s: data.mean: %d values, the images have %lld channels",
                            lt_recipe_where(r, "data", "mean", w, sizeof w), r->n_mean, (long long)c);
        }
        memcpy(aug->mean, r->mean, sizeof aug->mean);
        memcpy(aug->std, r->std, sizeof aug->std);
        break;
    case LT_NORM_DATASET: {
        if (train->n < 1) return lt_error(LT_ERR_ARG, "normalize = dataset: the training set is empty");
        lt_status s = lt_dataset_channel_stats(train, aug->mean, aug->std);
        if (s) return s;
        for (int64_t k = 0; k < c; k++)
            if (!(aug->std[k] > 0)) aug->std[k] = 1.0f;   /* a constant channel: only centre it */
        break;
    }
    }
    return LT_OK;
}
