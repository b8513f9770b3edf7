#!/usr/bin/env python3
"""PyTorch reference for the accuracy table (docs/results.md): runs a longtail recipe in
PyTorch on the same data, backbone and schedule, and writes a metrics.json that
bench/results_record.py reads.

    /usr/bin/python3 bench/torch_reference.py RECIPE.ini [--set section.key=value ...]
        --seed S --threads T --out DIR [--longtail build/longtail]

Standard library + numpy + torch only (Debian's /usr/bin/python3, torch 1.13).

What is the same as longtail (read from its sources, see the comments below):
  - the recipe: longtail's INI rules (`#`/`;` comments after whitespace, quoted values,
    `--set` overrides, duplicate / unknown keys are errors); every key outside the
    supported set below is an error, so nothing silently runs a different recipe;
  - the data: the long-tailed training subset and the validation split are longtail's own
    (`longtail data --json --indices`), read from the Fashion-MNIST IDX files; the test
    set is the full test file; normalize = dataset uses the population std of the subset;
  - the model: the CIFAR ResNet of tests/fixtures/fx_resnet.py (option-A shortcuts,
    Kaiming-normal conv/linear, nn.Linear's bias init) with longtail's heads
    (linear, cosine, etf, lws) under longtail's parameter names;
  - the stage loop: a fresh optimizer per stage, lr schedule (src/optim/schedule.c),
    train / bn / reinit_classifier, per-batch loss (src/method/stage_loss.c, src/loss/*),
    MaxNorm PGD (src/method/constraint.c), best-val selection (first epoch with the
    highest validation top-1), post-hoc transforms chosen on validation
    (src/method/posthoc_stage.c), metrics (src/eval/metrics.c, groups.c).
What is not the same: random draws (initialization, data order, augmentation, SEQL's
Bernoulli masks, the ETF basis) come from torch / numpy generators, so runs agree with
longtail statistically, not bit for bit.
"""
import argparse
import copy
import fnmatch
import gzip
import json
import math
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from fx_common import save as save_safetensors  # noqa: E402
from fx_resnet import ResNetCifar  # noqa: E402

FLT_MIN = 1.1754943508222875e-38
LOG_ZERO = -1e30  # LT_LOSS_LOG_ZERO: log of a zero SEQL weight


class RecipeError(Exception):
    pass


# ============================================================================ recipe

def strip_comment(line):
    """longtail's rule: `#` or `;` start a comment at the line start or after whitespace;
    inside "..." they are kept."""
    out, q = [], False
    for i, ch in enumerate(line):
        if ch == '"':
            q = not q
        if not q and ch in "#;" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).strip()


def parse_ini(path):
    sections, where = {}, {}
    cur = None
    with open(path) as f:
        for ln, raw in enumerate(f, 1):
            line = strip_comment(raw.rstrip("\n"))
            if not line:
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise RecipeError(f"{path}:{ln}: bad section header {line!r}")
                cur = line[1:-1].strip()
                if cur in sections:
                    raise RecipeError(f"{path}:{ln}: duplicate section [{cur}]")
                sections[cur] = {}
                continue
            if "=" not in line:
                raise RecipeError(f"{path}:{ln}: expected key = value, got {line!r}")
            if cur is None:
                raise RecipeError(f"{path}:{ln}: key outside a section")
            k, v = line.split("=", 1)
            k, v = k.strip(), v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            if k in sections[cur]:
                raise RecipeError(f"{path}:{ln}: duplicate key {cur}.{k}")
            sections[cur][k] = v
            where[(cur, k)] = f"{path}:{ln}"
    return sections, where


def apply_sets(sections, where, sets):
    for s in sets:
        m = re.match(r"^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)=(.*)$", s)
        if not m:
            raise RecipeError(f"--set {s}: expected section.key=value")
        sec, key, val = m.group(1), m.group(2), m.group(3).strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        sections.setdefault(sec, {})[key] = val
        where[(sec, key)] = "--set"


class Sec:
    """Typed, checked access to one section; remembers which keys were read."""

    def __init__(self, name, kv, where):
        self.name, self.kv, self.where, self.used = name, kv, where, set()

    def has(self, k):
        return k in self.kv

    def err(self, k, msg):
        w = self.where.get((self.name, k), self.name)
        return RecipeError(f"{w}: {self.name}.{k}: {msg}")

    def raw(self, k, default=None):
        self.used.add(k)
        return self.kv.get(k, default)

    def str(self, k, default):
        return self.raw(k, default)

    def enum(self, k, default, names):
        v = self.raw(k, default)
        if v not in names:
            raise self.err(k, f"expected {', '.join(names)}, got '{v}'")
        return v

    def num(self, k, default, lo=-math.inf, hi=math.inf, hi_open=False):
        v = self.raw(k, None)
        if v is None:
            return default
        try:
            x = float(v)
        except ValueError:
            raise self.err(k, f"expected a number, got '{v}'")
        if not (x >= lo and (x < hi if hi_open else x <= hi)):
            raise self.err(k, f"expected a number in [{lo}, {hi}{')' if hi_open else ']'}, got {x}")
        return x

    def int(self, k, default, lo=-2**62, hi=2**62):
        v = self.raw(k, None)
        if v is None:
            return default
        try:
            x = int(v)
        except ValueError:
            raise self.err(k, f"expected an integer, got '{v}'")
        if not lo <= x <= hi:
            raise self.err(k, f"expected an integer in [{lo}, {hi}], got {x}")
        return x

    def bool(self, k, default):
        v = self.raw(k, None)
        if v is None:
            return default
        t = v.lower()
        if t in ("true", "yes", "on", "1"):
            return True
        if t in ("false", "no", "off", "0"):
            return False
        raise self.err(k, f"expected true or false, got '{v}'")

    def list(self, k, conv):
        v = self.raw(k, None)
        if v is None:
            return []
        try:
            return [conv(x.strip()) for x in v.split(",") if x.strip()]
        except ValueError:
            raise self.err(k, f"expected a comma-separated list, got '{v}'")

    def only(self, k, cond, desc):
        if self.has(k) and not cond:
            raise self.err(k, f"only used with {desc}")

    def check_all_used(self):
        for k in self.kv:
            if k not in self.used:
                raise self.err(k, "unknown or unsupported key (the PyTorch reference refuses keys it does not implement)")


LOSSES = ["ce", "cb_softmax", "cb_bce", "focal", "cb_focal", "cb_sigmoid", "ldam", "balanced_softmax", "la",
          "eql", "seql", "las", "iwb"]
WEIGHTED = {"ce", "cb_softmax", "cb_bce", "focal", "cb_focal", "cb_sigmoid", "ldam"}
CB_KINDS = {"cb_softmax", "cb_bce", "cb_focal", "cb_sigmoid"}


