"""Validation stage: run artifacts in their real runtimes and compare with the teacher."""
