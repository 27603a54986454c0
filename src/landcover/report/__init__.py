"""Figures of the report (:mod:`.figures`) and the bench's tables and figures (:mod:`.bench`)."""