def read_recipe(path, sets):
    sections, where = parse_ini(path)
    apply_sets(sections, where, sets)
    for s in sections:
        if s not in ("data", "model", "eval", "run") and not re.match(r"^stage[1-9][0-9]*$", s):
            raise RecipeError(f"{path}: unknown section [{s}]")
    n_stages = 0
    while f"stage{n_stages + 1}" in sections:
        n_stages += 1
    if n_stages == 0:
        raise RecipeError(f"{path}: needs a [stage1] section")
    for s in sections:
        if s.startswith("stage") and int(s[5:]) > n_stages:
            raise RecipeError(f"{path}: [{s}]: stages must be numbered without gaps")
    R = {"path": path, "name": os.path.basename(path)[:-4] if path.endswith(".ini") else os.path.basename(path)}

    d = Sec("data", sections.get("data", {}), where)
    R["dataset"] = d.enum("dataset", "fmnist", ["fmnist", "mnist", "cifar10", "cifar100", "folder", "list"])
    if R["dataset"] != "fmnist":
        raise d.err("dataset", f"the PyTorch reference supports only fmnist, got '{R['dataset']}'")
    R["root"] = d.str("root", "/usr/share/datasets/fashion-mnist") or "/usr/share/datasets/fashion-mnist"
    R["profile"] = d.enum("profile", "exp", ["exp", "step", "none"])
    R["imbalance"] = d.num("imbalance", 100.0, 1.0)
    R["n_max"] = d.int("n_max", 0, 0)
    R["val_per_class"] = d.int("val_per_class", 20, 0)
    R["selection"] = d.enum("selection", "shuffle", ["shuffle", "first"])
    R["class_order"] = d.enum("class_order", "label", ["label", "counts"])
    R["data_seed"] = d.int("data_seed", 0, 0)
    R["crop_pad"] = d.int("crop_pad", 0, 0, 64)
    R["hflip"] = d.bool("hflip", False)
    R["normalize"] = d.enum("normalize", "dataset", ["dataset", "none", "cifar", "custom"])
    if R["normalize"] in ("cifar", "custom"):
        raise d.err("normalize", f"'{R['normalize']}' is not supported by the PyTorch reference (fmnist: dataset or none)")
    d.check_all_used()

    m = Sec("model", sections.get("model", {}), where)
    arch = m.str("arch", "resnet32")
    mm = re.match(r"^resnet([0-9]+)$", arch)
    if not mm or int(mm.group(1)) < 8 or (int(mm.group(1)) - 2) % 6:
        raise m.err("arch", f"expected a CIFAR ResNet resnet<6n+2>, got '{arch}'")
    R["depth"] = int(mm.group(1))
    R["width"] = m.num("width", 1.0, 1.0 / 16, 64.0)
    R["bias_init"] = m.enum("bias_init", "torch", ["torch", "zero"])
    R["head"] = m.enum("head", "linear", ["linear", "cosine", "etf", "lws"])
    R["init"] = m.str("init", None)
    if R["init"] is not None and not R["init"]:
        raise m.err("init", "expected a checkpoint path, got an empty value")
    m.check_all_used()

    stages = []
    for k in range(n_stages):
        stages.append(read_stage(Sec(f"stage{k + 1}", sections[f"stage{k + 1}"], where), R))
    R["stages"] = stages

    e = Sec("eval", sections.get("eval", {}), where)
    g = e.enum("groups", "auto", ["auto", "count", "threshold", "rank"])
    R["groups"] = "threshold" if g == "count" else g
    R["many_above"] = e.int("many_threshold", 100, 0)
    R["few_below"] = e.int("few_threshold", 20, 0)
    if R["few_below"] > R["many_above"] + 1:
        raise e.err("few_threshold", "few and many overlap")
    R["eval_batch"] = e.int("batch_size", 256, 1)
    R["topk"] = e.int("topk", 5, 1, 1000)
    e.check_all_used()

    r = Sec("run", sections.get("run", {}), where)
    R["run_seed"] = r.int("seed", 0, 0)
    seeds = r.int("seeds", 1, 1)
    if seeds != 1:
        raise r.err("seeds", "the PyTorch reference runs one seed per call (use --seed)")
    r.int("threads", 0, 0)
    R["name"] = r.str("name", R["name"])
    r.check_all_used()
    return R


