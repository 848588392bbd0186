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

from .canon import canonical_text, canonical_tree, size, text_hash
from .hurdles import Evaluator, hurdle_names
from .mutate import MUTATIONS, Mutator
from .report import result_rows, results, runs
from .run import Config, Progress, Search, search
from .space import Screen, Settings, Space, SpaceError, load_settings, settings_from_toml
from .store import Store
from .strategy import Candidate, RandomSearch, RegularizedEvolution, drawn

__all__ = ["MUTATIONS", "Candidate", "Config", "Evaluator", "Mutator", "Progress",
           "RandomSearch", "RegularizedEvolution", "Screen", "Search", "Settings", "Space",
           "SpaceError", "Store", "canonical_text", "canonical_tree", "hurdle_names",
           "load_settings", "result_rows", "results", "runs", "search", "settings_from_toml",
           "size", "text_hash", "drawn"]
