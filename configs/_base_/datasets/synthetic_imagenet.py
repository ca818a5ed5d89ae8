# ImageNet classification with mmpretrain's stock ImageNet dataset (meta/{train,val}.txt, 1000-class
# label space) and Accuracy, on the embedded mini-ImageNet (`python tools/make_synthetic_data.py`).
# For real ImageNet set data_root='data/imagenet' and the 224 crops of mmpretrain's base config.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'

# root: $LOMAR_DATA_ROOT, else data/synthetic (set by tools/benchmark.py --data-root)
data_root = '{{$LOMAR_DATA_ROOT:data/synthetic}}/imagenet'
img_size = 112  # synthetic images are 96-160 px; the CPU pretraining size

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size * 8 // 7, edge='short'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
