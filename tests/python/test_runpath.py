"""libjoule_ops.so and the binaries find their libraries through relative RUNPATHs only ($ORIGIN), so a copied
build still loads: bin/joule and lib/libjoule_ops.so copied into another folder beside a link to the venv run
there and load the copy. Run by ctest (python_package) with JOULE_BUILD_DIR and JOULE_SOURCE_DIR set.
"""
import os
import shutil
import subprocess


def runpath(path):
    out = subprocess.run(["readelf", "-d", path], check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if "(RUNPATH)" in l or "(RPATH)" in l)
    return line.split("[", 1)[1].rstrip("]").split(":")


def test_runpaths_are_relative():
    build = os.environ["JOULE_BUILD_DIR"]
    for binary in ("lib/libjoule_ops.so", "bin/joule", "python/joule/libjoule_ops.so"):
        entries = runpath(os.path.join(build, binary))
        assert all(e.startswith("$ORIGIN") for e in entries), (binary, entries)
        assert "$ORIGIN/../torch/lib" in entries  # the pip layout: site-packages/joule beside site-packages/torch
    ext = next(f for f in os.listdir(os.path.join(build, "python", "joule")) if f.startswith("_C") and f.endswith(".so"))
    assert all(e.startswith("$ORIGIN") for e in runpath(os.path.join(build, "python", "joule", ext)))


def test_a_copied_build_loads(tmp_path):
    build, src = os.environ["JOULE_BUILD_DIR"], os.environ["JOULE_SOURCE_DIR"]
    # The copy sits where the build sat relative to the venv: <dir>/copy/{bin,lib} beside <dir>/.venv.
    rel = os.path.relpath(build, src)
    copy = tmp_path / rel
    (copy / "bin").mkdir(parents=True)
    (copy / "lib").mkdir()
    shutil.copy2(os.path.join(build, "bin", "joule"), copy / "bin")
    shutil.copy2(os.path.join(build, "lib", "libjoule_ops.so"), copy / "lib")
    os.symlink(os.path.join(src, ".venv"), tmp_path / ".venv")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    ldd = subprocess.run(["ldd", str(copy / "bin" / "joule")], check=True, capture_output=True, text=True, env=env).stdout
    assert f"libjoule_ops.so => {copy}/bin/../lib/libjoule_ops.so" in ldd, ldd
    assert "not found" not in ldd, ldd
    subprocess.run([str(copy / "bin" / "joule"), "--help"], check=True, capture_output=True, env=env)
