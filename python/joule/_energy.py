"""joule.measure_energy: Joule's energy meters (compress/energy/) around the caller's own code."""
import dataclasses
import json
import time

from . import _C


@dataclasses.dataclass
class Energy:
    """Energy of one call of the measured function, from the headline meter (measured ones before estimates)."""
    joules: float     # per call: the mean over windows
    ci95: float       # half-width of the 95% confidence interval over the windows, joules per call
    source: str       # "rapl", "nvml", "estimate:time-power"
    measured: bool    # True: read from a hardware counter; False: an estimate
    method: str       # one line: what the meter counts and how
    seconds: float    # wall time per call
    calls: int        # calls of the function in all windows
    windows: int
    gco2e: float      # grams CO2e per call at the grid intensity below
    grid: str         # the grid intensity's region ("WORLD", "FR", or "custom")
    g_per_kwh: float
    others: list      # the other meters' figures: [{"source", "measured", "joules", "ci95"}]

    @property
    def kind(self):
        return "measured" if self.measured else "estimated"

    def __str__(self):
        return (f"{self.joules * 1e3:.4g} ± {self.ci95 * 1e3:.2g} mJ per call ({self.kind}: {self.source}), "
                f"{self.seconds * 1e3:.4g} ms per call, {self.gco2e:.3g} gCO2e at {self.g_per_kwh:g} g/kWh ({self.grid})")


def measure_energy(fn, *args, windows=8, warmup=1, min_window_s=None, gpu=False, region=None, grid_intensity=None,
                   cpu_watts=None, **kwargs):
    """Energy per call of fn(*args, **kwargs), from every meter this machine offers: RAPL package and DRAM
    counters, NVML for a GPU (gpu=True), and the time x power estimate (process CPU time x per-core power)
    that is always there. Each of `windows` windows calls fn until it lasts at least the meters' minimum window
    (min_window_s, default 0.1 s); the figure is the mean over windows with a 95% confidence interval.
    Returns an Energy (joules, ci95, source, measured, ...); `measured` says whether the headline figure was read
    from a counter or estimated. region / grid_intensity: the carbon intensity for gco2e (default: world average).
    """
    if windows < 2:
        raise ValueError("joule.measure_energy: windows must be at least 2 (a confidence interval needs two)")
    settings = {"region": region, "grid_intensity": grid_intensity, "cpu_watts": cpu_watts,
                "min_window_s": min_window_s, "gpu": gpu}
    session = _C.EnergySession(json.dumps(settings))
    meters = session.meters()
    sync = None
    if gpu:
        import torch
        sync = torch.cuda.synchronize
    for _ in range(warmup):
        fn(*args, **kwargs)
    if sync:
        sync()
    window_s = session.window_s()
    per_call = [[] for _ in meters]
    calls, wall = 0, 0.0
    for _ in range(windows):
        for m in meters:
            m.start()
        t0 = time.perf_counter()
        n = 0
        while True:
            fn(*args, **kwargs)
            n += 1
            if sync:
                sync()
            if time.perf_counter() - t0 >= window_s:
                break
        wall += time.perf_counter() - t0
        for m, out in zip(reversed(meters), reversed(per_call)):
            joules, _, _ = m.stop()
            out.append(joules / n)
        calls += n
    figures = []
    for m, samples in zip(meters, per_call):
        mean, ci95 = _C.mean_ci95(samples)
        figures.append({"source": m.source, "measured": m.measured, "method": m.method, "joules": mean, "ci95": ci95})
    head = figures[0]
    region_name, g_per_kwh = session.grid()
    return Energy(joules=head["joules"], ci95=head["ci95"], source=head["source"], measured=head["measured"],
                  method=head["method"], seconds=wall / calls, calls=calls, windows=windows,
                  gco2e=head["joules"] * g_per_kwh / 3.6e6, grid=region_name, g_per_kwh=g_per_kwh,
                  others=[{k: f[k] for k in ("source", "measured", "joules", "ci95")} for f in figures[1:]])
