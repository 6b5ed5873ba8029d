"""`hogwild doctor`: is the set-up sound (the patched library, its self-test, the backend, a model)?"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from .command import Command


@click.command(cls=Command)
@click.option("--model", "-m", "model_spec", default=None, help="Also load this model and check it.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def doctor(model_spec: str | None, as_json: bool) -> None:
    """Check the set-up: the patched library and its self-test on this CPU, its backend (cpu/cuda/metal), GPU
    offload, and a model.

    \b
    Example:  hogwild doctor -m smollm2-135m
    """
    from ..engine import EngineError, check_model
    from ..engine.thinking import for_model
    from ..models import ModelError, resolve_model
    from ..native import BackendError, Model
    from ..native.library import build_status, library_info
    from ..native.verdict import failure_message, installed_verdict

    tested = installed_verdict(refresh=True)  # in a child process: a library that crashes cannot take doctor along
    report: dict = {"self_test": None if tested is None else {"fingerprint": tested[0], **asdict(tested[1])}}
    if tested is not None and not tested[1].ok:
        report["library"] = {"ok": False, "error": failure_message(tested[1])}
        report["build"] = {}
    else:
        report["library"], report["build"] = library_info(), build_status()
    ok = report["library"].get("ok", False)
    if model_spec and ok:
        try:
            with Model(resolve_model(model_spec, progress=False)) as model:
                check_model(model)
                report["model"] = {"ok": True, "path": str(model.path), "architecture": model.info.architecture,
                                   "params": model.info.n_params, "thinking": for_model(model).describe()}
        except (ModelError, BackendError, EngineError) as err:
            report["model"] = {"ok": False, "error": str(err)}
            ok = False
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        lib = report["library"]
        if lib.get("ok"):
            click.echo(f"library   ok: llama-cpp-python {lib['version']} with the Hogwild patch")
            click.echo(f"          {lib['library']}")
            click.echo(f"GPU       {'offload supported' if lib['gpu_offload'] else 'CPU only'}")
            if lib["rpc"]:
                click.echo("RPC       --rpc HOST:PORT offloads to `hogwild rpc-server` on other machines")
        else:
            click.echo(f"library   NOT OK: {lib['error']}")
        if tested is not None:
            verdict = tested[1]
            click.echo(f"self-test {'ok' if verdict.ok else 'FAILED'}: {verdict.detail} ({verdict.seconds:.1f} s)")
        build = report["build"]
        if build:
            click.echo(f"backend   {build.get('backend', '?')}  (build key {str(build.get('build_key', '-'))[:16]})")
        if "model" in report:
            m = report["model"]
            model_line = f"ok: {m['architecture']} {m['path']}" if m["ok"] else f"NOT OK: {m['error']}"
            click.echo(f"model     {model_line}")
            if m["ok"]:
                click.echo(f"          {m['thinking']} (--think auto follows this)")
    sys.exit(0 if ok else 1)
