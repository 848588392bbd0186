"""The VM backend: any checked rule runs at once, with no compiler call per
rule (the screening tier for search). See docs/vm.md."""

from .translate import OPCODES, Program, disassemble, translate

__all__ = ["OPCODES", "Program", "disassemble", "translate"]
