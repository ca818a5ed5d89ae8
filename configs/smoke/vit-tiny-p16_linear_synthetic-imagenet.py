# Smoke run of the registry + data wiring from mmpretrain: stock ImageClassifier + linear head on
# our ViT (built as `lomar_transfer.VisionTransformer` under default_scope='mmpretrain'), on the
# mini-ImageNet. A few iterations on CPU; fine-tune/linear-probe recipes live in configs/{lomar,mae,cae}/.
_base_ = [
    '../_base_/datasets/synthetic_imagenet.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/schedules/smoke_4iters.py',
    '../_base_/safety.py',
]
custom_imports = dict(imports=['lomar_transfer'], allow_failed_imports=False)
runner_type = _base_.safe_runner_type  # checks the data first (see _base_/safety.py)

dims = 64
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='lomar_transfer.VisionTransformer',
        arch=dict(embed_dims=dims, depth=4, num_heads=4, mlp_hidden_dims=4 * dims),
        patch_size=16,
        img_size=64,
        out_type='cls_token'),
    head=dict(
        type='LinearClsHead', num_classes=1000, in_channels=dims,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))

optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    _base_.safe_default_hooks,  # atomic checkpoints, exact resume, NaN stop
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='lomar_transfer.AtomicCheckpointHook', interval={{_base_.max_iters}},
                    by_epoch=False))
log_processor = dict(by_epoch=False)
