"""The evaluation harness: resynthesis quality, ASR error rates and codebook statistics."""
