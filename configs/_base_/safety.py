# The run-safety features every config of this suite declares, so that they hold with any launcher:
# our tools/train.py, the stock tools/train.py and tools/test.py of mmdet, mmseg and mmpretrain
# (they ship as <package>/.mim/tools/train.py),
# or `mim train`. A root config lists this file in its `_base_` and assigns the two names:
#     runner_type = {{_base_.safe_runner_type}}
#     default_hooks = {{_base_.safe_default_hooks}}
# (a body-level `default_hooks` is merged into the inherited one, so intervals etc. stay). The
# names are prefixed because mmengine refuses a key that two bases of one config both define.
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
# checks the datasets on disk before building them (lomar_transfer/engine/runner.py)
safe_runner_type = 'lomar_transfer.CheckedRunner'
safe_default_hooks = dict(
    # temporary file + rename for every checkpoint and last_checkpoint; prunes old ones only after
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook'),
    # RNG states in each checkpoint: a resumed run continues bit for bit
    exact_resume=dict(type='lomar_transfer.ExactResumeHook'),
    # stop at the first NaN / inf loss before anything is saved for that iteration
    finite_loss=dict(type='lomar_transfer.FiniteLossHook'))
