"""Pose tokenizers (brief §4.1): VQ-VAEs over the 21 body joints in 6D rotations.

Later stages load a trained one with :func:`ajahr_model.tokenizer.checkpoint.load_tokenizer`;
the stage itself is ``ajahr train-tokenizer NAME`` (:mod:`ajahr_model.tokenizer.train`).
"""
