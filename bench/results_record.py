#!/usr/bin/env python3
"""Keeps the part of a run's metrics.json that docs/results.md is made from.

    results_record.py RUN/metrics.json OUT.json --recipe R --data D --impl I
                      [--seconds S] [--stage1-from TEXT]

The record (one small JSON object) has the run's identity and, for every stage, the
selected epoch, the post-hoc transform and the test top-1 / Many / Medium / Few with the
group sizes, per-class accuracy and classifier row norms. Written atomically.
Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys

KEEP = ("stage", "name", "epochs", "selected_epoch", "best_val_top1", "top1", "top5",
        "balanced_acc", "many", "medium", "few", "posthoc", "posthoc_tau",
        "per_class_acc", "weight_norms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics")
    ap.add_argument("out")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--impl", required=True)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--stage1-from")
    a = ap.parse_args()
    try:
        with open(a.metrics) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"results_record.py: {a.metrics}: {e}")
    if not m.get("finished", False):
        sys.exit(f"results_record.py: {a.metrics}: the run did not finish")
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        rev = ""
    stages = []
    for st in m["stages"]:
        e = {k: st[k] for k in KEEP if k in st}
        g = st.get("groups", {})
        e["group_sizes"] = g.get("sizes")
        e["group_mode"] = g.get("mode")
        stages.append(e)
    rec = {"recipe": a.recipe, "data": a.data, "impl": a.impl, "seed": m.get("seed"),
           "threads": m.get("threads"), "seconds": a.seconds, "commit": rev,
           "stage1_from": a.stage1_from, "train_counts": m.get("train_counts"),
           "stages": stages}
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
