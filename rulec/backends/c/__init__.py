"""The C backend: every stage from checked IR to loaded kernels, and export.

    pipeline.py  drives the stages in order, once per rule or batch (build,
                 compile_c, c_source, lower_block)
    loops.py     the loop-nest IR: op names, numbers and names; show, verify
    lower.py     typed IR block -> node body (slot modes, C names)
    passes.py    fuse, cse, dce, block
    spelling.py  the C spelling of ops, intrinsics, constants and draws
    render.py    lowered blocks -> C lines -> templates/module.c.j2 (spells only)
    module.py    a module's units, cache identity, size limits, loading
    kernels.py   a rule's kernels called on states (NativeBlocks)
    backend.py   CBackend, the runtime's face of all this
    export.py    a rule as a self-contained C99 package

The compiler call and the cache are rulec.backends.toolchain's; the C views
of graphs and states rulec.backends.views'.
"""
