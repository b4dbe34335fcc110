"""Run the whole UPS benchmark suite, print one table, check the targets, write bench/results/latest.{json,md}.

    python bench/run_all.py                # full run, ups-base (about 5 minutes at --threads 1)
    python bench/run_all.py --quick        # fewer repeats and smaller sizes (under 2 minutes on a quiet machine)
    python bench/run_all.py --threads 1    # what bench/results/latest.md holds: on a shared 2-core machine one
                                           # thread beats two (multi-threaded kernels wait for a descheduled thread)
    python bench/run_all.py --precision bf16 --compile --output-dir /tmp/ups-bench
    python bench/run_all.py --peers ../peers      # adds the peers (CTR-GCN, ST-GCN, VideoPose3D) timed in this run

Every figure is a median over repeats after a warm-up, in eval mode, with random weights; the table also keeps
the best run and the 1-minute load average, because the machine is shared. The dense fp32 matmul throughput is
measured in the same run (at the start, before the efficiency figure, and at the end) so that figures from
different runs can be compared relative to what the machine delivered at the time.

Peer figures are never typed in: with ``--peers DIR`` (the folder holding their repositories) the ``peers`` section
runs ``bench/peers.py`` in this process, and the targets against the peers are ratios measured in the same run
(``--sections peers`` without ``--peers`` times the UPS rows alone).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import benchmarks as B  # noqa: E402
import peers as P  # noqa: E402
from harness import build_model, environment, load_config, load_processor  # noqa: E402

# Targets of the benchmark issues (ups-base): (key, description, comparison, required value). Those against the
# peers are bench/peers.py's own targets, ratios measured in the same run by the peers section (issue 16), never
# figures typed in.
PEER_TARGETS = tuple((f"{ups}_over_{peer}", f"{what} (same run)", ">=", required)
                     for _, ups, peer, required, _, what in P.TARGETS)
TARGETS = PEER_TARGETS + (
    ("generate_over_forward", "recognition generate() / one plain forward, batch 16", "<=", 1.2),
    ("lifting_cache_speedup", "lifting uncached / cached generate(), batch 16", ">=", 5.0),
    ("encoder_fraction_of_matmul", "encoder GFLOP/s / dense matmul GFLOP/s", ">=", 0.30),
    ("inference_peak_gb", "inference peak memory, batch 16 (GB)", "<", 1.5),
    ("training_peak_gb", "training ups-base batch 32 peak memory (GB)", "<", 8.0),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (< 2 minutes)")
    parser.add_argument("--config", default="ups-base", help="model preset (or folder) for the inference sections")
    parser.add_argument("--processor", default="ntu60", help="processor folder whose vocabulary the model uses")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="bf16 = CPU autocast to bfloat16 (needs avx512_bf16/AMX to pay off)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder (compiles for ~1 min)")
    parser.add_argument("--sections", nargs="*", default=None,
                        help="run only these sections (matmul recognition early_prediction lifting flops scaling "
                             "training data_loader inference_memory options peers)")
    parser.add_argument("--peers", default=None,
                        help="folder holding the peers' repositories (pyskl/, VideoPose3D/; outside this repository) "
                             "for the peers section; without it that section times UPS alone")
    parser.add_argument("--output-dir", default=str(BENCH_DIR / "results"))
    return parser.parse_args(argv)


def settings(quick: bool) -> dict:
    """Sizes and repeats of each section; ``--quick`` keeps every section but shrinks it."""
    if quick:
        return {
            "repeats": 2, "warmup": 1,
            "recognition": {"batch_sizes": (16, 1)},
            "early_prediction": {"ratios": (0.2, 0.4, 0.6), "batch": 16},
            "lifting": {"batch_sizes": (1, 16), "uncached_repeats": 1},
            "scaling": {"frames": (50, 100), "batch_sizes": (1, 4), "base_batch": 4},
            "training": {"batch_sizes": {"ups-tiny": 32, "ups-base": 8}, "steps": 1, "warmup": 1},
            "data_loader": {"num_rows": 64, "batch": 32},
            "inference_memory": {"tasks": ("action_recognition_3d",)},
            "options": {"include_compile": False},
        }
    return {
        "repeats": 5, "warmup": 1,
        "recognition": {"batch_sizes": (16, 1)},
        "early_prediction": {"ratios": (0.2, 0.4, 0.6), "batch": 16},
        "lifting": {"batch_sizes": (1, 16), "uncached_repeats": 3},
        "scaling": {"frames": (50, 100, 200, 300), "batch_sizes": (1, 4, 16), "base_batch": 16},
        "training": {"batch_sizes": {"ups-tiny": 32, "ups-base": 32}, "steps": 3, "warmup": 1},
        "data_loader": {"num_rows": 256, "batch": 32},
        "inference_memory": {"tasks": ("action_recognition_3d", "pose_estimation_3d")},
        "options": {"include_compile": False},
    }


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = settings(args.quick)
    rep = {"repeats": plan["repeats"], "warmup": plan["warmup"]}
    wanted = set(args.sections) if args.sections else None

    def on(name):
        return wanted is None or name in wanted

    started = time.perf_counter()
    env = environment()
    env.update({"config": args.config, "processor": args.processor, "precision": args.precision,
                "compile": args.compile, "quick": args.quick})
    processor = load_processor(args.processor)
    model = build_model(load_config(args.config, processor))
    env["parameters_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    if args.compile:
        B.compile_encoder(model)
    precision = {"precision": args.precision}

    sections = []

    def add(section):
        sections.append(section)
        print(f"[{time.perf_counter() - started:6.0f} s] {section['title']}: done (load {section['load_average'][0]})",
              flush=True)
        return section

    if on("matmul"):
        add(B.bench_matmul(repeats=5))
    if on("recognition"):
        add(B.bench_recognition(model, processor, **plan["recognition"], **rep, **precision))
    if on("early_prediction"):
        add(B.bench_early_prediction(model, processor, **plan["early_prediction"], **rep, **precision))
    if on("lifting"):
        add(B.bench_lifting(model, processor, **plan["lifting"], **rep, **precision))
    if on("flops"):
        add(B.bench_flops(model, **rep, **precision))
    if on("scaling"):
        add(B.bench_scaling(model, **plan["scaling"], **rep, **precision))
    if on("training"):
        add(B.bench_training(**plan["training"], **precision))
    if on("data_loader"):
        loader = add(B.bench_data_loader(load_processor("synthetic"), **plan["data_loader"], **rep))
        training = next((s for s in sections if s["name"] == "training"), None)
        if training and args.config in training["results"]:
            step_rate = training["results"][args.config]["rate"]
            for row in loader["rows"]:
                row["reference"] = f"x{row['rate'] / step_rate:.1f} the {args.config} train step ({step_rate:.1f}/s)"
    if on("inference_memory"):
        add(B.bench_inference_memory(args.config, batch=16, **plan["inference_memory"], **precision))
    if on("options"):
        add(B.bench_options(model, **plan["options"], **rep))
    if on("peers") and (args.peers or "peers" in (args.sections or ())):
        # Without the peers' folder the section times UPS alone (minutes for ups-base lifting): only when asked.
        add(P.as_section(P.measure_side_by_side(args.peers, quick=args.quick, log=lambda line: None)))
    if on("matmul"):
        end = B.bench_matmul(repeats=5)
        end["rows"][0]["case"] += " (end of run)"
        add(end)
    env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    env["duration_s"] = time.perf_counter() - started
    return {"environment": env, "sections": sections, "targets": check_targets(sections)}


def _find(sections, name):
    return next((s for s in sections if s["name"] == name), None)


def measured_figures(sections) -> dict:
    """The figure behind each target (None when its section did not run at the needed size)."""
    recognition, lifting = _find(sections, "recognition"), _find(sections, "lifting")
    flops, memory, training = _find(sections, "flops"), _find(sections, "inference_memory"), \
        _find(sections, "training")
    peers = _find(sections, "peers")
    full_size = peers is not None and not peers.get("quick", True)  # --quick shrinks the protocols: no target
    peer_ratios = {(r["ups"], r["peer"]): r["ratio"] for r in peers["ratios"]} if full_size else {}
    figures = {
        **{key: peer_ratios.get((ups, peer)) for (key, *_), (_, ups, peer, *_) in zip(PEER_TARGETS, P.TARGETS)},
        "generate_over_forward": (recognition or {}).get("ratios", {}).get(16, {}).get("generate_over_forward"),
        "lifting_cache_speedup": (lifting or {}).get("ratios", {}).get(16, {}).get("generate"),
        "encoder_fraction_of_matmul": (flops or {}).get("fraction_of_matmul"),
        "inference_peak_gb": max((r["peak_rss_gb"] for r in memory["results"].values()), default=None)
        if memory else None,
        "training_peak_gb": None,
    }
    base = (training or {}).get("results", {}).get("ups-base")
    if base and base["batch"] == 32:
        figures["training_peak_gb"] = base["peak_rss_gb"]
    return figures


def check_targets(sections) -> list:
    figures = measured_figures(sections)
    out = []
    for key, description, op, required in TARGETS:
        value = figures.get(key)
        if value is None:
            out.append({"key": key, "target": description, "required": f"{op} {required}", "measured": None,
                        "met": None, "margin": "not measured in this run"})
            continue
        met = {">=": value >= required, "<=": value <= required, "<": value < required}[op]
        factor = value / required if op == ">=" else required / value
        margin = f"{'met' if met else 'missed'}: x{factor:.2f} of the requirement"
        out.append({"key": key, "target": description, "required": f"{op} {required}", "measured": value,
                    "met": met, "margin": margin})
    return out


# ----------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------


def _fmt(value, digits=1):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# UPS benchmark results", "",
        f"`python bench/run_all.py{' --quick' if env['quick'] else ''}` on {env['time']}: {env['config']} "
        f"({env['parameters_m']:.1f} M parameters), {env['precision']}{', torch.compile' if env['compile'] else ''}.",
        "",
        "| machine | |", "|---|---|",
        f"| CPU | {env['cpu_model']} ({env['cpu_count']} cores, {env['cpu_capability']}) |",
        f"| bf16 | avx512_bf16 {env['bf16']['avx512_bf16']}, AMX {env['bf16']['amx_bf16']}, "
        f"oneDNN bf16 {env['bf16']['onednn_bf16']} |",
        f"| torch / transformers | {env['torch']} / {env['transformers']} |",
        f"| threads | {env['threads']} |",
        f"| load average (1, 5, 15 min) | start {env['load_average']}, end {env['load_average_end']} |",
        f"| duration | {env['duration_s']:.0f} s |",
    ]
    matmul = [s for s in result["sections"] if s["name"] == "matmul"]
    if matmul:
        lines.append("| dense fp32 matmul 2048 | " + ", ".join(
            f"{s['gflops']:.0f} GFLOP/s (best {s['best_gflops']:.0f})" for s in matmul) + " |")
    lines += ["", "## Targets (issues 7 and 16, ups-base)", "", "| target | required | measured | result |",
              "|---|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['required']} | {_fmt(t['measured'], 2)} | {t['margin']} |")
    for section in result["sections"]:
        lines += ["", f"## {section['title']}", "", f"load average at the end: {section['load_average']}", "",
                  "| case | batch | median ms | best ms | rate | unit | load | reference / note |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in section["rows"]:
            lines.append(f"| {r['case']} | {r.get('batch', '')} | {_fmt(r.get('median_ms'))} | "
                         f"{_fmt(r.get('min_ms'))} | {_fmt(r.get('rate'), 2)} | {r.get('unit', '')} | "
                         f"{_fmt(r.get('load_average_1m'), 2)} | {r.get('reference', '')} |")
        for note in section["notes"]:
            lines += ["", f"- {note}"]
    return "\n".join(lines) + "\n"


def print_table(result: dict) -> None:
    env = result["environment"]
    print(f"\nUPS benchmarks: {env['config']}, torch {env['torch']}, {env['threads']} threads, {env['cpu_model']}, "
          f"load {env['load_average']} -> {env['load_average_end']}, {env['duration_s']:.0f} s")
    header = f"{'case':<58} {'batch':>5} {'median ms':>10} {'best ms':>9} {'rate':>9} {'unit':<10} {'load':>5}  note"
    for section in result["sections"]:
        print(f"\n== {section['title']}")
        print(header)
        for r in section["rows"]:
            print(f"{r['case'][:58]:<58} {r.get('batch', ''):>5} {_fmt(r.get('median_ms')):>10} "
                  f"{_fmt(r.get('min_ms')):>9} {_fmt(r.get('rate'), 2):>9} {r.get('unit', ''):<10} "
                  f"{_fmt(r.get('load_average_1m'), 2):>5}  {r.get('reference', '')}")
        for note in section["notes"]:
            print(f"   {note}")
    print("\n== Targets")
    for t in result["targets"]:
        print(f"  {t['target']:<58} {t['required']:>8}  measured {_fmt(t['measured'], 2):>8}  {t['margin']}")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(_jsonable(result), indent=1) + "\n")
    (out / "latest.md").write_text(markdown(result))
    print(f"\nwrote {out / 'latest.json'} and {out / 'latest.md'}")
    return result


if __name__ == "__main__":
    main()
