"""Distillation teachers: ASR with word times, the LM teacher (BERT-style, frame-aligned by word
times), speech teachers (HF HuBERT/wav2vec2 or the Whisper encoder), and the precomputation that
stores their features once in shards on disk."""
