"""Cross-check of Joule's time x power estimate against CodeCarbon on the same model and workload.

Runs the TorchScript model in PyTorch (same threads) under CodeCarbon's offline tracker for a fixed time,
then `joule energy` on the same model, and prints both per-inference figures side by side. CodeCarbon is a
peer used for comparison only; it is never on Joule's run path.

usage: .venv/bin/python tools/codecarbon_check.py MODEL.pt INPUT_SHAPE [--seconds 20] [--threads 2]
"""
import argparse
import json
import logging
import os
import subprocess
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("shape", help="f32 input shape, e.g. 32x256")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--joule", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin", "joule"))
    args = ap.parse_args()

    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    m = torch.jit.load(args.model).eval()
    x = torch.randn(*[int(d) for d in args.shape.split("x")])
    with torch.no_grad():
        for _ in range(5):
            m(x)
        tracker = OfflineEmissionsTracker(country_iso_code="USA", measure_power_secs=1, save_to_file=False,
                                          log_level="error", tracking_mode="process")
        tracker.start()
        n, t0 = 0, time.time()
        while time.time() - t0 < args.seconds:
            m(x)
            n += 1
        tracker.stop()
    d = tracker.final_emissions_data
    cc = {
        "inferences": n,
        "seconds": d.duration,
        "j_per_inference_total": d.energy_consumed * 3.6e6 / n,
        "j_per_inference_cpu": d.cpu_energy * 3.6e6 / n,
        "j_per_inference_ram": d.ram_energy * 3.6e6 / n,
        "cpu_power_w": d.cpu_power,
        "ram_power_w": d.ram_power,
        "cpu_model": d.cpu_model,
        "tracking_mode": d.tracking_mode,
    }
    out = subprocess.run([args.joule, "--threads", str(args.threads), "energy", args.model, "--input-shape", args.shape,
                          "--json"], check=True, capture_output=True, text=True)
    jl = json.loads(out.stdout)
    tp = next(e for e in jl["energy"] if e["source"] == "estimate:time-power")
    print(json.dumps({"codecarbon": cc, "joule_time_power": {"j_per_inference": tp["j_per_inference"],
                                                             "ci95_j": tp["ci95_j"],
                                                             "cpu_ms_per_inference": jl["cpu_ms_per_inference"],
                                                             "latency_ms": jl["latency_ms"]},
                      "ratio_codecarbon_over_joule": cc["j_per_inference_total"] / tp["j_per_inference"]}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
