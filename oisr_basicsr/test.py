"""Test any registered model with BasicSR's own test pipeline.

    python -m oisr_basicsr.test -opt options/test_OISR_RK3_x4.yml

``results/`` is written under the current directory.
"""

import os

import basicsr.test

from .options import parse_and_validate_options, report_user_errors


def main() -> None:
    basicsr.test.parse_options = parse_and_validate_options
    with report_user_errors():
        basicsr.test.test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
