"""`hogwild build-backend`: build and install llama-cpp-python with the Hogwild patches (see native/build.py)."""

from __future__ import annotations

from pathlib import Path

import click

from ..native.build import BACKENDS, build_backend, installed_lib_dir, list_patches, patch_dir, write_bundle
from ..native.install import LLAMA_CPP_PYTHON_VERSION
from .command import Command


@click.command("build-backend", cls=Command,
               help=f"Build llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} with hogwild's llama.cpp patches and "
                    "install it.\n\n"
                    "A build is kept per (patches, options, CPU) and tests itself where it is built; an up-to-date "
                    "one is reused.\n\n"
                    "\b\nExamples:\n"
                    "  hogwild build-backend                          # CPU, tuned for this machine\n"
                    "  hogwild build-backend --backend cuda --cuda-arch 89\n"
                    "  hogwild build-backend --bundle dist/           # a patched source tarball to carry\n"
                    "  export LLAMA_CPP_LIB_PATH=$(hogwild build-backend --print-lib-path)")
@click.option("--backend", type=click.Choice(BACKENDS), default="cpu", show_default=True,
              help="ggml backend to build.")
@click.option("--cuda-arch", default="90", show_default=True,
              help="CMAKE_CUDA_ARCHITECTURES for --backend cuda (90 = H100/H200).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel compile jobs  [default: all cores]")
@click.option("--native/--portable", default=True, show_default=True,
              help="cpu backend: tune for this CPU (llama.cpp's default), or build a wheel that runs on any CPU of "
                   "this architecture.")
@click.option("--amx", is_flag=True,
              help="x86-64: keep ggml's AMX matmul (Xeon 4th gen+): faster prompts, slower passes of 1-4 tokens; "
                   "left out by default (docs/backend.md, \"AMX\"). The self-test refuses it where it crashes.")
@click.option("--force", is_flag=True, help="Rebuild and reinstall even if up to date.")
@click.option("--sdist", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Build from this sdist or --bundle tarball instead of downloading.")
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Do not build: write a small patched source tarball into this folder.")
@click.option("--print-lib-path", is_flag=True,
              help="Do not build: print the folder of the installed libllama.")
def build_backend_command(
    backend: str, cuda_arch: str, jobs: int | None, native: bool, amx: bool, force: bool,
    sdist: Path | None, bundle_dir: Path | None, print_lib_path: bool,
) -> None:
    if bundle_dir and print_lib_path:
        raise click.UsageError("--bundle and --print-lib-path do not go together.")
    if print_lib_path:
        click.echo(installed_lib_dir())
    elif bundle_dir:
        write_bundle(bundle_dir, list_patches(patch_dir()), sdist)
    else:
        build_backend(backend, cuda_arch, jobs, force, native, sdist, amx)
