"""Evaluation: metrics, scoring of maps, tables across runs.

Pure metrics (:mod:`.metrics`), scoring of maps (:mod:`.scoring`), tables
across runs (:mod:`.tables`: the leaderboard; :mod:`.loao`: the cross-validation summary:
leave-one-area-out and k-fold).
"""
