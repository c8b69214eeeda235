"""SynthVG's parts: vocabulary, scene sampling, relation truth, annotator, rendering, word vectors, writers.

The entry points are in ``rebalance_hca.data.synthetic``.
"""
