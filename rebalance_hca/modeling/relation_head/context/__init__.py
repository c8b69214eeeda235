"""Context modules: per-object features from which pair representations are built (docs/reference.md#object-context)."""
from .attention import AttentionCell, AttentionOptions, FeedForward, MultiHeadAttention, PaddedLayout
from .hybrid_co_attention import HybridCoAttentionContext
from .base import ContextInputs, ObjectContext
from .transformer import TransformerContext

__all__ = ["AttentionCell", "AttentionOptions", "ContextInputs", "FeedForward", "HybridCoAttentionContext", "MultiHeadAttention",
           "ObjectContext", "PaddedLayout", "TransformerContext"]
