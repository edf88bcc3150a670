"""dmcodec_train: training, distillation teachers and evaluation for DM-Codec (not written yet; see the README)."""
