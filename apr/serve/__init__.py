"""``apr serve``: an OpenAI-compatible server with continuous batching across requests, plus APR solves.

``apr.serve.app.create_app`` builds the application (one Countdown problem is solved by
``apr.countdown.solve``, for the server and for ``apr solve``). Nothing is imported here, so the CLI
starts fast.
"""
