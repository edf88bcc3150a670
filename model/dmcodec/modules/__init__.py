"""Building blocks: padded convolutions, the residual LSTM, the SEANet encoder and decoder."""

from .conv import SConv1d, SConvTranspose1d, fold_weight_norm
from .lstm import SLSTM
from .seanet import SEANetDecoder, SEANetEncoder

__all__ = ["SLSTM", "SConv1d", "SConvTranspose1d", "SEANetDecoder", "SEANetEncoder", "fold_weight_norm"]
