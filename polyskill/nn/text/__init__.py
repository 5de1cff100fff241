"""Text encoders as backbones: a hashing tokenizer with TextCNN or bag-of-embeddings encoders trained from
scratch, a pretrained sentence-transformers encoder (frozen or fine-tuned), and the on-disk embedding cache."""

from .bag import BagOfEmbeddings
from .conv import TextCNN
from .embedding_cache import EmbeddingFeaturizer, TextEmbedder, TokenFeaturizer, cached_embeddings, texts_digest
from .hashing import HashingTokenizer, fnv1a_64
from .sentence import SentenceEncoder, SentenceTokenizer, transformer_layers

__all__ = [
    "BagOfEmbeddings",
    "EmbeddingFeaturizer",
    "HashingTokenizer",
    "SentenceEncoder",
    "SentenceTokenizer",
    "TextCNN",
    "TextEmbedder",
    "TokenFeaturizer",
    "cached_embeddings",
    "fnv1a_64",
    "texts_digest",
    "transformer_layers",
]
