"""Search for local learning rules: generate, screen, deduplicate, evolve, store.

    from rulec import search
    progress = search.search(search.Settings(), search.Config(strategy="evolve", seed=1),
                             db="runs.sqlite", rules=2000, jobs=2)
    progress.best["text"]

The pieces, each usable alone (docs/search.md):

- `Settings` = `Space` (what rules are drawn: protocol slots, memory, params,
  ops, limits, odds; `load_settings(path)` reads a TOML space file) and
  `Screen` (the hurdles: tasks, graph, seeds, epochs);
- `Evaluator` runs the hurdles on one rule's text (`screen`, then `learn`);
- `RandomSearch`, `RegularizedEvolution`: strategies behind ask/tell; any
  object with the same two methods is a strategy (`Search(..., strategy=...)`
  or `search(..., strategy=...)`), proposing `Candidate.of(index, tree)` or
  `drawn(seed, index)` (a random rule its worker draws);
- `Mutator`: mutations of syntax trees; `canonical_text`: the form
  duplicates are found by;
- `Store`: the results database (SQLite file or PostgreSQL URL);
- `search()` / `Search`: the coordinator, with local processes or a Dask
  cluster (`scheduler=`) as executors.
"""

import importlib

#: where each public name lives: imported on first use (PEP 562), so a
#: worker process, which imports only what evaluates rules
#: (rulec.search.execute), does not import the coordinator, the store and
#: the reports at start-up
_WHERE = {
    "canonical_text": "canon", "canonical_tree": "canon", "size": "canon", "text_hash": "canon",
    "Evaluator": "hurdles", "hurdle_names": "hurdles",
    "MUTATIONS": "mutate", "Mutator": "mutate",
    "result_rows": "report", "results": "report", "runs": "report",
    "Config": "run", "Progress": "run", "Search": "run", "search": "run",
    "Screen": "space", "Settings": "space", "Space": "space", "SpaceError": "space",
    "load_settings": "space", "settings_from_toml": "space",
    "Store": "store",
    "Candidate": "strategy", "RandomSearch": "strategy", "RegularizedEvolution": "strategy",
    "drawn": "strategy",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next use is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = list(_WHERE)  # the names above, each loaded from its module
