"""Write the ratiometric time-lapse of the pipeline lesson.

Usage: python data_scripts/make_ratiometric.py --help
"""

import sys

from nima_lessons.cli.data import script_main

if __name__ == "__main__":
    sys.exit(script_main("ratiometric"))
