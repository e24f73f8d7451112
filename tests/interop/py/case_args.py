"""The command line the case generators share: `--list` prints the case names, `OUT` makes
the output directory, anything else prints the generator's usage."""
import os
import sys


def output_dir(argv, usage, case_names):
    """OUT (made), or exits: 0 after printing the case names for --list, 2 with the usage."""
    if argv == ["--list"]:
        print("\n".join(case_names))
        sys.exit(0)
    if len(argv) != 1:
        print(usage, file=sys.stderr)
        sys.exit(2)
    os.makedirs(argv[0], exist_ok=True)
    return argv[0]
