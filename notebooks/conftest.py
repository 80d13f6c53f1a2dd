"""The solution files are loaded into the lessons with %load (and run through their checkers
by tests/course/test_exercises.py); they use the lesson's variables, so they are not modules
to import on their own."""

collect_ignore_glob = ["solutions/*.py"]
