"""Learning: tasks, topologies, protocols and their evaluation.

    from rulec import learning
    result = learning.evaluate(rulec.compile_file("examples/backprop.rule"),
                               learning.TASKS["xor"], learning.layered([2, 4, 1]),
                               epochs=2000, seed=1)
    result.accuracy[-1], result.failure

A task is a table of input bits -> target bits (tasks). A topology is a
graph whose lowest ids are the inputs and highest ids the outputs
(topologies). A protocol names the node slots through which the harness
talks to a rule, as a list of phases run for every example (protocols,
docs/learning.md): present the inputs, step until every output is ready
(or the step budget runs out), read the outputs, then, when training, write
the targets, raise the train flag and step until the rule says it is done.
`evaluate` runs epochs of that (evaluation) in Python or in C (driver), and
returns a Result (results).
"""

import importlib

#: name -> the module of this package that defines it (imported on first use,
#: so the CLI can read the protocol table without loading the runtime)
_WHERE = {
    "evaluate": "evaluation", "evaluate_many": "evaluation", "evaluate_seeds": "evaluation",
    "fresh_state": "evaluation",
    "PROTOCOLS": "protocols", "FixedTime": "protocols", "Phase": "protocols",
    "Protocol": "protocols", "Simultaneous": "protocols", "protocol_named": "protocols",
    "ProtocolError": "protocols",
    "Result": "results", "orders": "results", "score": "results", "score_orders": "results",
    "TASK_MAX_INPUTS": "tasks", "TASKS": "tasks", "Task": "tasks", "TaskError": "tasks",
    "task_named": "tasks",
    "Topology": "topologies", "check_topology": "topologies", "layered": "topologies",
    "topology_from_spec": "topologies", "waxman": "topologies",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rulec.learning' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
