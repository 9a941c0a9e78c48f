//! Stage 2: text -> L2-normalised embedding vectors (tokenize, batch by length, encode, pool).
