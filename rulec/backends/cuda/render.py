"""Rendering: the CUDA spelling of lowered rules, through templates/cuda.cu.j2.

The rules come through the C backend's stages (rulec.backends.c.pipeline.
lower_rule: IR passes, lowering, fuse, cse, dce), so CUDA runs the same
node bodies as the C kernels; only the spelling differs, and expressions are
spelt by the same table (rulec.backends.c.spelling) since CUDA C and C agree
on them. What changes is the frame around a node body:

- a node is one *group* of `lanes` threads (rulec_cuda.h), not one iteration
  of a loop over a block of nodes, so the body is spelt node by node (the
  C backend's node blocks, Blocked, are not used);
- a half-edge loop is split over the group's lanes (lane l takes h0 + l,
  h0 + l + lanes, ...), and each accumulator is reduced across the group
  by a butterfly (rulec_group_sumf / maxi / mini);
- node slots are stored by one lane, after the group meets.

A kernel's parameters are data (KernelInfo.args): the template spells the
list from it and the host (rulec.backends.cuda.host) passes values in its
order, so the two cannot disagree.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ... import ir
from ..._version import __version__
from ...resources import resource_dir, templates
from ..c import module as c_module
from ..c.loops import Loop, Store
from ..c.module import Unit
from ..c.pipeline import lower_rule
from ..c.render import INDENT, Speller, kernel_name

#: A kernel's frame parameters, by role (the host passes each by its role).
#: A launch runs `n_groups` groups: B copies of the bin's `per_copy` nodes
#: (group g is node nodes[g % per_copy] of copy g / per_copy), each copy
#: with its own state, seed, params and stop flag, on one graph.
FRAME_ARGS = (
    ("n_groups", "int64_t"), ("per_copy", "int64_t"), ("nodes", "const int32_t *"),
    ("lanes", "int"), ("n_nodes", "int64_t"), ("n_edges", "int64_t"),
    ("row_ptr", "const int64_t *"), ("nbr", "const int32_t *"), ("rev", "const int32_t *"),
    ("eid", "const int32_t *"), ("degree", "const float *"), ("seeds", "const uint64_t *"),
    ("time", "uint64_t"), ("stops", "const int32_t *"), ("params", "const float *"),
)

#: A slot's copy in a batch starts this far into its array (a C expression).
STRIDES = {"node": "n_nodes", "edge": "2 * n_edges", "shared": "n_edges"}

#: The group reduction of an accumulator, by (op, C type).
GROUP_REDUCE = {("+", "float"): "rulec_group_sumf", ("max", "int32_t"): "rulec_group_maxi",
                ("min", "int32_t"): "rulec_group_mini"}


@dataclass(frozen=True)
class Arg:
    """One kernel parameter: its C name and type, and what the host passes
    (role: a FRAME_ARGS name, or 'slot')."""

    name: str
    ctype: str
    role: str
    #: for 'slot': (kind, index, buffer, stride): buffer is cur, next,
    #: proposal or proposed; stride a C expression, one copy's length
    detail: tuple = ()


@dataclass(frozen=True)
class KernelInfo:
    """A block's step kernel: its name, parameters, whether it advances time,
    how each slot is stored (kind, index, mode, name), and the rule's param count
    (the `params` array holds that many floats per copy)."""

    name: str
    label: str
    args: tuple[Arg, ...]
    advance: bool
    slots: tuple[tuple[str, int, str, str], ...]
    n_params: int


class CudaSpeller(Speller):
    """Spells a node body for one group of lanes (no per-block arrays)."""

    def __init__(self) -> None:
        super().__init__(set())

    def store(self, stmt: Store) -> str:
        line = super().store(stmt)
        # a node slot's new value: one lane stores it (every lane has it)
        return f"if (RULEC_LEAD) {line}" if stmt.index == "u" else line

    def loop(self, loop: Loop, pad: str, depth: int) -> list[str]:
        inner = pad + INDENT
        out = [f"{pad}RULEC_LANE_VAR({acc.temp.ctype}, {acc.temp.name}_lane);"
               for acc in loop.accumulators]
        out.append(f"{pad}RULEC_FOR_LANES(lane) {{")
        out += [f"{inner}{acc.temp.ctype} {acc.temp.name} = {self.expr(acc.init)};"
                for acc in loop.accumulators]
        out.append(f"{inner}for (int64_t h = h0 + lane; h < h1; h += lanes) {{")
        out += self.statements(loop.body, depth + 2)
        out.append(f"{inner}}}")
        out += [f"{inner}RULEC_LANE_AT({acc.temp.name}_lane) = {acc.temp.name};"
                for acc in loop.accumulators]
        out.append(f"{pad}}}")
        for acc in loop.accumulators:
            reduce = GROUP_REDUCE[acc.op, acc.temp.ctype]
            out.append(f"{pad}const {acc.temp.ctype} {acc.temp.name} = "
                       f"{reduce}({acc.temp.name}_lane, lanes);")
        return out


def _slot_args(program: ir.Program, names, modes: dict) -> tuple[list[Arg], list[tuple]]:
    """The slot pointers a kernel takes (each the whole batch's array, named
    VAR_all; the kernel points VAR at its copy) and (kind, index, mode, name)
    of every slot."""
    args: list[Arg] = []
    slots: list[tuple[str, int, str]] = []
    layout = (("node", program.node_slots), ("edge", program.edge_slots),
              ("shared", program.shared_slots))
    for kind, declared in layout:
        for index, name in enumerate(declared):
            var = names.slot(kind, name)
            mode = modes.get((kind, name), "read")
            slots.append((kind, index, mode, name))
            buffers = [("", "const float *" if mode in ("read", "double") else "float *",
                        "cur", STRIDES[kind])]
            if mode == "double":
                buffers.append(("_next", "float *", "next", STRIDES[kind]))
            if mode == "proposal":
                buffers += [("_proposal", "float *", "proposal", "2 * n_edges"),
                            ("_proposed", "uint8_t *", "proposed", "2 * n_edges")]
            args += [Arg(var + suffix, ctype, "slot", (kind, index, buffer, stride))
                     for suffix, ctype, buffer, stride in buffers]
    return args, slots


def _block(program: ir.Program, block: ir.Block, lowered, fn: str) -> tuple[dict, KernelInfo]:
    names = lowered.names
    args = [Arg(name, ctype, name) for name, ctype in FRAME_ARGS]
    slot_args, slots = _slot_args(program, names, lowered.modes)
    args += slot_args
    speller = CudaSpeller()
    body = speller.statements(lowered.prologue + lowered.body, 0)
    stores = speller.statements(lowered.epilogue, 0)
    info = KernelInfo(fn, block.label, tuple(args), block.label != "init", tuple(slots),
                      len(program.params))
    # the frame declares only what the body uses (nvcc warns of the rest)
    code = re.sub(r"/\*.*?\*/", "", "\n".join(body + stores))  # not in comments
    used = set(re.findall(r"\b\w+\b", code))
    count = len(program.params)
    params = [{"var": names.param(name), "index": index, "name": name, "count": count}
              for index, (name, _) in enumerate(program.params) if names.param(name) in used]
    context = {
        "fn": fn, "label": block.label,
        "args": [{"name": a.name + ("_all" if a.role == "slot" else ""), "ctype": a.ctype,
                  "restrict": a.ctype.endswith("*") and a.role != "stops",
                  "note": _note(program, a)} for a in args],
        "params": params,
        "copies": [{"name": a.name, "ctype": a.ctype, "stride": a.detail[3]}
                   for a in slot_args if a.name in used],
        "frame": sorted(used & {"h0", "u32", "degree_u", "seed"}),
        "body": body, "stores": stores,
    }
    return context, info


def _note(program: ir.Program, arg: Arg) -> str:
    if arg.role == "slot":
        kind, index, buffer, _ = arg.detail
        declared = {"node": program.node_slots, "edge": program.edge_slots,
                    "shared": program.shared_slots}[kind]
        return f"{kind} slot {declared[index]}" + ("" if buffer == "cur" else f" ({buffer})")
    return ""


@dataclass
class CudaModule:
    """A module's CUDA source and its kernels by 'prefix:label'."""

    source: str
    kernels: dict[str, KernelInfo]


