"""Data: the utterance manifest and its readers, the offline synthetic corpus, the training
dataset of aligned audio crops and teacher features."""
