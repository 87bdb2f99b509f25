"""The report: the paper's Table 1 from a finished search, honestly: frozen choices, seed runs,
the statistics of the table, what mattered, and its markdown, csv and figures.
"""
