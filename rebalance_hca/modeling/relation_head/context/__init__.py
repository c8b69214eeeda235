"""Context modules: per-object features from which pair representations are built (docs/reference.md#object-context)."""
from .attention import AttentionCell, AttentionOptions, FeedForward, MultiHeadAttention, PaddedLayout
from .hybrid_co_attention import HybridCoAttentionContext
from .base import ContextInputs, ObjectContext
from .imp import IMPContext, PairContext
from .motifs import LSTMContext
from .transformer import TransformerContext
from .vtranse import VTransEContext

__all__ = ["AttentionCell", "AttentionOptions", "ContextInputs", "FeedForward", "HybridCoAttentionContext", "IMPContext",
           "LSTMContext", "MultiHeadAttention", "ObjectContext", "PaddedLayout", "PairContext", "TransformerContext",
           "VTransEContext"]
