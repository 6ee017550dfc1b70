"""`totes report`: the business dashboard from the marts (HTML report + PNG charts + CSV data).

The questions and charts live in `dashboard.ipynb` (open it in Jupyter to explore); the
analyses' SQL lives in the dbt project's `analyses/`. See `build.py` for the steps and output
layout, and docs/ANALYSTS.md for querying the marts by hand. The command itself is defined
with the others in `totes/cli.py`.
"""
