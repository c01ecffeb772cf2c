"""A client of a model server at a URL: llama.cpp's ``llama-server`` through its native API when the
server is one (its ``/props`` says so), any other OpenAI-compatible server through ``/v1/completions``.

The context window comes from the server (llama-server's slot ``n_ctx``, vLLM's and apr serve's
``max_model_len``); for a server that reports none it must be given, never guessed.
"""

from __future__ import annotations

import httpx

from apr.runtime.backend import Backend
from apr.runtime.codec import TokenCodec
from apr.runtime.llamacpp_backend import LlamaCppBackend
from apr.runtime.openai_backend import OpenAIBackend


def open_remote(url: str, codec: TokenCodec, *, model: str | None = None,
                context_length: int | None = None) -> tuple[Backend, str]:
    """The backend for the server at ``url`` and a name for it (``model``: the served model to use)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--backend-url must start with http:// or https://, got {url!r}")
    root = url.rstrip("/").removesuffix("/v1")
    window = _llamacpp_window(root)
    if window is not None:
        return LlamaCppBackend(root, codec, _agreed(url, window, context_length)), f"llama-server at {root}"
    name, reported = _served_model(url, model)
    context = _agreed(url, reported, context_length, f"{name!r}'s")
    return OpenAIBackend(url, name, lambda text: codec.encode(text, bos=False), context), f"{name} at {url}"


def reports_window(url: str, model: str | None = None) -> bool:
    """Whether the server at ``url`` says how long its context window is."""
    root = url.rstrip("/").removesuffix("/v1")
    if _llamacpp_window(root) is not None:
        return True
    try:
        return _served_model(url, model)[1] is not None
    except ValueError:
        return False


def _llamacpp_window(root: str) -> int | None:
    """A llama-server's per-slot context window, or None for any other server."""
    try:
        reply = httpx.get(f"{root}/props", timeout=10)
        settings = reply.json().get("default_generation_settings") if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def _served_model(url: str, name: str | None) -> tuple[str, int | None]:
    """The served model's name and the window it reports (vLLM and apr serve: ``max_model_len``); a
    server that lists no models is taken at its word for a ``name`` given."""
    from openai import OpenAI, OpenAIError

    try:
        cards = OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=10).models.list().data
    except OpenAIError as e:
        if name is not None:
            return name, None
        raise ValueError(f"cannot list the models of {url}: {e}; name one with --served-model-name") from None
    names = [c.id for c in cards]
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{url} serves {names or 'no models'}: pick one with --served-model-name")
        name = names[0]
    card = next((c for c in cards if c.id == name), None)
    if card is None:
        raise ValueError(f"{url} has no model {name!r}; it serves {names}")
    reported = (card.model_extra or {}).get("max_model_len")
    return name, int(reported) if reported else None


def _agreed(url: str, reported: int | None, given: int | None, whose: str = "its") -> int:
    if given is not None:
        if reported and reported != given:
            raise ValueError(f"--context-length {given} differs from the {reported} tokens {url} reports")
        return given
    if not reported:
        raise ValueError(f"{url} does not report {whose} context window: pass --context-length (the n_ctx "
                         "the server was started with)")
    return reported
