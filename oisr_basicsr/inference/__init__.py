"""Inference on the user's images: the upsamplers (:mod:`.upsampler`) and tiled forward passes (:mod:`.tiling`)."""
