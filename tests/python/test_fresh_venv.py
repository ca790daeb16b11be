"""`pip install` of the repository into a fresh venv, then `import joule` from outside the source tree and
joule.compress of an nn.Module: what a user does.

The venv sees torch (and pip, scikit-build-core) through a .pth file naming the project venv's site-packages
(no internet here); pip builds with --no-build-isolation --no-deps against the libraries of the project's build
(JOULE_PREBUILT_DIR: only python/bindings.cpp compiles, through ccache when it has seen it), in a build folder at the
same depth as build/ so that ccache's relative paths match. Run by ctest (python_package_fresh_venv) with
JOULE_SOURCE_DIR and JOULE_BUILD_DIR set.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time

SCRIPT = textwrap.dedent("""
    import sys, torch, joule
    assert joule.__file__.startswith(sys.prefix), (joule.__file__, sys.prefix)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    x = torch.randn(4, 32)
    q, report = joule.compress(model, [{"quantize": {"scheme": "w8a8"}}], example_inputs=x, reps=2, warmup=1,
                               measure_energy=False)
    assert isinstance(q[0], joule.nn.PackedLinear), q
    with torch.no_grad():
        err = ((q(x) - model(x)).norm() / model(x).norm()).item()
    assert err < 0.03, err
    assert report["passes"][0]["name"] == "quantize"
    print("fresh venv:", joule.__file__, "relative error", round(err, 5))
""")


def test_pip_install_in_a_fresh_venv(tmp_path):
    src, build = os.environ["JOULE_SOURCE_DIR"], os.environ["JOULE_BUILD_DIR"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    # The project venv as the build saw it (src/.venv, a link), so that the torch include paths, and ccache's
    # relative paths under CCACHE_BASEDIR, are the build's.
    project = sysconfig.get_paths()["purelib"]
    linked = os.path.join(src, ".venv", os.path.relpath(os.path.realpath(project), os.path.realpath(sys.prefix)))
    with open(os.path.join(purelib, "project-venv.pth"), "w") as f:
        f.write((linked if os.path.isdir(linked) else project) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("CCACHE_BASEDIR", src)
    env.setdefault("CCACHE_NOHASHDIR", "true")
    shutil.rmtree(os.path.join(src, "build-pip"), ignore_errors=True)  # a build from scratch (ccache aside)
    # The build's compiler by name and its Torch_DIR as it wrote them: ccache hashes both (pip's environment would
    # choose g++ for c++, and scikit-build-core's search finds torch under its real path).
    cache = dict(l.split("=", 1) for l in open(os.path.join(build, "CMakeCache.txt")).read().splitlines()
                 if "=" in l and not l.startswith(("//", "#")))
    defines = [f"-Ccmake.define.{k}={cache[k + t]}" for k, t in (("CMAKE_CXX_COMPILER", ":FILEPATH"), ("Torch_DIR", ":PATH"))]
    t0 = time.time()
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                    f"-Ccmake.define.JOULE_PREBUILT_DIR={build}", *defines, f"-Cbuild-dir={src}/build-pip", src],
                   check=True, env=env)
    print(f"pip install: {time.time() - t0:.1f} s")
    out = subprocess.run([py, "-c", SCRIPT], check=True, env=env, cwd=str(tmp_path), capture_output=True, text=True)
    print(out.stdout)
    assert "fresh venv:" in out.stdout
