# ADE20K semantic segmentation with mmseg's stock ADE20KDataset (150 classes, reduce_zero_label),
# pipeline and IoUMetric (mIoU), on the embedded mini-ADE20K (`python tools/make_synthetic_data.py`).
# For real ADE20K set data_root='data/ade/ADEChallengeData2016' and the 512 crop / 2048x512 scale
# of mmseg's base config.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

# root: $LOMAR_DATA_ROOT, else data/synthetic (set by tools/benchmark.py --data-root)
data_root = '{{$LOMAR_DATA_ROOT:data/synthetic}}/ade/ADEChallengeData2016'
crop_size = (192, 192)
img_scale = (384, 192)  # synthetic images are 192-320 px per side: CPU-sized

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
