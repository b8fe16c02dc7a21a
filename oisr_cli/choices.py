"""Values the parsers need from the package (choices and defaults), written here because importing the package
imports torch; ``tests/test_cli.py`` keeps each equal to the package's own."""

# oisr_basicsr.precisions.PRECISIONS.
PRECISIONS = ('fp32', 'bf16', 'fp16')
# oisr_basicsr.archs.oisr_arch.PAPER_MODELS: the paper's models, which `oisr convert` converts.
PAPER_MODELS = ('LF-s', 'RK2-s', 'LF', 'RK2', 'RK3')
# oisr_basicsr.checkpoints.conversion.SCALES: the scales the authors released.
CONVERSION_SCALES = (2, 3, 4)
# oisr_basicsr.tools.export_onnx.DEFAULT_OPSET.
DEFAULT_OPSET = 18
# oisr_basicsr.complexity.MACS_OUTPUT_SIZE: the HR output (H, W) MACs are counted for.
MACS_OUTPUT_SIZE = (720, 1280)
