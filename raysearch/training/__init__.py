"""Training one stage (the teacher, a student, the baseline) without Ray: its configuration, the
networks, batches, the step (eager or one CUDA graph), the optimizer, the stage's loop, evaluation
and the files a trained network is kept in.
"""
