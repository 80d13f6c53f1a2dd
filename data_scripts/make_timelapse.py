"""Write the TIFF-folder time-lapse of the lazy-loading lesson.

Usage: python data_scripts/make_timelapse.py --help
"""

import sys

from nima_lessons.cli.data import script_main

if __name__ == "__main__":
    sys.exit(script_main("timelapse"))
