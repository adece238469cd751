"""Fine-tuning the descriptor on a folder-per-landmark collection (metric learning).

Recognition stays retrieval over the gallery: training only makes the descriptor better, so a
new landmark still needs photos, not retraining. A trained model directory is a backbone
(``model:<dir>``) that indexing, ONNX export and recognition use unchanged.

Modules: ``data`` (reading, augmentation, split, sampler), ``features`` (cached frozen-backbone
descriptors of augmented views), ``heads`` (projection head and margin losses), ``model``
(model directory format, loading as a backbone), ``train`` (the loop), ``curves`` (CSV + PNG),
``compare`` (backbones side by side on one benchmark).
"""
