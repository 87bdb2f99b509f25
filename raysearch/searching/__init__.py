"""The search on a Ray cluster: the space, the trainable, the teacher search and every arm as one
Tune experiment, the RUN_DIR it keeps, the console, and the summary.
"""
