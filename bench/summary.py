"""Markdown tables of the key numbers in bench/results/*.json, for bench/README.md.

Why: the README's table should be copied from the JSON, not typed; run this after
a benchmark and paste its output.

    .venv/bin/python bench/summary.py [bench/results/extraction-cpu.json ...]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def header(record: dict) -> str:
    m = record["machine"]
    gpu = f", GPU {m['gpu']['name']}" if m.get("gpu") else ""
    load = f"load {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}"
    code = record.get("code", {})
    commit = f", commit {code['start']['commit']}" if code else ""
    changed = [k for k in ("synthgate_tree", "synthgate_changes") if code and code["start"].get(k) != code["end"].get(k)]
    if changed:
        commit += f" (synthgate/ changed during the run: {code['end']['synthgate_changes'] or code['end']['commit']})"
    return (f"`{record['command']}` ({record['date'][:16]}, {m['cpu_model']} x{m['cpu_count']}{gpu}, "
            f"torch {m['torch']} with {m['torch_threads']} threads, {load}{commit})")


def extraction(record: dict) -> list[str]:
    rows = ["| size | precision | pipeline img/s (median / best / per CPU-s) | bare img/s (median / best / per CPU-s) "
            "| pipeline / bare |", "|---|---|---|---|---|"]

    def cell(r):
        return f"{r['median']:.1f} / {r['best']:.1f} / {r['per_cpu_s'] or float('nan'):.1f}"

    tolerance = []
    for size, entry in record["results"].items():
        for precision in record["parameters"]["precisions"]:
            e = entry[precision]
            rows.append(f"| {size} | {precision} | {cell(e['pipeline']['images_per_s'])} "
                        f"| {cell(e['bare_forward']['images_per_s'])} | {e['pipeline_over_bare_throughput']:.2f} |")
        if "bf16_vs_fp32" in entry:
            t = entry["bf16_vs_fp32"]
            tolerance.append(f"| {size} | {t['max_abs_score_diff']:.4f} | {t['mean_abs_score_diff']:.4f} "
                             f"| {t['p99_abs_score_diff']:.4f} | {t['feature_cosine_min']:.6f} | {t['images']} |")
    if tolerance:
        rows += ["", "| size | max abs d(score) bf16-fp32 | mean abs | p99 abs | min feature cosine | images |",
                 "|---|---|---|---|---|---|", *tolerance]
    return rows


def experiments(record: dict) -> list[str]:
    r = record["results"]
    first, warm, cpu = r["first_run"], r["warm"], r["first_run"]["cpu_s"]
    images = sum(first["split_sizes"].values()) + first["realism_target"]["images"]
    rows = ["| stage | wall s (median / min) | CPU s |", "|---|---|---|",
            f"| first run: build the demo world | {first['demo_build_s']:.1f} | {cpu['demo_build']:.1f} |"]
    if not first["models_cached_before"]:
        rows.append(f"| first run: model training | {first['model_training_s']:.1f} | {cpu['model_training']:.1f} |")
    rows.append(f"| first run: feature extraction ({images} images) "
                f"| {first['feature_extraction_s'] + first['target_extraction_s']:.1f} "
                f"| {cpu['feature_extraction'] + cpu['target_extraction']:.1f} |")
    for stage, s in warm["stages"].items():
        if stage == "utility":
            stage = f"utility (whole grid: {warm['grid_cells']} cells, {warm['grid_head_fits']} fits)"
        rows.append(f"| warm: {stage} | {s['median_s']:.2f} / {s['min_s']:.2f} | {s['cpu_s']:.2f} |")
    total = warm["total"]
    rows.append(f"| warm: whole gate in-process | {total['median_s']:.1f} / {total['min_s']:.1f} | {total['cpu_s']:.1f} |")
    rows += ["", f"Forward passes on the warm runs: {warm['forward_passes']}."]
    if "pytest_warm" in r:
        p = r["pytest_warm"]
        rows[-2:-2] = [f"| warm: `pytest quality_checks --release=demo` subprocess | {p['wall_s']:.1f} | {p['cpu_s']:.1f} |"]
        rows[-1] += (f" New feature shards written by the pytest run: {p['new_feature_shards']} "
                     f"(exit code {p['exit_code']}: `{p['summary']}`).")
    return rows


def neighbours(record: dict) -> list[str]:
    rows = ["| search | n x n | median s | min s | CPU s | pairs/s | peak MiB | 100k x 100k, extrapolated: wall / CPU |",
            "|---|---|---|---|---|---|---|---|"]
    for family, entries in record["results"].items():
        for key, e in entries.items():
            variant, _, n = key.rpartition("-")
            hours = e["extrapolated_100k_x_100k_s"] / 3600, e.get("extrapolated_100k_x_100k_cpu_s", float("nan")) / 3600
            rows.append(f"| {f'{family} {variant}'.strip()} | {n} | {e['median_s']:.2f} | {e['min_s']:.2f} | {e['cpu_s']:.2f} "
                        f"| {e['pairs_per_s']:.3g} | {e['peak_mib']:.0f} | {hours[0]:.2f} h / {hours[1]:.2f} h |")
    return rows


def memorisation(record: dict) -> list[str]:
    rows = ["| synthetic x source | index s | stage 1 s | stage 2 s | search s (CPU s) | stage-1 pairs/s "
            "| top-k products GFLOP/s | stage 2 ms/query | planted copies found (min similarity) | others' max |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    targets = []
    for size, e in record["results"]["sizes"].items():
        rows.append(f"| {size} | {e['index_s']:.2f} | {e['stage1_s']:.2f} | {e['stage2_s']:.2f} "
                    f"| {e['search_s']:.2f} ({e['search_cpu_s']:.2f}) | {e['stage1_pairs_per_s']:.3g} "
                    f"| {e['matmul_topk_gflop_per_s']:.1f} | {e['stage2_ms_per_query']:.1f} "
                    f"| {e['planted_found']} of {e['planted_copies']} ({e['planted_min_similarity']}) "
                    f"| {e['others_max_similarity']} |")
        t = e["extrapolated_10k_x_100k"]
        targets.append(f"| {size} | {t['index_s']:.0f} | {t['stage1_s']:.0f} ({t['stage1_from_flop_rate_s']:.0f}) "
                       f"| {t['stage2_s']:.0f} | {t['search_s']:.0f} | {t['find_memorised_s']:.0f} |")
    return rows + ["", "10k x 100k, extrapolated from each size (seconds):", "",
                   "| from | index | stage 1 (at the products' FLOP rate) | stage 2 | search | find_memorised |",
                   "|---|---|---|---|---|---|", *targets]


def scale(record: dict) -> list[str]:
    """Wall seconds per stage, then, per resolution gated at two or more sizes, how each stage grows: the exponent
    b of time ~ n^b between the smallest and the largest release (1: linear; the model stage trains on the fixed
    reference set, so it should not grow)."""
    first = next(iter(next(iter(record["results"].values()))["resolutions"].values()))
    stages = list(first["stages"])  # in the order bench/scale.py ran them
    rows = ["| release images (source, reference) | px | " + " | ".join(stages) + " | total s | peak MiB |",
            "|---|---|" + "---|" * len(stages) + "---|---|"]
    by_resolution: dict[str, list[tuple[int, dict]]] = {}
    for entry in record["results"].values():
        counts = entry["images"]
        what = f"{counts['release']} ({counts['source']}, {counts['reference/train'] + counts['reference/test']})"
        for px, run in entry["resolutions"].items():
            times = " | ".join(f"{run['stages'][s]['wall_s']:.1f}" for s in stages)
            rows.append(f"| {what} | {px} | {times} | {run['total_s']:.0f} | {run['peak_mib']:.0f} |")
            by_resolution.setdefault(px, []).append((counts["release"], run))
    for px, runs in by_resolution.items():
        if len(runs) < 2:
            continue
        (n_low, low), (n_high, high) = min(runs, key=lambda r: r[0]), max(runs, key=lambda r: r[0])

        def exponent(a: float, b: float) -> str:
            return f"{math.log(b / a) / math.log(n_high / n_low):.2f}" if a > 0 and b > 0 else "-"

        growth = " | ".join(exponent(low["stages"][s]["wall_s"], high["stages"][s]["wall_s"]) for s in stages)
        rows.append(f"| growth exponent {n_low} -> {n_high} | {px} | {growth} | "
                    f"{exponent(low['total_s'], high['total_s'])} | {exponent(low['peak_mib'], high['peak_mib'])} |")
    return rows


def protocols(record: dict) -> list[str]:
    labels = ("probe, policy grid", "probe", "finetune")
    rows = ["| release | criterion | " + " | ".join(f"{label}: point (interval) outcome" for label in labels) + " |",
            "|---|---|" + "---|" * len(labels)]

    def cell(criterion: dict | None) -> str:
        if criterion is None:
            return "not run"
        value = criterion["value"]
        shown = "-" if value is None else f"{value:.3f}"
        interval = f" ({criterion['ci_low']:.3f}, {criterion['ci_high']:.3f})" if criterion["ci_low"] is not None else ""
        return f"{shown}{interval} {criterion['outcome']}"

    times = []
    for release, entry in record["results"].items():
        runs = entry["runs"]
        name = Path(release).name
        for key in sorted({k for run in runs.values() for k in run["criteria"]}):
            rows.append(f"| {name} | {key} | " + " | ".join(cell(runs[label]["criteria"].get(key)) for label in labels) + " |")
        same = entry["probe_vs_finetune"]["same_outcomes"]
        times.append(f"| {name} | " + " | ".join(f"{runs[label]['wall_s']:.0f}" for label in labels)
                     + f" | {'yes' if same else 'no: ' + ', '.join(entry['probe_vs_finetune']['differ'])} |")
    return rows + ["", "| release | " + " | ".join(f"{label} s" for label in labels) + " | probe and finetune agree |",
                   "|---|" + "---|" * (len(labels) + 1), *times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="*", type=Path, help="bench/results/*.json files (default: all of them)")
    files = parser.parse_args().records or sorted(RESULTS.glob("*.json"))
    for path in files:
        if not path.is_file():
            parser.error(f"{path}: no such benchmark record")
        record = json.loads(path.read_text())
        print(f"#### {path.name}\n\n{header(record)}\n")
        print("\n".join(globals()[record["benchmark"]](record)) + "\n")


if __name__ == "__main__":
    main()
