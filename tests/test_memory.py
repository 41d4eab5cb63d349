"""keep_freed_memory: glibc keeps freed blocks for reuse instead of handing them back to the kernel each time,
which a training step would pay for in page faults (every fresh page is zero-filled by the kernel)."""

import platform
import subprocess
import sys

import pytest
from conftest import ROOT

# What a minibatch step does to memory: tensors of several MB, all freed by the end of the step.
CYCLES = """
import resource, sys
import torch
from ppo.runner import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()

def step(k):
    # 16 x 8 MB, one page larger each step: glibc's default raises its mmap threshold to the size of a freed
    # mmap'd block, so same-sized blocks would sometimes be kept by the default too, depending on what else lies
    # on the heap; a block larger than any freed one before is always mmap'd (and faulted in) by default.
    tensors = [torch.ones(2_000_000 + 1024 * k) for _ in range(16)]
    del tensors

step(0); step(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for k in range(2, 7):
    step(k)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_STEP = 16 * 8_000_000 // 4096


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CYCLES, mode], cwd=ROOT, check=True, capture_output=True, text=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_tensors_are_reused_without_page_faults():
    assert page_faults("default") > 4 * PAGES_PER_STEP  # glibc's defaults: the memory is faulted in every step
    assert page_faults("kept") < PAGES_PER_STEP // 10
