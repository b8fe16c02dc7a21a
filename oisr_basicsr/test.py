"""Test any registered model with BasicSR's own test pipeline.

    python -m oisr_basicsr.test -opt options/test_OISR_RK3_x4.yml

``results/`` is written under the current directory; the run holds the lock on ``results/<name>`` until
it ends.
"""

import os
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial

import basicsr.test

from .options import parse_and_validate_options, report_user_errors
from .safeguards import install_basicsr_safeguards


def main(argv: Sequence[str] | None = None) -> None:
    """Run BasicSR's test pipeline with the package's option parsing (``sys.argv[1:]`` when argv is None)
    and its safeguards (:func:`~oisr_basicsr.install_basicsr_safeguards`)."""
    install_basicsr_safeguards()
    with report_user_errors(), ExitStack() as held:
        basicsr.test.parse_options = partial(parse_and_validate_options, argv=argv, hold=held)
        basicsr.test.test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
