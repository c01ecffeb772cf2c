"""Run coroutines concurrently, each node of a dependency graph as soon as its inputs are ready.

A failure anywhere cancels everything still running, so an abandoned fork leaves no stray calls.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Iterable, Mapping, Sequence, TypeVar

T = TypeVar("T")


async def gather_or_cancel(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather`` that cancels (and awaits) the rest as soon as one fails."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def run_dag(depends_on: Mapping[str, Sequence[str]],
                  run: Callable[[str, dict[str, T]], Awaitable[T]]) -> dict[str, T]:
    """Run ``run(node, results_of_its_dependencies)`` for every node; the graph must be acyclic."""
    tasks: dict[str, asyncio.Future[T]] = {}

    async def node(name: str) -> T:
        inputs = {dep: await tasks[dep] for dep in depends_on[name]}
        return await run(name, inputs)

    # Every task exists before any starts running, so each can await its dependencies' tasks.
    tasks.update({name: asyncio.ensure_future(node(name)) for name in depends_on})
    results = await gather_or_cancel(tasks.values())
    return dict(zip(tasks, results))
