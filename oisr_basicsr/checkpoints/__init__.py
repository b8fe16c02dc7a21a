"""Checkpoints: safe loading and atomic saving with the RNG state (:mod:`.io`), loading a network from an option
file (:mod:`.loading`), the authors' layout converted (:mod:`.conversion`) and model cards (:mod:`.card`)."""