def cuda_module(units: list[Unit], trace=None) -> CudaModule:
    """The CUDA C of every block of every unit, and its kernels."""
    rules, kernels = [], {}
    for unit in units:
        rendered = lower_rule(unit, trace)
        blocks = []
        for index, (block, lowered) in enumerate(zip(rendered.program.blocks, rendered.blocks,
                                                     strict=True)):
            fn = kernel_name(unit.prefix, index)
            context, info = _block(rendered.program, block, lowered, fn)
            blocks.append(context)
            kernels[f"{unit.prefix}:{block.label}"] = info
        rules.append({"name": rendered.program.name, "blocks": blocks})
    template = templates().get_template("cuda.cu.j2")
    source = template.render(rules=rules, version=__version__)
    if trace is not None:
        trace("render", source)
    return CudaModule(source, kernels)


def cuda_source(units: list[Unit]) -> str:
    """What `rulec emit --backend cuda` prints."""
    return cuda_module(units).source


#: The files, beside the C backend's generator files, that decide a CUDA module.
CUDA_FILES = ("backends/cuda/render.py",)


@functools.cache
def sources_digest() -> str:
    """A hash of what generates the CUDA text: the C backend's generator files,
    the CUDA renderer, its template and runtime/rulec_cuda.h."""
    digest = hashlib.sha256(c_module._sources_digest().encode())
    package = Path(__file__).resolve().parents[2]
    for path in [*(package / name for name in CUDA_FILES),
                 resource_dir("templates") / "cuda.cu.j2",
                 resource_dir("runtime") / "rulec_cuda.h"]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
