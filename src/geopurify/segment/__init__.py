"""Classification and open-vocabulary queries over per-point features.

Names load their module on first use, so the CLI can read :class:`QueryConfig` without torch.
"""

from __future__ import annotations

from ..utils.lazy import lazy_exports

_WHERE = {
    "classify": "classify", "similarity": "classify",
    "PhraseRanking": "query", "mask_from_scores": "query", "query_scores": "query", "rank_phrases": "query",
    "QueryConfig": "config", "PurifiedScene": "purify", "purify_scene": "purify",
}  # fmt: skip
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
