from .feature_eval import (PROBE_LRS, clustering_accuracy, clustering_scores, extract_features,
                           feature_stats, knn_accuracy, knn_topk, linear_probe_accuracy,
                           logistic_regression_accuracy, low_shot_indices, read_split_file,
                           split_indices, standardise)

__all__ = ['PROBE_LRS', 'clustering_accuracy', 'clustering_scores', 'extract_features',
           'feature_stats', 'knn_accuracy', 'knn_topk', 'linear_probe_accuracy',
           'logistic_regression_accuracy', 'low_shot_indices', 'read_split_file', 'split_indices',
           'standardise']
