"""Write every on-disk lesson dataset with the sizes of a preset.

Usage: python data_scripts/make_all.py --help
"""

import sys

from nima_lessons.cli.data import script_main

if __name__ == "__main__":
    sys.exit(script_main("all"))
