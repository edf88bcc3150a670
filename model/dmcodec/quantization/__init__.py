"""Residual vector quantisation (RVQ) with EMA codebooks."""

from .codebook import EuclideanCodebook, kmeans, nearest
from .rvq import QuantizerOutput, ResidualVectorQuantizer

__all__ = ["EuclideanCodebook", "QuantizerOutput", "ResidualVectorQuantizer", "kmeans", "nearest"]
