"""Build the lazy Mandelbrot zoom stack and find its first uniform frame.

Usage: python data_scripts/make_mandelbrot.py --help
"""

import sys

from nima_lessons.cli.data import script_main

if __name__ == "__main__":
    sys.exit(script_main("mandelbrot"))
