from .feature_eval import (clustering_accuracy, extract_features, knn_accuracy,
                           linear_probe_accuracy, low_shot_indices)

__all__ = ['clustering_accuracy', 'extract_features', 'knn_accuracy', 'linear_probe_accuracy',
           'low_shot_indices']
