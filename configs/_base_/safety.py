# The run-safety features every config of this suite declares, so that they hold with any launcher:
# our tools/train.py, the stock tools/train.py and tools/test.py of mmdet, mmseg and mmpretrain
# (they ship as <package>/.mim/tools/train.py),
# or `mim train`. A root config lists this file in its `_base_` and assigns the two names:
#     runner_type = {{_base_.safe_runner_type}}
#     default_hooks = {{_base_.safe_default_hooks}}
# (a body-level `default_hooks` is merged into the inherited one, so intervals etc. stay). The
# names are prefixed because mmengine refuses a key that two bases of one config both define.
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
# checks the datasets on disk before building them, refuses a second run in the same work dir,
# and resumes an interrupted run there on its own (lomar_transfer/engine/runner.py)
safe_runner_type = 'lomar_transfer.CheckedRunner'
safe_default_hooks = dict(
    # temporary file + rename for every checkpoint and last_checkpoint; prunes old ones only after
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook'),
    # RNG states in each checkpoint: a resumed run continues bit for bit
    exact_resume=dict(type='lomar_transfer.ExactResumeHook'),
    # stop at the first NaN / inf loss before anything is saved for that iteration
    finite_loss=dict(type='lomar_transfer.FiniteLossHook'),
    # SIGTERM / SIGUSR1 (preemption, time limit): finish the iteration, checkpoint, exit 143 / 75
    preemption=dict(type='lomar_transfer.PreemptionHook'))
# a run started again in a work dir with a last_checkpoint continues from it (False: from scratch)
auto_resume = True
# a corrupt / truncated / unreadable image or label map met in training is replaced by the next
# sample, logged and listed in WORK_DIR/bad_samples.txt; past max_skipped distinct files the run
# stops listing them (evaluation stops at the first: lomar_transfer/datasets/bad_samples.py).
# Small: a few broken files of a large download are worth skipping, but more point at a broken
# copy (half-extracted archive, wrong folder) that would silently train on another data set.
bad_samples = dict(max_skipped=10)
