"""Export: a rule as a self-contained C99 package for other simulators.

    rulec export examples/hebbian.rule -o out/ [--prefix hebbian]

writes into out/:

    hebbian.c         the kernels (static) and the public functions
    hebbian.h         the API, with the graph and state layouts in comments
    hebbian.json      the manifest: ABI version, layout hash, slots, params, blocks
    rulec_*.h         the C runtime the kernels include (ABI, math, RNG, graph builder)
    Makefile          lib hebbian.a and libhebbian.so

No Python and no path of this machine is inside. The C is the same the JIT
builds (the same templates and runtime), so results equal the Python
runtime's. docs/embedding.md describes the ABI and its stability policy.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path

from ... import ir
from ..._version import __version__
from ...atomic import write_atomic
from ...errors import RulecError
from ...resources import resource_dir, templates
from .module import Unit
from .pipeline import c_source
from .render import kernel_name
from .spelling import c_float


def _abi_version() -> int:
    """RULEC_ABI_VERSION, read from runtime/rulec_abi.h (its one definition)."""
    header = (resource_dir("runtime") / "rulec_abi.h").read_text(encoding="utf-8")
    return int(re.search(r"#define RULEC_ABI_VERSION (\d+)", header).group(1))


ABI_VERSION = _abi_version()
RUNTIME_FILES = ("rulec_abi.h", "rulec_runtime.h", "rulec_math.h", "rulec_rng.h",
                 "rulec_elementwise.h", "rulec_graph.h")

C_KEYWORDS = set("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while _Bool _Complex _Imaginary bool true false
class namespace template this new delete operator private public protected virtual friend
try catch throw typename using""".split())


class ExportError(RulecError):
    """An export that cannot be written: a bad prefix or an unwritable directory."""


def check_prefix(prefix: str) -> str:
    if not (prefix.isascii() and prefix.isidentifier()):
        raise ExportError(f"prefix {prefix!r} is not a C identifier: use letters, digits and _,"
                          " not starting with a digit (set one with --prefix)")
    if prefix in C_KEYWORDS or prefix.lower().startswith("rulec") or prefix.startswith("_"):
        raise ExportError(f"prefix {prefix!r} is reserved (a C/C++ keyword; rulec's own "
                          "rulec_/RULEC_ namespace, which its headers use in any case; or a "
                          "leading underscore, reserved by C); choose another with --prefix")
    return prefix


def layout(program: ir.Program) -> dict:
    """What a caller's arrays and calls must match: changes when the rule's slots,
    params or blocks change."""
    return {
        "node_slots": list(program.node_slots),
        "edge_slots": list(program.edge_slots),
        "shared_slots": list(program.shared_slots),
        "params": [name for name, _ in program.params],
        "blocks": list(program.block_labels),
    }


def layout_hash(program: ir.Program) -> int:
    text = json.dumps({"abi": ABI_VERSION, **layout(program)}, sort_keys=True)
    return zlib.crc32(text.encode())


def manifest(program: ir.Program, prefix: str) -> dict:
    steps = [label for label in program.block_labels if label != "init"]
    return {
        "format": "rulec-export",
        "rulec_version": __version__,
        "abi_version": ABI_VERSION,
        "layout_hash": layout_hash(program),
        "rule": program.name,
        "prefix": prefix,
        "slots": (
            [{"name": s, "kind": "node", "length": "N", "index": i}
             for i, s in enumerate(program.node_slots)]
            + [{"name": s, "kind": "edge", "length": "2M", "index": i}
               for i, s in enumerate(program.edge_slots)]
            + [{"name": s, "kind": "shared", "length": "M", "index": i}
               for i, s in enumerate(program.shared_slots)]
        ),
        "params": [{"name": n, "default": v, "index": i}
                   for i, (n, v) in enumerate(program.params)],
        "blocks": (
            [{"label": "init", "function": f"{prefix}_init"}]
            + [{"label": b, "function": f"{prefix}_step_{b}"} for b in steps]
        ),
        "orders": {
            "nodes": "0..N-1",
            "half_edges": "by (owner, neighbour), ascending; CSR over row_ptr",
            "edges": "undirected edges by (min, max), ascending",
            "state": "node slots [N], private edge slots [2M] in half-edge order, "
                     "shared edge slots [M] in edge order",
        },
    }


def render(program: ir.Program, prefix: str, source: str | None = None) -> dict[str, str]:
    """The files of an export: name -> text."""
    check_prefix(prefix)
    env = templates()
    blocks = []
    init_fn = None
    for index, label in enumerate(program.block_labels):
        kernel = kernel_name(prefix, index)
        if label == "init":
            init_fn = kernel
        else:
            blocks.append({"label": label, "fn": f"{prefix}_step_{label}", "kernel": kernel})
    values = {
        "p": prefix, "P": prefix.upper(), "rule": program.name, "version": __version__,
        "abi_version": ABI_VERSION, "layout_hash": layout_hash(program),
        "node_slots": program.node_slots, "edge_slots": program.edge_slots,
        "shared_slots": program.shared_slots,
        "params": [{"name": n, "default": v, "c_default": c_float(v)} for n, v in program.params],
        "blocks": blocks, "has_init": init_fn is not None, "init_fn": init_fn,
    }
    kernels = c_source([Unit(program, prefix, source)], with_table=False, linkage="static ")
    files = {
        f"{prefix}.c": kernels + env.get_template("export_api.c.j2").render(**values),
        f"{prefix}.h": env.get_template("export.h.j2").render(**values),
        f"{prefix}.json": json.dumps(manifest(program, prefix), indent=2) + "\n",
        "Makefile": env.get_template("Makefile.j2").render(**values),
    }
    runtime = resource_dir("runtime")
    for name in RUNTIME_FILES:
        files[name] = (runtime / name).read_text(encoding="utf-8")
    return files


def export(program: ir.Program, directory: str | os.PathLike, prefix: str | None = None,
           source: str | None = None) -> list[Path]:
    """Write the export of `program` into `directory` (created if missing);
    each file atomically. Returns the paths written."""
    prefix = check_prefix(prefix or program.name)
    files = render(program, prefix, source)
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in files.items():
            write_atomic(out / name, text.encode("utf-8"))
            written.append(out / name)
    except OSError as exc:
        raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return written
