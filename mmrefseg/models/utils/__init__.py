# Copyright (c) mmrefseg contributors.
from .new_token_rows import NewTokenEmbedding, NewTokenLMHead

__all__ = ['NewTokenEmbedding', 'NewTokenLMHead']
