"""rulec: a compiler and runtime for local rules on graphs."""
