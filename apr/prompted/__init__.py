"""Prompted fork-join: adaptive parallel reasoning with any chat model behind an OpenAI-compatible API.

No training: the model is asked for a plan (a JSON list of subtasks with dependencies), the
subtasks run as concurrent child threads, and a merge call joins them. Every run yields an
``apr.threads.Thread`` tree, so the metrics of the trained runtime apply unchanged.
"""

from apr.prompted.client import CallFailed, ChatClient, ClientConfig, PromptedError
from apr.prompted.orchestrator import AskConfig, Mode, Result, ask

__all__ = ["AskConfig", "CallFailed", "ChatClient", "ClientConfig", "Mode", "PromptedError", "Result", "ask"]
