from .checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend, WriteError, atomic_write
from .hooks import ExactResumeHook, FiniteLossHook, NonFiniteLossError
from .layer_decay import LayerDecayOptimWrapperConstructor
from .preemption import EXIT_STATUS, PreemptionHook
from .runner import CheckedRunner
from .work_dir_lock import WorkDirBusy, WorkDirLock

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckedRunner', 'EXIT_STATUS',
           'ExactResumeHook', 'FiniteLossHook', 'LayerDecayOptimWrapperConstructor',
           'NonFiniteLossError', 'PreemptionHook', 'WorkDirBusy', 'WorkDirLock', 'WriteError',
           'atomic_write']
