"""The C backend: lowering to a loop-nest IR, loop passes, rendering to C.

    loops.py     the loop-nest IR: statements, printer (show), verifier
    lower.py     typed IR block -> node body (slot modes, C names)
    passes.py    fuse, cse, dce, block
    render.py    node body -> C lines -> templates/module.c.j2
    pipeline.py  the stages in order (compile_c, lower_block)

The compiler call, cache and loader are rulec.build; kernel calls rulec.native.
"""
