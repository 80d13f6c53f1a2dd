"""Write the nuclei image of the tiled-counting lesson as OME-Zarr.

Usage: python data_scripts/make_nuclei.py --help
"""

import sys

from nima_lessons.cli.data import script_main

if __name__ == "__main__":
    sys.exit(script_main("nuclei"))