def read_stage(S, R):
    st = {"name": S.name}
    if not S.has("epochs"):
        raise RecipeError(f"{R['path']}: [{S.name}] needs an epochs = N key")
    st["epochs"] = S.int("epochs", 1, 0, 1000000)
    st["batch_size"] = S.int("batch_size", 128, 1)
    st["drop_last"] = S.bool("drop_last", False)
    st["optimizer"] = S.enum("optimizer", "sgd", ["sgd", "adam", "adamw"])
    st["lr"] = S.num("lr", 0.1, 0.0)
    st["weight_decay"] = S.num("weight_decay", 0.01 if st["optimizer"] == "adamw" else 5e-4, 0.0)
    if st["optimizer"] == "sgd":
        st["momentum"] = S.num("momentum", 0.9, 0.0, 1.0, True)
        st["nesterov"] = S.bool("nesterov", False)
        if st["nesterov"] and st["momentum"] == 0:
            raise S.err("nesterov", "Nesterov momentum needs momentum > 0")
        for k in ("beta1", "beta2", "eps"):
            if S.has(k):
                raise S.err(k, "only used with optimizer = adam or adamw")
    else:
        for k in ("momentum", "nesterov"):
            if S.has(k):
                raise S.err(k, "only used with optimizer = sgd")
        st["beta1"] = S.num("beta1", 0.9, 0.0, 1.0, True)
        st["beta2"] = S.num("beta2", 0.999, 0.0, 1.0, True)
        st["eps"] = S.num("eps", 1e-8, 0.0)
    st["schedule"] = S.enum("schedule", "cosine", ["cosine", "step", "constant"])
    st["warmup_epochs"] = S.int("warmup_epochs", 0, 0, st["epochs"] if st["epochs"] else 1000000)
    st["per_iter"] = S.enum("anneal", "epoch", ["epoch", "iter"]) == "iter"
    ms = S.list("milestones", int)
    fs = S.list("factors", float)
    if st["schedule"] == "step":
        if not ms:
            raise S.err("milestones", "schedule = step needs milestones")
        if len(fs) != len(ms):
            raise S.err("factors", f"expected {len(ms)} factors, got {len(fs)}")
        for j, v in enumerate(ms):
            if v < 1 or (st["epochs"] and v >= st["epochs"]) or (j and v <= ms[j - 1]):
                raise S.err("milestones", f"expected strictly increasing epochs in [1, {st['epochs']}), got {v}")
    elif ms or fs:
        raise S.err("milestones" if ms else "factors", "only used with schedule = step")
    st["milestones"], st["factors"] = ms, fs

    # train: all | classifier | prefixes ('classifier' in a list means fc)
    tv = S.str("train", "all")
    items = [x.strip() for x in tv.split(",")]
    if len(items) == 1 and items[0] == "all":
        st["train"] = None
    else:
        if "all" in items:
            raise S.err("train", "'all' cannot be combined with prefixes")
        if any(not x for x in items):
            raise S.err("train", f"expected all, classifier or a comma list of prefixes, got '{tv}'")
        st["train"] = ["fc" if x == "classifier" else x for x in items]
    # weight_decay_groups = SELECTOR:VALUE, ... (a name prefix, or a glob with '*'; last match wins)
    st["wd_groups"] = []
    wg = S.str("weight_decay_groups", "")
    for item in (wg.split(",") if wg.strip() else []):
        sel, colon, val = item.partition(":")
        sel = sel.strip()
        try:
            x = float(val)
        except ValueError:
            x = float("nan")
        if not colon or not sel or not (x >= 0 and math.isfinite(x)):
            raise S.err("weight_decay_groups", f"expected a comma-separated list of SELECTOR:VALUE, got '{wg}'")
        st["wd_groups"].append(("fc" if sel == "classifier" else sel, x))
    if len(st["wd_groups"]) > 6:
        raise S.err("weight_decay_groups", "more than 6 items")
    st["reinit_classifier"] = S.bool("reinit_classifier", False)
    st["bn"] = S.enum("bn", "train", ["train", "frozen", "stats_only"])

    # ---- loss (src/method/stage_loss.c: lt_mt_read_stage_loss)
    k = S.enum("loss", "ce", LOSSES)
    st["loss"] = k
    S.only("iwb_base", k == "iwb", "loss = iwb")
    st["iwb_base"] = S.enum("iwb_base", "cb_bce", ["ce", "cb_softmax", "cb_bce", "focal", "cb_focal", "cb_sigmoid"])
    base = st["iwb_base"] if k == "iwb" else k
    st["base"] = base
    st["class_weights"] = S.enum("class_weights", "cb" if base in CB_KINDS else "none", ["none", "cb", "drw"])
    if st["class_weights"] != "none" and base not in WEIGHTED:
        raise S.err("class_weights", f"loss '{k}' takes no class weights")
    S.only("cb_beta", st["class_weights"] != "none", "class_weights = cb or drw")
    st["cb_beta"] = S.num("cb_beta", 0.9999, 0.0, 1.0, True)
    if st["class_weights"] == "drw" and not S.has("drw_epoch"):
        raise S.err("class_weights", "class_weights = drw needs drw_epoch")
    S.only("drw_epoch", st["class_weights"] == "drw", "class_weights = drw")
    st["drw_epoch"] = S.int("drw_epoch", 0, 0)
    S.only("cb_norm", base == "cb_softmax", "loss = cb_softmax")
    st["cb_norm"] = S.enum("cb_norm", "batch", ["batch", "weights"])
    S.only("label_smoothing", base == "ce", "loss = ce")
    st["label_smoothing"] = S.num("label_smoothing", 0.0, 0.0, 1.0, True)
    S.only("focal_gamma", base in ("focal", "cb_focal"), "loss = focal or cb_focal")
    st["focal_gamma"] = S.num("focal_gamma", 1.0, 0.0, 100.0)
    sig = base in ("cb_focal", "cb_sigmoid", "eql")
    S.only("sigmoid_bias_init", sig, "a sigmoid loss (cb_focal, cb_sigmoid, eql)")
    st["sigmoid_bias_init"] = S.bool("sigmoid_bias_init", base in ("cb_focal", "cb_sigmoid"))
    for key in ("ldam_s", "ldam_max_m"):
        S.only(key, k == "ldam", "loss = ldam")
    st["ldam_s"] = S.num("ldam_s", 30.0, 0.0)
    st["ldam_max_m"] = S.num("ldam_max_m", 0.5, 0.0)
    S.only("la_tau", k == "la", "loss = la")
    st["la_tau"] = S.num("la_tau", 1.0, -100.0, 100.0)
    S.only("eql_lambda", k == "eql", "loss = eql")
    st["eql_lambda"] = S.num("eql_lambda", 1.77e-3, 0.0, 1.0)
    for key in ("seql_gamma", "seql_lambda"):
        S.only(key, k == "seql", "loss = seql")
    st["seql_gamma"] = S.num("seql_gamma", 0.9, 0.0, 1.0)
    st["seql_lambda"] = S.num("seql_lambda", 0.005, 0.0, 1.0)
    for key in ("las_head", "las_tail"):
        S.only(key, k == "las", "loss = las")
    st["las_head"] = S.num("las_head", 0.4, 0.0, 1.0)
    st["las_tail"] = S.num("las_tail", 0.1, 0.0, 1.0)
    for key in ("iwb_lambda", "iwb_nc", "iwb_hc", "iwb_kl", "iwb_reduce"):
        S.only(key, k == "iwb", "loss = iwb")
    st["iwb_lambda"] = S.num("iwb_lambda", 0.15, 0.0)
    st["iwb_nc"] = S.enum("iwb_nc", "ln", ["ln", "log2"])
    st["iwb_hc"] = S.enum("iwb_hc", "vector", ["vector", "scalar", "none"])
    st["iwb_kl"] = S.enum("iwb_kl", "code", ["code", "paper", "mse"])
    st["iwb_reduce"] = S.enum("iwb_reduce", "sum", ["sum", "mean"])
    st["wd_loss"] = S.num("wd_loss", 0.0, 0.0)
    st["feature_reg"] = S.num("feature_reg", 0.0, 0.0)
    if k == "ldam" and R["head"] != "cosine":
        raise S.err("loss", "loss = ldam needs [model] head = cosine")
    if k == "iwb" and R["head"] == "etf":
        raise S.err("loss", "loss = iwb pulls the classifier's row norms, the ETF head's rows are fixed")
    if st["sigmoid_bias_init"] and R["head"] == "cosine":
        raise S.err("sigmoid_bias_init", "needs a classifier bias, the cosine head has none")

    # ---- sampler
    sk = S.enum("sampler", "instance", ["instance", "class_aware", "class_balanced", "sqrt", "qpower", "reversed",
                                        "progressive"])
    q = S.num("q", 0.5, -16.0, 16.0)
    st["images_per_class"] = S.int("images_per_class", 4, 1)
    S.only("q", sk == "qpower", "sampler = qpower")
    S.only("images_per_class", sk == "class_aware", "sampler = class_aware")
    st["sampler"] = {"class_balanced": "qpower", "sqrt": "qpower"}.get(sk, sk)
    st["q"] = {"class_balanced": 0.0, "sqrt": 0.5}.get(sk, q)
    st["select"] = S.enum("select", "best_val", ["best_val", "last"])

    # ---- weight-balancing keys (recipe.c read_wb_keys)
    st["maxnorm"] = S.bool("maxnorm", False)
    st["maxnorm_every"] = S.enum("maxnorm_every", "step", ["step", "epoch"])
    st["maxnorm_t"] = S.num("maxnorm_t", 0.1, 0.0, 1.0)
    st["maxnorm_radius"] = S.num("maxnorm_radius", 0.0, 0.0)
    if not st["maxnorm"]:
        for key in ("maxnorm_every", "maxnorm_t", "maxnorm_radius"):
            S.only(key, False, "maxnorm = true")
    elif S.has("maxnorm_t") and S.has("maxnorm_radius"):
        raise S.err("maxnorm_radius", "give maxnorm_t or maxnorm_radius, not both")
    elif S.has("maxnorm_radius") and not st["maxnorm_radius"] > 0:
        raise S.err("maxnorm_radius", "expected a radius > 0")
    st["posthoc"] = S.enum("posthoc", "none", ["none", "l2norm", "taunorm", "la_add", "la_mul"])
    st["posthoc_drop_bias"] = S.enum("posthoc_bias", "keep", ["keep", "drop"]) == "drop"
    tau = S.str("posthoc_tau", "sweep")
    if tau == "sweep":
        st["posthoc_tau"] = None
    else:
        try:
            st["posthoc_tau"] = float(tau)
        except ValueError:
            raise S.err("posthoc_tau", f"expected sweep or a number >= 0, got '{tau}'")
        if not st["posthoc_tau"] >= 0:
            raise S.err("posthoc_tau", f"expected sweep or a number >= 0, got '{tau}'")
    if S.has("posthoc_tau") and st["posthoc"] in ("none", "l2norm"):
        raise S.err("posthoc_tau", "only used with posthoc = taunorm, la_add or la_mul")
    if S.has("posthoc_bias") and st["posthoc"] not in ("l2norm", "taunorm"):
        raise S.err("posthoc_bias", "only used with posthoc = l2norm or taunorm")
    S.check_all_used()
    return st


