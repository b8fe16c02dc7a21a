"""The precisions a network runs in, for training (``acceleration.precision``), ``oisr infer`` and ``oisr export``.

:data:`PRECISIONS` maps each name to the type autocast computes in; fp32 is plain float32 without autocast.
"""

import torch

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def tensor_dtype(precision: str) -> torch.dtype:
    """The type of weights and tensors cast to ``precision`` (e.g. for an ONNX export in that precision).

    Args:
        precision: A key of :data:`PRECISIONS`.
    """
    return PRECISIONS[precision] or torch.float32
