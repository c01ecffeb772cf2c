"""Hand-built thread trees with known token counts and known answers (the paper's §3.4 example)."""

from __future__ import annotations

from apr import grammar as g
from apr.countdown.problems import Problem
from apr.threads import Thread

PROBLEM = Problem((22, 26, 31, 53), 27, "fig3")

# The APR demonstration of apr-spec §3.4: the parent spawns two children, child 0 solves it.
PARENT_BEFORE_SPAWN = """
Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31
Exploring Operation: 53-26=27, Resulting Numbers: [22, 31, 27]
Generated Node #0,1: 27:[22, 31, 27] Operation: 53-26=27
"""
SPAWN = """<Calling Sub Searches>
<Start Sub Search 0 at level 1> Moving to Node #0,0
<Start Sub Search 1 at level 1> Moving to Node #0,1
<End Calling Sub Searches>
"""
CHILD0_PATH = """Moving to Node #0,0
Current State: 27:[26, 31, 31], Operations: ['53-22=31']
Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]
Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1
Moving to Node #0,0,0
Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']
Exploring Operation: 26+1=27, Resulting Numbers: [27]
27,27 equal: Goal Reached"""
JOIN = f"""<Sub Searches>
<Goal Reached in Sub Search 0 at level 1 at Node #0,0>
{CHILD0_PATH}
<No Solution in Sub Search 1 at level 1 at Node #0,1>
<End Sub Searches>
"""
ROOT_PATH = """Moving to Node #0
Current State: 27:[22, 26, 31, 53], Operations: []
Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]
Generated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31
Moving to Node #0,0
Current State: 27:[26, 31, 31], Operations: ['53-22=31']
Exploring Operation: 31/31=1, Resulting Numbers: [26, 1]
Generated Node #0,0,0: 27:[26, 1] Operation: 31/31=1
Moving to Node #0,0,0
Current State: 27:[26, 1], Operations: ['53-22=31', '31/31=1']
Exploring Operation: 26+1=27, Resulting Numbers: [27]
27,27 equal: Goal Reached"""
ANSWER = ("53-22=31", "31/31=1", "26+1=27")

# A wrong final answer: 26+1 uses a 1 that was never made (and 31, 53 stay unused).
WRONG_PATH = """Moving to Node #0
Current State: 27:[22, 26, 31, 53], Operations: []
Exploring Operation: 26+1=27, Resulting Numbers: [22, 31, 53, 27]
27,27 equal: Goal Reached"""


def apr_tree(*, root_tokens=(100, 30, 40, 80), child_tokens=(200, 350), prompt_tokens=(20, 25, 25),
             latency_s: float = 4.0) -> Thread:
    """Root: gen (before spawn), spawn, join, gen (continuation with the answer); two children."""
    root = Thread("0", g.apr_prompt(27, [22, 26, 31, 53]), prompt_tokens=prompt_tokens[0], finish_reason="eos")
    root.add_span("gen", PARENT_BEFORE_SPAWN, root_tokens[0])
    root.add_span("spawn", SPAWN, root_tokens[1])
    root.add_span("join", JOIN, root_tokens[2])
    root.add_span("gen", "27,27 equal: Goal Reached\n" + ROOT_PATH, root_tokens[3])
    child0 = Thread("0.0", g.apr_prompt(27, [26, 31, 31], ["53-22=31"], "0,0"), prompt_tokens=prompt_tokens[1])
    child0.add_span("gen", "\n...search...\n27,27 equal: Goal Reached\n" + CHILD0_PATH, child_tokens[0])
    child1 = Thread("0.1", g.apr_prompt(27, [22, 31, 27], ["53-26=27"], "0,1"), prompt_tokens=prompt_tokens[2])
    child1.add_span("gen", "\n...search...\nNo solution found.", child_tokens[1])
    root.spawns.append([child0, child1])
    root.meta["wall_s"] = latency_s
    return root


def sosp_tree(path: str = ROOT_PATH, *, prompt_tokens: int = 20, gen_tokens: int = 300,
              latency_s: float = 3.0) -> Thread:
    """A single-thread trace: some search, the goal, then the restated path (or no answer: path='')."""
    root = Thread("0", g.sosp_prompt(27, [22, 26, 31, 53]), prompt_tokens=prompt_tokens, finish_reason="eos")
    text = "\n...search...\n" + (f"27,27 equal: Goal Reached\n{path}" if path else "No solution found.")
    root.add_span("gen", text, gen_tokens)
    root.meta["wall_s"] = latency_s
    return root
