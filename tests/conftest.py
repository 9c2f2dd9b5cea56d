"""Suite-wide settings: torch on one intra-op thread.

The models in the tests are tiny; with two threads torch's idle workers busy-wait and slow down
everything else on a 2-core CI machine (MuJoCo's thread pool included, REFERENCE.md section 5).
"""

import torch

torch.set_num_threads(1)
