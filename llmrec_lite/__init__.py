"""llmrec_lite: run LLM-enhanced recommender papers on a laptop CPU, offline, on real data."""
__version__ = "0.1.0"
