"""Layer 4: the HTTP API. ``hogwild serve`` answers OpenAI's chat completions API with Hogwild! workers:
``protocol`` (the requests, checked, and OpenAI's error shape), ``reply`` (engine events as OpenAI's
deltas), ``runner`` (one generation at a time, a bounded queue), ``app`` (the Starlette routes), ``names``
(what the loaded model is called)."""
