"""Shared machinery of the downstream evaluations (not processors themselves).

- :mod:`.subsets`: class-balanced seeded subsets (semi-supervised labels, held-out monitor split);
- :mod:`.knn`: chunked cosine k-NN classification;
- :mod:`.scores`: top-k accuracy, confusion matrices, per-class accuracy, the ``scores.pkl`` file;
- :mod:`.encoder_loading`: pretrained checkpoints (ours or official SCD-Net) into the classifier;
- :mod:`.frozen`: the frozen-encoder guard (weights and BatchNorm statistics must not move);
- :mod:`.features`: feature extraction and prediction loops over a dataset;
- :mod:`.classification`: the base processor of linear / semi-supervised / fine-tuning evaluation;
- :mod:`.figures`: matplotlib (Agg) figures; :mod:`.tsne`: t-SNE + k-means embeddings;
- :mod:`.markdown`: small Markdown / CSV table writers.
"""
