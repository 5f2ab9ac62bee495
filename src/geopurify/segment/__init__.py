"""Classification and open-vocabulary queries over per-point features."""

from .classify import classify, similarity
from .query import PhraseRanking, mask_from_scores, query_scores, rank_phrases

__all__ = ["PhraseRanking", "classify", "mask_from_scores", "query_scores", "rank_phrases", "similarity"]
