from .checkpoint_hook import AtomicCheckpointHook
from .hooks import ExactResumeHook, FiniteLossHook, NonFiniteLossError
from .layer_decay import LayerDecayOptimWrapperConstructor
from .preemption import EXIT_STATUS, PreemptionHook
from .runner import CheckedRunner
from .work_dir_lock import WorkDirBusy, WorkDirLock

__all__ = ['AtomicCheckpointHook', 'CheckedRunner', 'EXIT_STATUS', 'ExactResumeHook',
           'FiniteLossHook', 'LayerDecayOptimWrapperConstructor', 'NonFiniteLossError',
           'PreemptionHook', 'WorkDirBusy', 'WorkDirLock']
