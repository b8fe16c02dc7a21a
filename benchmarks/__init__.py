"""The project's measurement scripts: speed, memory and accuracy figures recorded in ``docs/benchmarks.md``.

Not part of the installed package. Run each one as a module from the repository root, e.g.
``python -m benchmarks.bench_inference --help``; ``benchmarks/README.md`` lists what each one measures.
"""
