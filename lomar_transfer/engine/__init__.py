from .checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend, atomic_write
from .hooks import ExactResumeHook, FiniteLossHook, NonFiniteLossError
from .layer_decay import LayerDecayOptimWrapperConstructor
from .runner import CheckedRunner

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckedRunner', 'ExactResumeHook',
           'FiniteLossHook', 'LayerDecayOptimWrapperConstructor', 'NonFiniteLossError',
           'atomic_write']
