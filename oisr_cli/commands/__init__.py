"""The subcommands of ``oisr``, one module each, in the order ``oisr --help`` lists them."""

from . import (
    check,
    compare,
    complexity,
    convert,
    export,
    infer,
    options,
    plot_scales,
    prepare_data,
    quickstart,
    test,
    train,
)

SUBCOMMANDS = tuple(module.COMMAND for module in (train, test, check, infer, convert, export, compare, complexity,
                                                   prepare_data, plot_scales, quickstart, options))
