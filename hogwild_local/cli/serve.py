"""`hogwild serve`: an OpenAI-compatible HTTP endpoint (chat completions) answered by Hogwild! workers."""

from __future__ import annotations

from pathlib import Path

import click

from .command import Command
from .options import config_from_options, generation_options, load_model

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@click.command(cls=Command)
@generation_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (beyond loopback, set --api-key).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--api-key", envvar="HOGWILD_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' on /v1 (also from $HOGWILD_API_KEY).")
@click.option("--queue-size", type=click.IntRange(0), default=4, show_default=True,
              help="Requests that may wait while one generates; more are answered 503 with Retry-After.")
@click.option("--max-body", "max_body_bytes", type=click.IntRange(1024), default=1 << 20, show_default=True,
              help="Largest request body, in bytes (larger: 413).")
@click.option("--transcripts", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a transcript of every request's run into this folder.")
def serve(host: str, port: int, api_key: str | None, queue_size: int, max_body_bytes: int,
          transcripts: Path | None, **opts) -> None:
    """Serve OpenAI's chat completions API: the workers' shared work streams as reasoning_content, the final
    answer as content. --answer defaults to text here; the other options are what a request runs unless it sets
    workers, layout, budget, method, answer_mode, temperature, top_p, seed or max_tokens itself (docs/serve.md).

    \b
    Examples:
      hogwild serve -m smollm2-135m -w 2 -b 128
      hogwild serve --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"
      curl -s localhost:8080/v1/chat/completions -d '{"model": "smollm2-135m",
           "messages": [{"role": "user", "content": "Write a haiku about caches"}]}'
    """
    import uvicorn

    from ..engine import check_model
    from ..serve.app import Settings, create_app
    from ..serve.names import model_names
    from ..serve.runner import Runner

    ctx = click.get_current_context()
    answer = "text" if ctx.get_parameter_source("answer") is click.core.ParameterSource.DEFAULT else opts["answer"]
    config = config_from_options(opts, answer=answer)
    if host not in LOOPBACK and api_key is None:
        click.echo(f"warning: listening on {host} without --api-key: anyone who reaches the port can use it",
                   err=True)
    model = load_model(opts)
    check_model(model)
    model_id, names, manifest = model_names(model.path)
    runner = Runner(model, queue_size, transcripts)
    app = create_app(runner, Settings(model_id, names, manifest, config, api_key, max_body_bytes))
    click.echo(f"serving {model_id} on http://{host}:{port}/v1 ({config.workers} workers, budget {config.budget}, "
               f"answer {config.answer})", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        runner.close()
        model.close()
