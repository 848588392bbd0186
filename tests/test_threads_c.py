"""rulec_share_start (runtime/rulec_runtime.h), compiled with the system C
compiler: the shares threads split a step's nodes into cover every node
block once, in order, and are balanced by work (half-edges and a weight per
node), not by node count."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from rulec import graphs

from .conftest import build_c_driver

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "rulec_runtime.h"
int main(int argc, char **argv) {
    int parts = atoi(argv[1]);
    int64_t block = atoll(argv[2]), n = 0, cap = 1024;
    int64_t *row_ptr = malloc(sizeof(int64_t) * cap);
    long long value;
    while (scanf("%lld", &value) == 1) {
        if (n == cap)
            row_ptr = realloc(row_ptr, sizeof(int64_t) * (cap *= 2));
        row_ptr[n++] = value;
    }
    printf("%d\n", RULEC_NODE_WORK);
    for (int part = 0; part <= parts; ++part)
        printf("%lld\n", (long long)rulec_share_start(row_ptr, n - 1, block, part, parts));
    free(row_ptr);
    return 0;
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return build_c_driver(tmp_path_factory, "shares", DRIVER)


def shares(driver, row_ptr, parts, block):
    text = "\n".join(map(str, row_ptr))
    out = subprocess.run([str(driver), str(parts), str(block)], input=text,
                         capture_output=True, text=True, check=True).stdout
    node_work, *starts = [int(line) for line in out.split()]
    return node_work, starts


@pytest.mark.parametrize("parts", [1, 2, 3, 16])
def test_shares_cover_the_blocks_in_order_and_balance_half_edges(driver, parts):
    graph = graphs.power_law(20000, 32, seed=4, exponent=2.1)  # hubs at the low node ids
    row_ptr = np.asarray(graph.row_ptr)
    n, block = graph.n_nodes, 64
    node_work, starts = shares(driver, row_ptr, parts, block)
    assert starts[0] == 0 and starts[-1] == n and starts == sorted(starts)
    assert all(s % block == 0 for s in starts[:-1])
    work = row_ptr + node_work * np.arange(n + 1)  # the work before each node
    per_share = np.diff(work[starts])
    block_work = np.diff(work[list(range(0, n, block)) + [n]])
    # each share is within one node block's work of an equal split
    assert np.abs(per_share - work[-1] / parts).max() <= block_work.max()
    if parts > 1:  # a split by node count would be far off on this graph
        by_nodes = np.diff(work[np.linspace(0, n, parts + 1).astype(int)])
        assert by_nodes.max() > 1.2 * per_share.max()


def test_more_shares_than_blocks_leaves_some_empty(driver):
    row_ptr = [0, 2, 4, 6]  # three nodes, one block: the first thread takes it
    assert shares(driver, row_ptr, 4, 64)[1] == [0, 3, 3, 3, 3]
    row_ptr = [0, 200, 210, 220]  # a hub and two leaves, blocks of one node
    assert shares(driver, row_ptr, 2, 1)[1] == [0, 1, 3]