# ============================================================================ data

def read_idx(path):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic = struct.unpack(">I", buf[:4])[0]
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, buf[4:4 + 4 * nd])
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_data(R, longtail):
    cmd = [longtail, "data", "--dataset", "fmnist", "--root", R["root"], "--profile", R["profile"],
           "--imbalance", repr(R["imbalance"]), "--val-per-class", str(R["val_per_class"]),
           "--selection", R["selection"], "--class-order", R["class_order"],
           "--seed", str(R["data_seed"]), "--json", "--indices"]
    if R["n_max"] > 0:
        cmd += ["--n-max", str(R["n_max"])]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RecipeError(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
    info = json.loads(p.stdout)
    root = R["root"]
    xtr = read_idx(os.path.join(root, "train-images-idx3-ubyte.gz"))
    ytr = read_idx(os.path.join(root, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = read_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"))
    yte = read_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    ti = np.asarray(info["train_index"], dtype=np.int64)
    vi = np.asarray(info.get("val_index", []), dtype=np.int64)
    C = len(info["classes"])
    D = {"classes": info["classes"], "C": C,
         "train_x": xtr[ti], "train_y": ytr[ti], "val_x": xtr[vi], "val_y": ytr[vi],
         "test_x": xte, "test_y": yte}
    counts = np.bincount(D["train_y"], minlength=C).astype(np.int64)
    if list(counts) != list(info["train_counts"]):
        raise RecipeError(f"the subset's labels {list(counts)} differ from longtail's train_counts {info['train_counts']}")
    D["counts"] = counts
    # normalize = dataset: population mean / std of pixel/255 over the subset
    # (src/data/dataset.c lt_dataset_channel_stats: exact integer sums, var = E[v^2] - m^2)
    if R["normalize"] == "dataset":
        v = D["train_x"].astype(np.uint64)
        P = v.size
        s, s2 = int(v.sum()), int((v * v).sum())
        mean = s / P
        var = s2 / P - mean * mean
        D["mean"] = np.float32(mean / 255.0)
        std = np.float32(math.sqrt(var if var > 0 else 0) / 255.0)
        D["std"] = std if std > 0 else np.float32(1.0)
    else:
        D["mean"], D["std"] = np.float32(0.0), np.float32(1.0)
    return D


def normalize(x_u8, mean, std):
    """(N, H, W) uint8 -> (N, 1, H, W) float32: (pixel / 255 - mean) / std in float32."""
    x = torch.from_numpy(x_u8.astype(np.float32)) / np.float32(255.0)
    return ((x - float(mean)) / float(std)).unsqueeze(1).contiguous()


# ============================================================================ model

class Head(nn.Module):
    """longtail's heads under its parameter names (src/nn/model.c)."""

    def __init__(self, kind, C, D):
        super().__init__()
        self.kind = kind
        if kind == "etf":
            self.register_buffer("weight", torch.zeros(C, D))
        else:
            self.weight = nn.Parameter(torch.zeros(C, D))
        if kind != "cosine":
            self.bias = nn.Parameter(torch.zeros(C))
        else:
            self.bias = None
        if kind == "lws":
            self.scales = nn.Parameter(torch.ones(C))

    def forward(self, f):
        if self.kind == "cosine":
            return F.normalize(f, dim=1, eps=1e-12) @ F.normalize(self.weight, dim=1, eps=1e-12).t()
        z = F.linear(f, self.weight, self.bias)
        if self.kind == "lws":
            z = z * self.scales
        return z


def head_init(head, bias_init, gen=None):
    """Kaiming-normal rows (std sqrt(2/D)) and nn.Linear's U(+-1/sqrt(D)) bias; ETF rows
    (U M)^T with U the first C columns of a random orthogonal D x D."""
    C, D = head.weight.shape
    with torch.no_grad():
        if head.kind == "etf":
            if D < C:
                raise RecipeError(f"model: the ETF head needs feature dimension D >= C, got D = {D}, C = {C}")
            g = torch.randn(D, C, dtype=torch.float64, generator=gen)
            U, _ = torch.linalg.qr(g)
            a = math.sqrt(C / (C - 1))
            W = a * (U - U.mean(dim=1, keepdim=True))  # (D, C): column j = a (U_j - mean_k U_k)
            head.weight.copy_(W.t().float())
        else:
            head.weight.copy_(torch.randn(C, D, generator=gen) * math.sqrt(2.0 / D))
        if head.bias is not None:
            if bias_init == "zero":
                head.bias.zero_()
            else:
                b = 1.0 / math.sqrt(D)
                head.bias.copy_(torch.rand(C, generator=gen) * 2 * b - b)
        if head.kind == "lws":
            head.scales.fill_(1.0)


class Model(nn.Module):
    def __init__(self, depth, width, C, head_kind, bias_init):
        super().__init__()
        net = ResNetCifar(depth, C, 1, width)
        self.conv1, self.bn1 = net.conv1, net.bn1
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        D = net.fc.in_features
        self.feature_dim = D
        self.fc = Head(head_kind, C, D)
        head_init(self.fc, bias_init)

    def features(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.avg_pool2d(out, out.size()[2:]).flatten(1)

    def forward(self, x):
        f = self.features(x)
        return self.fc(f), f


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F32": np.float32, "I64": np.int64, "F64": np.float64, "I32": np.int32}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] not in dt:
            raise RecipeError(f"{path}: tensor {k}: dtype {v['dtype']} not supported")
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dt[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def load_init(model, path):
    """[model] init: every model tensor from the file with its shape (names with '/' are
    longtail's non-model state and are ignored; a missing num_batches_tracked loads 0)."""
    t = {k: v for k, v in load_safetensors(path).items() if "/" not in k}
    sd = model.state_dict()
    for k in t:
        if k not in sd:
            raise RecipeError(f"model.init: {path}: tensor {k} is not in the model")
    new = {}
    for k, v in sd.items():
        if k not in t:
            if k.endswith("num_batches_tracked"):
                new[k] = torch.zeros_like(v)
                continue
            raise RecipeError(f"model.init: {path}: the model's tensor {k} is missing")
        a = t[k]
        if tuple(a.shape) != tuple(v.shape):
            if a.ndim == 4 and tuple(a.transpose(0, 3, 1, 2).shape) == tuple(v.shape):
                a = a.transpose(0, 3, 1, 2)  # OHWI -> OIHW
            elif v.dim() == 0 and a.size == 1:
                a = a.reshape(())  # a scalar saved as shape [1] (tests/fixtures/fx_common.save)
            else:
                raise RecipeError(f"model.init: {path}: {k} has shape {a.shape}, the model {tuple(v.shape)}")
        new[k] = torch.from_numpy(np.ascontiguousarray(a)).to(v.dtype)
    model.load_state_dict(new)


# ============================================================================ schedule, sampler

def schedule_lr(st, epoch, it, iters):
    """src/optim/schedule.c lt_schedule_lr."""
    lr = st["lr"]
    if st["warmup_epochs"] > 0 and epoch < st["warmup_epochs"]:
        lr = lr * (epoch + 1) / st["warmup_epochs"]
    if st["schedule"] == "step":
        f = 1.0
        for m, fac in zip(st["milestones"], st["factors"]):
            if epoch >= m:
                f = fac
        lr *= f
    elif st["schedule"] == "cosine":
        t = float(epoch)
        if st["per_iter"] and iters > 0:
            t += it / iters
        t = min(max(t, 0.0), st["epochs"])
        lr *= 0.5 * (1.0 + math.cos(math.pi * t / st["epochs"]))
    return float(np.float32(lr))


def sampler_epoch(st, labels, C, epoch, rng):
    """One epoch of image indices (src/sampler/sampler.c); own RNG, same distribution."""
    n = len(labels)
    kind = st["sampler"]
    if kind == "instance":
        return rng.permutation(n)
    counts = np.bincount(labels, minlength=C)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(C)]
    pos = [0] * C

    def next_of(c):
        if pos[c] == counts[c]:
            by_class[c] = rng.permutation(by_class[c])
            pos[c] = 0
        v = by_class[c][pos[c]]
        pos[c] += 1
        return v

    out = np.empty(n, dtype=np.int64)
    nonempty = [c for c in range(C) if counts[c] > 0]
    if kind == "class_aware":
        k = st["images_per_class"]
        cyc, cp, cls = list(rng.permutation(nonempty)), 0, 0
        for i in range(n):
            if i % k == 0:
                if cp == len(cyc):
                    cyc, cp = list(rng.permutation(nonempty)), 0
                cls = cyc[cp]
                cp += 1
            out[i] = next_of(cls)
        return out
    p = np.zeros(C)
    nmax = counts.max()
    alpha = min(max(epoch / st["epochs"], 0.0), 1.0) if kind == "progressive" else 0.0
    for c in nonempty:
        nc = float(counts[c])
        if kind == "qpower":
            p[c] = nc ** st["q"]
        elif kind == "reversed":
            p[c] = nmax / nc
        elif kind == "progressive":
            p[c] = (1 - alpha) * nc / n + alpha / len(nonempty)
    p /= p.sum()
    for i, c in enumerate(rng.choice(C, size=n, p=p)):
        out[i] = next_of(int(c))
    return out


# ============================================================================ losses

def cb_weights(counts, beta):
    """src/loss/weights.c lt_cb_weights: (1-beta)/(1-beta^n) scaled to sum C (double -> float)."""
    C = len(counts)
    eff = [1.0 if beta == 0.0 else -math.expm1(float(n) * math.log(beta)) for n in counts]
    raw = [(1.0 - beta) / e for e in eff]
    s = sum(raw)
    return torch.tensor([r / s * C for r in raw], dtype=torch.float32)


def class_weights(st, counts, epoch):
    if st["class_weights"] == "cb":
        return cb_weights(counts, st["cb_beta"])
    if st["class_weights"] == "drw":
        return cb_weights(counts, 0.0 if epoch < st["drw_epoch"] else st["cb_beta"])
    return None


def sigmoid_family(z, y, W, gamma, norm):
    """sum W * sigmoid(u)^gamma * softplus(u) / norm, u = z off the label, -z on it."""
    C = z.shape[1]
    onehot = F.one_hot(y, C).to(z.dtype)
    u = z * (1 - 2 * onehot)
    term = W * F.softplus(u)
    if gamma != 0:
        term = term * torch.exp(gamma * F.logsigmoid(u))
    return term.sum() / norm


def base_loss(st, k, z, f, y, counts, w, model, gen):
    B, C = z.shape
    if k == "ce":
        return F.cross_entropy(z, y, weight=w, label_smoothing=st["label_smoothing"])
    if k == "cb_softmax":
        if st["cb_norm"] == "weights" or w is None:
            return F.cross_entropy(z, y, weight=w)
        return (w[y] * F.cross_entropy(z, y, reduction="none")).sum() / B
    if k == "cb_bce":
        wy = w[y] if w is not None else torch.ones(B)
        onehot = F.one_hot(y, C).to(z.dtype)
        m1 = onehot * wy[:, None]
        m0 = (1 - onehot) * wy[:, None]
        logp = F.log_softmax(z, dim=1)
        log1mp = torch.log(torch.clamp(1 - F.softmax(z, dim=1), FLT_MIN, 1.0))
        return -(logp * m1 + log1mp * m0).sum() / (B * C)
    if k == "focal":
        ce = F.cross_entropy(z, y, weight=w, reduction="none")
        if st["focal_gamma"] == 0:
            return ce.mean()
        mod = torch.clamp(1 - torch.exp(-ce), 0.0, 1.0) ** st["focal_gamma"]
        return (mod * ce).mean()
    if k in ("cb_focal", "cb_sigmoid"):
        wy = w[y] if w is not None else torch.ones(B)
        W = wy[:, None].expand(B, C)
        if k == "cb_focal":
            return sigmoid_family(z, y, W, st["focal_gamma"], float(B))
        return sigmoid_family(z, y, W, 0.0, float(B * C))
    if k == "ldam":
        m = np.array([1.0 / math.sqrt(math.sqrt(float(n))) for n in counts])
        delta = torch.tensor(m * (st["ldam_max_m"] / m.max()), dtype=torch.float32)
        margin = F.one_hot(y, C).to(z.dtype) * delta[None, :]
        return F.cross_entropy(st["ldam_s"] * (z - margin), y, weight=w)
    if k in ("balanced_softmax", "la"):
        tau = 1.0 if k == "balanced_softmax" else st["la_tau"]
        tot = float(sum(counts))
        adj = torch.tensor([tau * math.log(n / tot) for n in counts], dtype=torch.float32)
        return F.cross_entropy(z + adj, y)
    if k in ("eql", "seql"):
        tot = float(sum(counts))
        lam = st["eql_lambda"] if k == "eql" else st["seql_lambda"]
        rare = torch.tensor([n / tot < lam for n in counts])
        notlabel = F.one_hot(y, C) == 0
        if k == "eql":
            W = (~(notlabel & rare[None, :])).to(z.dtype)
            return sigmoid_family(z, y, W, 0.0, float(B))
        beta = torch.rand(B, C, generator=gen) < st["seql_gamma"]
        zero = beta & notlabel & rare[None, :]
        logw = torch.where(zero, torch.tensor(LOG_ZERO), torch.tensor(0.0))
        return F.cross_entropy(z + logw, y)
    if k == "las":
        nmin, nmax = min(counts), max(counts)
        h, t = st["las_head"], st["las_tail"]
        eps = torch.tensor([h if nmax == nmin else t + (h - t) * math.sin(math.pi * (n - nmin) / (nmax - nmin) / 2.0)
                            for n in counts], dtype=torch.float32)
        e = eps[y][:, None]
        target = F.one_hot(y, C).to(z.dtype) * (1 - e) + e / C
        return -(F.log_softmax(z, dim=1) * target).sum() / B
    raise RecipeError(f"loss {k} cannot be a base loss")


def iwb_term(st, f, weight, y, counts):
    """src/loss/iwb.c lt_loss_iwb."""
    B, C = f.shape[0], weight.shape[0]
    tot = float(sum(counts))
    nc = [math.log(tot / (n + 1.0)) / (math.log(2.0) if st["iwb_nc"] == "log2" else 1.0) for n in counts]
    lam_nc = torch.tensor([st["iwb_lambda"] * v for v in nc], dtype=torch.float32)
    if st["iwb_hc"] == "none":
        P = lam_nc[None, :].expand(B, C)
    else:
        cos = F.normalize(f, dim=1, eps=1e-12) @ F.normalize(weight, dim=1, eps=1e-12).t()
        if st["iwb_hc"] == "scalar":
            cos = cos.gather(1, y[:, None]).expand(B, C)
        P = (1 - cos) * 0.5 * lam_nc[None, :]
    A = weight.norm(dim=1)
    if st["iwb_kl"] == "mse":
        tot_t = ((P - A[None, :]) ** 2).sum()
        norm = B * C if st["iwb_reduce"] == "mean" else 1
    else:
        log_sp, log_sa = F.log_softmax(P, dim=1), F.log_softmax(A, dim=0)[None, :]
        d = log_sp - log_sa
        if st["iwb_kl"] == "code":
            tot_t = (d * F.softmax(P, dim=1)).sum()
        else:
            tot_t = -(d * F.softmax(A, dim=0)[None, :]).sum()
        norm = B if st["iwb_reduce"] == "mean" else 1
    return tot_t / norm


def stage_loss(st, model, z, f, y, counts, epoch, gen):
    w = class_weights(st, counts, epoch)
    loss = base_loss(st, st["base"], z, f, y, counts, w, model, gen)
    if st["loss"] == "iwb":
        loss = loss + iwb_term(st, f, model.fc.weight, y, counts)
    if st["wd_loss"] > 0:
        ps = [p for p in model.parameters() if p.requires_grad]
        if ps:
            loss = loss + 0.5 * st["wd_loss"] * sum((p * p).sum() for p in ps)
    if st["feature_reg"] > 0:
        loss = loss + st["feature_reg"] * (f * f).sum() / (2.0 * f.shape[0])
    return loss


# ============================================================================ evaluation

def group_of_classes(R, counts):
    C = len(counts)

    def threshold():
        return ["many" if n > R["many_above"] else "few" if n < R["few_below"] else "medium" for n in counts]

    def rank():
        third = C // 3
        g = []
        for c in range(C):
            r = sum(1 for j in range(C) if counts[j] > counts[c] or (counts[j] == counts[c] and j < c))
            g.append("many" if r < third else "few" if r >= C - third else "medium")
        return g

    mode = R["groups"]
    if mode == "auto":
        g = threshold()
        mode = "threshold" if all(x in g for x in ("many", "medium", "few")) else "rank"
    return mode, threshold() if mode == "threshold" else rank()


@torch.no_grad()
def logits_of(model, X, bs):
    model.eval()
    out = []
    for i in range(0, X.shape[0], bs):
        out.append(model(X[i:i + bs])[0])
    return torch.cat(out).numpy().astype(np.float32)


def metrics(R, z, y, counts, C):
    """src/eval/metrics.c: argmax ties to the lowest index; top-k = fewer than k classes
    beat the label (larger logit, or equal at a lower index); groups = mean of per-class."""
    n = len(y)
    pred = np.argmax(z, axis=1)
    zy = z[np.arange(n), y]
    idx = np.arange(C)[None, :]
    beaten = ((z > zy[:, None]) | ((z == zy[:, None]) & (idx < y[:, None]))).sum(axis=1)
    k = min(R["topk"], C)
    zmax = z.max(axis=1).astype(np.float64)
    s = np.exp(z.astype(np.float64) - zmax[:, None]).sum(axis=1)
    nll = float(np.mean(np.log(s) + zmax - zy.astype(np.float64)))
    mode, groups = group_of_classes(R, counts)
    per, samples = [], []
    for c in range(C):
        m = y == c
        samples.append(int(m.sum()))
        per.append(float((pred[m] == c).sum() / m.sum()) if m.sum() else None)
    valid = [a for a in per if a is not None]
    gacc, sizes = {}, []
    for g in ("many", "medium", "few"):
        v = [per[c] for c in range(C) if groups[c] == g and per[c] is not None]
        sizes.append(sum(1 for c in range(C) if groups[c] == g))
        gacc[g] = sum(v) / len(v) if v else None
    return {"top1": float((pred == y).sum() / n), "top5": float((beaten < k).sum() / n), "topk_k": k,
            "balanced_acc": sum(valid) / len(valid) if valid else None,
            "many": gacc["many"], "medium": gacc["medium"], "few": gacc["few"],
            "groups": {"mode": mode, "many_above": R["many_above"], "few_below": R["few_below"],
                       "sizes": sizes, "class_group": groups},
            "per_class_acc": per, "class_counts": [int(c) for c in counts], "class_samples": samples, "nll": nll}


def posthoc_transform(st, model, tau, counts):
    """src/method/posthoc_stage.c lt_mt_posthoc_apply: z_c <- scale_c z_c + shift_c."""
    C = len(counts)
    if st["posthoc"] in ("l2norm", "taunorm"):
        w = model.fc.weight.detach().double()
        norms = w.norm(dim=1).numpy()
        scale, shift = np.ones(C, np.float32), np.zeros(C, np.float32)
        for c in range(C):
            sc = 1.0 if (model.fc.kind == "cosine" or not norms[c] > 0) else norms[c] ** (-tau)
            b = float(model.fc.bias[c]) if model.fc.bias is not None else 0.0
            if model.fc.kind == "lws":
                b *= float(model.fc.scales[c])
            scale[c] = sc
            shift[c] = -b * sc if st["posthoc_drop_bias"] else b * (1.0 - sc)
        return scale, shift
    tot = float(sum(counts))
    t = np.array([-tau * math.log(n / tot) for n in counts])
    if st["posthoc"] == "la_add":
        return np.ones(C, np.float32), np.float32(0.0 + t).astype(np.float32)
    return np.float32(1.0 * np.exp(t)).astype(np.float32), np.zeros(C, np.float32)


def apply_posthoc(z, ph):
    if ph is None:
        return z
    return (z * ph[0][None, :] + ph[1][None, :]).astype(np.float32)


# ============================================================================ training

def set_trainable(model, st):
    names = [n for n, _ in model.named_parameters()]
    if st["train"] is None:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        for pre in st["train"]:
            if not any(n == pre or n.startswith(pre + ".") for n in names):
                raise RecipeError(f"{st['name']}.train: '{pre}' matches no parameter of the model (e.g. conv1, layer3, fc)")
        for n, p in model.named_parameters():
            p.requires_grad_(any(n == pre or n.startswith(pre + ".") for pre in st["train"]))
    if st["bn"] == "stats_only":  # batch statistics, gamma/beta get no gradient (model.c lt_bn_forward)
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                for p in mod.parameters():
                    p.requires_grad_(False)


def train_mode(model, st):
    model.train()
    if st["bn"] == "frozen":  # running statistics, never updated
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.eval()


def wd_sel_matches(name, sel):
    if "*" in sel:
        return fnmatch.fnmatchcase(name, sel)
    return name == sel or name.startswith(sel + ".") or sel.endswith(".") and name.startswith(sel)


def param_groups(st, model):
    """The trainable parameters in optimizer groups: the stage's weight_decay, or the value
    of the last weight_decay_groups item whose selector matches the name."""
    for sel, _ in st["wd_groups"]:
        if not any(wd_sel_matches(n, sel) for n, _ in model.named_parameters()):
            raise RecipeError(f"{st['name']}.weight_decay_groups: '{sel}' matches no parameter of the model")
    groups = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        wd = st["weight_decay"]
        for sel, x in st["wd_groups"]:
            if wd_sel_matches(n, sel):
                wd = x
        groups.setdefault(wd, []).append(p)
    return [{"params": ps, "weight_decay": wd} for wd, ps in groups.items()]


def make_optimizer(st, params):
    if st["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=st["lr"], momentum=st["momentum"], weight_decay=st["weight_decay"],
                               nesterov=st["nesterov"])
    cls = torch.optim.Adam if st["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=st["lr"], betas=(st["beta1"], st["beta2"]), eps=st["eps"], weight_decay=st["weight_decay"])


@torch.no_grad()
def maxnorm_project(w, r):
    n = w.double().norm(dim=1)
    f = torch.where(n > r, r / n, torch.ones_like(n))
    mask = n > r
    w[mask] = (w.double()[mask] * f[mask, None]).float()


def augment(xb_u8, R, mean, std, gen):
    """crop_pad (zero-pixel padding, random crop) and hflip on uint8, then normalize."""
    x = torch.from_numpy(xb_u8.astype(np.float32))
    B, H, W = x.shape
    p = R["crop_pad"]
    if p > 0:
        xp = F.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (B,), generator=gen)
        ox = torch.randint(0, 2 * p + 1, (B,), generator=gen)
        x = torch.stack([xp[i, oy[i]:oy[i] + H, ox[i]:ox[i] + W] for i in range(B)])
    if R["hflip"]:
        flip = torch.rand(B, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
    return (((x / np.float32(255.0)) - float(mean)) / float(std)).unsqueeze(1).contiguous()


def run(R, D, seed, threads, out):
    torch.manual_seed(seed)
    C = D["C"]
    counts = [int(c) for c in D["counts"]]
    model = Model(R["depth"], R["width"], C, R["head"], R["bias_init"])
    if R["init"]:
        load_init(model, R["init"])
    mean, std = D["mean"], D["std"]
    Xtr = normalize(D["train_x"], mean, std)
    ytr = torch.from_numpy(D["train_y"])
    Xval = normalize(D["val_x"], mean, std) if len(D["val_y"]) else None
    Xte = normalize(D["test_x"], mean, std)
    has_val = Xval is not None
    augmenting = R["crop_pad"] > 0 or R["hflip"]
    log_path = os.path.join(out, "log.jsonl")
    open(log_path, "w").close()
    stages_out = []
    metrics_doc = {"format": "longtail-metrics-1", "impl": "torch", "torch": torch.__version__,
                   "recipe": R["name"], "seed": seed, "threads": threads, "dataset": "fmnist",
                   "class_names": D["classes"], "train_counts": counts,
                   "num_params": sum(p.numel() for p in model.parameters()), "finished": False,
                   "normalize_mean": float(mean), "normalize_std": float(std), "stages": stages_out}

    for k, st in enumerate(R["stages"]):
        set_trainable(model, st)
        if st["reinit_classifier"]:  # train.c reinit_classifier: the ETF rows stay, bias and scales re-drawn
            g = torch.Generator().manual_seed(seed * 1000003 + 1000 + k)
            if model.fc.kind == "etf":
                with torch.no_grad():
                    D_ = model.feature_dim
                    b = 1.0 / math.sqrt(D_)
                    if R["bias_init"] == "zero":
                        model.fc.bias.zero_()
                    else:
                        model.fc.bias.copy_(torch.rand(C, generator=g) * 2 * b - b)
            else:
                head_init(model.fc, R["bias_init"], g)
        if st["sigmoid_bias_init"]:
            with torch.no_grad():
                model.fc.bias.fill_(float(np.float32(-math.log(C - 1))))
        radius = None
        if st["maxnorm"]:
            if st["maxnorm_radius"] > 0:
                radius = st["maxnorm_radius"]
            else:
                nr = model.fc.weight.detach().double().norm(dim=1)
                radius = float(nr.min() + st["maxnorm_t"] * (nr.max() - nr.min()))
        params = param_groups(st, model)
        opt = make_optimizer(st, params) if params else None
        n = len(ytr)
        bs = st["batch_size"]
        batches = n // bs if st["drop_last"] else (n + bs - 1) // bs
        if st["epochs"] > 0 and batches < 1:
            raise RecipeError(f"{st['name']}.batch_size: {bs} with drop_last leaves no batch")
        rng = np.random.default_rng([seed, 7, k])
        gen = torch.Generator().manual_seed(seed * 1000003 + 17 * (k + 1))
        best_epoch, best_val, best_state = -1, None, None
        for e in range(st["epochs"]):
            t0 = time.time()
            order = sampler_epoch(st, D["train_y"], C, e, rng)
            train_mode(model, st)
            loss_sum, seen, correct = 0.0, 0, 0
            for b in range(batches):
                idx = order[b * bs:(b + 1) * bs]
                if len(idx) == 0:
                    break
                lr = schedule_lr(st, e, b, batches)
                xb = augment(D["train_x"][idx], R, mean, std, gen) if augmenting else Xtr[idx]
                yb = ytr[idx]
                z, f = model(xb)
                loss = stage_loss(st, model, z, f, yb, counts, e, gen)
                lv = float(loss)
                if not math.isfinite(lv):
                    raise RecipeError(f"{st['name']} epoch {e + 1} batch {b + 1}: the loss is {lv} (training diverged)")
                if opt is not None:
                    for pg in opt.param_groups:
                        pg["lr"] = lr
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if radius is not None and st["maxnorm_every"] == "step":
                        maxnorm_project(model.fc.weight.data, radius)
                correct += int((z.detach().argmax(dim=1) == yb).sum())
                loss_sum += lv * len(idx)
                seen += len(idx)
            if radius is not None and st["maxnorm_every"] == "epoch":
                maxnorm_project(model.fc.weight.data, radius)
            line = {"seed": seed, "stage": k + 1, "epoch": e + 1, "epochs": st["epochs"],
                    "lr": schedule_lr(st, e, 0, batches), "loss": loss_sum / seen if seen else None,
                    "train_acc": correct / seen if seen else None}
            if has_val:
                vm = metrics(R, logits_of(model, Xval, R["eval_batch"]), D["val_y"], counts, C)
                if best_epoch < 0 or vm["top1"] > best_val:
                    best_epoch, best_val = e, vm["top1"]
                    best_state = copy.deepcopy(model.state_dict())
                line.update({"val_top1": vm["top1"], "val_many": vm["many"], "val_medium": vm["medium"],
                             "val_few": vm["few"], "val_nll": vm["nll"]})
            line["epoch_s"] = time.time() - t0
            with open(log_path, "a") as fh:
                fh.write(json.dumps(line) + "\n")

        # ---- stage end (train.c finish_stage)
        use_best = st["select"] == "best_val" and best_epoch >= 0
        if use_best:
            model.load_state_dict(best_state)
        selected = best_epoch if use_best else st["epochs"] - 1
        ph, ph_name, ph_tau = None, "none", None
        if st["posthoc"] != "none":
            tau = 1.0 if st["posthoc"] == "l2norm" else st["posthoc_tau"]
            if tau is None:
                if not has_val:
                    raise RecipeError(f"{st['name']}.posthoc_tau = sweep needs a validation set")
                zv = logits_of(model, Xval, R["eval_batch"])
                best_s = None
                for i in range(21):  # tau = i / 10, ties to the smaller tau
                    t_ = i / 10.0
                    sc = metrics(R, apply_posthoc(zv, posthoc_transform(st, model, t_, counts)), D["val_y"], counts, C)["top1"]
                    if best_s is None or sc > best_s:
                        best_s, tau = sc, t_
            ph = posthoc_transform(st, model, tau, counts)
            ph_name = {"l2norm": "tau_norm", "taunorm": "tau_norm", "la_add": "la_additive",
                       "la_mul": "la_multiplicative"}[st["posthoc"]]
            ph_tau = tau
        wn = [float(x) for x in model.fc.weight.detach().double().norm(dim=1)]
        test = metrics(R, apply_posthoc(logits_of(model, Xte, R["eval_batch"]), ph), D["test_y"], counts, C)
        val = metrics(R, apply_posthoc(logits_of(model, Xval, R["eval_batch"]), ph), D["val_y"], counts, C) if has_val else None
        for mtr in (test, val):
            if mtr is not None:
                mtr.update({"weight_norms": wn, "posthoc": ph_name, "posthoc_tau": ph_tau})
        entry = {"stage": k + 1, "name": st["name"], "epochs": st["epochs"],
                 "select": ("none (0 epochs: the starting model)" if st["epochs"] == 0 else
                            "last" if st["select"] == "last" else "best_val" if use_best else "last (no validation set)"),
                 "selected_epoch": selected + 1, "best_val_top1": best_val if best_epoch >= 0 else None,
                 "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                 "split": "test"}
        entry.update(test)
        entry["val"] = val
        stages_out.append(entry)
        # the stage's model as longtail writes it (a later recipe can start from it with
        # model.init: bench/results.sh shares wb/wd's stage 1 this way)
        save_safetensors(os.path.join(out, f"stage{k + 1}.safetensors"), model.state_dict(),
                         {"stage": str(k + 1), "selected_epoch": str(selected + 1), "seed": str(seed)})
        metrics_doc["finished"] = k == len(R["stages"]) - 1
        write_json_atomic(os.path.join(out, "metrics.json"), metrics_doc)
        f3 = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
        print(f"{st['name']}: epoch {selected + 1}/{st['epochs']} val {f3(entry['best_val_top1'])}  test top-1 {f3(test['top1'])}"
              f"  many/medium/few {f3(test['many'])}/{f3(test['medium'])}/{f3(test['few'])}"
              f"  posthoc {ph_name}{'' if ph_tau is None else f' tau {ph_tau:g}'}", flush=True)


def _clean(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating,)):
        return _clean(float(o))
    if isinstance(o, (np.integer,)):
        return int(o)
    return o


def write_json_atomic(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_clean(obj), f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipe")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--longtail", default=os.path.join(HERE, "..", "build", "longtail"))
    a = ap.parse_args()
    try:
        R = read_recipe(a.recipe, a.set)
        seed = a.seed if a.seed is not None else R["run_seed"]
        threads = a.threads if a.threads > 0 else (os.cpu_count() or 1)
        torch.set_num_threads(threads)
        os.makedirs(a.out, exist_ok=True)
        D = load_data(R, a.longtail)
        run(R, D, seed, threads, a.out)
    except RecipeError as e:
        sys.exit(f"torch_reference.py: {e}")


if __name__ == "__main__":
    main()
