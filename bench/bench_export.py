"""Export benchmark: PyTorch eager against ONNX Runtime fp32 and int8 (and TorchScript).

    python bench/bench_export.py runs/<name>/checkpoints/best_model.pth [more checkpoints]
        [--rounds 15] [--out bench/results/export.json]

For each checkpoint, every runtime is timed in the same run, interleaved round by round (the
machine is shared and noisy, so each figure is a median over rounds and each is reported as
a ratio against PyTorch eager timed alongside):

- latency: one window per call (batch 1) on one thread (``torch.set_num_threads(1)``, ONNX
  Runtime ``intra_op_num_threads=1``), ms per call;
- throughput: batches of 64 windows with every thread of the machine, windows/s;
- file sizes: the checkpoint (weights plus optimizer and training state), its weights alone,
  and each export; and the int8 model's class agreement with PyTorch on the run's windows
  (the export's own parity check).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_info, write_results  # noqa: E402

from pfdtrain.evaluation.loading import load_model_for_evaluation  # noqa: E402
from pfdtrain.export.exporter import export_checkpoint  # noqa: E402
from pfdtrain.export.formats import EXPORT_FORMATS  # noqa: E402
from pfdtrain.utils.logging import setup_logging  # noqa: E402

THROUGHPUT_BATCH = 64


def _ms_per_call(fn, x: np.ndarray, calls: int) -> float:
    """Wall time of one call, ms: the mean of ``calls`` back-to-back calls (a round; the
    figures reported are medians over rounds)."""
    started = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return 1000.0 * (time.perf_counter() - started) / calls


def bench_checkpoint(checkpoint: Path, rounds: int, workdir: Path) -> dict:
    """Export ``checkpoint`` three ways and time the four runtimes on it."""
    model, meta = load_model_for_evaluation(checkpoint, device="cpu")
    name = checkpoint.parent.parent.name
    reports = {
        "onnx_fp32": export_checkpoint(checkpoint, out=workdir / f"{name}.onnx"),
        "onnx_int8": export_checkpoint(checkpoint, quantize="int8",
                                       out=workdir / f"{name}.int8.onnx"),
        "torchscript": export_checkpoint(checkpoint, format="torchscript",
                                         out=workdir / f"{name}.pt"),
    }
    shape = (1, *json.loads(reports["onnx_fp32"]["metadata"]["input_shape"]))
    rng = np.random.default_rng(0)
    one = rng.standard_normal(shape).astype(np.float32)
    batch = rng.standard_normal((THROUGHPUT_BATCH, *shape[1:])).astype(np.float32)

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    threads_all = torch.get_num_threads()
    single = {"pytorch_eager": eager}
    multi = {"pytorch_eager": eager}
    for key, fmt_name in (("onnx_fp32", "onnx"), ("onnx_int8", "onnx"),
                          ("torchscript", "torchscript")):
        path = Path(reports[key]["file"])
        single[key] = EXPORT_FORMATS[fmt_name].runner(path, threads=1)
        multi[key] = EXPORT_FORMATS[fmt_name].runner(path, threads=threads_all)

    latency = {k: [] for k in single}
    throughput = {k: [] for k in multi}
    for fn in list(single.values()) + list(multi.values()):  # warm-up: allocations, graphs
        fn(one)
        fn(batch)
    for _ in range(rounds):
        torch.set_num_threads(1)
        for key, fn in single.items():
            latency[key].append(_ms_per_call(fn, one, 20))
        torch.set_num_threads(threads_all)
        for key, fn in multi.items():
            throughput[key].append(THROUGHPUT_BATCH * 1000.0 / _ms_per_call(fn, batch, 3))
    torch.set_num_threads(threads_all)

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    lat = {k: float(np.median(v)) for k, v in latency.items()}
    thr = {k: float(np.median(v)) for k, v in throughput.items()}
    sizes = {"checkpoint": checkpoint.stat().st_size, "weights_state_dict": len(buffer.getvalue()),
             **{k: Path(r["file"]).stat().st_size for k, r in reports.items()}}
    return {
        "checkpoint": str(checkpoint), "model_class": meta.get("model_class"),
        "input_shape": list(shape[1:]),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "latency_ms_batch1_1thread": lat,
        "latency_speedup_vs_eager": {k: lat["pytorch_eager"] / v for k, v in lat.items()},
        "throughput_windows_per_s_batch64": thr,
        "throughput_ratio_vs_eager": {k: v / thr["pytorch_eager"] for k, v in thr.items()},
        "threads_for_throughput": threads_all,
        "size_bytes": sizes,
        "int8": {"plan": reports["onnx_int8"]["parity"]["attempts"][-1]["plan"],
                 "class_agreement": reports["onnx_int8"]["parity"]["class_agreement"],
                 "attempts": reports["onnx_int8"]["parity"]["attempts"],
                 "windows_from": reports["onnx_int8"]["windows_from"],
                 "accuracy_pytorch": reports["onnx_int8"]["parity"]["accuracy_pytorch"],
                 "accuracy_int8": reports["onnx_int8"]["parity"]["accuracy_export"]},
        "fp32_max_abs_logit_diff": reports["onnx_fp32"]["parity"]["max_abs_logit_diff"],
    }


def markdown(results: list[dict]) -> str:
    """One table row per checkpoint and runtime, then each int8 model's agreement."""
    rows = ["| run (model) | runtime | latency ms (batch 1, 1 thread) | vs eager | windows/s "
            "(batch 64) | vs eager | file KiB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        run = f"{Path(r['checkpoint']).parent.parent.name} ({r['model_class']})"
        for key in r["latency_ms_batch1_1thread"]:
            size = r["size_bytes"].get(key, r["size_bytes"]["weights_state_dict"])
            rows.append(f"| {run} | {key} | {r['latency_ms_batch1_1thread'][key]:.3f} | "
                        f"{r['latency_speedup_vs_eager'][key]:.2f}× | "
                        f"{r['throughput_windows_per_s_batch64'][key]:.0f} | "
                        f"{r['throughput_ratio_vs_eager'][key]:.2f}× | {size / 1024:.0f} |")
    rows += ["", "| run | int8 plan kept (agreement) | plans tried | windows | accuracy "
             "PyTorch → int8 |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        q = r["int8"]
        tried = "; ".join(f"{a['plan']} {100 * a['class_agreement']:.2f} %"
                          for a in q["attempts"])
        accuracy = ("—" if q["accuracy_pytorch"] is None else
                    f"{q['accuracy_pytorch']:.2f} → {q['accuracy_int8']:.2f} %")
        rows.append(f"| {Path(r['checkpoint']).parent.parent.name} | {q['plan']} "
                    f"({100 * q['class_agreement']:.2f} %) | {tried} | "
                    f"{q['windows_from'].split(' windows')[0]} | {accuracy} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", default="bench/results/export.json")
    args = parser.parse_args()
    setup_logging(quiet=True)
    results = {"machine": machine_info(), "rounds": args.rounds, "checkpoints": []}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for checkpoint in args.checkpoints:
            if not checkpoint.is_file():
                sys.exit(f"bench_export: {checkpoint} does not exist; train a run first "
                         f"(pfdtrain train) and give its checkpoints/best_model.pth")
            results["checkpoints"].append(bench_checkpoint(checkpoint, args.rounds, Path(tmp)))
    results["table_markdown"] = markdown(results["checkpoints"])
    write_results(args.out, results)
    Path(args.out).with_suffix(".md").write_text(results["table_markdown"] + "\n")
    print(results["table_markdown"], file=sys.stderr)


if __name__ == "__main__":
    main()
