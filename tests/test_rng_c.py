"""runtime/rulec_rng.h, compiled with the system C compiler, draws the same
numbers as rulec.rng: uniform() bit for bit, gauss() within float tolerance."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from rulec import rng
from rulec.rng import block_key

from .conftest import build_c_driver

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "rulec_rng.h"
int main(int argc, char **argv) {
    unsigned long long seed = strtoull(argv[1], 0, 10);
    unsigned key = (unsigned)strtoul(argv[2], 0, 10);
    unsigned ordinal = (unsigned)strtoul(argv[3], 0, 10);
    unsigned long long time = strtoull(argv[4], 0, 10);
    int n = atoi(argv[5]);
    for (int e = 0; e < n; ++e)
        printf("%a %a\n", rulec_uniform(seed, key, ordinal, time, e),
               rulec_gauss(seed, key, ordinal, time, e));
    return 0;
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return build_c_driver(tmp_path_factory, "rng", DRIVER)


@pytest.mark.parametrize("seed, label, ordinal, time", [
    (0, "update", 0, 0), (2**64 - 1, "init", 3, 7), (123456789, "recall", 1, 2**33 + 5),
])
def test_c_draws_match_python(driver, seed, label, ordinal, time):
    n = 1000
    out = subprocess.run([str(driver), str(seed), str(block_key(label)), str(ordinal),
                          str(time), str(n)], capture_output=True, text=True, check=True)
    pairs = [line.split() for line in out.stdout.splitlines()]
    c_uniform = np.array([float.fromhex(u) for u, _ in pairs], dtype=np.float32)
    c_gauss = np.array([float.fromhex(g) for _, g in pairs], dtype=np.float32)
    key = block_key(label)
    np.testing.assert_array_equal(c_uniform, rng.uniform(n, seed, key, ordinal, time))
    np.testing.assert_allclose(c_gauss, rng.gauss(n, seed, key, ordinal, time),
                               rtol=1e-6, atol=1e-6)
